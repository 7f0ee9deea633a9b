"""Gating: --fail-on, --fail-on-category, --exit-zero, and incomplete -> 3 first; and
the reference list of ``scan --from-file``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from scanner.commands.batch import parse_refs, read_refs
from scanner.errors import UsageError
from scanner.findings import Category, Severity
from scanner.gate import (
    EXIT_CLEAN,
    EXIT_CODES,
    EXIT_FINDINGS,
    EXIT_INCOMPLETE,
    Gate,
    exit_code_table,
    parse_categories,
    scan_exit_code,
)
from scanner.results import ScanProblem
from tests.report import config_finding, file_finding, image_result, report

HIGH_SECRET = file_finding(severity=Severity.HIGH)
MEDIUM_MISCONFIG = config_finding(severity=Severity.MEDIUM)
PROBLEM = ScanProblem("img", "linux/amd64", 1, "layer 1: truncated")


@pytest.mark.parametrize(
    ("fail_on", "categories", "findings", "expected"),
    [
        ("high", None, [HIGH_SECRET], EXIT_FINDINGS),
        ("critical", None, [HIGH_SECRET], EXIT_CLEAN),
        ("medium", None, [MEDIUM_MISCONFIG], EXIT_FINDINGS),
        ("high", None, [MEDIUM_MISCONFIG], EXIT_CLEAN),
        ("info", None, [], EXIT_CLEAN),
        ("medium", "secret", [MEDIUM_MISCONFIG], EXIT_CLEAN),
        ("medium", "secret", [MEDIUM_MISCONFIG, HIGH_SECRET], EXIT_FINDINGS),
        ("medium", ["misconfig", "supply-chain"], [MEDIUM_MISCONFIG], EXIT_FINDINGS),
        ("low", "secret,misconfig", [MEDIUM_MISCONFIG], EXIT_FINDINGS),
        ("low", "all", [MEDIUM_MISCONFIG], EXIT_FINDINGS),
    ],
)
def test_scan_exit_code(
    fail_on: str, categories: str | list[str] | None, findings: list, expected: int
) -> None:
    gate = Gate.from_cli(fail_on, categories)
    assert gate.scan_exit_code(report(image_result(findings=findings))) == expected


def test_incomplete_takes_precedence_and_exit_zero_does_not_hide_it() -> None:
    broken = report(image_result(findings=[HIGH_SECRET], problems=[PROBLEM]))
    assert Gate.from_cli("high").scan_exit_code(broken) == EXIT_INCOMPLETE
    assert Gate.from_cli("high", exit_zero=True).scan_exit_code(broken) == EXIT_INCOMPLETE
    assert Gate.from_cli("critical").scan_exit_code(broken) == EXIT_INCOMPLETE


def test_exit_zero() -> None:
    rep = report(image_result(findings=[HIGH_SECRET]))
    assert Gate.from_cli("low", exit_zero=True).scan_exit_code(rep) == EXIT_CLEAN


def test_scan_exit_code_uses_report_fail_on() -> None:
    rep = report(image_result(findings=[MEDIUM_MISCONFIG]), fail_on=Severity.MEDIUM)
    assert scan_exit_code(rep) == EXIT_FINDINGS
    assert scan_exit_code(rep, fail_on_category=("secret",)) == EXIT_CLEAN
    assert scan_exit_code(rep, exit_zero=True) == EXIT_CLEAN


def test_diff_and_timeline_gate_only_on_what_they_are_given() -> None:
    gate = Gate.from_cli("high")
    assert gate.diff_exit_code([], complete=True) == EXIT_CLEAN
    assert gate.diff_exit_code([HIGH_SECRET], complete=True) == EXIT_FINDINGS
    assert gate.diff_exit_code([], complete=False) == EXIT_INCOMPLETE
    assert gate.timeline_exit_code([MEDIUM_MISCONFIG], complete=True) == EXIT_CLEAN
    assert gate.fly_exit_code(report(image_result()), api_complete=False) == EXIT_INCOMPLETE


def test_parse_categories() -> None:
    assert parse_categories(None) == frozenset()
    assert parse_categories(("secret, misconfig", "SUPPLY-CHAIN")) == {
        Category.SECRET,
        Category.MISCONFIG,
        Category.SUPPLY_CHAIN,
    }
    with pytest.raises(ValueError, match="unknown category 'secrets'"):
        parse_categories("secrets")
    with pytest.raises(ValueError, match="unknown severity"):
        Gate.from_cli("severe")


def test_describe_and_table() -> None:
    gate = Gate.from_cli("medium", "secret,misconfig")
    assert gate.describe() == "--fail-on medium --fail-on-category misconfig,secret"
    table = exit_code_table()
    for code in EXIT_CODES:
        assert f"| {code} |" in table


# --- scan --from-file (the reference list of a batch run) -----------------------------------


def test_read_refs_skips_blanks_and_comments(tmp_path: Path) -> None:
    refs = tmp_path / "refs.txt"
    refs.write_text(
        "# every app in the org\n"
        "\n"
        "registry.fly.io/app-a:deployment-01HZX  # web\n"
        "   registry.fly.io/app-b@sha256:" + "b" * 64 + "\n"
        "\t# indented comment\n"
        "oci:/srv/images/x#1\n"
        "registry.fly.io/app-a:deployment-01HZX\n"
    )
    assert read_refs(refs) == [
        "registry.fly.io/app-a:deployment-01HZX",
        "registry.fly.io/app-b@sha256:" + "b" * 64,
        "oci:/srv/images/x#1",
    ]


def test_read_refs_from_stdin() -> None:
    assert read_refs("-", stdin=io.StringIO("a\n\n# c\nb\n")) == ["a", "b"]


def test_read_refs_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        read_refs(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(UsageError, match="no image references"):
        read_refs(empty)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UsageError, match="UTF-8"):
        read_refs(binary)
    assert parse_refs("") == []

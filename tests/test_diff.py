"""``layerleak diff``: matching by fingerprint, new/fixed/unchanged, and the gate that
fails only on new findings. Unit tests on reports built directly; the end-to-end test
builds two releases of a fixture image and runs the command on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from scanner.diff import diff_reports
from scanner.findings import Severity
from scanner.gate import EXIT_CLEAN, EXIT_FINDINGS, EXIT_INCOMPLETE, Gate
from scanner.report.registry import render
from scanner.results import ScanProblem
from tests.report import (
    RAW_SECRET,
    config_finding,
    file_finding,
    image_result,
    report,
)

OLD_SECRET = file_finding("app/old.env", secret="ghp_" + "O" * 36, image="app:1")
KEPT_SECRET = file_finding("app/deploy.env", layer=1, image="app:1")
ROOT = config_finding(image="app:1")


def old_report():  # type: ignore[no-untyped-def]
    return report(image_result("app:1", findings=[OLD_SECRET, KEPT_SECRET, ROOT]))


def new_report(*extra, problems=()):  # type: ignore[no-untyped-def]
    moved = file_finding("app/deploy.env", layer=3, image="app:2", created_by="COPY . /app")
    return report(
        image_result(
            "app:2",
            findings=[moved, config_finding(image="app:2"), *extra],
            problems=list(problems),
        )
    )


def test_matching_by_fingerprint() -> None:
    new_secret = file_finding(
        "app/new.env", secret="ghp_" + "N" * 36, severity=Severity.CRITICAL, image="app:2"
    )
    diff = diff_reports(old_report(), new_report(new_secret))
    assert [e.finding.location.path for e in diff.added] == ["app/new.env"]
    assert [e.finding.location.path for e in diff.fixed] == ["app/old.env"]
    # moved to another layer by the rebuild: still the same finding
    unchanged = {e.finding.rule_id for e in diff.unchanged}
    assert unchanged == {"github-pat", "root-user"}
    assert diff.baseline_states()[new_secret.fingerprint] == "new"
    assert diff.baseline_states()[KEPT_SECRET.fingerprint] == "unchanged"


def test_occurrences_grouped() -> None:
    amd = file_finding("app/x.env", image="app:2", platform="linux/amd64")
    arm = file_finding("app/x.env", image="app:2", platform="linux/arm64")
    diff = diff_reports(report(image_result("app:1")), report(image_result("app:2", [amd, arm])))
    assert len(diff.added) == 1
    assert len(diff.added[0].findings) == 2
    assert len(diff.new_findings) == 2


def test_gate_fails_only_on_new_findings() -> None:
    gate = Gate.from_cli("high")
    # old findings at high stay: nothing new -> 0
    assert diff_reports(old_report(), new_report()).exit_code(gate) == EXIT_CLEAN
    new_medium = config_finding(rule_id="exposed-port", field="config.ExposedPorts[22/tcp]")
    assert diff_reports(old_report(), new_report(new_medium)).exit_code(gate) == EXIT_CLEAN
    new_high = file_finding("app/n.env", secret="ghp_" + "H" * 36, image="app:2")
    diff = diff_reports(old_report(), new_report(new_high))
    assert diff.exit_code(gate) == EXIT_FINDINGS
    assert diff.exit_code(Gate.from_cli("high", "misconfig")) == EXIT_CLEAN
    assert diff.exit_code(Gate.from_cli("high", exit_zero=True)) == EXIT_CLEAN


def test_incomplete_either_side_exits_3() -> None:
    problem = ScanProblem("app:2", None, 1, "layer 1: digest mismatch")
    diff = diff_reports(old_report(), new_report(problems=[problem]))
    assert diff.exit_code(Gate.from_cli("critical")) == EXIT_INCOMPLETE


@pytest.mark.parametrize("fmt", ["table", "json", "markdown", "sarif"])
def test_renderings_never_show_raw_secret(fmt: str) -> None:
    new_secret = file_finding("app/new.env", image="app:2", secret=RAW_SECRET[:-1] + "X")
    diff = diff_reports(old_report(), new_report(new_secret))
    text = render(diff, fmt, Gate.from_cli("high"))
    assert RAW_SECRET not in text and RAW_SECRET[:-1] + "X" not in text
    assert "app/new.env" in text


def test_json_and_sarif_shapes() -> None:
    new_secret = file_finding("app/new.env", image="app:2", secret="ghp_" + "J" * 36)
    diff = diff_reports(old_report(), new_report(new_secret))
    doc = json.loads(render(diff, "json", Gate.from_cli("high")))
    assert doc["summary"]["gating"] == 1
    assert [e["change"] for e in doc["added"]] == ["new"]
    assert doc["fixed"][0]["occurrences"][0]["location"]["path"] == "app/old.env"
    assert len(doc["unchanged"]) == 2
    log = json.loads(render(diff, "sarif", Gate.from_cli("high")))
    states = sorted(r["baselineState"] for r in log["runs"][0]["results"])
    assert states == ["absent", "new", "unchanged", "unchanged"]
    md = render(diff, "markdown", Gate.from_cli("high"))
    assert "### New (1)" in md and "### Fixed (1)" in md and "Unchanged (2)" in md


# --- end to end --------------------------------------------------------------------------


def _layouts(tmp_path: Path) -> tuple[Path, Path]:
    import fixtures.catalog as fixtures
    from fixtures.imagebuilder import write_oci_layout

    old = write_oci_layout(tmp_path / "old", [fixtures.clean_image()])
    new = write_oci_layout(tmp_path / "new", [fixtures.deleted_secret_image()])
    return old, new


def _cli():  # type: ignore[no-untyped-def]
    from scanner.commands.diff import diff_command

    return diff_command


def test_diff_command_end_to_end(tmp_path: Path) -> None:
    command = _cli()
    old, new = _layouts(tmp_path)
    runner = CliRunner()
    cache = ["--cache-dir", str(tmp_path / "cache")]
    result = runner.invoke(command, [f"oci:{old}", f"oci:{new}", "--format", "json", *cache])
    assert result.exit_code in (EXIT_CLEAN, EXIT_FINDINGS), result.output
    doc = json.loads(result.stdout)
    assert doc["complete"] is True
    assert "layerleak diff: new" in result.stderr
    added = [o for e in doc["added"] for o in e["occurrences"]]
    assert added, "the new release adds findings (setuid su, root user at least)"
    paths = {o["location"]["path"] for o in added}
    assert {"app/secrets/id_rsa", "app/deploy.env"} <= paths
    assert result.exit_code == EXIT_FINDINGS
    # the same image against itself: nothing new, exit 0 whatever it contains
    same = runner.invoke(command, [f"oci:{new}", f"oci:{new}", "--format", "json", "-q", *cache])
    assert same.exit_code == EXIT_CLEAN, same.output
    assert json.loads(same.stdout)["added"] == []
    assert same.stderr == ""


def test_diff_honours_the_ignore_file(tmp_path: Path) -> None:
    old, new = _layouts(tmp_path)
    ignore = tmp_path / "ignore.toml"
    ignore.write_text(
        '[[ignore]]\nrule = "*"\npath = "/app/**"\nreason = "rotated after the incident"\n'
    )
    args = [
        f"oci:{old}",
        f"oci:{new}",
        "--format",
        "json",
        "--no-cache",
        "-q",
        "--fail-on",
        "critical",
    ]
    plain = CliRunner().invoke(_cli(), args)
    assert plain.exit_code == EXIT_FINDINGS  # the RSA key in /app is critical
    ignored = CliRunner().invoke(_cli(), [*args, "--ignore-file", str(ignore)])
    assert ignored.exit_code == EXIT_CLEAN, ignored.output
    added = [o for e in json.loads(ignored.stdout)["added"] for o in e["occurrences"]]
    assert not any((o["location"]["path"] or "").startswith("app/") for o in added)

"""``timeline --from-file``: several repositories' timelines in one run (TimelineSet)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from scanner.commands.batch import read_refs
from scanner.commands.timeline import timeline_command
from scanner.errors import UsageError
from scanner.findings import Severity
from scanner.gate import EXIT_CLEAN, EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_USAGE, Gate
from scanner.report.registry import formats, render
from scanner.results import ScanProblem
from scanner.scan import Scanner
from scanner.timeline import Timeline
from scanner.timelines import TimelineSet
from tests.test_timeline import _push_releases


@pytest.fixture(scope="module")
def fleet(
    registry_anonymous: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str, str]:
    """Two repositories with the same releases (so every layer is shared between them)."""
    tmp = tmp_path_factory.mktemp("fleet")
    host, one = _push_releases(registry_anonymous, tmp / "one")
    _, two = _push_releases(registry_anonymous, tmp / "two")
    return host, one, two


def _run(args: list[str], tmp_path: Path, fmt: str = "json") -> Any:
    base = ["--match", "deployment-*", "--format", fmt, "--cache-dir", str(tmp_path / "c")]
    return CliRunner().invoke(timeline_command, [*args, *base])


def test_several_repositories_one_report(fleet: tuple[str, str, str], tmp_path: Path) -> None:
    host, one, two = fleet
    listing = tmp_path / "repos.txt"
    listing.write_text(f"# the fleet\n\n{host}/{one}  # first\n{host}/{two}\n{host}/{one}\n")
    both = _run(["--from-file", str(listing)], tmp_path)
    single = _run([f"{host}/{one}"], tmp_path / "single")
    assert both.exit_code == single.exit_code == EXIT_CLEAN, both.output  # newest releases clean
    doc = json.loads(both.stdout)
    assert set(doc) == {"schema_version", "tool", "fail_on", "complete", "timelines"}
    assert doc["complete"] is True and doc["fail_on"] == "high"
    # the duplicate is built once, in the order first given
    assert [t["repository"] for t in doc["timelines"]] == [f"{host}/{one}", f"{host}/{two}"]
    alone = json.loads(single.stdout)
    first = doc["timelines"][0]
    # each repository's entry is exactly the single timeline's document, less the header
    assert first == {k: v for k, v in alone.items() if k not in ("schema_version", "tool")}
    for t in doc["timelines"]:
        assert [r["tag"] for r in t["releases"]] == [
            "deployment-c",
            "deployment-a",
            "deployment-b",
            "deployment-d",
        ]
        assert t["exposures"] and not any(e["in_newest"] for e in t["exposures"])
    assert "layerleak timeline: 2 repository(ies), 8 release(s)" in both.stderr


def test_a_leak_in_any_newest_release_fails_the_run(
    fleet: tuple[str, str, str], tmp_path: Path
) -> None:
    host, one, two = fleet
    listing = tmp_path / "repos.txt"
    listing.write_text(f"{host}/{one}\n")
    # deployment-b (leaky) is the newest matching release
    leaky = CliRunner().invoke(
        timeline_command,
        [
            f"{host}/{two}",
            "--from-file",
            str(listing),
            "--match",
            "deployment-[abc]",
            "--format",
            "json",
        ],
    )
    assert leaky.exit_code == EXIT_FINDINGS, leaky.output
    doc = json.loads(leaky.stdout)
    # the REPOSITORY argument comes first, then the file
    assert [t["repository"] for t in doc["timelines"]] == [f"{host}/{two}", f"{host}/{one}"]
    assert all(t["newest"] == "deployment-b" for t in doc["timelines"])
    zero = CliRunner().invoke(
        timeline_command,
        [
            "--from-file",
            str(listing),
            "--match",
            "deployment-[abc]",
            "--format",
            "json",
            "--exit-zero",
        ],
    )
    assert zero.exit_code == EXIT_CLEAN, zero.output


def test_an_unreadable_repository_is_a_problem_not_the_end(
    fleet: tuple[str, str, str], tmp_path: Path
) -> None:
    host, one, _ = fleet
    listing = tmp_path / "repos.txt"
    listing.write_text(
        f"{host}/{one}\n{host}/no/such-repo\n\x1b[31mred\x07/x\n"
        f"not a reference!\n{host}/{one}:tag\n"
    )
    out = _run(["--from-file", str(listing), "--exit-zero"], tmp_path)
    assert out.exit_code == EXIT_INCOMPLETE, out.output  # incomplete beats --exit-zero
    doc = json.loads(out.stdout)
    assert doc["complete"] is False
    good, *bad = doc["timelines"]
    assert good["complete"] is True and good["exposures"]
    assert len(bad) == 4
    for t in bad:
        assert t["complete"] is False and t["releases"] == [] and len(t["problems"]) == 1
    assert "--match" in bad[3]["problems"][0]["message"]  # a tag is refused, as in single mode
    # control characters from the file are escaped on the terminal, in every format
    assert "\x1b" not in out.stderr and "\x07" not in out.stderr
    assert out.stderr.count("layerleak: error: ") == 4
    for fmt in ("table", "markdown", "html"):
        text = _run(["--from-file", str(listing), "-q"], tmp_path, fmt)
        assert text.exit_code == EXIT_INCOMPLETE, text.output
        assert "\x1b" not in text.stdout and "\x07" not in text.stdout
        assert "no/such-repo" in text.stdout and one in text.stdout


def test_layers_shared_between_repositories_are_scanned_once(
    fleet: tuple[str, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, one, two = fleet
    scanned: list[str] = []
    original = Scanner._scan_layers

    def spy(self: Scanner, layers: list[Any]) -> None:
        scanned.extend(layer.digest for layer in layers)
        original(self, layers)

    monkeypatch.setattr(Scanner, "_scan_layers", spy)
    listing = tmp_path / "repos.txt"
    listing.write_text(f"{host}/{one}\n{host}/{two}\n")
    out = _run(["--from-file", str(listing), "--no-cache"], tmp_path)
    assert out.exit_code == EXIT_CLEAN, out.output
    assert scanned and len(scanned) == len(set(scanned))
    doc = json.loads(out.stdout)
    # the second repository's releases still have every finding of the first's
    first, second = doc["timelines"]
    assert [e["fingerprint"] for e in first["exposures"]] == [
        e["fingerprint"] for e in second["exposures"]
    ]


def test_from_file_errors_are_usage_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    assert CliRunner().invoke(timeline_command, ["--from-file", str(empty)]).exit_code == 2
    missing = CliRunner().invoke(timeline_command, ["--from-file", str(tmp_path / "nope")])
    assert missing.exit_code == EXIT_USAGE and "no such file" in missing.stderr
    neither = CliRunner().invoke(timeline_command, [])
    assert neither.exit_code == EXIT_USAGE and "--from-file" in neither.output
    both_stdin = CliRunner().invoke(
        timeline_command, ["--from-file", "-", "--password-stdin", "-u", "x"], input="a/b\n"
    )
    assert both_stdin.exit_code == EXIT_USAGE


def test_a_huge_file_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.txt"
    with huge.open("w") as f:
        for _ in range(9):
            f.write(("registry.example/app\n" * 52429)[: 1024 * 1024])
    out = CliRunner().invoke(timeline_command, ["--from-file", str(huge)])
    assert out.exit_code == EXIT_USAGE and "larger than" in out.stderr
    stdin = io.StringIO("a/b\n" * 100)
    with pytest.raises(UsageError, match="larger than 50 characters"):
        read_refs("-", stdin=stdin, max_chars=50)
    assert read_refs("-", stdin=io.StringIO("a/b\n" * 10), max_chars=50) == ["a/b"]


def _timeline(repository: str, problem: str | None = None) -> Timeline:
    problems = [ScanProblem(repository, None, None, problem)] if problem else []
    return Timeline(repository=repository, patterns=(), releases=[], list_problems=problems)


def test_the_set_renders_every_timeline_format_and_gates_like_timeline() -> None:
    assert formats("timelines") == formats("timeline")
    gate = Gate(Severity.HIGH)
    many = TimelineSet([_timeline("r.example/a"), _timeline("r.example/<b>", "gone")])
    assert many.exit_code(gate) == EXIT_INCOMPLETE and not many.complete
    assert TimelineSet([]).exit_code(gate) == EXIT_INCOMPLETE
    for fmt in formats("timelines"):
        text = render(many, fmt, gate)
        assert "r.example/a" in text
        if fmt == "html":
            assert "r.example/<b>" not in text and "r.example/&lt;b&gt;" in text
    assert [t["repository"] for t in json.loads(render(many, "json", gate))["timelines"]] == [
        "r.example/a",
        "r.example/<b>",
    ]

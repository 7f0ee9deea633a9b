"""scanner.commands: errors to exit codes in one place, outcomes delivered the same way,
options shared by every command declared once, --format choices from the renderer table."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from scanner.cli import main
from scanner.commands import deliver, error_exit_code, exit_on_error
from scanner.diff import Diff
from scanner.errors import ConfigError, RegistryError, SignatureError, UsageError
from scanner.fly.machines import FlyError, FlyUsageError
from scanner.gate import EXIT_CLEAN, EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_USAGE, Gate
from scanner.outcome import Outcome
from scanner.report.registry import KINDS, RENDERERS, formats, render
from scanner.results import ScanProblem
from tests.report.test_html import sample_outcomes

GATE = Gate.from_cli("high")
COMMANDS = {
    "scan": "scan",
    "diff": "diff",
    "timeline": "timeline",
    "timelines": "timeline",  # timeline --from-file
    "fly": "fly",
    "fly-org": "fly",  # fly --org
}
SHARED = (
    "--platform",
    "--reveal",
    "--rules",
    "--insecure",
    "--timeout",
    "--deadline",
    "--username",
    "--password-stdin",
    "--jobs",
    "--no-cache",
    "--cache-dir",
)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "default", "code"),
    [
        (UsageError("bad"), EXIT_INCOMPLETE, EXIT_USAGE),
        (FlyUsageError("no token"), EXIT_INCOMPLETE, EXIT_USAGE),
        (FlyError("401"), EXIT_INCOMPLETE, EXIT_INCOMPLETE),
        (RegistryError("down"), EXIT_INCOMPLETE, EXIT_INCOMPLETE),
        (SignatureError("bad rule"), EXIT_USAGE, EXIT_USAGE),
        (ConfigError("bad ignore file"), EXIT_USAGE, EXIT_USAGE),
    ],
)
def test_exit_on_error(
    error: Exception, default: int, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert error_exit_code(error, default) == code  # type: ignore[arg-type]
    with pytest.raises(SystemExit) as exited, exit_on_error(default, prefix="doing x: "):
        raise error
    assert exited.value.code == code
    assert capsys.readouterr().err == f"layerleak: error: doing x: {error}\n"


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(KeyError), exit_on_error():
        raise KeyError("a bug is a bug, not an exit code")


# --- delivery ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_deliver_renders_prints_and_exits_alike(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome: Outcome = sample_outcomes()[kind]
    assert outcome.kind == kind
    out = tmp_path / "report.json"
    with pytest.raises(SystemExit) as exited:
        deliver(outcome, GATE, "json", out, quiet=False)
    assert exited.value.code == outcome.exit_code(GATE)
    assert exited.value.code == (EXIT_CLEAN if kind == "timeline" else EXIT_FINDINGS)
    assert out.read_text() == render(outcome, "json", GATE)
    err = capsys.readouterr().err.splitlines()
    assert err == [*outcome.problem_lines(), outcome.summary_line(GATE)]
    with pytest.raises(SystemExit):
        deliver(outcome, GATE, "json", out, quiet=True)
    assert capsys.readouterr().err == ""


def test_problems_make_every_outcome_incomplete() -> None:
    for kind, outcome in sample_outcomes().items():
        outcome.images[-1].problems.append(ScanProblem("img", None, 1, "layer 1: truncated"))
        assert not outcome.complete, kind
        assert outcome.exit_code(Gate.from_cli("high", exit_zero=True)) == EXIT_INCOMPLETE
        assert any("layer 1: truncated" in line for line in outcome.problem_lines())
        assert "INCOMPLETE" in outcome.summary_line(GATE)


def test_diff_problem_lines_say_which_side() -> None:
    diff = sample_outcomes()["diff"]
    assert isinstance(diff, Diff)
    diff.old.images[0].problems.append(ScanProblem("old:1", None, None, "gone"))
    assert diff.problem_lines() == ["layerleak: error: OLD old:1: gone"]


# --- options and formats -------------------------------------------------------------------


def _command(name: str) -> click.Command:
    assert isinstance(main, click.Group)
    command = main.commands[name]
    return command


def _option(command: click.Command, flag: str) -> click.Option:
    for param in command.params:
        if isinstance(param, click.Option) and flag in param.opts:
            return param
    raise AssertionError(f"{command.name} has no {flag}")


@pytest.mark.parametrize("kind", KINDS)
def test_format_choices_come_from_the_renderer_table(kind: str) -> None:
    fmt = _option(_command(COMMANDS[kind]), "--format")
    assert isinstance(fmt.type, click.Choice)
    assert sorted(fmt.type.choices) == sorted(formats(kind))
    assert all((kind, name) in RENDERERS for name in fmt.type.choices)


def test_shared_options_are_declared_once() -> None:
    """Every command that scans spells the shared options the same way."""
    for flag in SHARED:
        seen = {
            name: (opt.help, str(opt.default), tuple(opt.opts))
            for name in (*COMMANDS.values(), "baseline")
            for opt in [_option(_command(name), flag)]
        }
        assert len(set(seen.values())) == 1, (flag, seen)
    helps = {_option(_command(n), "--ignore-file").help for n in (*COMMANDS.values(), "baseline")}
    assert len(helps) == 1


def test_unknown_format_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="choose from table, json, markdown, html"):
        render(sample_outcomes()["timeline"], "sarif", GATE)

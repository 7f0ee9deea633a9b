"""Run a composite action's steps locally the way the GitHub Actions runner does.

What the runner does, and this copies, for a composite action's ``run:`` step:

* inputs: the workflow's ``with:`` values, else the input's ``default``; a missing
  required input is an error. Composite steps see inputs only through expressions
  (there are no automatic ``INPUT_*`` variables), so the action's ``env:`` maps them.
* expressions ``${{ ... }}`` in ``env:`` values and in ``outputs.*.value``: here only
  ``inputs.X``, ``steps.ID.outputs.X``, ``github.action_path``, ``github.workspace``
  and ``runner.temp`` (anything else fails the test: the action should need no more).
  A ``run:`` text must contain none: expanding an input into a script is how inputs
  get executed.
* the script: written to a file, run as ``bash --noprofile --norc -eo pipefail FILE``
  in ``$GITHUB_WORKSPACE``, with ``GITHUB_ACTION_PATH``, ``GITHUB_WORKSPACE``,
  ``RUNNER_TEMP``, and fresh ``GITHUB_OUTPUT`` / ``GITHUB_STEP_SUMMARY`` files per step;
  a step that exits non-zero stops the action.
* ``GITHUB_OUTPUT``: ``name=value`` lines and ``name<<DELIMITER`` blocks.
* workflow commands in the log (stdout and stderr): ``::add-mask::`` (data unescaped),
  ``::stop-commands::TOKEN`` up to ``::TOKEN::`` (no command is processed in between),
  ``::error ...::``.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
COMMAND = re.compile(r"^::([A-Za-z-]+)(?: [^:]*)?::(.*)$")
STEP_TIMEOUT = 900.0


class ActionError(AssertionError):
    """The action, or the way it is used, is something the runner would reject."""


@dataclass
class StepRun:
    id: str | None
    name: str
    exit_code: int
    log: str  # stdout and stderr as the runner reads them
    outputs: dict[str, str]
    summary: str


@dataclass
class ActionRun:
    steps: list[StepRun]
    outputs: dict[str, str]
    masks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    suspended: list[str] = field(default_factory=list)  # log lines read as plain text

    @property
    def exit_code(self) -> int:
        return self.steps[-1].exit_code

    @property
    def log(self) -> str:
        return "".join(s.log for s in self.steps)

    @property
    def summary(self) -> str:
        return "".join(s.summary for s in self.steps)


def unescape_data(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def parse_output_file(text: str) -> dict[str, str]:
    """``GITHUB_OUTPUT``: ``name=value`` and ``name<<DELIMITER`` ... ``DELIMITER``."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value: list[str] = []
            while i < len(lines) and lines[i] != delimiter:
                value.append(lines[i])
                i += 1
            if i >= len(lines):
                raise ActionError(f"GITHUB_OUTPUT: no closing {delimiter!r} for {name!r}")
            i += 1
            out[name] = "\n".join(value)
        elif "=" in line:
            name, value_text = line.split("=", 1)
            out[name] = value_text
        else:
            raise ActionError(f"GITHUB_OUTPUT: malformed line {line!r}")
    return out


class LocalRunner:
    def __init__(
        self,
        action_path: Path,
        workspace: Path,
        runner_temp: Path,
        base_env: dict[str, str],
    ) -> None:
        self.action_path = action_path
        self.workspace = workspace
        self.runner_temp = runner_temp
        self.base_env = base_env
        self.action: dict[str, Any] = yaml.safe_load(
            (action_path / "action.yml").read_text(encoding="utf-8")
        )
        if self.action.get("runs", {}).get("using") != "composite":
            raise ActionError("not a composite action")

    def _inputs(self, given: dict[str, str]) -> dict[str, str]:
        declared: dict[str, Any] = self.action.get("inputs", {})
        unknown = set(given) - set(declared)
        if unknown:
            raise ActionError(f"unexpected input(s) {sorted(unknown)}")
        values = {}
        for name, spec in declared.items():
            if name in given:
                values[name] = given[name]
            elif spec.get("required") and "default" not in spec:
                raise ActionError(f"input required and not supplied: {name}")
            else:
                values[name] = str(spec.get("default", ""))
        return values

    def _evaluate(self, text: str, inputs: dict[str, str], steps: dict[str, StepRun]) -> str:
        def value(match: re.Match[str]) -> str:
            expr = match.group(1)
            parts = expr.split(".")
            if parts[0] == "inputs" and len(parts) == 2 and parts[1] in inputs:
                return inputs[parts[1]]
            if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
                step = steps.get(parts[1])
                return step.outputs.get(parts[3], "") if step else ""
            known = {
                "github.action_path": str(self.action_path),
                "github.workspace": str(self.workspace),
                "runner.temp": str(self.runner_temp),
            }
            if expr in known:
                return known[expr]
            raise ActionError(f"expression not supported here: {expr!r}")

        return EXPRESSION.sub(value, str(text))

    def run(self, given: dict[str, str]) -> ActionRun:
        inputs = self._inputs(given)
        steps: dict[str, StepRun] = {}
        done: list[StepRun] = []
        for index, step in enumerate(self.action["runs"]["steps"]):
            if "uses" in step or step.get("shell") != "bash" or "if" in step:
                raise ActionError(f"step {index}: only plain bash run steps are simulated")
            script = step["run"]
            if EXPRESSION.search(script):
                raise ActionError(f"step {index}: expression inside run: {script!r}")
            env = dict(self.base_env)
            env.update(
                GITHUB_ACTIONS="true",
                CI="true",
                GITHUB_ACTION_PATH=str(self.action_path),
                GITHUB_WORKSPACE=str(self.workspace),
                RUNNER_TEMP=str(self.runner_temp),
            )
            for name, raw in (step.get("env") or {}).items():
                env[name] = self._evaluate(raw, inputs, steps)
            step_dir = self.runner_temp / "_runner_file_commands"
            step_dir.mkdir(parents=True, exist_ok=True)
            output_file = step_dir / f"set_output_{uuid.uuid4().hex}"
            summary_file = step_dir / f"step_summary_{uuid.uuid4().hex}"
            output_file.write_text("")
            summary_file.write_text("")
            env["GITHUB_OUTPUT"] = str(output_file)
            env["GITHUB_STEP_SUMMARY"] = str(summary_file)
            script_file = self.runner_temp / f"step-{index}.sh"
            script_file.write_text(script, encoding="utf-8")
            proc = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)],
                cwd=self.workspace,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=STEP_TIMEOUT,
                check=False,
            )
            result = StepRun(
                id=step.get("id"),
                name=step.get("name", f"step {index}"),
                exit_code=proc.returncode,
                log=proc.stdout,
                outputs=parse_output_file(output_file.read_text(encoding="utf-8")),
                summary=summary_file.read_text(encoding="utf-8"),
            )
            done.append(result)
            if result.id:
                steps[result.id] = result
            if result.exit_code != 0:
                break
        outputs = {
            name: self._evaluate(spec.get("value", ""), inputs, steps)
            for name, spec in (self.action.get("outputs") or {}).items()
        }
        run = ActionRun(done, outputs)
        _process_commands(run)
        return run


def _process_commands(run: ActionRun) -> None:
    stop_token: str | None = None
    for line in run.log.splitlines():
        stripped = line.strip()
        if stop_token is not None:
            if stripped == f"::{stop_token}::":
                stop_token = None
            else:
                run.suspended.append(line)
            continue
        match = COMMAND.match(stripped)
        if not match:
            continue
        name, data = match.groups()
        if name == "add-mask":
            run.masks.append(unescape_data(data))
        elif name == "stop-commands":
            stop_token = data
        elif name == "error":
            run.errors.append(unescape_data(data))

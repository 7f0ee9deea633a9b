"""action.yml, step 3: run ``layerleak scan`` for the GitHub Action and hand the results
to the runner.

Reads the action's inputs from ``INPUT_*`` environment variables (action.yml maps them;
nothing is ever expanded into a shell line), then runs ``layerleak scan`` once per output
it needs, all with the same gate and triage options (the layer cache makes the runs after
the first cheap):

* the report in ``format``, printed in the step log and kept as the ``report-file`` output;
* Markdown, appended to ``$GITHUB_STEP_SUMMARY`` (cut at the runner's 1 MiB limit);
* SARIF, written to ``sarif-file`` for ``github/codeql-action/upload-sarif``.

Images are passed after ``--``, so a reference can never be read as an option. The
registry password reaches layerleak on standard input (``--password-stdin``), the Fly
token as ``FLY_API_TOKEN`` in its environment; the ``INPUT_*`` variables are not passed
on. Workflow commands are suspended (``::stop-commands::``) while layerleak writes to the
log, so nothing an image contains can act as one. Outputs (``exit-code``, ``sarif-file``,
``report-file``) go to ``$GITHUB_OUTPUT``; the exit status is layerleak's worst exit code
over the runs (3, incomplete, beats 2 beats 1), so the step fails when the gate does.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SUMMARY_LIMIT = 1024 * 1024  # the runner rejects a step summary above 1 MiB
SUMMARY_NOTE = (
    "\n\n_The layerleak report was cut here to fit the job summary limit; the full report "
    "is in the SARIF file and the step log._\n"
)
EXIT_MEANING = {
    1: "findings at or above fail-on",
    2: "usage error (check the action's inputs)",
    3: "the scan is incomplete: part of an image could not be read",
}
EXTENSIONS = {"table": "txt", "json": "json", "markdown": "md", "sarif": "sarif"}


@dataclass(frozen=True)
class Inputs:
    images: tuple[str, ...]
    fail_on: str
    format: str
    sarif_file: str
    ignore_file: str
    baseline: str
    username: str
    password: str
    fly_token: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Inputs:
        def get(name: str, default: str = "") -> str:
            value = env.get(f"INPUT_{name}", "").strip()
            return value or default

        return cls(
            images=tuple(env.get("INPUT_IMAGE", "").split()),
            fail_on=get("FAIL_ON", "high"),
            format=get("FORMAT", "table"),
            sarif_file=get("SARIF_FILE"),
            ignore_file=get("IGNORE_FILE"),
            baseline=get("BASELINE"),
            username=get("REGISTRY_USERNAME"),
            password=env.get("INPUT_REGISTRY_PASSWORD", "").strip(),
            fly_token=env.get("INPUT_FLY_API_TOKEN", "").strip(),
        )

    def problem(self) -> str | None:
        """What is wrong with the inputs, before anything runs."""
        if not self.images:
            return "input 'image' is empty: give one or more image references"
        if bool(self.username) != bool(self.password):
            return "registry-username and registry-password go together: give both or neither"
        if any(c in self.sarif_file for c in "\r\n\0"):
            return "input 'sarif-file' must be a single path"
        return None


def escape_data(text: str) -> str:
    """Workflow-command data escaping (the runner unescapes %25, %0D, %0A)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def command_args(inputs: Inputs, fmt: str, output: Path, quiet: bool = False) -> list[str]:
    """The arguments after ``layerleak`` for one run."""
    args = ["scan", "--format", fmt, "--output", str(output), "--fail-on", inputs.fail_on]
    if quiet:
        args.append("--quiet")
    if inputs.ignore_file:
        args += ["--ignore-file", inputs.ignore_file]
    if inputs.baseline:
        args += ["--baseline", inputs.baseline]
    if inputs.username:
        args += ["--username", inputs.username, "--password-stdin"]
    return [*args, "--", *inputs.images]


def child_env(env: Mapping[str, str], inputs: Inputs) -> dict[str, str]:
    """layerleak's environment: the step's, without the action's inputs, plus the Fly token."""
    out = {k: v for k, v in env.items() if not k.startswith("INPUT_")}
    if inputs.fly_token:
        out["FLY_API_TOKEN"] = inputs.fly_token
    return out


def run_layerleak(
    layerleak: Path, args: Sequence[str], inputs: Inputs, env: Mapping[str, str]
) -> int:
    """One layerleak run; its log output framed by stop-commands so none of it is a command."""
    token = secrets.token_hex(16)
    print(f"::stop-commands::{token}", flush=True)
    try:
        completed = subprocess.run(
            [str(layerleak), *args],
            input=inputs.password if inputs.username else None,
            stdin=None if inputs.username else subprocess.DEVNULL,
            env=child_env(env, inputs),
            text=True,
            check=False,
        )
    finally:
        print(f"::{token}::", flush=True)
    return completed.returncode


def write_outputs(path: str | None, values: Mapping[str, str]) -> None:
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        for name, value in values.items():
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            fh.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def append_summary(path: str | None, markdown: str) -> None:
    if not path:
        return
    data = markdown.encode("utf-8")
    budget = SUMMARY_LIMIT - len(SUMMARY_NOTE.encode("utf-8")) - 1
    if len(data) > budget:
        cut = data[:budget]
        cut = cut[: cut.rfind(b"\n") + 1] or cut
        markdown = cut.decode("utf-8", errors="ignore") + SUMMARY_NOTE
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(markdown if markdown.endswith("\n") else markdown + "\n")


def main(env: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    inputs = Inputs.from_env(env)
    problem = inputs.problem()
    if problem:
        print(f"::error title=layerleak::{escape_data(problem)}", flush=True)
        empty = {"exit-code": "2", "sarif-file": "", "report-file": ""}
        write_outputs(env.get("GITHUB_OUTPUT"), empty)
        return 2

    workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd())
    os.chdir(workspace)
    layerleak = Path(sys.executable).parent / "layerleak"
    scratch = Path(tempfile.mkdtemp(prefix="layerleak-", dir=env.get("RUNNER_TEMP") or None))

    sarif = (workspace / inputs.sarif_file).resolve() if inputs.sarif_file else None
    if sarif is not None:
        sarif.parent.mkdir(parents=True, exist_ok=True)
        sarif.unlink(missing_ok=True)  # a stale report must not pass for this run's
    wanted = {"markdown": scratch / "summary.md"}
    if sarif is not None:
        wanted["sarif"] = sarif
    # The chosen format's run first (its summary line shows in the log), then the others.
    report = wanted.get(inputs.format, scratch / f"report.{EXTENSIONS.get(inputs.format, 'txt')}")
    runs = {inputs.format: report, **{f: p for f, p in wanted.items() if f != inputs.format}}

    codes: dict[str, int] = {}
    for fmt, output in runs.items():
        args = command_args(inputs, fmt, output, quiet=bool(codes))
        codes[fmt] = run_layerleak(layerleak, args, inputs, env)
        if codes[fmt] == 2:
            break  # a usage error will not go away in the next format

    if report.is_file():
        token = secrets.token_hex(16)
        print(f"::stop-commands::{token}")
        print(report.read_text(encoding="utf-8", errors="replace"), end="")
        print(f"\n::{token}::", flush=True)
    summary = wanted["markdown"]
    if summary.is_file():
        append_summary(env.get("GITHUB_STEP_SUMMARY"), summary.read_text(encoding="utf-8"))

    code = max(codes.values())
    write_outputs(
        env.get("GITHUB_OUTPUT"),
        {
            "exit-code": str(code),
            "sarif-file": str(sarif) if sarif is not None and sarif.is_file() else "",
            "report-file": str(report) if report.is_file() else "",
        },
    )
    if code:
        meaning = EXIT_MEANING.get(code, "unexpected exit code")
        print(f"::error title=layerleak::layerleak exited {code}: {meaning}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())

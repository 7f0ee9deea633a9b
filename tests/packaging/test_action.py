"""The GitHub Action (``action.yml``), run locally the way the runner runs it
(``tests/packaging/runner.py``): installed from a copy of the checkout as the action's own
checkout, against the demo image in a scratch workspace."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import pytest
import yaml

import scanner
from scanner.cli import main
from tests.infra.registry import Registry
from tests.packaging.artefacts import CHECKOUT, copy_source, outside_env
from tests.packaging.runner import ActionError, ActionRun, LocalRunner
from tests.registry import push_fixture

ACTION = yaml.safe_load((CHECKOUT / "action.yml").read_text(encoding="utf-8"))
PASSWORD = "pa%ss$(touch /nonexistent)word-Zq7"
FLY_TOKEN = "FlyV1 fm2_lJPEtestonlytoken%0A,fm2_secondpart-Xk2"


@pytest.fixture(scope="session")
def action_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The action's checkout, as the runner lays it out for ``uses: OWNER/layerleak@v1``."""
    return copy_source(tmp_path_factory.mktemp("actions") / "layerleak" / "layerleak" / "v1")


@pytest.fixture(scope="session")
def runner_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RUNNER_TEMP, shared like one job's: the action installs itself once."""
    return tmp_path_factory.mktemp("runner-temp")


@pytest.fixture
def workspace(tmp_path: Path, demo_image: Path) -> Path:
    ws = tmp_path / "workspace"
    shutil.copytree(demo_image, ws / "demo-oci")
    return ws


@pytest.fixture
def runner(action_path: Path, workspace: Path, runner_temp: Path, tmp_path: Path) -> LocalRunner:
    home = tmp_path / "home"
    home.mkdir()
    env = outside_env(home, LAYERLEAK_CACHE_DIR=str(tmp_path / "cache"))
    return LocalRunner(action_path, workspace, runner_temp, env)


def _raw_secrets(reference: dict[str, Any]) -> set[str]:
    found = {f["secret"] for i in reference["images"] for f in i["findings"] if f.get("secret")}
    assert found
    return found


def _assert_nothing_leaks(run: ActionRun, secrets: set[str], workspace: Path) -> None:
    texts = {"summary": run.summary, "outputs": json.dumps(run.outputs)}
    for name, step in enumerate(run.steps):
        texts[f"log of step {name}"] = step.log
    for path in workspace.rglob("*"):
        if path.is_file() and path.suffix in (".sarif", ".json", ".md", ".txt"):
            texts[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    for output in (run.outputs.get("report-file"), run.outputs.get("sarif-file")):
        if output:
            texts[output] = Path(output).read_text(encoding="utf-8")
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{secret[:6]}... in {where}"


def test_action_declares_the_documented_interface() -> None:
    inputs = ACTION["inputs"]
    assert set(inputs) == {
        "image",
        "fail-on",
        "format",
        "sarif-file",
        "ignore-file",
        "baseline",
        "registry-username",
        "registry-password",
        "fly-api-token",
    }
    assert inputs["image"]["required"] is True
    assert inputs["fail-on"]["default"] == "high"
    scan = main.commands["scan"]
    choices = {
        opt: [str(c) for c in p.type.choices]
        for p in scan.params
        if isinstance(p, click.Option) and isinstance(p.type, click.Choice)
        for opt in p.opts
    }
    assert inputs["fail-on"]["default"] in choices["--fail-on"]
    assert inputs["format"]["default"] in choices["--format"]
    assert {"exit-code", "sarif-file", "report-file"} <= set(ACTION["outputs"])
    steps = ACTION["runs"]["steps"]
    # Secrets go only to the step that masks them and the scan; never to the install.
    for step in steps:
        env = json.dumps(step.get("env", {}))
        secret_inputs = "registry-password" in env or "fly-api-token" in env
        assert secret_inputs == (step["name"] in ("Mask secret inputs", "Scan")), step["name"]
        assert "${{" not in step["run"], "an expression inside run: would execute input"
    assert steps[0]["name"] == "Mask secret inputs"  # before anything else runs


def test_demo_image_through_the_action(
    runner: LocalRunner, workspace: Path, runner_temp: Path, demo_reference: dict[str, Any]
) -> None:
    run = runner.run({"image": "oci:demo-oci"})
    install, scan = run.steps[1], run.steps[2]
    assert install.exit_code == 0, install.log
    assert f"layerleak, version {scanner.__version__}" in install.log
    # layerleak from the action's checkout, in a venv under RUNNER_TEMP, not the test's.
    assert Path(install.outputs["python"]).is_relative_to(runner_temp)
    # Exit 1: findings at or above high. The step fails, and says why.
    assert scan.exit_code == 1 and run.outputs["exit-code"] == "1", scan.log
    assert any("layerleak exited 1" in e for e in run.errors)
    # SARIF, where upload-sarif will look for it, from this version.
    sarif_path = Path(run.outputs["sarif-file"])
    assert sarif_path == workspace / "layerleak.sarif"
    sarif = json.loads(sarif_path.read_text(encoding="utf-8"))
    assert sarif["runs"][0]["tool"]["driver"]["version"] == scanner.__version__
    expected = {(f["rule_id"], f["fingerprint"]) for f in demo_reference["images"][0]["findings"]}
    results = sarif["runs"][0]["results"]
    fingerprints = {v for r in results for v in r["partialFingerprints"].values()}
    assert {fp for _, fp in expected} <= fingerprints
    assert sorted(r["ruleId"] for r in results) == sorted(rule for rule, _ in expected)
    assert len(results) == len(expected)
    # The Markdown report in the job summary: findings, and the recoverable ones.
    assert "aws-access-key-id" in run.summary and "stripe-live-secret-key" in run.summary
    assert "recoverable" in run.summary.lower()
    # The table report in the log, read by the runner as plain text (no commands).
    report_file = Path(run.outputs["report-file"])
    assert report_file.read_text(encoding="utf-8").startswith("Image ")
    assert any(line.startswith("Image ") for line in run.suspended)
    assert any("/app/.env" in line for line in run.suspended)
    assert any(line.startswith("layerleak: 1 image(s)") for line in run.suspended)
    _assert_nothing_leaks(run, _raw_secrets(demo_reference), workspace)


def test_secrets_are_masked_first_and_never_shown(
    runner: LocalRunner, workspace: Path, demo_reference: dict[str, Any]
) -> None:
    multiline = "line-one-secret\nline-two-secret"
    run = runner.run(
        {
            "image": "oci:demo-oci",
            "registry-username": "ci-bot",
            "registry-password": PASSWORD,
            "fly-api-token": FLY_TOKEN + "\n" + multiline,
        }
    )
    assert run.exit_code == 1, run.log
    mask_step = run.steps[0]
    assert mask_step.exit_code == 0
    # Registered exactly (the runner unescapes %25 and %0A), the multi-line one line by line.
    assert PASSWORD in run.masks
    assert FLY_TOKEN + "\n" + multiline in run.masks
    assert {"line-one-secret", "line-two-secret", FLY_TOKEN} <= set(run.masks)
    # All registered by the first step, before any other step printed anything.
    assert mask_step.log.count("::add-mask::") == len(run.masks) == 5
    assert not any("::add-mask::" in step.log for step in run.steps[1:])
    # And never shown anywhere after: not in logs, summary, outputs, SARIF or report.
    secrets = {PASSWORD, "fm2_lJPEtestonlytoken", "line-one-secret", "line-two-secret"}
    rest = ActionRun(run.steps[1:], run.outputs)
    _assert_nothing_leaks(rest, secrets | _raw_secrets(demo_reference), workspace)


def test_password_goes_on_stdin_and_the_token_in_the_environment() -> None:
    module = _load_action_scan()
    inputs = module.Inputs.from_env(
        {
            "INPUT_IMAGE": "registry.fly.io/app:deployment-01J registry.example/x:1",
            "INPUT_REGISTRY_USERNAME": "bot",
            "INPUT_REGISTRY_PASSWORD": PASSWORD,
            "INPUT_FLY_API_TOKEN": FLY_TOKEN,
        }
    )
    args = module.command_args(inputs, "sarif", Path("out.sarif"))
    assert PASSWORD not in " ".join(args) and FLY_TOKEN not in " ".join(args)
    assert args[args.index("--username") + 1] == "bot" and "--password-stdin" in args
    assert args[-3:] == ["--", "registry.fly.io/app:deployment-01J", "registry.example/x:1"]
    env = module.child_env({"PATH": "/bin", "INPUT_REGISTRY_PASSWORD": PASSWORD}, inputs)
    assert env == {"PATH": "/bin", "FLY_API_TOKEN": FLY_TOKEN}


def test_registry_credentials_reach_the_registry(
    runner: LocalRunner, registry_basic: Registry, tmp_path: Path
) -> None:
    """The password given as an input authenticates (through --password-stdin)."""
    user, password = registry_basic.reader_username, registry_basic.reader_password
    assert user and password
    ref, _ = push_fixture(registry_basic, "demo", tmp_path)
    given = {"image": ref, "format": "json", "sarif-file": "out/scan.sarif"}
    refused = runner.run(given)
    assert refused.outputs["exit-code"] == "3", refused.log  # anonymous: 401, incomplete
    run = runner.run(
        {
            **given,
            "registry-username": user,
            "registry-password": password,
        }
    )
    assert run.outputs["exit-code"] == "1", run.log
    report = json.loads(Path(run.outputs["report-file"]).read_text(encoding="utf-8"))
    assert report["complete"] is True and report["summary"]["total"] > 0
    assert Path(run.outputs["sarif-file"]).name == "scan.sarif"
    assert password in run.masks


def test_several_images_and_the_gate(runner: LocalRunner, workspace: Path) -> None:
    shutil.copytree(workspace / "demo-oci", workspace / "second copy")
    run = runner.run(
        {"image": "oci:demo-oci\n  'oci:second copy'\n", "fail-on": "critical", "format": "json"}
    )
    # Whitespace separates references; quotes are not shell syntax: "'oci:second" is not
    # a source, so the scan is incomplete (3), which fails whatever fail-on says.
    assert run.outputs["exit-code"] == "3", run.log
    report = json.loads(Path(run.outputs["report-file"]).read_text(encoding="utf-8"))
    assert [i["name"] for i in report["images"]] == ["oci:demo-oci", "'oci:second", "copy'"]
    assert report["summary"]["total"] == len(report["images"][0]["findings"]) > 0
    assert Path(run.outputs["sarif-file"]).is_file()  # written even when the gate fails
    assert any("incomplete" in e for e in run.errors)

    gated = runner.run({"image": "oci:demo-oci", "fail-on": "critical", "format": "markdown"})
    assert gated.outputs["exit-code"] == "1"  # the demo has critical findings
    assert Path(gated.outputs["report-file"]).read_text(encoding="utf-8") in gated.summary


def test_usage_errors_fail_with_2(runner: LocalRunner) -> None:
    for given, message in [
        ({"image": "  \n "}, "image"),
        ({"image": "oci:demo-oci", "registry-username": "u"}, "go together"),
        ({"image": "oci:demo-oci", "fail-on": "severe"}, "usage error"),
        ({"image": "oci:demo-oci", "format": "xml"}, "usage error"),
    ]:
        run = runner.run(given)
        assert run.exit_code == 2 and run.outputs["exit-code"] == "2", (given, run.log)
        assert any(message in e for e in run.errors), (given, run.errors)
    with pytest.raises(ActionError, match="required"):
        runner.run({})
    with pytest.raises(ActionError, match="unexpected input"):
        runner.run({"image": "x", "args": "--reveal"})


def test_hostile_inputs_are_never_executed(
    runner: LocalRunner, workspace: Path, tmp_path: Path, demo_reference: dict[str, Any]
) -> None:
    """Shell syntax in any input is data: nothing runs, nothing is revealed."""
    canary = tmp_path / "pwned"
    shell = [
        f"$(touch {canary}-1)",
        f"`touch {canary}-2`",
        f";touch {canary}-3",
        f"|touch {canary}-4",
        f"&&touch {canary}-5",
        f"$(touch${{IFS}}{canary}-6)",
        "--reveal",
        "--format=json",
        "::error::injected",
    ]
    run = runner.run({"image": " ".join(["oci:demo-oci", *shell])})
    assert run.outputs["exit-code"] == "3", run.log  # each bad reference is a problem
    sarif = json.loads(Path(run.outputs["sarif-file"]).read_text(encoding="utf-8"))
    assert sarif["runs"][0]["results"]  # the demo image was still scanned
    assert not any("injected" in e for e in run.errors)  # never read as a command
    _assert_nothing_leaks(run, _raw_secrets(demo_reference), workspace)  # --reveal was data

    every = {
        "image": f"oci:demo-oci;touch {canary}-7",
        "fail-on": f"high$(touch {canary}-8)",
        "format": f"table`touch {canary}-9`",
        "sarif-file": f"x$(touch {canary}-10).sarif",
        "ignore-file": f"$(touch {canary}-11)",
        "baseline": f"';touch {canary}-12;'",
        "registry-username": f'"; touch {canary}-13; "',
        "registry-password": f"$(touch {canary}-14)",
        "fly-api-token": f"`touch {canary}-15`",
    }
    run = runner.run(every)
    assert run.outputs["exit-code"] == "2", run.log  # fail-on / format are not valid values
    assert not list(tmp_path.glob("pwned*")), "an input was executed"
    assert not list(workspace.glob("*pwned*"))


def _load_action_scan() -> ModuleType:
    path = CHECKOUT / "scripts" / "action_scan.py"
    spec = importlib.util.spec_from_file_location("action_scan", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_summary_is_cut_to_the_runner_limit(tmp_path: Path) -> None:
    module = _load_action_scan()
    summary = tmp_path / "summary.md"
    big = "".join(f"| row {i} | {'x' * 80} |\n" for i in range(20000))
    module.append_summary(str(summary), big)
    data = summary.read_bytes()
    assert len(data) <= module.SUMMARY_LIMIT
    assert data.decode().endswith(module.SUMMARY_NOTE)
    assert data.decode().split(module.SUMMARY_NOTE)[0].endswith("|\n")  # whole lines only
    small = tmp_path / "small.md"
    module.append_summary(str(small), "# ok")
    assert small.read_text() == "# ok\n"


def test_outputs_survive_hostile_values(tmp_path: Path) -> None:
    """GITHUB_OUTPUT values use a random delimiter: a value cannot add another output."""
    from tests.packaging.runner import parse_output_file

    module = _load_action_scan()
    out = tmp_path / "out"
    module.write_outputs(str(out), {"report-file": "a\nexit-code=0\nEOF", "exit-code": "1"})
    assert parse_output_file(out.read_text()) == {
        "report-file": "a\nexit-code=0\nEOF",
        "exit-code": "1",
    }


def _toy_action(where: Path, run: str, env: dict[str, str] | None = None) -> Path:
    where.mkdir(parents=True)
    step: dict[str, Any] = {"shell": "bash", "run": run, "id": "s"}
    if env:
        step["env"] = env
    action = {
        "name": "toy",
        "inputs": {"image": {"required": True}},
        "outputs": {"out": {"value": "${{ steps.s.outputs.out }}"}},
        "runs": {"using": "composite", "steps": [step]},
    }
    (where / "action.yml").write_text(yaml.safe_dump(action), encoding="utf-8")
    return where


def test_the_local_runner_catches_unsafe_actions(tmp_path: Path) -> None:
    """The checks above can fail: an action that expands or evals its input is caught."""
    temp, ws = tmp_path / "temp", tmp_path / "ws"
    temp.mkdir()
    ws.mkdir()
    canary = tmp_path / "pwned"
    hostile = {"image": f"$(touch {canary})"}

    expands = _toy_action(tmp_path / "a", 'echo "${{ inputs.image }}"')
    with pytest.raises(ActionError, match="expression inside run"):
        LocalRunner(expands, ws, temp, outside_env()).run(hostile)

    evals = _toy_action(
        tmp_path / "b",
        'eval "echo out=$IMAGE" >> "$GITHUB_OUTPUT"',
        {"IMAGE": "${{ inputs.image }}"},
    )
    run = LocalRunner(evals, ws, temp, outside_env()).run(hostile)
    assert run.exit_code == 0 and canary.exists()  # what the hostile test looks for
    assert run.outputs == {"out": ""}

    unknown = _toy_action(tmp_path / "c", "true", {"T": "${{ secrets.TOKEN }}"})
    with pytest.raises(ActionError, match="not supported"):
        LocalRunner(unknown, ws, temp, outside_env()).run({"image": "x"})

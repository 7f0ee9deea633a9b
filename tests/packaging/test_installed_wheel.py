"""The smoke test CI runs on every change: the wheel, installed into a fresh virtual
environment outside the checkout, is a working ``layerleak``: it reports its version,
lists every rule, and finds in the demo image what the checkout finds (``make demo``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

import scanner
from scanner.signatures import SignatureSet
from tests.packaging.artefacts import CHECKOUT, outside_env

TIMEOUT = 300.0


@pytest.fixture
def run_installed(
    wheel_bin: Path, tmp_path: Path
) -> Any:  # a callable: (*args) -> CompletedProcess
    """Run the installed ``layerleak`` from a directory outside the checkout, with its own
    HOME and layer cache, as a user who just installed it would."""
    home = tmp_path / "home"
    home.mkdir()
    env = outside_env(home, LAYERLEAK_CACHE_DIR=str(tmp_path / "cache"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(wheel_bin / "layerleak"), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    return run


def _finding_keys(report: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {
        (
            f["rule_id"],
            f["fingerprint"],
            f["severity"],
            f["location"]["layer_index"],
            f["location"]["path"],
            f["location"]["field"],
            f["status"]["state"],
            f["status"]["changed_in_layer"],
        )
        for image in report["images"]
        for f in image["findings"]
    }


def test_installed_outside_the_checkout(wheel_bin: Path) -> None:
    done = subprocess.run(
        [
            str(wheel_bin / "python"),
            "-c",
            "import scanner, scanner.signatures as s; print(scanner.__file__, s.BUILTIN_DIR)",
        ],
        cwd="/",
        env=outside_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    package, rules_dir = (Path(line) for line in done.stdout.split())
    venv = wheel_bin.parent
    assert package.is_relative_to(venv) and not package.is_relative_to(CHECKOUT)
    assert rules_dir == package.parent / "_signatures"


def test_version(run_installed: Any) -> None:
    done = run_installed("--version")
    assert done.returncode == 0, done.stderr
    # The first line is the version (a second names the keyword prefilter backend).
    assert done.stdout.splitlines()[0] == f"layerleak, version {scanner.__version__}"


def test_rules_lists_every_rule(run_installed: Any) -> None:
    done = run_installed("rules", "--format", "json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    builtin = SignatureSet.builtin()
    expected = {r.id for r in builtin.rules} | {r.id for r in builtin.path_rules}
    assert {r["id"] for r in listed["rules"]} == expected
    assert listed["digest"] == builtin.digest  # the same rules, byte for byte in effect
    table = run_installed("rules")
    assert f"{len(builtin.rules)} content rules, {len(builtin.path_rules)} path rules" in (
        table.stdout
    )


def test_demo_scan_finds_what_the_checkout_finds(
    run_installed: Any, demo_image: Path, demo_reference: dict[str, Any]
) -> None:
    done = run_installed("scan", "--format", "json", str(demo_image))
    assert done.returncode == 1, done.stderr  # findings at or above the default gate
    report = json.loads(done.stdout)
    assert report["complete"] is True
    assert report["tool"] == {"name": "layerleak", "version": scanner.__version__}
    assert _finding_keys(report) == _finding_keys(demo_reference)
    assert report["summary"] == demo_reference["summary"]
    # Spot checks of what make demo shows: a deleted .env still recoverable, the Fly
    # token in a build argument, a live Stripe key in the config.
    keys = _finding_keys(report)
    placed = {(k[0], k[4], k[6], k[7]) for k in keys}
    assert ("aws-access-key-id", "app/.env", "deleted", 2) in placed
    rules = {k[0] for k in keys}
    assert {"flyio-api-token", "stripe-live-secret-key", "openssh-private-key"} <= rules
    # Redacted by default: no raw secret of the demo in the installed tool's output.
    raw = {f["secret"] for i in demo_reference["images"] for f in i["findings"] if f.get("secret")}
    assert raw and not [s for s in raw if s in done.stdout or s in done.stderr]


def test_demo_scan_sarif_names_the_version(run_installed: Any, demo_image: Path) -> None:
    done = run_installed("scan", "--format", "sarif", "--fail-on", "critical", str(demo_image))
    assert done.returncode == 1, done.stderr
    driver = json.loads(done.stdout)["runs"][0]["tool"]["driver"]
    assert driver["name"] == "layerleak"
    assert driver["version"] == scanner.__version__

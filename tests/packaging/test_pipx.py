"""``pipx install .`` from a clone gives a working ``layerleak`` on PATH: its own
environment, the signature files included, the demo image's findings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import scanner
from scanner.signatures import SignatureSet
from tests.packaging.artefacts import INSTALL_TIMEOUT, copy_source, outside_env, run


@pytest.fixture(scope="session")
def pipx_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipx")
    clone = copy_source(root / "clone")
    env = outside_env(
        PIPX_HOME=str(root / "home"), PIPX_BIN_DIR=str(root / "bin"), PIPX_MAN_DIR=str(root / "man")
    )
    run(
        [sys.executable, "-m", "pipx", "install", "--python", sys.executable, "."],
        INSTALL_TIMEOUT,
        cwd=clone,
        env=env,
    )
    return root / "bin"


def test_pipx_install_from_a_clone(
    pipx_bin: Path, tmp_path: Path, demo_image: Path, demo_reference: dict[str, Any]
) -> None:
    env = outside_env(tmp_path, LAYERLEAK_CACHE_DIR=str(tmp_path / "cache"))

    def layerleak(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(pipx_bin / "layerleak"), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    version = layerleak("--version").stdout.splitlines()[0]
    assert version == f"layerleak, version {scanner.__version__}"
    rules = json.loads(layerleak("rules", "--format", "json").stdout)
    assert rules["digest"] == SignatureSet.builtin().digest
    source = Path(rules["rules"][0]["source"])  # the rule files inside pipx's environment
    assert source.is_relative_to(pipx_bin.parent / "home" / "venvs" / "layerleak")
    assert source.parent.name == "_signatures"
    scan = layerleak("scan", "--format", "json", str(demo_image))
    assert scan.returncode == 1, scan.stderr
    assert json.loads(scan.stdout)["summary"] == demo_reference["summary"]

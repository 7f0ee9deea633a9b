"""Session fixtures for the packaging tests: the artefacts are built once, installed once
into a fresh virtual environment outside the checkout, and the demo image is written
outside the checkout by the checkout's own fixture builder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fixtures.catalog import build_all
from scanner.cli import main
from tests.packaging.artefacts import build, copy_source, fresh_venv


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel) built by ``python -m build`` from a copy of the checkout."""
    source = copy_source(tmp_path_factory.mktemp("source") / "layerleak")
    return build(source, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def wheel_bin(dist: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh virtual environment (outside the checkout) holding only the wheel."""
    return fresh_venv(tmp_path_factory.mktemp("wheel-venv") / "venv", str(dist[1]))


@pytest.fixture(scope="session")
def demo_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo image (what ``make demo`` scans), written outside the checkout."""
    return build_all(tmp_path_factory.mktemp("demo"), only={"demo"})["demo"]


@pytest.fixture(scope="session")
def demo_reference(demo_image: Path) -> dict[str, Any]:
    """The checkout's own JSON report of the demo image, with ``--reveal``: what the
    installed tool must find, and the raw secrets no redacted output may contain."""
    result = CliRunner().invoke(
        main, ["scan", "--format", "json", "--no-cache", "--reveal", "-q", str(demo_image)]
    )
    assert result.exit_code == 1, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report

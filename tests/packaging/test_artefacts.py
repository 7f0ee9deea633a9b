"""What ``python -m build`` makes: every signature file and module in both artefacts,
one version everywhere, real metadata, and ``twine check`` passes."""

from __future__ import annotations

import sys
import tarfile
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import scanner
from tests.packaging.artefacts import CHECKOUT, outside_env, run

SIGNATURES = CHECKOUT / "signatures"


def _wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def _sdist_names(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as tf:
        root = tf.getnames()[0].split("/")[0]
        return {n.removeprefix(root + "/") for n in tf.getnames()}


def _signature_files() -> list[str]:
    files = [
        p.relative_to(SIGNATURES).as_posix()
        for p in SIGNATURES.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert len(files) >= 10, files  # the rule files are there to be checked
    return files


def _package_files() -> list[str]:
    """Every file of the package: modules, and data such as templates."""
    pkg = CHECKOUT / "scanner"
    return [
        p.relative_to(CHECKOUT).as_posix()
        for p in pkg.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(zf.read(name).decode("utf-8"))


def test_every_signature_file_is_in_the_wheel(dist: tuple[Path, Path]) -> None:
    names = _wheel_names(dist[1])
    missing = [f for f in _signature_files() if f"scanner/_signatures/{f}" not in names]
    assert not missing, f"not in the wheel: {missing}"


def test_every_signature_file_is_in_the_sdist(dist: tuple[Path, Path]) -> None:
    names = _sdist_names(dist[0])
    missing = [f for f in _signature_files() if f"signatures/{f}" not in names]
    assert not missing, f"not in the sdist: {missing}"


def test_every_package_file_is_in_both(dist: tuple[Path, Path]) -> None:
    wheel, sdist = _wheel_names(dist[1]), _sdist_names(dist[0])
    files = _package_files()
    assert "scanner/cli.py" in files and "scanner/py.typed" in files
    assert [m for m in files if m not in wheel] == []
    assert [m for m in files if m not in sdist] == []
    # Only the package goes into the wheel: no tests, fixtures or build helpers.
    top = {n.split("/")[0] for n in wheel}
    assert top == {"scanner", f"layerleak-{scanner.__version__}.dist-info"}


def test_sdist_holds_what_tests_and_the_action_need(dist: tuple[Path, Path]) -> None:
    names = _sdist_names(dist[0])
    for needed in (
        "LICENSE",
        "README.md",
        "CHANGELOG.md",
        "pyproject.toml",
        "setup.py",
        "Makefile",
        "action.yml",
        "scripts/action_scan.py",
        "fixtures/catalog.py",
        "tests/conftest.py",
    ):
        assert needed in names, needed
    assert not [n for n in names if "__pycache__" in n or n.startswith(("fixtures/out", ".venv"))]


def test_one_version_everywhere(dist: tuple[Path, Path]) -> None:
    version = scanner.__version__
    assert dist[1].name == f"layerleak-{version}-py3-none-any.whl"
    assert dist[0].name == f"layerleak-{version}.tar.gz"
    assert _metadata(dist[1])["Version"] == version
    # pyproject.toml takes it from scanner/__init__.py, not a second copy.
    pyproject = (CHECKOUT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject
    assert f'"{version}"' not in pyproject


def test_metadata_is_complete(dist: tuple[Path, Path]) -> None:
    meta = _metadata(dist[1])
    assert meta["Name"] == "layerleak"
    assert meta["Summary"]
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["Description-Content-Type"] == "text/markdown"
    readme = (CHECKOUT / "README.md").read_text(encoding="utf-8")
    assert str(meta.get_payload()).strip() == readme.strip()
    classifiers = meta.get_all("Classifier") or []
    assert "Topic :: Security" in classifiers
    assert any(c.startswith("Programming Language :: Python :: 3.1") for c in classifiers)
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Issues", "Changelog"} <= set(urls)
    assert all(u.startswith("https://") for u in urls.values())
    entry_points = zipfile.ZipFile(dist[1]).read(
        f"layerleak-{scanner.__version__}.dist-info/entry_points.txt"
    )
    assert b"layerleak = scanner.cli:main" in entry_points


def test_twine_check_passes_on_both(dist: tuple[Path, Path]) -> None:
    done = run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist)],
        300.0,
        env=outside_env(),
    )
    assert done.stdout.count("PASSED") == 2, done.stdout

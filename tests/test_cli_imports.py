"""What the command line loads: no heavy module that the run at hand does not need.

Structural, not timed (speed targets live in ``make bench``): each check runs the CLI in
a fresh interpreter and reads its ``sys.modules`` afterwards. Heavy libraries are
imported where they are used: a registry source needs requests and oras, HTML output
jinja2, a 7z member py7zr, ``--cluster`` Dask, a ``docker:`` source the Docker SDK.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# Loaded by none of: importing scanner.cli, --version, a warm scan of a local image.
NEVER_FOR_LOCAL = (
    "dask",
    "distributed",
    "py7zr",
    "oras",
    "jinja2",
    "jsonschema",
    "docker",
    "redis",
    "scanner.verify",  # the verifiers: only for --verify
)
# Also not loaded by importing scanner.cli or by --version: the layer scanner (the
# analyzers and the secret engine, and detect-secrets, which imports requests).
NEVER_AT_IMPORT = (
    *NEVER_FOR_LOCAL,
    "requests",
    "urllib3",
    "detect_secrets",
    "hyperscan",
    "scanner.layer_scan",
    "scanner.secrets.engine",
    "scanner.analyzers.builtin",
)

CHILD = """
import json, sys
out, args = sys.argv[1], json.loads(sys.argv[2])
from scanner.cli import main
if args:
    try:
        main(args, standalone_mode=False)
    except SystemExit:
        pass
from scanner.signatures import SignatureSet
compiled = sum("regex" in rule.__dict__ for rule in SignatureSet.builtin().rules)
with open(out, "w") as f:
    json.dump({"modules": sorted(sys.modules), "compiled": compiled}, f)
"""


def run_child(tmp: Path, args: list[str]) -> tuple[dict[str, Any], str]:
    """(what the child loaded, its standard output) for ``layerleak ARGS``."""
    out = tmp / "child.json"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(out), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text()), proc.stdout


def heavy_loaded(modules: list[str], heavy: tuple[str, ...]) -> list[str]:
    return sorted(
        name for name in modules if any(name == h or name.startswith(h + ".") for h in heavy)
    )


def test_importing_the_cli_loads_no_heavy_module(tmp_path: Path) -> None:
    loaded, _ = run_child(tmp_path, [])
    assert "scanner.cli" in loaded["modules"] and "click" in loaded["modules"]
    assert heavy_loaded(loaded["modules"], NEVER_AT_IMPORT) == []


def test_version_loads_no_heavy_module(tmp_path: Path) -> None:
    loaded, stdout = run_child(tmp_path, ["--version"])
    assert stdout.startswith("layerleak, version ")
    heavy = tuple(h for h in NEVER_AT_IMPORT if h != "hyperscan")  # --version reports it
    assert heavy_loaded(loaded["modules"], heavy) == []
    assert loaded["compiled"] == 0


@pytest.fixture(scope="module")
def warm_args(images: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``scan`` arguments for a local image whose layers are all in the cache."""
    tmp = tmp_path_factory.mktemp("warm")
    args = [
        "scan",
        "--quiet",
        "--exit-zero",
        "--cache-dir",
        str(tmp / "cache"),
        f"oci:{images['deleted_secret']}",
    ]
    run_child(tmp, args)  # cold: fills the cache
    return args


@pytest.fixture(scope="module")
def warm_scan(
    warm_args: list[str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what a warm re-scan of a local image loaded, its JSON report)."""
    loaded, stdout = run_child(tmp_path_factory.mktemp("warm"), [*warm_args, "--format", "json"])
    return loaded, json.loads(stdout)


def test_warm_scan_of_a_local_image_loads_no_heavy_module(
    warm_scan: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    loaded, report = warm_scan
    layers = [layer for p in report["images"][0]["platforms"] for layer in p["layers"]]
    assert layers and all(layer["cached"] for layer in layers)
    assert report["images"][0]["findings"]
    assert heavy_loaded(loaded["modules"], NEVER_FOR_LOCAL) == []


def test_html_output_loads_jinja2(warm_args: list[str], tmp_path: Path) -> None:
    """The check can fail: the one run here that needs a heavy module loads it."""
    loaded, stdout = run_child(tmp_path, [*warm_args, "--format", "html"])
    assert stdout.lstrip().lower().startswith("<!doctype html")
    jinja2 = sorted(m for m in loaded["modules"] if m == "jinja2" or m.startswith("jinja2."))
    assert jinja2 and heavy_loaded(loaded["modules"], NEVER_FOR_LOCAL) == jinja2


def test_warm_scan_compiles_no_builtin_rule_regex(
    warm_scan: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    loaded, _ = warm_scan
    assert loaded["compiled"] == 0

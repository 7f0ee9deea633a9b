"""The project scans itself: its own code, docs and recipes carry no secret above low.

(``signatures/`` and ``tests/`` are left out: they are full of realistic fake tokens
on purpose, the examples every rule is tested against.)
"""

from __future__ import annotations

from pathlib import Path

from fixtures.imagebuilder import Entry, ImageSpec, LayerSpec, write_oci_layout
from scanner.findings import Severity
from tests.e2e.helpers import scan

ROOT = Path(__file__).resolve().parents[2]
INCLUDED = [
    "scanner",
    "examples",
    "bench",
    "scripts",
    "README.md",
    "CHANGELOG.md",
    "Makefile",
    "pyproject.toml",
]


def test_layerleak_finds_nothing_above_low_in_itself(tmp_path: Path) -> None:
    entries = []
    for name in INCLUDED:
        root = ROOT / name
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if {"__pycache__", "out"} & set(path.parts) or path.suffix == ".pyc":
                continue  # bytecode, and generated benchmark images
            rel = path.relative_to(ROOT).as_posix()
            entries.append(Entry(f"src/layerleak/{rel}", content=path.read_bytes()))
    assert len(entries) > 50
    spec = ImageSpec(
        steps=[LayerSpec(entries, created_by="COPY . /src/layerleak # buildkit")],
        user="app",
        healthcheck=("CMD", "true"),
        labels={
            "org.opencontainers.image.base.name": "scratch",
            "org.opencontainers.image.base.digest": "sha256:" + "0" * 64,
        },
    )
    layout = write_oci_layout(tmp_path / "self", [spec])
    result = scan(layout)
    assert result.problems == []
    loud = [
        (f.rule_id, f.location.display_path(), f.location.line)
        for f in result.findings
        if f.severity > Severity.LOW
    ]
    assert loud == []

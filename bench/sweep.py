"""make bench-sweep: a fleet of images sharing base layers, swept several ways.

Builds the fleet once (bench/fleet.py: bases x apps x releases in one OCI layout), then
runs ``layerleak scan --from-file`` over every image: with 1 and 2 local pool workers,
through a local Dask cluster of 1 and 2 workers (``--cluster local:N --shared-path``),
and through the directory and Redis layer caches (cold, then warm). For each run it
prints the layers scanned and reused (distinct blob digests, from the JSON report), the
uncompressed MB scanned, MB/s over the wall time, and the wall time. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.fleet import FleetShape, build_fleet  # noqa: E402

LAYERLEAK = str(ROOT / ".venv" / "bin" / "layerleak")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(work: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None


def sweep(refs_file: Path, extra: list[str]) -> dict[str, float]:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    cmd = [
        LAYERLEAK,
        "scan",
        "--from-file",
        str(refs_file),
        "-q",
        "--format",
        "json",
        "-o",
        str(out),
        "--fail-on",
        "critical",
        *extra,
    ]
    began = time.perf_counter()
    proc = subprocess.run(cmd, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - began
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]!r}")
    doc = json.loads(out.read_text())
    out.unlink()
    layers: dict[str, tuple[bool, int]] = {}
    referenced = 0
    for image in doc["images"]:
        for plat in image["platforms"]:
            for layer in plat["layers"]:
                layers[layer["digest"]] = (layer["cached"], layer["uncompressed_bytes"] or 0)
                referenced += layer["uncompressed_bytes"] or 0
    scanned = [size for cached, size in layers.values() if not cached]
    return {
        "wall": wall,
        "scanned": len(scanned),
        "reused": len(layers) - len(scanned),
        "mb_scanned": sum(scanned) / 1e6,
        "mb_referenced": referenced / 1e6,
        "findings": sum(len(i["findings"]) for i in doc["images"]),
        "images": len(doc["images"]),
    }


def _tiny(i: int) -> bytes:
    return b"x" * 2000


def task_overhead_ms(address: str, n: int = 300) -> float:
    """Round trip of a trivial task (submit, schedule, run, fetch the result), per task."""
    from distributed import Client, as_completed

    with Client(address, timeout=30) as client:
        client.submit(_tiny, -1, pure=False).result()
        began = time.perf_counter()
        for future in as_completed([client.submit(_tiny, i, pure=False) for i in range(n)]):
            future.result()
        return (time.perf_counter() - began) / n * 1000


def cluster_start_seconds(n: int) -> float:
    """How long a local Dask cluster of n workers takes to start and stop (per run)."""
    code = (
        "import time,logging; t=time.perf_counter();"
        "from distributed import LocalCluster, Client;"
        f"c=LocalCluster(n_workers={n},threads_per_worker=1,processes=True,host='127.0.0.1',"
        "dashboard_address=None,silence_logs=logging.ERROR); cl=Client(c); cl.close(); c.close();"
        "print(time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--bases", type=int, default=3)
    ap.add_argument("--apps", type=int, default=4, help="apps per base")
    ap.add_argument("--releases", type=int, default=3)
    ap.add_argument("--base-mb", type=int, default=24)
    args = ap.parse_args()
    shape = FleetShape(args.bases, args.apps, args.releases, args.base_mb << 20)
    layout = args.out / f"fleet-{shape.bases}x{shape.apps_per_base}x{shape.releases}-{args.base_mb}"
    refs_file = layout.with_suffix(".txt")
    if not refs_file.exists():
        print(f"building the fleet ({shape.images} images, once)...", flush=True)
        refs = build_fleet(layout, shape)
        refs_file.write_text("\n".join(refs) + "\n")
    work = Path(tempfile.mkdtemp(prefix="ll-sweep-"))
    redis = start_redis(work)
    runs: list[tuple[str, list[str]]] = [
        ("pool, 1 worker, no cache", ["-j", "1", "--no-cache"]),
        ("pool, 2 workers, no cache", ["-j", "2", "--no-cache"]),
        ("dask local:1, no cache", ["--cluster", "local:1", "--shared-path", "--no-cache"]),
        ("dask local:2, no cache", ["--cluster", "local:2", "--shared-path", "--no-cache"]),
    ]
    cache = ["--cache-dir", str(work / "cache")]
    runs += [
        ("dask local:2, dir cache cold", ["--cluster", "local:2", "--shared-path", *cache]),
        ("dask local:2, dir cache warm", ["--cluster", "local:2", "--shared-path", *cache]),
    ]
    if redis is not None:
        backend = ["--cache-backend", redis[1]]
        runs += [
            ("dask local:2, redis cold", ["--cluster", "local:2", "--shared-path", *backend]),
            ("dask local:2, redis warm", ["--cluster", "local:2", "--shared-path", *backend]),
            ("pool, 2 workers, redis warm", ["-j", "2", *backend]),
        ]
    from tests.infra.dask_cluster import start_dask

    dask = None
    try:
        results = [(name, sweep(refs_file, extra)) for name, extra in runs]
        starts = {n: cluster_start_seconds(n) for n in (1, 2)}
        # A long-lived cluster: `dask scheduler` + 2 `dask worker` processes, started once;
        # the first sweep warms the workers (imports, detection), the second is measured.
        dask = start_dask(work / "dask", workers=2)
        persistent = ["--cluster", dask.address, "--shared-path", "--no-cache"]
        sweep(refs_file, persistent)
        results.append(("dask scheduler, 2 workers (up)", sweep(refs_file, persistent)))
        per_task = task_overhead_ms(dask.address)
    finally:
        if dask is not None:
            dask.stop()
        if redis is not None:
            redis[0].terminate()
            redis[0].wait(10)
        shutil.rmtree(work, ignore_errors=True)
    first = results[0][1]
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"fleet: {first['images']:.0f} images ({shape.bases} bases x {shape.apps_per_base} apps x "
        f"{shape.releases} releases), {first['scanned'] + first['reused']:.0f} distinct layers, "
        f"{first['mb_scanned']:.0f} MB distinct / {first['mb_referenced']:.0f} MB referenced "
        f"(uncompressed)\n"
    )
    print(f"{'run':32}{'scanned':>9}{'reused':>8}{'MB':>8}{'MB/s':>8}{'wall s':>9}{'findings':>10}")
    for name, r in results:
        rate = r["mb_scanned"] / r["wall"] if r["wall"] else 0.0
        print(
            f"{name:32}{r['scanned']:9.0f}{r['reused']:8.0f}{r['mb_scanned']:8.0f}"
            f"{rate:8.1f}{r['wall']:9.2f}{r['findings']:10.0f}"
        )
    print(
        f"\nlocal Dask cluster start+stop: {starts[1]:.1f} s (1 worker), "
        f"{starts[2]:.1f} s (2 workers); a trivial task's round trip through the "
        f"scheduler: {per_task:.1f} ms"
    )


if __name__ == "__main__":
    main()

"""A real Dask cluster for the tests: ``dask scheduler`` and ``dask worker`` processes.

`start_dask(base, workers=2)` runs the scheduler on 127.0.0.1 (port chosen by the
scheduler, read back from its scheduler file) with ``allowed-failures`` 1 (a task whose
worker died is tried once more, then fails), and each worker as its own ``dask worker``
process (one thread, a nanny that restarts it when it is killed) with the repository on
``PYTHONPATH`` (the tests' own blob openers are pickled into tasks). Skips when Dask's
``distributed`` is not installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


class DaskUnavailable(RuntimeError):
    """Dask cannot run here (for a skip)."""


def dask_binary() -> str | None:
    local = Path(sys.executable).parent / "dask"
    return str(local) if local.exists() else shutil.which("dask")


@dataclass
class DaskCluster:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: Path | None = None

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> pid of the worker process (not its nanny)."""
        from distributed import Client

        with Client(self.address, timeout=20) as client:
            return dict(client.run(os.getpid))


def start_dask(base: Path, workers: int = 2) -> DaskCluster:
    binary = dask_binary()
    if binary is None:
        raise DaskUnavailable("the dask command is not installed (pip install distributed)")
    base.mkdir(parents=True, exist_ok=True)
    scheduler_file = base / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)  # never read a stale address
    env = dict(os.environ)
    env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    log = (base / "scheduler.log").open("wb")
    scheduler = subprocess.Popen(
        [
            binary,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--dashboard-address",
            ":0",
            "--scheduler-file",
            str(scheduler_file),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    cluster = DaskCluster("", scheduler, logs=base)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not scheduler_file.exists():
            if scheduler.poll() is not None or time.monotonic() > deadline:
                raise DaskUnavailable(f"dask scheduler did not start (see {base})")
            time.sleep(0.1)
        time.sleep(0.1)  # the file is written whole, but give the writer a moment
        cluster.address = json.loads(scheduler_file.read_text())["address"]
        for i in range(workers):
            wlog = (base / f"worker{i}.log").open("wb")
            cluster.workers.append(
                subprocess.Popen(
                    [
                        binary,
                        "worker",
                        cluster.address,
                        "--host",
                        "127.0.0.1",
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--name",
                        f"w{i}",
                        "--local-directory",
                        str(base / f"w{i}"),
                    ],
                    stdout=wlog,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=ROOT,
                )
            )
        wait_for_workers(cluster.address, workers, deadline)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def wait_for_workers(address: str, n: int, deadline: float) -> None:
    from distributed import Client

    with Client(address, timeout=20) as client:
        while len(client.scheduler_info(n_workers=-1)["workers"]) < n:
            if time.monotonic() > deadline:
                raise DaskUnavailable(f"only {len(client.scheduler_info()['workers'])} workers")
            time.sleep(0.1)


def executed_counts(address: str) -> dict[str, int]:
    """Tasks each worker ran (``dask_worker.state.executed_count``)."""
    from distributed import Client

    with Client(address, timeout=20) as client:
        return dict(client.run(lambda dask_worker: dask_worker.state.executed_count))


with contextlib.suppress(ImportError):
    import distributed  # noqa: F401  (imported early: the first import is slow)

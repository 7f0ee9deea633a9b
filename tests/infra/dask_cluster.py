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


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path

    def args(self) -> list[str]:
        return [
            "--tls-ca-file",
            str(self.ca),
            "--tls-cert",
            str(self.cert),
            "--tls-key",
            str(self.key),
        ]


def make_tls(base: Path) -> TlsFiles:
    """A CA and one certificate for 127.0.0.1/localhost signed by it (scheduler, workers and
    client share it, as in Dask's own TLS examples)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    base.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "layerleak test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(base / "ca.pem", base / "cert.pem", base / "key.pem")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key.chmod(0o600)
    return files


def start_dask(base: Path, workers: int = 2, tls: TlsFiles | None = None) -> DaskCluster:
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
            *(["--protocol", "tls", *tls.args()] if tls else []),
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
                        *(tls.args() if tls else []),
                    ],
                    stdout=wlog,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=ROOT,
                )
            )
        wait_for_workers(cluster.address, workers, deadline, tls)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def wait_for_workers(address: str, n: int, deadline: float, tls: TlsFiles | None = None) -> None:
    from distributed import Client
    from distributed.security import Security

    security = (
        Security(
            tls_ca_file=str(tls.ca),
            tls_client_cert=str(tls.cert),
            tls_client_key=str(tls.key),
            require_encryption=True,
        )
        if tls
        else None
    )
    with Client(address, timeout=20, security=security) as client:
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

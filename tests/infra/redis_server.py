"""A throwaway ``redis-server`` on a loopback port (Debian's redis-server package).

`start_redis(base, password=None)` runs ``redis-server --port P --bind 127.0.0.1
--save '' --appendonly no`` (plus ``--requirepass`` when given) and waits until it
answers PING. Skips (RedisUnavailable) when the binary is not installed; run
scripts/system-deps.sh as root to install it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 20.0


class RedisUnavailable(RuntimeError):
    """redis-server cannot run here (for a skip)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    password: str | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_redis(base: Path, password: str | None = None) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable(
            "redis-server not found; run scripts/system-deps.sh (installs Debian's "
            "redis-server) as root"
        )
    base.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    cmd += ["--dir", str(base)]
    if password:
        cmd += ["--requirepass", password]
    log = (base / f"redis-{port}.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    server = RedisServer(port, proc, password)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if server.client().ping():
                return server
        except Exception:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RedisUnavailable(f"redis-server did not start (see {base})")
        time.sleep(0.05)

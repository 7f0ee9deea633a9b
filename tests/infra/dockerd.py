"""A private Docker engine for the test suite.

`acquire_engine()` returns an `Engine` whose `docker_host` is a `DOCKER_HOST` string:

1. `LAYERLEAK_TEST_DOCKER_HOST`, when set and answering `/_ping` (a developer can keep an
   engine running across test runs: `python -m tests.infra.dockerd` starts one and prints
   the line to export);
2. else an engine this process already started and that still answers;
3. else a new `dockerd` (Debian's docker.io, 20.10) started as root with everything in a
   short temporary directory: no iptables, no bridge, vfs storage, its own containerd.

When none can be had it raises `EngineUnavailable` whose message says why (not root, no
binary, the daemon refused to start: with the tail of its log), for the fixtures to skip.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

ENV_DOCKER_HOST = "LAYERLEAK_TEST_DOCKER_HOST"
ENV_DOCKERD = "LAYERLEAK_TEST_DOCKERD"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
# Where Debian puts the binaries; /usr/sbin is often missing from a non-login PATH.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_PARENT = "/tmp"
BASE_PREFIX = "lld-"
INSTALL_HINT = "run scripts/system-deps.sh (installs Debian's docker.io) as root"


class EngineUnavailable(RuntimeError):
    """No Docker engine could be had; the message says why."""


@dataclass
class Engine:
    """A Docker engine: started by us (`started`), or reused."""

    docker_host: str
    started: bool = False
    base_dir: Path | None = None
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    start_seconds: float = 0.0

    def alive(self) -> bool:
        return ping(self.docker_host)

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)

    def stop(self) -> None:
        """Stop the daemon and remove its directory, if we started it; idempotent."""
        if not self.started:
            return
        self.started = False
        _STARTED.pop(self.docker_host, None)
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self.base_dir is not None:
            _kill_leftover_containerd(self.base_dir)
            _unmount_below(self.base_dir)
            shutil.rmtree(self.base_dir, ignore_errors=True)


_STARTED: dict[str, Engine] = {}
_LOCK = threading.Lock()


def ping(docker_host: str, timeout: float = 2.0) -> bool:
    """True when the engine at `docker_host` (unix:// or tcp://) answers GET /_ping with OK."""
    try:
        sock = _connect(docker_host, timeout)
    except OSError:
        return False
    try:
        sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    except OSError:
        return False
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n", 1)[0] and body == b"OK"


def _connect(docker_host: str, timeout: float) -> socket.socket:
    parsed = urlparse(docker_host)
    if parsed.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(parsed.path)
        except OSError:
            sock.close()
            raise
        return sock
    if parsed.scheme in ("tcp", "http"):
        return socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or 2375), timeout
        )
    raise OSError(f"unsupported DOCKER_HOST scheme in {docker_host!r}")


def find_dockerd() -> str | None:
    explicit = os.environ.get(ENV_DOCKERD)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("dockerd", path=os.environ.get("PATH", "") + ":" + SYSTEM_PATH)


def acquire_engine() -> Engine:
    """Reuse or start an engine (see the module docstring); raise EngineUnavailable."""
    with _LOCK:
        external = os.environ.get(ENV_DOCKER_HOST)
        if external:
            if ping(external, timeout=5.0):
                return Engine(docker_host=external)
            raise EngineUnavailable(f"{ENV_DOCKER_HOST}={external} does not answer GET /_ping")
        for engine in list(_STARTED.values()):
            if engine.alive():
                return engine
            engine.stop()
        engine = start_dockerd()
        _STARTED[engine.docker_host] = engine
        return engine


def start_dockerd(timeout: float = START_TIMEOUT) -> Engine:
    """Start a private dockerd; the caller owns it (call `.stop()`)."""
    if os.geteuid() != 0:
        raise EngineUnavailable(
            f"a private dockerd needs root (euid is {os.geteuid()}); "
            f"set {ENV_DOCKER_HOST} to an engine to use instead"
        )
    binary = find_dockerd()
    if binary is None:
        raise EngineUnavailable(f"dockerd not found; {INSTALL_HINT}")
    sweep_stale_engines()
    # Keep every path short: unix socket paths (ours and containerd's, under the exec root)
    # are limited to 108 bytes, and a pytest tmp_path can be far longer.
    base = Path(tempfile.mkdtemp(prefix=BASE_PREFIX, dir=BASE_PARENT))
    (base / "owner.pid").write_text(str(os.getpid()))
    sock = base / "d.sock"
    log_path = base / "dockerd.log"
    argv = [
        binary,
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--storage-driver=vfs",
        f"--data-root={base / 'data'}",
        f"--exec-root={base / 'x'}",
        f"--pidfile={base / 'dockerd.pid'}",
        "-H",
        f"unix://{sock}",
    ]
    env = dict(os.environ)
    env["PATH"] = env.get("PATH", "") + ":" + SYSTEM_PATH  # containerd, runc, docker-init
    env.pop("DOCKER_HOST", None)
    began = time.monotonic()
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C aimed at pytest must not kill it mid-test
            )
        except OSError as exc:
            shutil.rmtree(base, ignore_errors=True)
            raise EngineUnavailable(f"cannot run {binary}: {exc}") from exc
    engine = Engine(
        docker_host=f"unix://{sock}",
        started=True,
        base_dir=base,
        log_path=log_path,
        process=proc,
    )
    atexit.register(engine.stop)  # in case the session is not closed cleanly
    deadline = began + timeout
    while True:
        if ping(engine.docker_host, timeout=1.0):
            engine.start_seconds = time.monotonic() - began
            return engine
        code = proc.poll()
        if code is not None or time.monotonic() > deadline:
            tail = engine.log_tail()
            engine.stop()
            what = f"exited with status {code}" if code is not None else f"not up in {timeout:.0f}s"
            raise EngineUnavailable(f"dockerd {what}; last lines of its log:\n{tail}")
        time.sleep(0.05)


def sweep_stale_engines() -> None:
    """Stop the engines, and remove the directories, that sessions killed without cleaning
    up left behind (their owner process is gone); a live session's engine is left alone."""
    for base in Path(BASE_PARENT).glob(BASE_PREFIX + "*"):
        try:
            owner = int((base / "owner.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        if _pid_alive(owner):
            continue
        try:
            pid = int((base / "dockerd.pid").read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and str(base).encode() in _cmdline(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
            for _ in range(int(STOP_TIMEOUT / 0.1)):
                if not _pid_alive(pid):
                    break
                time.sleep(0.1)
            else:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        _kill_leftover_containerd(base)
        _unmount_below(base)
        shutil.rmtree(base, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = _status_state(pid)
    return status != "Z"


def _status_state(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return line.split()[1]
    except (OSError, IndexError):
        pass
    return ""


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def stop_started_engines() -> None:
    """Stop every engine this process started."""
    for engine in list(_STARTED.values()):
        engine.stop()


def _tail(path: Path | None, lines: int) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _kill_leftover_containerd(base: Path) -> None:
    """dockerd stops the containerd it started; this catches the case where it was killed."""
    pidfile = base / "x" / "containerd" / "containerd.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    if str(base).encode() not in _cmdline(pid):  # gone, or the pid was reused
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not _pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def _unmount_below(base: Path) -> None:
    """Lazily unmount whatever is still mounted below `base` (deepest first)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    prefix = str(base) + "/"
    targets = []
    for line in mounts:
        parts = line.split()
        if len(parts) > 1:
            target = parts[1].replace("\\040", " ")
            if target.startswith(prefix):
                targets.append(target)
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


def main() -> None:
    """Start an engine and keep it until SIGINT/SIGTERM; print the variable to export."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    engine = start_dockerd()
    print(f"export {ENV_DOCKER_HOST}={engine.docker_host}  # up in {engine.start_seconds:.2f}s")
    print(f"log: {engine.log_path}; Ctrl-C or SIGTERM (pid {os.getpid()}) stops it", flush=True)
    try:
        while not stop.wait(1) and engine.process is not None and engine.process.poll() is None:
            pass
    finally:
        engine.stop()


if __name__ == "__main__":
    main()

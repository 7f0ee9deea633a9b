"""Hostile timing: Ctrl-C (SIGINT) or SIGTERM in the middle of a scan.

``layerleak scan docker:IMAGE`` runs in a subprocess against a stand-in Docker Engine
API on 127.0.0.1 that answers the lookups and then streams ``docker save`` forever,
a few bytes at a time: the scan is stuck writing its private temporary copy of the
archive when the signal arrives. It must end at once with one clear line, exit 130,
no traceback, and leave no temporary file behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

IMAGE_ID = "sha256:" + "ab" * 32


class _Engine(BaseHTTPRequestHandler):
    """The few Engine API calls the daemon source makes; ``save`` never ends."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass

    def _json(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = re.sub(r"^/v[0-9.]+", "", self.path.split("?")[0])
        if path == "/_ping":
            data = b"OK"
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.send_header("Api-Version", "1.41")
            self.end_headers()
            self.wfile.write(data)
        elif path == "/version":
            self._json({"ApiVersion": "1.41", "Version": "20.10.0", "MinAPIVersion": "1.12"})
        elif path.endswith("/history"):
            self._json([{"Id": IMAGE_ID, "CreatedBy": "COPY . /app"}])
        elif path.endswith("/json"):
            self._json({"Id": IMAGE_ID, "RepoTags": ["slow:latest"]})
        elif path.endswith("/get"):
            self.send_response(200)
            self.send_header("Content-Type", "application/x-tar")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                while True:  # a few bytes a second, forever
                    self.wfile.write(b"200\r\n" + b"\0" * 0x200 + b"\r\n")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                return
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


@pytest.fixture()
def slow_engine() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Engine)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _wait_for(predicate: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_scan_exits_130_and_removes_temporary_files(
    slow_engine: str, tmp_path: Path, signum: int
) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {
        **os.environ,
        "DOCKER_HOST": slow_engine,
        "TMPDIR": str(tmpdir),
        "LAYERLEAK_CACHE_DIR": str(tmp_path / "cache"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "scanner.cli", "scan", "--no-cache", "docker:slow:latest"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job starts with SIGINT ignored, and Python keeps an inherited
        # SIG_IGN (as nohup expects): give the scan the disposition a terminal would.
        preexec_fn=_default_sigint,
    )
    try:
        saved = lambda: any(p.stat().st_size > 0 for p in tmpdir.rglob("image.tar"))  # noqa: E731
        assert _wait_for(saved), "the scan never started saving the image"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    expected = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
    assert f"layerleak: {expected}" in err
    assert out == ""
    assert list(tmpdir.iterdir()) == []  # the private copy of the archive is gone

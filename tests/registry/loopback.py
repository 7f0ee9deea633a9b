"""A small loopback registry for faults the fault proxy cannot express: a blob that never
ends or arrives one byte at a time, a ``Link`` or redirect to another origin, a token
realm on plain http, an error body echoing credentials. It records every request with
its headers, so a test can tell whether credentials reached a server.

    server = LoopbackRegistry(built).start()
    server.behave(digest, "slow", interval=0.2)
    ... scan f"{server.host}/repo@{built.manifest_digest}" ...
    assert server.saw_authorization() is False
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.hostile_images import OCI_MANIFEST, Built

SAFETY_SECONDS = 20.0  # an endless or slow stream stops after this, whatever happens


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Behaviour:
    kind: str  # "slow", "endless", "redirect", "status"
    interval: float = 0.2
    target: str = ""
    status: int = 500
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["LoopbackHandler"], bool]


class LoopbackRegistry:
    """Serves ``built`` under any repository name: ``/v2/<repo>/manifests/<digest or
    "latest">`` and ``/v2/<repo>/blobs/<digest>``; ``tags`` under ``tags/list``."""

    def __init__(
        self,
        built: Built | None = None,
        *,
        basic: tuple[str, str] | None = None,
        bearer_realm: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.built = built
        self.basic = basic
        self.bearer_realm = bearer_realm
        self.tls = tls
        self.requests: list[Seen] = []
        self.behaviours: dict[str, Behaviour] = {}
        self.routes: list[tuple[re.Pattern[str], Handler]] = []
        self.tags: list[str] = []
        self.tag_link: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()

    # --- setup --------------------------------------------------------------------------

    def start(self) -> LoopbackRegistry:
        server = ThreadingHTTPServer(("127.0.0.1", 0), LoopbackHandler)
        server.daemon_threads = True
        server.owner = self  # type: ignore[attr-defined]
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> LoopbackRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def behave(self, digest: str, kind: str, **kw: Any) -> None:
        self.behaviours[digest] = Behaviour(kind, **kw)

    def route(self, pattern: str, handler: Handler) -> None:
        self.routes.append((re.compile(pattern), handler))

    # --- what was seen -----------------------------------------------------------------

    def saw_authorization(self) -> bool:
        return any("authorization" in {k.lower() for k in r.headers} for r in self.requests)

    def authorizations(self) -> list[str]:
        return [
            v for r in self.requests for k, v in r.headers.items() if k.lower() == "authorization"
        ]


class LoopbackHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def owner(self) -> LoopbackRegistry:
        return self.server.owner  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self.owner.requests.append(Seen("GET", self.path, dict(self.headers.items())))
        for pattern, handler in self.owner.routes:
            if pattern.search(self.path) and handler(self):
                return
        if not self._authorized():
            return
        path = self.path.split("?")[0]
        if path == "/v2/":
            self.send_bytes(200, b"{}", "application/json")
            return
        m = re.match(r"^/v2/(.+)/(manifests|blobs|tags)/(.+)$", path)
        built = self.owner.built
        if m is None:
            self.send_bytes(404, b'{"errors":[{"code":"NOT_FOUND"}]}', "application/json")
            return
        kind, ref = m.group(2), m.group(3)
        if kind == "tags":
            self.send_tags()
            return
        if built is None:
            self.send_bytes(404, b"{}", "application/json")
            return
        if kind == "manifests" and ref in ("latest", built.manifest_digest):
            self.send_blob(built.manifest_digest, OCI_MANIFEST)
            return
        if ref in built.blobs:
            self.send_blob(ref, "application/octet-stream")
            return
        self.send_bytes(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}', "application/json")

    # --- pieces ---------------------------------------------------------------------------

    def _authorized(self) -> bool:
        owner = self.owner
        auth = self.headers.get("Authorization", "")
        if owner.basic is not None:
            expected = "Basic " + base64.b64encode(":".join(owner.basic).encode()).decode()
            if auth != expected:
                self.send_bytes(
                    401,
                    b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                    "application/json",
                    {"WWW-Authenticate": 'Basic realm="loopback"'},
                )
                return False
        if owner.bearer_realm is not None and not auth.startswith("Bearer "):
            challenge = f'Bearer realm="{owner.bearer_realm}",service="loopback"'
            self.send_bytes(
                401,
                b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                "application/json",
                {"WWW-Authenticate": challenge},
            )
            return False
        return True

    def send_bytes(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_tags(self) -> None:
        owner = self.owner
        body = json.dumps({"name": "repo", "tags": owner.tags}).encode()
        headers = {"Link": owner.tag_link} if owner.tag_link else {}
        self.send_bytes(200, body, "application/json", headers)

    def send_blob(self, digest: str, content_type: str) -> None:
        owner = self.owner
        assert owner.built is not None
        data = owner.built.blobs[digest]
        how = owner.behaviours.get(digest)
        headers = {"Docker-Content-Digest": digest}
        if how is None:
            self.send_bytes(200, data, content_type, headers)
        elif how.kind == "redirect":
            self.send_bytes(307, b"", "text/plain", {"Location": how.target})
        elif how.kind == "status":
            self.send_bytes(how.status, how.body, "application/json", how.headers)
        elif how.kind in ("slow", "endless"):
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Docker-Content-Digest", digest)
            if how.kind == "slow":
                self.send_header("Content-Length", str(len(data)))
            else:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._stream(data, how)
        else:
            raise AssertionError(how.kind)

    def _stream(self, data: bytes, how: Behaviour) -> None:
        stop = time.monotonic() + SAFETY_SECONDS
        try:
            if how.kind == "slow":
                for i in range(len(data)):
                    if self.owner._stop.is_set() or time.monotonic() > stop:
                        return
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(how.interval)
                return
            chunk = data[:4096] or b"\0" * 4096
            framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            while not self.owner._stop.is_set() and time.monotonic() < stop:
                self.wfile.write(framed)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            return  # the client went away, as it should

"""A programmable HTTP reverse proxy that injects faults in front of a registry.

    proxy = FaultProxy("http://127.0.0.1:5000").start()
    rule = proxy.fail(r"/blobs/sha256:", status=429, times=2, retry_after=1)
    ... point the client at proxy.url ...
    assert rule.hits == 2 and rule.seen == 3

Rules are tried in the order they were added; the first one whose `method` and `path`
regex (searched in the request target, query included) match and whose budget (`times`,
None = always) is not spent is applied; a spent rule lets requests through to later rules
and then upstream. Faults:

* ``fail``: answer `status` (429, 500, 502, 503, ...) with a registry-style JSON error and
  optional ``Retry-After``, without contacting upstream;
* ``reset``: close the client connection without answering (TCP RST);
* ``truncate``: forward, but send only the first `after_bytes` bytes of the body (headers
  keep the full Content-Length), then close;
* ``corrupt``: forward, flipping the byte at `offset` of the body (a wrong blob, same size);
* ``delay``: sleep `seconds`, then forward.

Everything else is forwarded and streamed: the request keeps its Host header (so the
registry builds upload `Location`s with the proxy's address) and the response keeps
WWW-Authenticate, Docker-Content-Digest, Content-Type, ...; an absolute `Location` naming
the upstream is rewritten to the proxy.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
CHUNK = 64 * 1024
ERROR_CODES = {429: "TOOMANYREQUESTS", 401: "UNAUTHORIZED", 404: "NOT_FOUND", 503: "UNAVAILABLE"}


@dataclass
class Rule:
    """One programmed fault; `hits` counts the times it was applied, `seen` the matching
    requests (applied or let through because the budget was spent)."""

    action: str
    path: str
    method: str | None = None
    times: int | None = 1
    status: int = 503
    retry_after: int | None = None
    after_bytes: int = 0
    offset: int = 0
    seconds: float = 0.0
    hits: int = 0
    seen: int = 0
    _regex: re.Pattern[str] = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._regex = re.compile(self.path)

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self._regex.search(target) is not None

    def take(self) -> bool:
        with self._lock:
            self.seen += 1
            if self.times is None or self.hits < self.times:
                self.hits += 1
                return True
            return False


@dataclass(frozen=True)
class ProxyRecord:
    method: str
    target: str
    action: str | None  # the fault applied, None when passed through untouched
    status: int | None  # status sent to the client, None for a reset
    at: float


class FaultProxy:
    """A reverse proxy on 127.0.0.1:<free port> in front of `upstream` (a URL or host:port)."""

    def __init__(self, upstream: str, *, timeout: float = 60.0, host: str = "127.0.0.1") -> None:
        if "://" not in upstream:
            upstream = "http://" + upstream
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"FaultProxy forwards plain http only, not {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.timeout = timeout
        self.host = host
        self.rules: list[Rule] = []
        self.log: list[ProxyRecord] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> FaultProxy:
        if self._server is None:
            server = ThreadingHTTPServer((self.host, 0), _ProxyHandler)
            server.daemon_threads = True
            server.block_on_close = False
            server.fault_proxy = self  # type: ignore[attr-defined]
            self._server = server
            threading.Thread(
                target=server.serve_forever, name="layerleak-fault-proxy", daemon=True
            ).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("fault proxy not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """host:port, the form a registry reference uses."""
        return f"{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.url}"

    # --- programming -----------------------------------------------------------------

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def fail(
        self,
        path: str,
        status: int = 503,
        *,
        times: int | None = 1,
        retry_after: int | None = None,
        method: str | None = None,
    ) -> Rule:
        return self.add(Rule("fail", path, method, times, status=status, retry_after=retry_after))

    def reset(self, path: str, *, times: int | None = 1, method: str | None = None) -> Rule:
        return self.add(Rule("reset", path, method, times))

    def truncate(
        self, path: str, after_bytes: int, *, times: int | None = 1, method: str | None = None
    ) -> Rule:
        return self.add(Rule("truncate", path, method, times, after_bytes=after_bytes))

    def corrupt(
        self, path: str, *, offset: int = 0, times: int | None = None, method: str | None = None
    ) -> Rule:
        return self.add(Rule("corrupt", path, method, times, offset=offset))

    def delay(
        self, path: str, seconds: float, *, times: int | None = None, method: str | None = None
    ) -> Rule:
        return self.add(Rule("delay", path, method, times, seconds=seconds))

    def clear(self) -> None:
        """Forget every rule and the request log."""
        with self._lock:
            self.rules.clear()
            self.log.clear()

    def count(self, path: str | None = None, method: str | None = None) -> int:
        """Requests received whose target matches `path` (regex) and `method`."""
        regex = re.compile(path) if path is not None else None
        with self._lock:
            return sum(
                1
                for r in self.log
                if (method is None or r.method == method.upper())
                and (regex is None or regex.search(r.target))
            )

    def _pick(self, method: str, target: str) -> Rule | None:
        with self._lock:
            rules = list(self.rules)
        for rule in rules:
            if rule.matches(method, target) and rule.take():
                return rule
        return None

    def _record(self, method: str, target: str, action: str | None, status: int | None) -> None:
        with self._lock:
            self.log.append(ProxyRecord(method, target, action, status, time.time()))


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # idle keep-alive connections are dropped after this

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def _proxy(self) -> FaultProxy:
        return self.server.fault_proxy  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _handle(self) -> None:
        proxy = self._proxy
        rule = proxy._pick(self.command, self.path)
        action = rule.action if rule is not None else None
        if rule is not None and rule.action == "reset":
            proxy._record(self.command, self.path, action, None)
            self._reset()
            return
        if rule is not None and rule.action == "fail":
            self._drain_body()
            proxy._record(self.command, self.path, action, rule.status)
            self._send_error(rule)
            return
        if rule is not None and rule.action == "delay":
            time.sleep(rule.seconds)
        try:
            self._forward(rule)
        except (ConnectionError, TimeoutError, http.client.HTTPException) as exc:
            proxy._record(self.command, self.path, "upstream-error", 502)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send_json(502, {"errors": [{"code": "UNKNOWN", "message": repr(exc)}]})

    # --- faults ----------------------------------------------------------------------

    def _reset(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _send_error(self, rule: Rule) -> None:
        code = ERROR_CODES.get(rule.status, "UNKNOWN")
        headers = {"Docker-Distribution-API-Version": "registry/2.0"}
        if rule.retry_after is not None:
            headers["Retry-After"] = str(rule.retry_after)
        body = {"errors": [{"code": code, "message": f"injected {rule.status} by fault proxy"}]}
        self._send_json(rule.status, body, headers)

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # --- request body ----------------------------------------------------------------

    def _body_chunks(self) -> Iterator[bytes] | None:
        """The request body as an iterator of chunks, or None when there is none."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0:
            return None
        return self._read_exactly(length)

    def _read_exactly(self, length: int) -> Iterator[bytes]:
        left = length
        while left > 0:
            data = self.rfile.read(min(CHUNK, left))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            left -= len(data)
            yield data

    def _read_chunked(self) -> Iterator[bytes]:
        while True:
            size_line = self.rfile.readline(65537)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            yield from self._read_exactly(size)
            self.rfile.readline(3)  # CRLF after the chunk

    def _drain_body(self) -> None:
        chunks = self._body_chunks()
        if chunks is not None:
            for _ in chunks:
                pass

    # --- forwarding ------------------------------------------------------------------

    def _forward(self, rule: Rule | None) -> None:
        proxy = self._proxy
        conn = http.client.HTTPConnection(
            proxy.upstream_host, proxy.upstream_port, timeout=proxy.timeout
        )
        try:
            body = self._body_chunks()
            chunked_in = body is not None and "Content-Length" not in self.headers
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for key, value in self.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    conn.putheader(key, value)
            if chunked_in:
                conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            if body is not None:
                for chunk in body:
                    conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked_in else chunk)
                if chunked_in:
                    conn.send(b"0\r\n\r\n")
            resp = conn.getresponse()
            self._relay(resp, rule)
        finally:
            conn.close()

    def _relay(self, resp: http.client.HTTPResponse, rule: Rule | None) -> None:
        proxy = self._proxy
        no_body = self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
        length = resp.getheader("Content-Length")
        chunked_out = not no_body and length is None
        action = rule.action if rule is not None else None
        truncate = rule is not None and rule.action == "truncate" and not no_body
        proxy._record(self.command, self.path, action, resp.status)

        self.send_response(resp.status, resp.reason)
        for key, value in resp.getheaders():
            lower = key.lower()
            if lower in HOP_BY_HOP:
                continue
            if lower == "location":
                value = self._rewrite_location(value)
            self.send_header(key, value)
        if chunked_out:
            self.send_header("Transfer-Encoding", "chunked")
        if truncate:
            self.close_connection = True
        self.end_headers()
        if no_body:
            return

        sent = 0
        limit = rule.after_bytes if truncate and rule is not None else None
        flip = rule.offset if rule is not None and rule.action == "corrupt" else None
        while True:
            data = resp.read(CHUNK)
            if not data:
                break
            if flip is not None and sent <= flip < sent + len(data):
                buf = bytearray(data)
                buf[flip - sent] ^= 0xFF
                data = bytes(buf)
            if limit is not None and sent + len(data) >= limit:
                data = data[: limit - sent]
                self._write(data, chunked_out)
                sent += len(data)
                self.wfile.flush()
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._write(data, chunked_out)
            sent += len(data)
        if chunked_out:
            self.wfile.write(b"0\r\n\r\n")

    def _write(self, data: bytes, chunked: bool) -> None:
        if not data:
            return
        if chunked:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.wfile.write(data)

    def _rewrite_location(self, value: str) -> str:
        proxy = self._proxy
        parts = urlsplit(value)
        if (
            parts.scheme
            and parts.hostname in (proxy.upstream_host, "localhost")
            and (parts.port or 80) == proxy.upstream_port
        ):
            return urlunsplit(parts._replace(netloc=proxy.url))
        return value

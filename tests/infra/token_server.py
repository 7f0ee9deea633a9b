"""A Docker token-auth server for the registry in `auth.token` mode.

Implements the token protocol the CNCF distribution registry (2.8) delegates to:

* ``GET /token?service=S&scope=repository:NAME:pull,push[&scope=...]`` with optional Basic
  credentials answers ``{"token", "access_token", "expires_in", "issued_at"}``;
* ``POST /token`` (OAuth2 ``grant_type=password``, form-encoded) answers the same;
* bad credentials get 401; no credentials get a token granting nothing.

Tokens are RS256 JWTs signed with the key of a self-signed certificate; the registry trusts
them through ``rootcertbundle`` = that certificate. The JWT header names the key either by
``kid`` (libtrust key id of the certificate's public key) or by ``x5c`` (the certificate
itself): registry 2.8.2 accepts both (`key_id_mode`). Access is granted per user by glob
rules; every request is recorded so tests can assert which scopes were asked for by whom.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

DEFAULT_SERVICE = "layerleak-test-registry"
DEFAULT_ISSUER = "layerleak-test-token-issuer"
KeyIdMode = Literal["kid", "x5c"]


@dataclass(frozen=True)
class Grant:
    """`user` may do `actions` on resources of `type` whose name matches the glob `name`."""

    user: str
    name: str
    actions: frozenset[str]
    type: str = "repository"

    def allows(self, user: str | None, type_: str, name: str) -> bool:
        return user == self.user and type_ == self.type and fnmatch.fnmatchcase(name, self.name)


ADMIN_USER = "alice"
ADMIN_PASSWORD = "alice-pw-3f9c"
READER_USER = "reader"
READER_PASSWORD = "reader-pw-81d2"


def default_users() -> dict[str, str]:
    return {ADMIN_USER: ADMIN_PASSWORD, READER_USER: READER_PASSWORD}


def default_grants() -> list[Grant]:
    """`alice`: everything on every repository and the catalog; `reader`: pull on `app/*`."""
    return [
        Grant(ADMIN_USER, "*", frozenset({"pull", "push", "delete", "*"})),
        Grant(ADMIN_USER, "catalog", frozenset({"*"}), type="registry"),
        Grant(READER_USER, "app/*", frozenset({"pull"})),
    ]


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Scope:
        """`repository:NAME:pull,push`; NAME may hold ':' (a registry host with a port)."""
        type_, sep, rest = text.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep or not sep2 or not name:
            raise ValueError(f"malformed scope {text!r}")
        return cls(type_, name, tuple(a for a in actions.split(",") if a))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


@dataclass(frozen=True)
class TokenRequest:
    """One request the server answered."""

    method: str
    path: str
    service: str | None
    scopes: tuple[str, ...]
    user: str | None  # None: anonymous (or rejected credentials, see status)
    status: int
    access: tuple[dict[str, Any], ...]
    at: float


def libtrust_key_id(public_key: rsa.RSAPublicKey) -> str:
    """The key id docker/libtrust (and so distribution 2.8's token auth) computes for a key:
    base32 of the first 240 bits of sha256(DER SubjectPublicKeyInfo), as 12 groups of 4."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


def make_signing_cert(
    common_name: str = "layerleak-test-token",
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


class TokenServer:
    """Threaded token server on 127.0.0.1; `start()` it, read `realm`, `stop()` it."""

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        grants: Iterable[Grant] | None = None,
        service: str = DEFAULT_SERVICE,
        issuer: str = DEFAULT_ISSUER,
        key_id_mode: KeyIdMode = "kid",
        expires_in: int = 300,
        host: str = "127.0.0.1",
    ) -> None:
        self.users = dict(default_users() if users is None else users)
        self.grants = list(default_grants() if grants is None else grants)
        self.service = service
        self.issuer = issuer
        self.key_id_mode: KeyIdMode = key_id_mode
        self.expires_in = expires_in
        self.host = host
        self.key, self.cert = make_signing_cert()
        self.key_id = libtrust_key_id(self.cert.public_key())  # type: ignore[arg-type]
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> TokenServer:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self.host, 0), _TokenHandler)
        server.daemon_threads = True
        server.block_on_close = False
        server.token_server = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="layerleak-token-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("token server not started")
        return int(self._server.server_address[1])

    @property
    def realm(self) -> str:
        return f"http://{self.host}:{self.port}/token"

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write_cert(self, path: Path) -> Path:
        path.write_bytes(self.cert_pem)
        return path

    # --- policy ----------------------------------------------------------------------

    def add_user(self, user: str, password: str, *grants: Grant) -> None:
        with self._lock:
            self.users[user] = password
            self.grants.extend(grants)

    def allowed_actions(self, user: str | None, scope: Scope) -> tuple[str, ...]:
        if user is None:
            return ()
        allowed: set[str] = set()
        for grant in self.grants:
            if grant.allows(user, scope.type, scope.name):
                allowed |= grant.actions
        if "*" in allowed:
            return scope.actions
        return tuple(a for a in scope.actions if a in allowed)

    def authenticate(self, user: str, password: str) -> bool:
        expected = self.users.get(user)
        return expected is not None and expected == password

    def issue(
        self, user: str | None, scopes: Iterable[str], *, expires_in: int | None = None
    ) -> str:
        """A signed token for `user` (None: anonymous) granting what the policy allows."""
        return self._issue(user, [Scope.parse(s) for s in scopes], expires_in)[0]

    def _issue(
        self, user: str | None, scopes: list[Scope], expires_in: int | None
    ) -> tuple[str, list[dict[str, Any]]]:
        access: list[dict[str, Any]] = []
        for scope in scopes:
            actions = self.allowed_actions(user, scope)
            if actions:
                access.append({"type": scope.type, "name": scope.name, "actions": list(actions)})
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + (self.expires_in if expires_in is None else expires_in),
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        headers: dict[str, Any]
        if self.key_id_mode == "kid":
            headers = {"kid": self.key_id}
        else:
            der = self.cert.public_bytes(serialization.Encoding.DER)
            headers = {"x5c": [base64.b64encode(der).decode()]}
        return jwt.encode(claims, self.key, algorithm="RS256", headers=headers), access

    # --- what happened ---------------------------------------------------------------

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def scopes_requested(self, user: str | None = None) -> list[str]:
        """Every scope asked for (by `user`, if given), in order."""
        with self._lock:
            return [s for r in self.requests if user is None or r.user == user for s in r.scopes]

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _TokenHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "layerleak-test-token/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def _ts(self) -> TokenServer:
        return self.server.token_server  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/token":
            self._json(404, {"error": "not found"})
            return
        query = parse_qs(url.query)
        self._answer(query, self._basic_credentials(), oauth=False)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode()) if length else {}
        if url.path != "/token":
            self._json(404, {"error": "not found"})
            return
        creds: tuple[str, str] | None = None
        if form.get("grant_type", [""])[0] == "password":
            creds = (form.get("username", [""])[0], form.get("password", [""])[0])
        else:
            creds = self._basic_credentials()
        self._answer(form, creds, oauth=True)

    def _basic_credentials(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization", "")
        kind, _, value = header.partition(" ")
        if kind.lower() != "basic" or not value:
            return None
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return ("", "")
        return (user, password)

    def _answer(
        self, params: dict[str, list[str]], creds: tuple[str, str] | None, *, oauth: bool
    ) -> None:
        ts = self._ts
        service = params.get("service", [None])[0]
        raw_scopes = [s for value in params.get("scope", []) for s in value.split(" ") if s]
        user: str | None = None
        status = 200
        access: list[dict[str, Any]] = []
        try:
            scopes = [Scope.parse(s) for s in raw_scopes]
        except ValueError as exc:
            self._json(400, {"errors": [{"code": "INVALID_SCOPE", "message": str(exc)}]})
            self._record(service, raw_scopes, None, 400, access)
            return
        if creds is not None:
            if ts.authenticate(*creds):
                user = creds[0]
            else:
                status = 401
        if status == 401:
            self._json(
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]},
                {"WWW-Authenticate": f'Basic realm="{ts.realm}"'},
            )
        elif service is not None and service != ts.service:
            status = 400
            self._json(400, {"errors": [{"code": "INVALID_SERVICE", "message": service}]})
        else:
            token, access = ts._issue(user, scopes, None)
            issued = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            body: dict[str, Any] = {
                "token": token,
                "access_token": token,
                "expires_in": ts.expires_in,
                "issued_at": issued,
            }
            if oauth:
                body["scope"] = " ".join(raw_scopes)
            self._json(200, body)
        self._record(service, raw_scopes, user, status, access)

    def _record(
        self,
        service: str | None,
        scopes: list[str],
        user: str | None,
        status: int,
        access: list[dict[str, Any]],
    ) -> None:
        self._ts._record(
            TokenRequest(
                method=self.command,
                path=self.path,
                service=service,
                scopes=tuple(scopes),
                user=user,
                status=status,
                access=tuple(access),
                at=time.time(),
            )
        )

    def _json(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

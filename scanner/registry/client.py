"""The distribution protocol, through oras-py's :class:`oras.provider.Registry`.

What oras-py gives us and we keep: its ``requests`` session (cookies ignored), its URL
building and its ``get_blob(container, digest, stream=True)``. What we replace, and why
(see the pitfalls in DESIGN.md):

* ``do_request`` is overridden: oras's version is wrapped in a retry decorator that can
  sleep about two minutes on any error, and turns a 500 into a ValueError; ours retries
  a few times within a few seconds (:mod:`scanner.registry.retry`), honours
  ``Retry-After`` on 429/503 and never retries 401, 403 or 404.
* Authentication is done here, not by oras's auth backends: the token backend keeps one
  token for every repository (a token scoped to repository A is sent to B and fails),
  the basic backend silently reads ``ORAS_USER``/``ORAS_PASS`` from the environment,
  ``load_configs`` reads ``~/.docker/config.json`` on its own (standard base64 only)
  and ``login()`` writes it. We answer Basic and Bearer challenges ourselves, with the
  credential :mod:`scanner.registry.credentials` resolved, and keep one token per
  repository scope.
* Manifests are fetched with a plain request on oras's session instead of
  ``get_manifest``: that returns parsed JSON, and we need the exact bytes (and the
  ``Content-Type``) to check the digest and tell an index from a manifest.

Blobs are streamed: :meth:`RegistryClient.open_blob` returns a file-like object over the
raw response body, never held whole; the layer walker hashes it as it reads.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

import oras.container
import oras.provider
import requests
import urllib3.exceptions

from scanner.errors import AuthError, ManifestError, RegistryError
from scanner.image import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from scanner.reference import FLY_REGISTRY, is_local_host
from scanner.registry.credentials import Credential
from scanner.registry.retry import (
    RETRY_AFTER_STATUSES,
    RETRY_STATUSES,
    Retrier,
    RetryPolicy,
    retry_after_seconds,
)

MANIFEST_ACCEPT = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
SCHEMA1_TYPES = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
MAX_DOCUMENT_BYTES = 32 << 20  # manifests and configs larger than this are refused
MAX_ERROR_BODY = 64 << 10
READ_CHUNK = 1 << 20
USER_AGENT = "layerleak (oras-py)"
CLIENT_ID = "layerleak"

_PATH = re.compile(r"/v2/(?P<repo>.+?)/(?P<kind>blobs|manifests)/(?P<ref>[^/?]+)$")
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')

T = TypeVar("T")
_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


@dataclass(frozen=True)
class Endpoint:
    """How to reach a registry: ``registry`` is ``host[:port]`` as in the reference."""

    registry: str
    scheme: str = "https"
    timeout: float = 30.0

    @classmethod
    def for_registry(cls, registry: str, *, insecure: bool, timeout: float) -> Endpoint:
        """Plain HTTP with ``insecure``, and without asking for localhost and 127.0.0.0/8."""
        scheme = "http" if insecure or is_local_host(registry) else "https"
        return cls(registry, scheme, float(timeout))

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.registry}"


@dataclass(frozen=True)
class Document:
    """A manifest or index as served: its exact bytes, media type and digest."""

    data: bytes
    media_type: str
    digest: str


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer", lowercased
    params: Mapping[str, str]


def parse_challenge(header: str | None) -> Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` header (``Bearer realm="..",..``)."""
    if not header or not header.strip():
        return None
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for key, quoted, bare in _CHALLENGE_PARAM.findall(rest):
        value = quoted.replace('\\"', '"') if quoted else bare
        params.setdefault(key.lower(), value)
    return Challenge(scheme.lower(), params)


def describe_network_error(exc: BaseException) -> str:
    """A short reason for a connection failure, without URLs (they can carry signatures)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    reason = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TimeoutError | requests.Timeout | urllib3.exceptions.TimeoutError):
            reason = reason or "timed out"
        if isinstance(current, ConnectionResetError):
            return "connection reset by the server"
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, OSError) and current.strerror:
            reason = current.strerror
        if isinstance(current, urllib3.exceptions.ProtocolError | http.client.IncompleteRead):
            text = str(current)
            if "IncompleteRead" in text or "incomplete" in text.lower():
                return "the connection closed before the whole body arrived"
            if "reset" in text.lower():
                return "connection reset by the server"
            if "aborted" in text.lower() or "RemoteDisconnected" in text:
                return "the server closed the connection without answering"
        args = getattr(current, "args", ())
        nested = next((a for a in args if isinstance(a, BaseException)), None)
        current = current.__cause__ or current.__context__ or nested
    if reason:
        return reason
    return type(exc).__name__


class _Transient(Exception):
    """A failure worth another attempt (the body broke off, say)."""


class _OrasRegistry(oras.provider.Registry):
    """oras-py's Registry whose every request goes through :class:`RegistryClient`."""

    def __init__(self, owner: RegistryClient) -> None:
        endpoint = owner.endpoint
        # "token" is the backend that reads nothing from the environment; it is never
        # used: authentication happens in RegistryClient (see the module docstring).
        super().__init__(
            hostname=endpoint.registry,
            insecure=endpoint.scheme == "http",
            auth_backend="token",
        )
        self._owner = owner
        self.session.headers["User-Agent"] = USER_AGENT

    def do_request(
        self,
        url: str,
        method: str = "GET",
        data: Any = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        stream: bool = False,
    ) -> requests.Response:
        if data is not None or json is not None:
            raise RegistryError("layerleak only reads from registries")
        return self._owner.request(method, url, headers=headers, stream=stream)

    def login(self, *args: Any, **kwargs: Any) -> Any:
        raise RegistryError("layerleak never logs in through oras (it would write a config)")


class RegistryClient:
    """Reads manifests and blobs of one registry, with one credential."""

    def __init__(
        self,
        endpoint: Endpoint,
        credential: Credential,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = endpoint
        self.credential = credential
        self.policy = policy or RetryPolicy.for_timeout(endpoint.timeout)
        self._sleep = sleep
        self._oras = _OrasRegistry(self)
        self.session: requests.Session = self._oras.session
        self._lock = threading.Lock()
        self._basic = False  # the registry asked for Basic: send it up front from now on
        self._tokens: dict[str, str] = {}  # repository -> bearer token scoped to it
        self.token_scopes: list[tuple[str, ...]] = []  # scopes of each token fetched

    def __repr__(self) -> str:
        return f"RegistryClient({self.endpoint.base_url}, {self.credential})"

    def close(self) -> None:
        self.session.close()

    # --- public API -------------------------------------------------------------------

    def container(self, repository: str) -> Any:
        """An oras Container for ``repository`` on this registry.

        Built by attributes, not parsed: oras's parser takes a first component with a
        dot (``my.org/app``) for a registry host, and ``localhost`` for a namespace.
        """
        container = oras.container.Container("placeholder", registry=self.endpoint.registry)
        namespace, _, name = repository.rpartition("/")
        container.namespace = namespace or None
        container.repository = name
        container.tag = None
        container.digest = None
        return container

    def manifest_url(self, repository: str, reference: str) -> str:
        return f"{self.endpoint.scheme}://{self.container(repository).manifest_url(reference)}"

    def blob_url(self, repository: str, digest: str) -> str:
        return f"{self.endpoint.scheme}://{self.container(repository).get_blob_url(digest)}"

    def get_manifest(self, repository: str, reference: str) -> Document:
        """A manifest or index by tag or digest, with the Accept types of every image format."""
        what = f"manifest {reference}"
        url = self.manifest_url(repository, reference)

        def read(resp: requests.Response) -> Document:
            data = self._read_limited(resp, what, repository)
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            return Document(data, media_type, resp.headers.get("Docker-Content-Digest", ""))

        doc = self.request(
            "GET",
            url,
            headers={"Accept": MANIFEST_ACCEPT},
            stream=True,
            repository=repository,
            what=what,
            consume=read,
        )
        if doc.media_type in SCHEMA1_TYPES:
            raise ManifestError(
                f"{self._where(repository)}: {what} is a Docker schema 1 manifest, which "
                "layerleak does not read (push the image again with a current docker)"
            )
        actual = "sha256:" + hashlib.sha256(doc.data).hexdigest()
        expected = reference if reference.startswith("sha256:") else doc.digest
        if expected.startswith("sha256:") and expected != actual:
            raise ManifestError(
                f"{self._where(repository)}: {what}: digest mismatch: expected {expected}, "
                f"got {actual}"
            )
        return Document(doc.data, doc.media_type, actual)

    def get_blob_bytes(self, repository: str, digest: str, what: str) -> bytes:
        """A small blob (config, attestation) whole; MAX_DOCUMENT_BYTES at most."""

        def read(resp: requests.Response) -> bytes:
            return self._read_limited(resp, what, repository)

        return self.request(
            "GET",
            self.blob_url(repository, digest),
            stream=True,
            repository=repository,
            what=what,
            consume=read,
        )

    def open_blob(self, repository: str, digest: str, what: str | None = None) -> BinaryIO:
        """A stream over a blob's raw bytes, through oras's ``get_blob(stream=True)``."""
        what = what or f"blob {digest}"
        resp = self._oras.get_blob(self.container(repository), digest, stream=True)
        stream = BlobStream(resp, f"{self._where(repository)}: {what}")
        # Buffered so that read(n) returns n bytes unless at EOF (a raw read may be short).
        return io.BufferedReader(stream, READ_CHUNK)

    # --- requests with retries ----------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        repository: str | None = None,
        what: str | None = None,
        consume: Callable[[requests.Response], T] | None = None,
    ) -> Any:
        """One logical request: authenticated, retried within the policy, 2xx or an error.

        Without ``consume`` the (open, maybe streaming) response is returned; with it,
        ``consume(response)`` is, and a body that breaks off is retried too.
        """
        if repository is None or what is None:
            guessed_repo, guessed_what = _describe_url(url)
            repository = repository or guessed_repo
            what = what or guessed_what
        retrier = Retrier(self.policy, self._sleep)
        where = self._where(repository)
        while True:
            try:
                resp = self._authorized(method, url, dict(headers or {}), stream, repository)
            except requests.exceptions.SSLError as exc:
                raise RegistryError(
                    f"{where}: {what}: TLS failed ({describe_network_error(exc)}); for a "
                    "registry that speaks plain HTTP use --insecure, for a private CA set "
                    "REQUESTS_CA_BUNDLE"
                ) from None
            except _NETWORK_ERRORS as exc:
                reason = describe_network_error(exc)
                if retrier.wait():
                    continue
                raise RegistryError(f"{where}: {what}: {reason} ({retrier.stop_reason})") from None
            except requests.RequestException as exc:
                raise RegistryError(
                    f"{where}: {what}: request failed ({describe_network_error(exc)})"
                ) from None
            status = resp.status_code
            if status in RETRY_STATUSES:
                after = None
                if status in RETRY_AFTER_STATUSES:
                    after = retry_after_seconds(resp.headers.get("Retry-After"))
                reason = f"HTTP {status} {resp.reason or ''}".strip() + _codes(resp)
                _discard(resp)
                if retrier.wait(after):
                    continue
                raise RegistryError(f"{where}: {what}: {reason} ({retrier.stop_reason})")
            if not 200 <= status < 300:
                raise self._status_error(resp, repository, what)
            if consume is None:
                return resp
            try:
                return consume(resp)
            except _Transient as exc:
                if retrier.wait():
                    continue
                raise RegistryError(f"{where}: {what}: {exc} ({retrier.stop_reason})") from None
            finally:
                resp.close()

    def _session_request(
        self, method: str, url: str, headers: dict[str, str], stream: bool
    ) -> requests.Response:
        timeout = self.endpoint.timeout
        return self.session.request(
            method,
            url,
            headers=headers,
            stream=stream,
            timeout=(timeout, timeout),
            allow_redirects=True,
        )

    # --- authentication -------------------------------------------------------------------

    def _auth_header(self, repository: str) -> dict[str, str]:
        with self._lock:
            token = self._tokens.get(repository)
            basic = self._basic
        if token is not None:
            return {"Authorization": f"Bearer {token}"}
        cred = self.credential
        if basic and cred.password is not None:
            basic_value = requests.auth._basic_auth_str(cred.username or "", cred.password)
            return {"Authorization": basic_value}
        return {}

    def _authorized(
        self, method: str, url: str, headers: dict[str, str], stream: bool, repository: str
    ) -> requests.Response:
        """Send; on a 401 with a challenge we can answer, answer it and send once more."""
        sent = {**headers, **self._auth_header(repository)}
        resp = self._session_request(method, url, sent, stream)
        if resp.status_code != 401:
            return resp
        challenge = parse_challenge(resp.headers.get("WWW-Authenticate"))
        if challenge is None:
            return resp
        if challenge.scheme == "basic":
            if self.credential.password is None or sent.get("Authorization", "").startswith(
                "Basic "
            ):
                return resp  # anonymous, or the credential was refused: the caller explains
            with self._lock:
                self._basic = True
        elif challenge.scheme == "bearer" and challenge.params.get("realm"):
            _discard(resp)
            token = self._fetch_token(challenge, repository)
            with self._lock:
                self._tokens[repository] = token
        else:
            return resp
        _discard(resp)
        return self._session_request(
            method, url, {**headers, **self._auth_header(repository)}, stream
        )

    def _fetch_token(self, challenge: Challenge, repository: str) -> str:
        """A bearer token for the challenge's scope (this repository only)."""
        params = challenge.params
        realm = params["realm"]
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"{self._where(repository)}: bearer realm {realm!r} is not a URL")
        scopes = tuple(s for s in params.get("scope", "").split(" ") if s) or (
            f"repository:{repository}:pull",
        )
        service = params.get("service")
        cred = self.credential
        timeout = (self.endpoint.timeout, self.endpoint.timeout)
        realm_host = urlsplit(realm).netloc
        if cred.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": cred.identity_token,
                "client_id": CLIENT_ID,
                "scope": " ".join(scopes),
            }
            if service:
                form["service"] = service
            resp = self.session.post(realm, data=form, timeout=timeout)
        else:
            query: list[tuple[str, str]] = []
            if service:
                query.append(("service", service))
            if cred.username and cred.password is not None:
                query.append(("account", cred.username))
            query += [("scope", s) for s in scopes]
            auth = (cred.username or "", cred.password) if cred.password is not None else None
            resp = self.session.get(realm, params=query, auth=auth, timeout=timeout)
        try:
            if resp.status_code in (401, 403):
                raise AuthError(
                    f"{self._where(repository)}: the token server {realm_host} refused "
                    f"{self.credential} (HTTP {resp.status_code}). {self._login_hint()}"
                )
            if resp.status_code != 200:
                raise RegistryError(
                    f"{self._where(repository)}: the token server {realm_host} answered "
                    f"HTTP {resp.status_code}{_codes(resp, cred)}"
                )
            try:
                body = resp.json()
                token = body.get("token") or body.get("access_token")
            except (ValueError, AttributeError):
                token = None
            if not isinstance(token, str) or not token:
                raise RegistryError(
                    f"{self._where(repository)}: the token server {realm_host} sent no token"
                )
        finally:
            resp.close()
        with self._lock:
            self.token_scopes.append(scopes)
        return token

    # --- errors ---------------------------------------------------------------------------

    def _where(self, repository: str) -> str:
        return f"registry {self.endpoint.registry}, repository {repository}"

    def _login_hint(self) -> str:
        registry = self.endpoint.registry
        if registry == FLY_REGISTRY:
            return (
                "Run `fly auth docker` (it stores a registry.fly.io credential in the "
                "Docker config) or set FLY_API_TOKEN (a token from `fly tokens create "
                "deploy`, sent as it is)."
            )
        return f"Log in with `docker login {registry}`, or pass --username with --password-stdin."

    def _status_error(self, resp: requests.Response, repository: str, what: str) -> RegistryError:
        status = resp.status_code
        codes = _codes(resp, self.credential)
        _discard(resp)
        where = self._where(repository)
        cred = self.credential
        if status == 401:
            if cred.anonymous:
                detail = (
                    f"the registry wants credentials and none were found ({cred.source}); "
                    "the repository may also not exist"
                )
            else:
                challenge = parse_challenge(resp.headers.get("WWW-Authenticate"))
                scope_error = challenge is not None and (
                    challenge.params.get("error") == "insufficient_scope"
                )
                detail = (
                    f"{cred} has no pull access to this repository (or it does not exist)"
                    if scope_error
                    else f"the registry refused {cred}"
                )
            return AuthError(
                f"{where}: {what}: unauthorized (HTTP 401{codes}): {detail}. {self._login_hint()}"
            )
        if status == 403:
            return AuthError(
                f"{where}: {what}: access denied (HTTP 403{codes}) with {cred}: it has no "
                f"pull access to this repository. {self._login_hint()}"
            )
        if status == 404:
            hint = "check the registry, repository and tag"
            if "NAME_UNKNOWN" in codes:
                hint = f"no repository {repository!r} on {self.endpoint.registry}"
            elif "MANIFEST_UNKNOWN" in codes:
                hint = "no such tag or digest in this repository (or no such repository)"
            elif "BLOB_UNKNOWN" in codes:
                hint = "the registry lost a blob the manifest lists"
            if self.endpoint.registry == FLY_REGISTRY:
                hint += (
                    "; Fly.io images are registry.fly.io/<app>:deployment-<ULID> "
                    "(`fly releases --image` lists them)"
                )
            return RegistryError(f"{where}: {what}: not found (HTTP 404{codes}): {hint}")
        return RegistryError(f"{where}: {what}: HTTP {status} {resp.reason or ''}{codes}".strip())

    # --- bodies ---------------------------------------------------------------------------

    def _read_limited(self, resp: requests.Response, what: str, repository: str) -> bytes:
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in resp.iter_content(READ_CHUNK):
                total += len(chunk)
                if total > MAX_DOCUMENT_BYTES:
                    raise ManifestError(
                        f"{self._where(repository)}: {what} is larger than "
                        f"{MAX_DOCUMENT_BYTES} bytes"
                    )
                chunks.append(chunk)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Transient(describe_network_error(exc)) from None
        return b"".join(chunks)


class BlobStream(io.RawIOBase):
    """The raw bytes of a blob response; a broken connection is a RegistryError naming it.

    Bytes are not decoded (a ``Content-Encoding`` would change what the digest covers)
    and not buffered beyond what the reader asks for.
    """

    def __init__(self, resp: requests.Response, what: str) -> None:
        self._resp = resp
        self._what = what
        length = resp.headers.get("Content-Length", "")
        self._length = int(length) if length.isdigit() else None
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer)
        try:
            data = self._resp.raw.read(len(view), decode_content=False)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise RegistryError(
                f"{self._what}: the download broke off after {self.bytes_read} bytes"
                f"{self._of()} ({describe_network_error(exc)})"
            ) from None
        n = len(data)
        if n == 0 and len(view) > 0 and self._length is not None and self.bytes_read < self._length:
            raise RegistryError(
                f"{self._what}: the download broke off after {self.bytes_read} bytes{self._of()}"
            )
        view[:n] = data
        self.bytes_read += n
        return n

    def _of(self) -> str:
        return f" of {self._length}" if self._length is not None else ""

    def close(self) -> None:
        try:
            self._resp.close()
        finally:
            super().close()


def _describe_url(url: str) -> tuple[str, str]:
    """(repository, what) from a /v2/ URL, for requests made through oras's methods."""
    m = _PATH.search(urlsplit(url).path)
    if not m:
        return "?", urlsplit(url).path
    kind = "blob" if m.group("kind") == "blobs" else "manifest"
    return m.group("repo"), f"{kind} {m.group('ref')}"


def _codes(resp: requests.Response, credential: Credential | None = None) -> str:
    """``, NAME_UNKNOWN: repository name not known to registry`` from an error body."""
    try:
        body = next(resp.iter_content(MAX_ERROR_BODY), b"")
        data = json.loads(body)
    except (ValueError, requests.RequestException, urllib3.exceptions.HTTPError, OSError):
        return ""
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return ""
    parts = []
    for err in errors[:3]:
        if isinstance(err, dict) and err.get("code"):
            text = str(err["code"])
            if err.get("message"):
                text += f": {str(err['message'])[:200]}"
            parts.append(text)
    text = "; ".join(parts)
    if credential is not None:
        text = credential.scrub(text)
    return f", {text}" if text else ""


def _discard(resp: requests.Response) -> None:
    """Release a response we will not read (a small body is drained to keep the connection)."""
    try:
        length = resp.headers.get("Content-Length", "")
        if length.isdigit() and int(length) <= MAX_ERROR_BODY:
            resp.raw.read(MAX_ERROR_BODY)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, AttributeError):
        pass
    finally:
        resp.close()

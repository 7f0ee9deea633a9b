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
from urllib.parse import urljoin, urlsplit

import oras.container
import oras.provider
import requests
import urllib3.exceptions
import urllib3.response

from scanner.deadline import NO_DEADLINE, Deadline, DeadlineExceeded
from scanner.digests import check_digest, is_supported
from scanner.errors import AuthError, ManifestError, RegistryError, UsageError
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
MAX_TOKEN_BYTES = 1 << 20
ERROR_BODY_SECONDS = 2.0  # an error body still arriving after this is not waited for
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
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
    """How to reach a registry: ``registry`` is ``host[:port]`` as in the reference;
    ``timeout`` bounds each request, ``deadline`` the whole run (it travels with the
    layer openers into worker processes)."""

    registry: str
    scheme: str = "https"
    timeout: float = 30.0
    deadline: Deadline = NO_DEADLINE

    @classmethod
    def for_registry(
        cls,
        registry: str,
        *,
        insecure: bool,
        timeout: float,
        deadline: Deadline = NO_DEADLINE,
    ) -> Endpoint:
        """Plain HTTP with ``insecure``, and without asking for localhost and loopback
        addresses. registry.fly.io is never reached over plain HTTP: the Fly token
        would travel in clear."""
        if insecure and registry == FLY_REGISTRY:
            raise UsageError(
                f"--insecure does not apply to {FLY_REGISTRY}: it would send the Fly token "
                "over plain HTTP"
            )
        scheme = "http" if insecure or is_local_host(registry) else "https"
        return cls(registry, scheme, float(timeout), deadline)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.registry}"

    def same_origin(self, url: str) -> bool:
        """Whether ``url`` has this registry's scheme, host and port."""
        return origin_of(url) == origin_of(self.base_url)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port made explicit for http and https."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


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

    def get_manifest(self, repository: str, reference: str, size: int | None = None) -> Document:
        """A manifest or index by tag or digest, with the Accept types of every image format.

        ``size``: the descriptor's size; a longer body is refused as soon as the excess
        byte arrives."""
        what = f"manifest {reference}"
        url = self.manifest_url(repository, reference)

        def read(resp: requests.Response) -> Document:
            data = self._read_limited(resp, what, repository, size)
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
        expected = reference if ":" in reference else doc.digest
        if ":" not in reference and not is_supported(expected):
            expected = ""  # by tag, the header is only a hint: one we cannot check is ignored
        actual = "sha256:" + hashlib.sha256(doc.data).hexdigest()
        if expected:
            # sha256 or sha512, verified; any other algorithm is refused (UnsupportedDigest).
            check_digest(doc.data, expected, f"{self._where(repository)}: {what}")
            if ":" in reference:
                actual = reference
        return Document(doc.data, doc.media_type, actual)

    def get_blob_bytes(
        self, repository: str, digest: str, what: str, size: int | None = None
    ) -> bytes:
        """A small blob (config, attestation) whole; MAX_DOCUMENT_BYTES at most, and no
        more than the descriptor's ``size``."""

        def read(resp: requests.Response) -> bytes:
            return self._read_limited(resp, what, repository, size)

        return self.request(
            "GET",
            self.blob_url(repository, digest),
            stream=True,
            repository=repository,
            what=what,
            consume=read,
        )

    def open_blob(
        self,
        repository: str,
        digest: str,
        what: str | None = None,
        size: int | None = None,
    ) -> BinaryIO:
        """A stream over a blob's raw bytes, through oras's ``get_blob(stream=True)``.

        Reads end with a RegistryError naming the blob when the run's deadline passes,
        and as soon as the blob grows past its descriptor's ``size``."""
        what = what or f"blob {digest}"
        resp = self._oras.get_blob(self.container(repository), digest, stream=True)
        stream = BlobStream(
            resp, f"{self._where(repository)}: {what}", size, self.endpoint.deadline
        )
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
        stream = stream or consume is not None  # bodies are read as they arrive, bounded
        deadline = self.endpoint.deadline
        retrier = Retrier(self.policy, self._sleep, remaining=deadline.remaining)
        where = self._where(repository)
        if not self.endpoint.same_origin(url):
            raise RegistryError(
                f"{where}: {what}: refusing to follow the registry to another origin "
                f"({_origin_text(url)}); credentials for {self.endpoint.registry} are "
                "sent only to it and to its token service"
            )
        while True:
            deadline.check(f"{where}: {what}")
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
                reason = f"HTTP {status} {resp.reason or ''}".strip() + _codes(
                    resp, self.credential
                )
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
        """Send, following redirects ourselves: ``Authorization`` goes only to the
        registry's own origin, never to storage or another host a redirect names, and
        an https registry is never followed down to plain http."""
        for _ in range(MAX_REDIRECTS + 1):
            timeout = self.endpoint.deadline.clamp(self.endpoint.timeout)
            sent = headers if self.endpoint.same_origin(url) else _without_auth(headers)
            resp = self.session.request(
                method,
                url,
                headers=sent,
                stream=stream,
                timeout=(timeout, timeout),
                allow_redirects=False,
            )
            location = resp.headers.get("Location")
            if resp.status_code not in REDIRECT_STATUSES or not location:
                return resp
            target = urljoin(url, location)
            _discard(resp)
            if urlsplit(target).scheme not in ("http", "https"):
                raise RegistryError(f"{self.endpoint.registry}: a redirect to a non-HTTP URL")
            if self.endpoint.scheme == "https" and urlsplit(target).scheme != "https":
                raise RegistryError(
                    f"{self.endpoint.registry}: refusing a redirect from https to plain http "
                    f"({_origin_text(target)})"
                )
            url = target
        raise RegistryError(f"{self.endpoint.registry}: more than {MAX_REDIRECTS} redirects")

    # --- authentication -------------------------------------------------------------------

    def _auth_header(self, repository: str, url: str) -> dict[str, str]:
        if not self.endpoint.same_origin(url):
            return {}
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
        sent = {**headers, **self._auth_header(repository, url)}
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
            method, url, {**headers, **self._auth_header(repository, url)}, stream
        )

    def _fetch_token(self, challenge: Challenge, repository: str) -> str:
        """A bearer token for the challenge's scope (this repository only)."""
        params = challenge.params
        realm = params["realm"]
        realm_scheme = urlsplit(realm).scheme.lower()
        if realm_scheme not in ("http", "https") or not urlsplit(realm).hostname:
            raise RegistryError(
                f"{self._where(repository)}: bearer realm {_origin_text(realm)} is not a URL"
            )
        if realm_scheme == "http" and self.endpoint.scheme == "https":
            raise AuthError(
                f"{self._where(repository)}: the registry is reached over https but names a "
                f"token service on plain http ({_origin_text(realm)}); credentials are not "
                "sent in clear (plain http is accepted only for a registry itself reached "
                "over http: loopback or --insecure)"
            )
        self.endpoint.deadline.check(f"{self._where(repository)}: token request")
        scopes = tuple(s for s in params.get("scope", "").split(" ") if s) or (
            f"repository:{repository}:pull",
        )
        service = params.get("service")
        cred = self.credential
        clamped = self.endpoint.deadline.clamp(self.endpoint.timeout)
        timeout = (clamped, clamped)
        realm_host = urlsplit(realm).netloc.rpartition("@")[2]
        if cred.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": cred.identity_token,
                "client_id": CLIENT_ID,
                "scope": " ".join(scopes),
            }
            if service:
                form["service"] = service
            resp = self.session.post(
                realm, data=form, timeout=timeout, allow_redirects=False, stream=True
            )
        else:
            query: list[tuple[str, str]] = []
            if service:
                query.append(("service", service))
            if cred.username and cred.password is not None:
                query.append(("account", cred.username))
            query += [("scope", s) for s in scopes]
            auth = (cred.username or "", cred.password) if cred.password is not None else None
            resp = self.session.get(
                realm,
                params=query,
                auth=auth,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            )
        try:
            if resp.status_code in (401, 403):
                raise AuthError(
                    f"{self._where(repository)}: the token server {realm_host} refused "
                    f"{self.credential} (HTTP {resp.status_code}). {self._login_hint()}"
                )
            if resp.status_code in REDIRECT_STATUSES:
                raise RegistryError(
                    f"{self._where(repository)}: the token server {realm_host} answered with "
                    f"a redirect (HTTP {resp.status_code}); not followed with credentials"
                )
            if resp.status_code != 200:
                raise RegistryError(
                    f"{self._where(repository)}: the token server {realm_host} answered "
                    f"HTTP {resp.status_code}{_codes(resp, cred)}"
                )
            try:
                body = json.loads(self.read_body(resp, "token", repository, MAX_TOKEN_BYTES))
                token = body.get("token") or body.get("access_token")
            except (ValueError, AttributeError, _Transient):
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

    def read_body(self, resp: requests.Response, what: str, repository: str, limit: int) -> bytes:
        """A response body of at most ``limit`` bytes (RegistryError past it), read as
        it arrives and within the deadline; a broken body is retried by ``request``."""
        return self._read_limited(resp, what, repository, None, max(limit, 0))

    def _read_limited(
        self,
        resp: requests.Response,
        what: str,
        repository: str,
        size: int | None = None,
        cap: int = MAX_DOCUMENT_BYTES,
    ) -> bytes:
        """The whole body, up to ``cap`` bytes and the descriptor's ``size``.

        Read as it arrives (``read1``), so that the deadline is checked however slowly
        the server sends, and an oversized body is refused at its first excess byte."""
        limit = cap if size is None else min(size, cap)
        where = f"{self._where(repository)}: {what}"
        length = resp.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            raise ManifestError(_too_large(where, int(length), size, cap, "Content-Length says"))
        chunks: list[bytes] = []
        total = 0
        try:
            while True:
                self.endpoint.deadline.check(f"{where} (after {total} bytes)")
                chunk = _read1(resp.raw, min(READ_CHUNK, limit + 1 - total), decode=True)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    raise ManifestError(_too_large(where, total, size, cap, "received"))
                chunks.append(chunk)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Transient(describe_network_error(exc)) from None
        return b"".join(chunks)


class BlobStream(io.RawIOBase):
    """The raw bytes of a blob response; a broken connection is a RegistryError naming it.

    Bytes are not decoded (a ``Content-Encoding`` would change what the digest covers)
    and not buffered beyond what the reader asks for. Each read returns what has
    arrived (``read1``), so a server that sends one byte a second is still checked
    against the run's deadline; a blob that grows past its descriptor's ``size`` is
    refused at the first excess byte, and one whose ``Content-Length`` already says so
    before any byte is read. Every failure is sticky: later reads raise it again.
    """

    def __init__(
        self,
        resp: requests.Response,
        what: str,
        size: int | None = None,
        deadline: Deadline = NO_DEADLINE,
    ) -> None:
        self._resp = resp
        self._what = what
        self._size = size
        self._deadline = deadline
        length = resp.headers.get("Content-Length", "")
        self._length = int(length) if length.isdigit() else None
        self.bytes_read = 0
        self._failure: Exception | None = None
        if size is not None and self._length is not None and self._length > size:
            self._failure = RegistryError(
                f"{what}: the registry announces {self._length} bytes (Content-Length) but "
                f"the descriptor says {size}: refused unread (content longer than its "
                "descriptor must not be trusted)"
            )

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._failure is not None:
            raise self._failure
        view = memoryview(buffer)
        try:
            self._deadline.check(f"{self._what} (after {self.bytes_read} bytes{self._of()})")
        except DeadlineExceeded as exc:
            self._failure = exc
            raise
        want = len(view)
        if self._size is not None:
            want = min(want, self._size + 1 - self.bytes_read)  # one past: to see an excess
        try:
            data = _read1(self._resp.raw, max(want, 1), decode=False)
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
        if self._size is not None and self.bytes_read + n > self._size:
            self._failure = RegistryError(
                f"{self._what}: the registry sent more than the {self._size} bytes its "
                "descriptor says; stopped at the first excess byte (content longer than "
                "its descriptor must not be trusted)"
            )
            raise self._failure
        view[:n] = data
        self.bytes_read += n
        return n

    def _of(self) -> str:
        if self._length is not None:
            return f" of {self._length}"
        return f" of {self._size}" if self._size is not None else ""

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
        data = json.loads(_read_small(resp, MAX_ERROR_BODY))
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
    text = scrub_server_text("; ".join(parts), credential)
    return f", {text}" if text else ""


def _without_auth(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() != "authorization"}


def _origin_text(url: str) -> str:
    """``scheme://host:port`` of a URL for messages (no user info, path or query)."""
    scheme, host, port = origin_of(url)
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def _too_large(where: str, got: int, size: int | None, cap: int, how: str) -> str:
    if size is not None and got > size and size <= cap:
        return (
            f"{where}: {how} more than the {size} bytes its descriptor says; refused at the "
            "first excess byte (content longer than its descriptor must not be trusted)"
        )
    return f"{where} is larger than {cap} bytes"


_SERVER_SECRETS = re.compile(
    r"(?i)\b(basic|bearer|flyv1)(\s+)([A-Za-z0-9._~+/=,:-]{8,})"
    r"|\b(token|access_token|refresh_token|password)(\s*[=:]\s*\"?)([^\s\",;&]{4,})"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9._-]+"
)
_LOOKS_ENCODED = re.compile(r"[0-9+/=._~-]")


def scrub_server_text(text: str, credential: Credential | None = None) -> str:
    """Server text for an error message: base64 ``Basic`` values, bearer tokens, JWTs,
    Fly tokens and ``token=...`` values replaced, and the credential's own secrets.
    Plain words after ``Basic``/``Bearer`` ("basic authentication") are kept."""
    if credential is not None:
        text = credential.scrub(text)

    def hide(m: re.Match[str]) -> str:
        if m.group(1):
            if not _LOOKS_ENCODED.search(m.group(3)):
                return m.group(0)
            return f"{m.group(1)}{m.group(2)}<redacted>"
        if m.group(4):
            return f"{m.group(4)}{m.group(5)}<redacted>"
        return "<redacted>"

    return _SERVER_SECRETS.sub(hide, text)


def _read_small(resp: requests.Response, limit: int, seconds: float = ERROR_BODY_SECONDS) -> bytes:
    """Up to ``limit`` bytes of an error body, for ``seconds`` at most: a server that
    dribbles an error page cannot hold the run (each read returns what has arrived)."""
    if getattr(resp, "_content", False) is not False:  # already read (not streamed)
        return bytes(resp.content or b"")[:limit]
    chunks: list[bytes] = []
    total = 0
    stop = time.monotonic() + seconds
    while total < limit and time.monotonic() < stop:
        chunk = _read1(resp.raw, limit - total, decode=True)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _read1(raw: Any, size: int, *, decode: bool) -> bytes:
    """What has arrived, up to ``size`` bytes (one read of the socket at most)."""
    if isinstance(raw, urllib3.response.BaseHTTPResponse):
        return raw.read1(size, decode_content=decode)
    reader = getattr(raw, "read1", None) or raw.read
    return bytes(reader(size))


def _discard(resp: requests.Response) -> None:
    """Release a response we will not read (a small body is drained to keep the connection)."""
    try:
        length = resp.headers.get("Content-Length", "")
        if length.isdigit() and int(length) <= MAX_ERROR_BODY:
            _read_small(resp, MAX_ERROR_BODY)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, AttributeError):
        pass
    finally:
        resp.close()

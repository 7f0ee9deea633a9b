"""A real CNCF distribution registry (Debian's `docker-registry`, 2.8) for the tests.

`start_registry(mode, ...)` runs one on 127.0.0.1:<free port> with filesystem storage in a
host directory (`storage_dir`) and deletes enabled, in one of three modes:

* ``anonymous``: no auth;
* ``basic``: htpasswd (bcrypt) with an admin user and a reader user;
* ``token``: ``auth.token`` delegating to a `TokenServer` (RS256 JWTs, see token_server.py).

It runs either through testcontainers on a Docker engine (image `layerleak-test/registry:2.8`,
made once per engine by `docker import` of the host's binary, its libraries and a config;
host networking; config and storage bind-mounted) -> ``via == "testcontainers"``, or, when
no engine is available, as a plain subprocess with the same config -> ``via == "subprocess"``.

The `Registry` object pushes OCI layouts, blobs and manifests through the real distribution
API with `requests`, authenticating itself like a client would (Basic, or Bearer tokens from
the token server's realm) with the admin credentials.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import bcrypt
import requests

from tests.infra.token_server import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    READER_PASSWORD,
    READER_USER,
    TokenServer,
)

Mode = Literal["anonymous", "basic", "token"]
Via = Literal["testcontainers", "subprocess"]

ENV_REGISTRY_BIN = "LAYERLEAK_TEST_REGISTRY_BIN"
IMAGE_REPO = "layerleak-test/registry"
IMAGE_TAG = "2.8"
IMAGE = f"{IMAGE_REPO}:{IMAGE_TAG}"
IMAGE_LABEL = "org.layerleak.test.registry-binary-sha256"
CONTAINER_ETC = "/etc/layerleak-registry"
CONTAINER_STORAGE = "/var/lib/registry"
START_TIMEOUT = 30.0
INSTALL_HINT = "run scripts/system-deps.sh (installs Debian's docker-registry) as root"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])


class RegistryUnavailable(RuntimeError):
    """No registry can be run here; the message says why (for a skip)."""


class RegistryError(RuntimeError):
    """The registry answered something unexpected."""

    def __init__(self, what: str, response: requests.Response) -> None:
        super().__init__(
            f"{what}: HTTP {response.status_code} from {response.request.method} "
            f"{response.url}: {response.text[:500]}"
        )
        self.response = response


def find_registry_binary() -> str | None:
    explicit = os.environ.get(ENV_REGISTRY_BIN)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    if os.access("/usr/bin/docker-registry", os.X_OK):
        return "/usr/bin/docker-registry"
    return shutil.which("docker-registry") or shutil.which("registry")


def require_registry_binary() -> str:
    binary = find_registry_binary()
    if binary is None:
        raise RegistryUnavailable(f"docker-registry binary not found; {INSTALL_HINT}")
    return binary


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- the image ------------------------------------------------------------------------------

_IMAGES: dict[str, str] = {}
_IMAGE_LOCK = threading.Lock()


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _shared_libraries(binary: str) -> list[str]:
    """Absolute paths `ldd` lists for `binary` (libraries and the loader); [] if static."""
    try:
        out = subprocess.run(
            ["ldd", binary], check=False, capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    paths = []
    for line in out.splitlines():
        match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if match:
            paths.append(match.group(1))
    return paths


def _default_config() -> dict[str, Any]:
    return registry_config(addr="127.0.0.1:5000", storage=CONTAINER_STORAGE, auth=None)


def registry_rootfs(binary: str) -> bytes:
    """A tar of the smallest rootfs that runs `binary` as /usr/bin/docker-registry."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            tar.addfile(info)

        def add_bytes(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))

        def add_file(name: str, source: str) -> None:
            real = os.path.realpath(source)
            info = tar.gettarinfo(real, arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(real, "rb") as fh:
                tar.addfile(info, fh)

        seen_dirs: set[str] = set()

        def add_parents(name: str) -> None:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d and d not in seen_dirs:
                    seen_dirs.add(d)
                    add_dir(d)

        for d in ("tmp",):
            seen_dirs.add(d)
            add_dir(d, 0o1777)
        entries: list[tuple[str, str]] = [("usr/bin/docker-registry", binary)]
        entries += [(lib.lstrip("/"), lib) for lib in _shared_libraries(binary)]
        for name, source in entries:
            add_parents(name)
            add_file(name, source)
        for name in (CONTAINER_STORAGE.lstrip("/") + "/x", CONTAINER_ETC.lstrip("/") + "/x"):
            add_parents(name)
        config = json.dumps(_default_config(), indent=2).encode()
        add_parents("etc/docker/registry/config.yml")
        add_bytes("etc/docker/registry/config.yml", config)
        add_bytes("etc/passwd", b"root:x:0:0:root:/:/nonexistent\n")
        add_bytes("etc/group", b"root:x:0:\n")
    return buf.getvalue()


def ensure_registry_image(docker_host: str, binary: str) -> tuple[str, float]:
    """Make (once per engine and binary) the registry image; return (image id, seconds spent)."""
    import docker  # imported lazily: only the engine path needs it

    began = time.monotonic()
    with _IMAGE_LOCK:
        cached = _IMAGES.get(docker_host)
        if cached is not None:
            return cached, 0.0
        client = docker.DockerClient(base_url=docker_host, version="auto", timeout=120)
        try:
            digest = _file_sha256(binary)
            try:
                image = client.images.get(IMAGE)
                if (image.labels or {}).get(IMAGE_LABEL) == digest:
                    _IMAGES[docker_host] = image.id
                    return image.id, time.monotonic() - began
            except docker.errors.ImageNotFound:
                pass
            client.api.import_image_from_data(
                registry_rootfs(binary),
                repository=IMAGE_REPO,
                tag=IMAGE_TAG,
                changes=[
                    'ENTRYPOINT ["/usr/bin/docker-registry"]',
                    'CMD ["serve", "/etc/docker/registry/config.yml"]',
                    f"LABEL {IMAGE_LABEL}={digest}",
                ],
            )
            image = client.images.get(IMAGE)
            _IMAGES[docker_host] = image.id
            return image.id, time.monotonic() - began
        finally:
            client.close()


# --- configuration ----------------------------------------------------------------------


def registry_config(*, addr: str, storage: str, auth: dict[str, Any] | None) -> dict[str, Any]:
    """A distribution 2.8 config (JSON is valid YAML)."""
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": storage},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": addr, "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }
    if auth:
        config["auth"] = auth
    return config


def write_htpasswd(path: Path, users: Mapping[str, str]) -> Path:
    lines = [
        f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
        for user, pw in users.items()
    ]
    path.write_text("".join(lines))
    return path


# --- a client that authenticates like docker does ----------------------------------------


_REPO_IN_PATH = re.compile(r"^/v2/(.+?)/(?:blobs|manifests|tags)/")


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


class RegistryClient:
    """`requests` against one registry, answering Basic and Bearer challenges itself.

    Bearer tokens are fetched for the scopes the registry's challenge names and cached per
    repository (a later challenge for more actions fetches a new one); `token_requests`
    counts the tokens fetched."""

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        timeout: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self.session = requests.Session()
        self.token_requests = 0
        self._basic = False
        self._tokens: dict[str, str] = {}

    def close(self) -> None:
        self.session.close()

    def _creds(self) -> tuple[str, str] | None:
        if self.username is None or self.password is None:
            return None
        return (self.username, self.password)

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        url = urljoin(self.base_url + "/", path_or_url)
        match = _REPO_IN_PATH.match(urlsplit(url).path)
        key = match.group(1) if match else "*"
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("allow_redirects", False)
        headers = dict(kwargs.pop("headers", None) or {})
        resp = self.session.request(method, url, headers=self._auth(headers, key), **kwargs)
        if resp.status_code != 401:
            return resp
        scheme, params = _parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if scheme == "basic" and self._creds() is not None and not self._basic:
            self._basic = True
        elif scheme == "bearer" and "realm" in params:
            self._tokens[key] = self.fetch_token(
                params["realm"], params.get("service"), params.get("scope", "").split()
            )
        else:
            return resp
        return self.session.request(method, url, headers=self._auth(headers, key), **kwargs)

    def _auth(self, headers: dict[str, str], key: str) -> dict[str, str]:
        if "Authorization" in headers:
            return headers
        token = self._tokens.get(key)
        if token is not None:
            return {**headers, "Authorization": f"Bearer {token}"}
        creds = self._creds()
        if self._basic and creds is not None:
            basic = requests.auth._basic_auth_str(*creds)
            return {**headers, "Authorization": basic}
        return headers

    def fetch_token(self, realm: str, service: str | None, scopes: list[str]) -> str:
        params: list[tuple[str, str]] = []
        if service:
            params.append(("service", service))
        params += [("scope", s) for s in scopes]
        resp = self.session.get(realm, params=params, auth=self._creds(), timeout=self.timeout)
        if resp.status_code != 200:
            raise RegistryError("token request failed", resp)
        body = resp.json()
        self.token_requests += 1
        return str(body.get("token") or body["access_token"])

    # --- distribution API ------------------------------------------------------------

    def blob_exists(self, repo: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        return resp.status_code == 200

    def push_blob(
        self,
        repo: str,
        data: bytes,
        *,
        chunk_size: int | None = None,
        mount_from: str | None = None,
    ) -> str:
        """Upload `data` (monolithic POST+PUT, or chunked PATCHes when `chunk_size` is set);
        skip it when already there; try a cross-repository mount first with `mount_from`."""
        digest = sha256_digest(data)
        if self.blob_exists(repo, digest):
            return digest
        if mount_from is not None:
            resp = self.request(
                "POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={mount_from}"
            )
            if resp.status_code == 201:
                return digest
        else:
            resp = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        if resp.status_code != 202:
            raise RegistryError(f"starting the upload of {digest} to {repo}", resp)
        location = resp.headers["Location"]
        if chunk_size:
            for start in range(0, len(data), chunk_size):
                chunk = data[start : start + chunk_size]
                resp = self.request(
                    "PATCH",
                    location,
                    data=chunk,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{start}-{start + len(chunk) - 1}",
                    },
                )
                if resp.status_code != 202:
                    raise RegistryError(f"uploading a chunk of {digest}", resp)
                location = resp.headers["Location"]
            body = b""
        else:
            body = data
        sep = "&" if "?" in location else "?"
        resp = self.request(
            "PUT",
            f"{location}{sep}digest={digest}",
            data=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        if resp.status_code != 201:
            raise RegistryError(f"completing the upload of {digest} to {repo}", resp)
        return digest

    def put_manifest(
        self,
        repo: str,
        reference: str,
        manifest: bytes | Mapping[str, Any],
        media_type: str | None = None,
    ) -> str:
        """PUT a manifest or index (bytes are sent as they are); return its digest."""
        if isinstance(manifest, bytes):
            body = manifest
            parsed = json.loads(body)
        else:
            parsed = dict(manifest)
            body = json.dumps(parsed, separators=(",", ":")).encode()
        media_type = media_type or parsed.get("mediaType") or _guess_media_type(parsed)
        resp = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            data=body,
            headers={"Content-Type": media_type},
        )
        if resp.status_code != 201:
            raise RegistryError(f"putting manifest {repo}:{reference}", resp)
        return resp.headers.get("Docker-Content-Digest") or sha256_digest(body)

    def get_manifest(
        self, repo: str, reference: str, accept: str = MANIFEST_ACCEPT
    ) -> requests.Response:
        return self.request("GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept})

    def get_blob(self, repo: str, digest: str) -> requests.Response:
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", allow_redirects=True)

    def push_oci_layout(
        self, layout_dir: Path, repo: str, tag: str, *, chunk_size: int | None = None
    ) -> str:
        """Push an OCI image layout: the image (manifest or index) `index.json` names (the one
        annotated with ref.name == `tag` when it names several; else index.json itself as an
        index), children before parents, every blob the layout has. Return the tag's digest."""
        layout = Path(layout_dir)
        index = json.loads((layout / "index.json").read_text())
        entries = index.get("manifests", [])
        chosen = [
            d
            for d in entries
            if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
        ]
        if len(chosen) == 1 or len(entries) == 1:
            top = chosen[0] if len(chosen) == 1 else entries[0]
            body = _read_blob(layout, top["digest"])
            return self._push_manifest_tree(
                layout, repo, body, top.get("mediaType"), tag, chunk_size
            )
        for child in entries:
            self._push_manifest_tree(
                layout,
                repo,
                _read_blob(layout, child["digest"]),
                child.get("mediaType"),
                child["digest"],
                chunk_size,
            )
        as_index = {k: v for k, v in index.items() if k != "annotations"}
        as_index.setdefault("mediaType", OCI_INDEX)
        return self.put_manifest(repo, tag, as_index, OCI_INDEX)

    def _push_manifest_tree(
        self,
        layout: Path,
        repo: str,
        body: bytes,
        media_type: str | None,
        reference: str,
        chunk_size: int | None,
    ) -> str:
        parsed = json.loads(body)
        media_type = media_type or parsed.get("mediaType") or _guess_media_type(parsed)
        if media_type in INDEX_TYPES:
            for child in parsed.get("manifests", []):
                child_body = _maybe_read_blob(layout, child["digest"])
                if child_body is None:
                    continue  # not in the layout (e.g. a platform left out): the registry decides
                self._push_manifest_tree(
                    layout,
                    repo,
                    child_body,
                    child.get("mediaType"),
                    child["digest"],
                    chunk_size,
                )
        else:
            descriptors = [parsed.get("config"), *parsed.get("layers", [])]
            for desc in descriptors:
                if not desc:
                    continue
                data = _maybe_read_blob(layout, desc["digest"])
                if data is not None:
                    self.push_blob(repo, data, chunk_size=chunk_size)
        return self.put_manifest(repo, reference, body, media_type)


def _guess_media_type(parsed: Mapping[str, Any]) -> str:
    return OCI_INDEX if "manifests" in parsed else OCI_MANIFEST


def _blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, hexpart = digest.partition(":")
    return layout / "blobs" / algorithm / hexpart


def _read_blob(layout: Path, digest: str) -> bytes:
    return _blob_path(layout, digest).read_bytes()


def _maybe_read_blob(layout: Path, digest: str) -> bytes | None:
    path = _blob_path(layout, digest)
    return path.read_bytes() if path.is_file() else None


# --- a running registry ------------------------------------------------------------------


@dataclass
class Registry:
    """A running registry. `url` is "127.0.0.1:PORT" (a reference prefix: f"{url}/app:1")."""

    mode: Mode
    host: str
    port: int
    storage_dir: Path
    via: Via
    via_reason: str  # why this `via`: e.g. why no engine was used
    work_dir: Path
    username: str | None = None  # admin (pull, push, delete everywhere) in basic/token modes
    password: str | None = None
    users: dict[str, str] = field(default_factory=dict)  # every user: admin and `reader`
    reader_username: str | None = None  # basic: pull and push; token: pull on app/* only
    reader_password: str | None = None
    token_server: TokenServer | None = None
    docker_host: str | None = None
    container: Any = field(default=None, repr=False)  # testcontainers DockerContainer
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None
    start_seconds: float = 0.0
    _admin: RegistryClient | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.url}"

    @property
    def service(self) -> str | None:
        return self.token_server.service if self.token_server else None

    @property
    def realm(self) -> str | None:
        return self.token_server.realm if self.token_server else None

    # --- clients and pushing -------------------------------------------------------

    def client(self, username: str | None = None, password: str | None = None) -> RegistryClient:
        """A new client authenticating as `username` (None: anonymous)."""
        if username is not None and password is None:
            password = self.users[username]
        return RegistryClient(self.base_url, username, password)

    @property
    def admin(self) -> RegistryClient:
        """The shared client with the admin credentials (anonymous in anonymous mode)."""
        if self._admin is None:
            self._admin = self.client(self.username, self.password)
        return self._admin

    def push_blob(self, repo: str, data: bytes, *, chunk_size: int | None = None) -> str:
        return self.admin.push_blob(repo, data, chunk_size=chunk_size)

    def put_manifest(
        self,
        repo: str,
        reference: str,
        manifest: bytes | Mapping[str, Any],
        media_type: str | None = None,
    ) -> str:
        return self.admin.put_manifest(repo, reference, manifest, media_type)

    def push_oci_layout(
        self, layout_dir: Path, repo: str, tag: str, *, chunk_size: int | None = None
    ) -> str:
        return self.admin.push_oci_layout(layout_dir, repo, tag, chunk_size=chunk_size)

    def get_manifest(
        self, repo: str, reference: str, accept: str = MANIFEST_ACCEPT
    ) -> requests.Response:
        return self.admin.get_manifest(repo, reference, accept)

    # --- storage -------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hexpart = digest.partition(":")
        return (
            self.storage_dir
            / "docker/registry/v2/blobs"
            / algorithm
            / hexpart[:2]
            / hexpart
            / "data"
        )

    def corrupt_blob(self, digest: str, data: bytes | None = None) -> Path:
        """Overwrite a stored blob: with `data`, or (default) the same bytes with the first
        one flipped, so sizes still match and only a digest check notices."""
        path = self.blob_path(digest)
        if data is None:
            original = bytearray(path.read_bytes())
            if original:
                original[0] ^= 0xFF
            data = bytes(original)
        path.write_bytes(data)
        return path

    # --- lifecycle -----------------------------------------------------------------

    def logs(self) -> str:
        if self.container is not None:
            with contextlib.suppress(Exception):
                out, err = self.container.get_logs()
                return (out + err).decode(errors="replace")
        if self.log_path is not None and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return ""

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self.container is not None:
            container, self.container = self.container, None
            with contextlib.suppress(Exception):
                container.stop()
        if self.process is not None:
            proc, self.process = self.process, None
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        if self.token_server is not None:
            self.token_server.stop()


def start_registry(
    mode: Mode,
    work_dir: Path,
    *,
    docker_host: str | None,
    via_reason: str = "",
    token_server: TokenServer | None = None,
    timeout: float = START_TIMEOUT,
) -> Registry:
    """Start a registry in `mode` with its files under `work_dir`: in a container on the
    engine at `docker_host` when given (testcontainers), else as a subprocess."""
    binary = require_registry_binary()
    began = time.monotonic()
    etc = work_dir / "etc"
    storage = work_dir / "storage"
    etc.mkdir(parents=True, exist_ok=True)
    storage.mkdir(parents=True, exist_ok=True)
    in_container = docker_host is not None
    etc_seen = CONTAINER_ETC if in_container else str(etc)
    storage_seen = CONTAINER_STORAGE if in_container else str(storage)

    users: dict[str, str] = {}
    auth: dict[str, Any] | None = None
    if mode == "basic":
        users = {ADMIN_USER: ADMIN_PASSWORD, READER_USER: READER_PASSWORD}
        write_htpasswd(etc / "htpasswd", users)
        auth = {"htpasswd": {"realm": "layerleak-test", "path": f"{etc_seen}/htpasswd"}}
    elif mode == "token":
        if token_server is None:
            token_server = TokenServer()
        token_server.start()
        users = dict(token_server.users)
        token_server.write_cert(etc / "token-cert.pem")
        auth = {
            "token": {
                "realm": token_server.realm,
                "service": token_server.service,
                "issuer": token_server.issuer,
                "rootcertbundle": f"{etc_seen}/token-cert.pem",
            }
        }
    elif mode != "anonymous":
        raise ValueError(f"unknown registry mode {mode!r}")

    image_seconds = 0.0
    if in_container:
        assert docker_host is not None
        _, image_seconds = ensure_registry_image(docker_host, binary)

    last_error = ""
    for _attempt in range(3):
        port = free_port()
        config = registry_config(addr=f"127.0.0.1:{port}", storage=storage_seen, auth=auth)
        (etc / "config.yml").write_text(json.dumps(config, indent=2))
        registry = Registry(
            mode=mode,
            host="127.0.0.1",
            port=port,
            storage_dir=storage,
            via="testcontainers" if in_container else "subprocess",
            via_reason=via_reason,
            work_dir=work_dir,
            username=ADMIN_USER if mode != "anonymous" else None,
            password=ADMIN_PASSWORD if mode != "anonymous" else None,
            users=users,
            reader_username=READER_USER if mode != "anonymous" else None,
            reader_password=READER_PASSWORD if mode != "anonymous" else None,
            token_server=token_server,
            docker_host=docker_host,
            log_path=work_dir / "registry.log",
        )
        if in_container:
            assert docker_host is not None
            _run_container(registry, docker_host, etc, storage)
        else:
            _run_subprocess(registry, binary, etc / "config.yml")
        error = _wait_ready(registry, timeout)
        if error is None:
            registry.start_seconds = time.monotonic() - began - image_seconds
            atexit.register(registry.stop)  # in case the session is not closed cleanly
            return registry
        last_error = error
        logs = registry.logs()
        registry.token_server = None  # keep it for the next attempt
        registry.stop()
        if "address already in use" not in logs:
            break
    if token_server is not None:
        token_server.stop()
    raise RuntimeError(f"the {mode} registry did not start: {last_error}")


def _run_container(registry: Registry, docker_host: str, etc: Path, storage: Path) -> None:
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer

    # No reaper: it is an image from Docker Hub, which cannot be pulled here; the plugin
    # removes what it started.
    testcontainers_config.ryuk_disabled = True
    container = (
        DockerContainer(IMAGE, docker_client_kw={"environment": {"DOCKER_HOST": docker_host}})
        .with_command(["serve", f"{CONTAINER_ETC}/config.yml"])
        .with_volume_mapping(str(etc), CONTAINER_ETC, "ro")
        .with_volume_mapping(str(storage), CONTAINER_STORAGE, "rw")
        .with_name(f"layerleak-registry-{registry.mode}-{registry.port}")
        # host networking: the registry listens on the host's 127.0.0.1:<port> itself.
        # `network=None` stops testcontainers from guessing a network to join when
        # DOCKER_HOST is not set in the environment (it conflicts with network_mode).
        .with_kwargs(
            network_mode="host",
            network=None,
            user=f"{os.getuid()}:{os.getgid()}",
            labels={"org.layerleak.test": "registry"},
        )
    )
    container.start()
    registry.container = container


def _run_subprocess(registry: Registry, binary: str, config: Path) -> None:
    assert registry.log_path is not None
    with open(registry.log_path, "ab") as log:
        registry.process = subprocess.Popen(
            [binary, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_ready(registry: Registry, timeout: float) -> str | None:
    """None once GET /v2/ answers 200 or 401, else why not."""
    deadline = time.monotonic() + timeout
    url = registry.base_url + "/v2/"
    while time.monotonic() < deadline:
        try:
            status = requests.get(url, timeout=1).status_code
            if status in (200, 401):
                return None
        except requests.RequestException:
            pass
        if registry.process is not None and registry.process.poll() is not None:
            return f"exited with {registry.process.returncode}:\n{_tail(registry.logs())}"
        if registry.container is not None:
            wrapped = registry.container.get_wrapped_container()
            wrapped.reload()
            if wrapped.status in ("exited", "dead"):
                return f"container {wrapped.status}:\n{_tail(registry.logs())}"
        time.sleep(0.05)
    return f"GET {url} gave no 200/401 in {timeout:.0f}s:\n{_tail(registry.logs())}"


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:])

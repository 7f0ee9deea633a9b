"""The test infrastructure itself: engine, registries in three auth modes, pushing, faults."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.infra import dockerd
from tests.infra.dockerd import ENV_DOCKER_HOST, EngineUnavailable, acquire_engine, ping
from tests.infra.fault_proxy import FaultProxy
from tests.infra.plugin import FaultProxyFactory, unique_repo
from tests.infra.registry import (
    OCI_INDEX,
    OCI_MANIFEST,
    Registry,
    RegistryClient,
    find_registry_binary,
    sha256_digest,
    start_registry,
)
from tests.infra.token_server import Scope, TokenServer

OCI_ACCEPT = f"{OCI_MANIFEST}, {OCI_INDEX}"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


# --- a tiny OCI layout, built here on purpose (no dependency on the fixture builders) ---------


def _write_blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = sha256_digest(data)
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def make_oci_layout(root: Path, files: dict[str, bytes], *, with_index: bool = False) -> Path:
    """A single-layer image in an OCI layout; `with_index` wraps it in an image index."""
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    layer_tar = tar_buf.getvalue()
    layer = gzip.compress(layer_tar, mtime=0)
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    layer_desc = {"mediaType": OCI_LAYER_GZIP, **_write_blob(root, layer)}
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer_tar)]},
        "history": [{"created_by": "COPY files / # test"}],
    }
    config_desc = {"mediaType": OCI_CONFIG, **_write_blob(root, _json_bytes(config))}
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": [layer_desc],
    }
    top = {"mediaType": OCI_MANIFEST, **_write_blob(root, _json_bytes(manifest))}
    if with_index:
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{**top, "platform": {"architecture": "amd64", "os": "linux"}}],
        }
        top = {"mediaType": OCI_INDEX, **_write_blob(root, _json_bytes(index))}
    top["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    (root / "index.json").write_bytes(
        _json_bytes({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [top]})
    )
    return root


def _layout_top(layout: Path) -> dict[str, Any]:
    return dict(json.loads((layout / "index.json").read_text())["manifests"][0])


def _layer_digest(layout: Path, manifest_digest: str) -> str:
    blob = layout / "blobs" / "sha256" / manifest_digest.split(":", 1)[1]
    return str(json.loads(blob.read_bytes())["layers"][0]["digest"])


REGISTRY_FIXTURES = ["registry_anonymous", "registry_basic", "registry_token"]


# --- the engine --------------------------------------------------------------------------------


@pytest.mark.engine
def test_engine_answers_ping(docker_engine: str) -> None:
    import docker

    assert ping(docker_engine)
    client = docker.DockerClient(base_url=docker_engine, version="auto")
    try:
        assert client.ping() is True
        assert client.version()["ApiVersion"]
    finally:
        client.close()


@pytest.mark.engine
def test_registries_run_through_testcontainers(
    docker_engine: str, registry_anonymous: Registry
) -> None:
    import docker

    assert registry_anonymous.via == "testcontainers"
    assert registry_anonymous.docker_host == docker_engine
    client = docker.DockerClient(base_url=docker_engine, version="auto")
    try:
        running = client.containers.list(filters={"label": "org.layerleak.test=registry"})
        assert registry_anonymous.container is not None
        wrapped_id = registry_anonymous.container.get_wrapped_container().id
        (container,) = [c for c in running if c.id == wrapped_id]
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    finally:
        client.close()


def test_unreachable_external_engine_is_a_reason_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_DOCKER_HOST, f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(EngineUnavailable, match="does not answer"):
        acquire_engine()


def test_non_root_gets_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DOCKER_HOST, raising=False)
    monkeypatch.setattr(dockerd.os, "geteuid", lambda: 1000)
    with pytest.raises(EngineUnavailable, match="needs root"):
        dockerd.start_dockerd()


# --- the three auth modes --------------------------------------------------------------------


def test_anonymous_registry_answers_v2(registry_anonymous: Registry) -> None:
    resp = requests.get(f"{registry_anonymous.base_url}/v2/", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert registry_anonymous.url == f"127.0.0.1:{registry_anonymous.port}"
    assert registry_anonymous.mode == "anonymous"
    assert registry_anonymous.username is None


def test_basic_registry_wants_credentials(registry_basic: Registry) -> None:
    url = f"{registry_basic.base_url}/v2/"
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    assert registry_basic.username and registry_basic.password
    creds = (registry_basic.username, registry_basic.password)
    assert requests.get(url, auth=creds, timeout=10).status_code == 200
    assert requests.get(url, auth=(creds[0], "wrong"), timeout=10).status_code == 401


def _bearer_get(registry: Registry, path: str, token: str) -> requests.Response:
    return requests.get(
        registry.base_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def test_token_registry_challenge_and_scoped_tokens(registry_token: Registry) -> None:
    server = registry_token.token_server
    assert server is not None
    resp = requests.get(f"{registry_token.base_url}/v2/", timeout=10)
    assert resp.status_code == 401
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'realm="{server.realm}"' in challenge
    assert f'service="{server.service}"' in challenge

    repo_a, repo_b = unique_repo("app"), unique_repo("app")
    digest = registry_token.push_blob(repo_a, b"only in A")
    tags = requests.get(f"{registry_token.base_url}/v2/{repo_a}/tags/list", timeout=10)
    assert tags.status_code == 401
    assert f'scope="repository:{repo_a}:pull"' in tags.headers["WWW-Authenticate"]

    token_resp = requests.get(
        server.realm,
        params={"service": server.service, "scope": f"repository:{repo_a}:pull"},
        auth=(registry_token.username or "", registry_token.password or ""),
        timeout=10,
    )
    assert token_resp.status_code == 200
    body = token_resp.json()
    assert body["token"] == body["access_token"] and body["expires_in"] == 300
    assert body["issued_at"].endswith("Z")
    token = body["token"]
    assert _bearer_get(registry_token, f"/v2/{repo_a}/blobs/{digest}", token).content == (
        b"only in A"
    )
    # A token for repository A grants nothing on B.
    assert _bearer_get(registry_token, f"/v2/{repo_b}/blobs/{digest}", token).status_code == 401


@pytest.mark.parametrize("key_id_mode", ["kid", "x5c"])
def test_token_key_id_modes_both_verify(registry_token: Registry, key_id_mode: str) -> None:
    server = registry_token.token_server
    assert server is not None
    repo = unique_repo("app")
    digest = registry_token.push_blob(repo, b"kid or x5c")
    signer = TokenServer(users=server.users, grants=server.grants, key_id_mode="kid")
    # Same key and certificate as the registry trusts; only the JWT header differs.
    signer.key, signer.cert, signer.key_id = server.key, server.cert, server.key_id
    signer.key_id_mode = "x5c" if key_id_mode == "x5c" else "kid"
    token = signer.issue("alice", [f"repository:{repo}:pull"])
    assert _bearer_get(registry_token, f"/v2/{repo}/blobs/{digest}", token).status_code == 200
    # A token signed by another key is refused.
    stranger = TokenServer(users=server.users, grants=server.grants, key_id_mode="x5c")
    bad = stranger.issue("alice", [f"repository:{repo}:pull"])
    assert _bearer_get(registry_token, f"/v2/{repo}/blobs/{digest}", bad).status_code == 401


def test_token_server_policy(registry_token: Registry) -> None:
    server = registry_token.token_server
    assert server is not None and registry_token.reader_username
    public_repo, other_repo = unique_repo("app"), unique_repo("private")
    registry_token.push_blob(public_repo, b"readable")
    registry_token.push_blob(other_repo, b"not for reader")
    digest = sha256_digest(b"readable")

    reader = registry_token.client(registry_token.reader_username)
    assert reader.get_blob(public_repo, digest).content == b"readable"
    assert reader.get_blob(other_repo, sha256_digest(b"not for reader")).status_code == 401
    upload = reader.request("POST", f"/v2/{public_repo}/blobs/uploads/")
    assert upload.status_code == 401  # pull only

    anonymous = registry_token.client()
    assert anonymous.get_blob(public_repo, digest).status_code == 401
    bad = requests.get(
        server.realm,
        params={"service": server.service, "scope": f"repository:{public_repo}:pull"},
        auth=("alice", "not-the-password"),
        timeout=10,
    )
    assert bad.status_code == 401
    anon = requests.get(
        server.realm,
        params={"service": server.service, "scope": f"repository:{public_repo}:pull"},
        timeout=10,
    )
    assert anon.status_code == 200
    assert server.requests[-1].user is None and server.requests[-1].access == ()


def _normal_scope(scope: str) -> tuple[str, tuple[str, ...]]:
    parsed = Scope.parse(scope)
    assert parsed.type == "repository"
    return parsed.name, tuple(sorted(parsed.actions))


def test_token_requests_are_recorded_per_repository(registry_token: Registry) -> None:
    server = registry_token.token_server
    assert server is not None
    repos = [unique_repo("app"), unique_repo("app")]
    client = registry_token.client("alice")
    before = len(server.requests)
    for repo in repos:
        for payload in (b"one", b"two", b"three"):
            client.push_blob(repo, payload + repo.encode())
    new = server.requests[before:]
    # One pull token (HEAD), then one pull+push token (POST) per repository, reused after.
    # (The registry lists the actions of a challenge in no fixed order.)
    asked = [tuple(_normal_scope(s) for s in r.scopes) for r in new]
    assert asked == [
        scope for repo in repos for scope in (((repo, ("pull",)),), ((repo, ("pull", "push")),))
    ]
    assert all(r.user == "alice" and r.status == 200 for r in new)
    assert client.token_requests == 4


# --- pushing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", REGISTRY_FIXTURES)
@pytest.mark.parametrize("with_index", [False, True], ids=["manifest", "index"])
def test_push_oci_layout_and_read_it_back(
    request: pytest.FixtureRequest, fixture: str, with_index: bool, tmp_path: Path
) -> None:
    registry: Registry = request.getfixturevalue(fixture)
    layout = make_oci_layout(
        tmp_path / "layout",
        {"app/.env": b"TOKEN=abc\n", "etc/motd": b"hi\n"},
        with_index=with_index,
    )
    repo = unique_repo("app")
    top = _layout_top(layout)
    digest = registry.push_oci_layout(layout, repo, "v1", chunk_size=7 if with_index else None)
    assert digest == top["digest"]

    client = registry.admin
    resp = client.get_manifest(repo, "v1", accept=OCI_ACCEPT)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == top["mediaType"]
    assert resp.headers["Docker-Content-Digest"] == digest
    assert sha256_digest(resp.content) == digest
    manifest_digest = resp.json()["manifests"][0]["digest"] if with_index else digest
    layer = _layer_digest(layout, manifest_digest)
    blob = client.get_blob(repo, layer)
    assert blob.status_code == 200
    assert sha256_digest(blob.content) == layer
    if registry.mode != "anonymous":
        unauthenticated = requests.get(
            f"{registry.base_url}/v2/{repo}/manifests/v1",
            headers={"Accept": OCI_ACCEPT},
            timeout=10,
        )
        assert unauthenticated.status_code == 401


def test_corrupt_blob_in_storage(registry_anonymous: Registry, tmp_path: Path) -> None:
    repo = unique_repo("corrupt")
    data = b"pristine blob contents"
    digest = registry_anonymous.push_blob(repo, data)
    path = registry_anonymous.corrupt_blob(digest)
    assert path.is_relative_to(registry_anonymous.storage_dir)
    served = registry_anonymous.admin.get_blob(repo, digest)
    assert served.status_code == 200
    assert len(served.content) == len(data) and served.content != data
    assert hashlib.sha256(served.content).hexdigest() != digest.split(":", 1)[1]


def test_subprocess_registry(tmp_path: Path) -> None:
    if find_registry_binary() is None:
        pytest.skip("docker-registry binary not found; run scripts/system-deps.sh")
    registry = start_registry("basic", tmp_path / "reg", docker_host=None, via_reason="test")
    try:
        assert registry.via == "subprocess"
        assert requests.get(f"{registry.base_url}/v2/", timeout=10).status_code == 401
        digest = registry.push_blob("sub/repo", b"via subprocess")
        assert registry.blob_path(digest).read_bytes() == b"via subprocess"
    finally:
        registry.stop()
    assert registry.process is None


# --- the fault proxy ---------------------------------------------------------------------------


def test_fault_proxy_429_then_passes_through(
    registry_anonymous: Registry, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy = fault_proxy_factory(registry_anonymous)
    rule = proxy.fail(r"^/v2/$", status=429, times=1, retry_after=2)
    first = requests.get(f"{proxy.base_url}/v2/", timeout=10)
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "2"
    assert first.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    second = requests.get(f"{proxy.base_url}/v2/", timeout=10)
    assert second.status_code == 200
    assert second.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert (rule.hits, rule.seen) == (1, 2)
    assert proxy.count(r"^/v2/$") == 2


def test_fault_proxy_faults_and_uploads(
    registry_token: Registry, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy: FaultProxy = fault_proxy_factory(registry_token)
    client = RegistryClient(proxy.base_url, registry_token.username, registry_token.password)
    repo = unique_repo("app")
    data = bytes(range(256)) * 40
    # Uploads through the proxy: Location headers come back pointing at the proxy.
    digest = client.push_blob(repo, data, chunk_size=4000)
    assert proxy.count(r"/blobs/uploads/", "PATCH") == 3
    # The Bearer challenge comes through untouched.
    challenge = requests.get(f"{proxy.base_url}/v2/", timeout=10).headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer realm=")

    blob_path = rf"/v2/{repo}/blobs/{digest}"
    unavailable = proxy.fail(blob_path, status=503, times=2, method="GET")
    assert client.get_blob(repo, digest).status_code == 503
    assert client.get_blob(repo, digest).status_code == 503
    assert client.get_blob(repo, digest).content == data
    assert unavailable.hits == 2

    proxy.corrupt(blob_path, offset=5, times=1)
    flipped = client.get_blob(repo, digest).content
    assert len(flipped) == len(data) and flipped[5] == data[5] ^ 0xFF
    assert flipped[:5] == data[:5] and flipped[6:] == data[6:]

    proxy.truncate(blob_path, after_bytes=100, times=1)
    with pytest.raises(requests.exceptions.RequestException):
        client.get_blob(repo, digest)

    proxy.reset(blob_path, times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.get_blob(repo, digest)

    slow = proxy.delay(blob_path, 0.2, times=1)
    assert client.get_blob(repo, digest).content == data
    assert slow.hits == 1
    manifest_or_blob = client.request("HEAD", f"/v2/{repo}/blobs/{digest}")
    assert manifest_or_blob.headers["Docker-Content-Digest"] == digest
    assert manifest_or_blob.headers["Content-Length"] == str(len(data))
    client.close()

"""The registry client against a real registry (anonymous, Basic, Bearer token), through the
fault-injecting proxy, and against canned answers for registry.fly.io."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from fixtures.catalog import deleted_secret_image
from fixtures.imagebuilder import build_image
from scanner.errors import AuthError, ManifestError, RegistryError
from scanner.image import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from scanner.registry.client import Endpoint, RegistryClient, parse_challenge
from scanner.registry.credentials import ANONYMOUS, Credential
from scanner.registry.retry import Retrier, RetryPolicy, retry_after_seconds
from tests.infra.fault_proxy import FaultProxy
from tests.infra.plugin import FaultProxyFactory, unique_repo
from tests.infra.registry import Registry
from tests.registry import FLY_LIKE_TOKEN, push_fixture, unique_spec


class Sleeps:
    """A recording stand-in for time.sleep."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def client_for(
    url: str,
    credential: Credential = ANONYMOUS,
    *,
    timeout: float = 30.0,
    sleep: Sleeps | None = None,
) -> RegistryClient:
    endpoint = Endpoint.for_registry(url, insecure=False, timeout=timeout)
    if sleep is None:
        return RegistryClient(endpoint, credential)
    return RegistryClient(endpoint, credential, sleep=sleep)


def repo_of(reference: str) -> tuple[str, str]:
    """(repository, tag) of "host:port/repo:tag"."""
    rest = reference.split("/", 1)[1]
    repo, _, tag = rest.rpartition(":")
    return repo, tag


# --- pure parts -----------------------------------------------------------------------


def test_local_registries_use_plain_http() -> None:
    assert Endpoint.for_registry("127.0.0.1:5000", insecure=False, timeout=5).scheme == "http"
    assert Endpoint.for_registry("localhost", insecure=False, timeout=5).scheme == "http"
    assert Endpoint.for_registry("registry.fly.io", insecure=False, timeout=5).scheme == "https"
    assert Endpoint.for_registry("r.example:5000", insecure=True, timeout=5).scheme == "http"


def test_parse_challenge() -> None:
    c = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg",'
        'scope="repository:a/b:pull,push",error="insufficient_scope"'
    )
    assert c is not None and c.scheme == "bearer"
    assert c.params["realm"] == "https://auth.example/token"
    assert c.params["scope"] == "repository:a/b:pull,push"
    assert c.params["error"] == "insufficient_scope"
    basic = parse_challenge('Basic realm="Registry Realm"')
    assert basic is not None and basic.scheme == "basic"
    assert parse_challenge("") is None


def test_retry_policy_is_bounded() -> None:
    sleeps = Sleeps()
    retrier = Retrier(RetryPolicy(), sleeps)
    while retrier.wait():
        pass
    assert sleeps.calls == [0.5, 1.0, 2.0]  # four attempts, 3.5 s of backoff in all
    assert "after 4 attempts" in retrier.stop_reason
    # A Retry-After beyond the budget (--timeout) stops at once, saying why.
    short = Retrier(RetryPolicy(max_wait=5), sleeps)
    assert not short.wait(retry_after=60)
    assert "60s" in short.stop_reason and "--timeout" in short.stop_reason


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("soon") is None


def test_repr_hides_the_credential() -> None:
    client = client_for("registry.fly.io", Credential("x", FLY_LIKE_TOKEN, "FLY_API_TOKEN"))
    assert FLY_LIKE_TOKEN not in repr(client)
    assert "FLY_API_TOKEN" in repr(client)


# --- a real registry, anonymous ----------------------------------------------------------


def test_index_manifest_and_streamed_blob(registry_anonymous: Registry, tmp_path: Path) -> None:
    ref, layout = push_fixture(registry_anonymous, "multiplatform", tmp_path)
    repo, tag = repo_of(ref)
    client = client_for(registry_anonymous.url)
    root = client.get_manifest(repo, tag)
    assert root.media_type == OCI_INDEX
    assert root.digest == "sha256:" + hashlib.sha256(root.data).hexdigest()
    by_digest = client.get_manifest(repo, root.digest)
    assert by_digest.data == root.data
    index = json.loads(root.data)
    child = next(d for d in index["manifests"] if d.get("platform", {}).get("os") == "linux")
    manifest = json.loads(client.get_manifest(repo, child["digest"]).data)
    layer = manifest["layers"][-1]
    expected = (layout / "blobs" / "sha256" / layer["digest"].split(":")[1]).read_bytes()
    with client.open_blob(repo, layer["digest"]) as stream:
        first = stream.read(7)
        rest = stream.read()
    assert first + rest == expected
    config = client.get_blob_bytes(repo, manifest["config"]["digest"], "config")
    assert hashlib.sha256(config).hexdigest() == manifest["config"]["digest"].split(":")[1]


def test_docker_manifest_list(registry_anonymous: Registry) -> None:
    """A Docker v2 manifest list with Docker v2 manifests is served with its own types."""
    repo = unique_repo("app")
    descriptors: list[dict[str, Any]] = []
    for arch in ("amd64", "arm64"):
        spec = unique_spec(deleted_secret_image())
        spec = dataclasses.replace(spec, architecture=arch, docker_media_types=True)
        built, blobs = build_image(spec)
        for data in blobs.values():
            registry_anonymous.push_blob(repo, data)
        body = json.dumps(built.manifest, separators=(",", ":")).encode()
        digest = registry_anonymous.put_manifest(repo, f"m-{arch}", body, DOCKER_MANIFEST)
        descriptors.append(
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": digest,
                "size": len(body),
                "platform": {"os": "linux", "architecture": arch},
            }
        )
    manifest_list = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": descriptors,
    }
    registry_anonymous.put_manifest(repo, "v1", manifest_list, DOCKER_MANIFEST_LIST)
    client = client_for(registry_anonymous.url)
    root = client.get_manifest(repo, "v1")
    assert root.media_type == DOCKER_MANIFEST_LIST
    child = client.get_manifest(repo, descriptors[0]["digest"])
    assert child.media_type == DOCKER_MANIFEST


def test_oci_manifest_by_tag(registry_anonymous: Registry, tmp_path: Path) -> None:
    ref, _ = push_fixture(registry_anonymous, "zstd", tmp_path)
    repo, tag = repo_of(ref)
    assert client_for(registry_anonymous.url).get_manifest(repo, tag).media_type == OCI_MANIFEST


def test_404_messages_and_no_retry(
    registry_anonymous: Registry, fault_proxy_factory: FaultProxyFactory, tmp_path: Path
) -> None:
    ref, _ = push_fixture(registry_anonymous, "zstd", tmp_path)
    repo, _ = repo_of(ref)
    proxy = fault_proxy_factory(registry_anonymous)
    sleeps = Sleeps()
    client = client_for(proxy.url, sleep=sleeps)
    with pytest.raises(RegistryError) as info:
        client.get_manifest(repo, "no-such-tag")
    text = str(info.value)
    assert f"registry {proxy.url}" in text and f"repository {repo}" in text
    assert "HTTP 404" in text and "MANIFEST_UNKNOWN" in text
    assert "no such tag or digest" in text
    assert proxy.count(r"/manifests/no-such-tag") == 1
    assert sleeps.calls == []
    with pytest.raises(RegistryError, match=r"repository app/never-pushed-.*HTTP 404"):
        client.get_manifest("app/never-pushed-anything", "v1")


def test_manifest_digest_is_checked(
    registry_anonymous: Registry, fault_proxy_factory: FaultProxyFactory, tmp_path: Path
) -> None:
    ref, _ = push_fixture(registry_anonymous, "zstd", tmp_path)
    repo, tag = repo_of(ref)
    proxy = fault_proxy_factory(registry_anonymous)
    proxy.corrupt(r"/manifests/", offset=3, times=None)
    with pytest.raises(ManifestError, match="digest mismatch: expected sha256:"):
        client_for(proxy.url).get_manifest(repo, tag)


# --- faults -------------------------------------------------------------------------------


@pytest.fixture
def proxied(
    registry_anonymous: Registry, fault_proxy_factory: FaultProxyFactory, tmp_path: Path
) -> Iterator[tuple[FaultProxy, str, str]]:
    """(proxy, repository, tag) of a fresh image behind a fresh proxy."""
    ref, _ = push_fixture(registry_anonymous, "zstd", tmp_path)
    repo, tag = repo_of(ref)
    proxy = fault_proxy_factory(registry_anonymous)
    yield proxy, repo, tag
    proxy.stop()


def test_429_retry_after_is_honoured(proxied: tuple[FaultProxy, str, str]) -> None:
    proxy, repo, tag = proxied
    rule = proxy.fail(r"/manifests/", status=429, retry_after=2, times=1)
    sleeps = Sleeps()
    doc = client_for(proxy.url, sleep=sleeps).get_manifest(repo, tag)
    assert doc.media_type == OCI_MANIFEST
    assert rule.hits == 1 and proxy.count(r"/manifests/") == 2
    assert sleeps.calls == [2.0]


def test_429_retry_after_really_waits(proxied: tuple[FaultProxy, str, str]) -> None:
    proxy, repo, tag = proxied
    proxy.fail(r"/manifests/", status=429, retry_after=1, times=1)
    began = time.monotonic()
    client_for(proxy.url).get_manifest(repo, tag)
    assert time.monotonic() - began >= 1.0


def test_retry_after_beyond_timeout_fails_fast(proxied: tuple[FaultProxy, str, str]) -> None:
    proxy, repo, tag = proxied
    proxy.fail(r"/manifests/", status=503, retry_after=600, times=None)
    sleeps = Sleeps()
    with pytest.raises(RegistryError, match="retry after 600s") as info:
        client_for(proxy.url, timeout=10, sleep=sleeps).get_manifest(repo, tag)
    assert "HTTP 503" in str(info.value)
    assert sleeps.calls == []


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_then_success(proxied: tuple[FaultProxy, str, str], status: int) -> None:
    proxy, repo, tag = proxied
    rule = proxy.fail(r"/manifests/", status=status, times=2)
    sleeps = Sleeps()
    client_for(proxy.url, sleep=sleeps).get_manifest(repo, tag)
    assert rule.hits == 2
    assert sleeps.calls == [0.5, 1.0]


def test_persistent_errors_give_up_within_seconds(proxied: tuple[FaultProxy, str, str]) -> None:
    proxy, repo, tag = proxied
    proxy.fail(r"/manifests/", status=500, times=None)
    began = time.monotonic()
    with pytest.raises(RegistryError, match=r"HTTP 500.*gave up after 4 attempts"):
        client_for(proxy.url).get_manifest(repo, tag)
    assert time.monotonic() - began < 6.0
    assert proxy.count(r"/manifests/") == 4


def test_reset_connection_then_success(proxied: tuple[FaultProxy, str, str]) -> None:
    proxy, repo, tag = proxied
    rule = proxy.reset(r"/manifests/", times=1)
    sleeps = Sleeps()
    client_for(proxy.url, sleep=sleeps).get_manifest(repo, tag)
    assert rule.hits == 1 and len(sleeps.calls) == 1


def test_truncated_manifest_is_fetched_again(proxied: tuple[FaultProxy, str, str]) -> None:
    proxy, repo, tag = proxied
    rule = proxy.truncate(r"/manifests/", after_bytes=20, times=1)
    doc = client_for(proxy.url, sleep=Sleeps()).get_manifest(repo, tag)
    assert rule.hits == 1
    assert json.loads(doc.data)["layers"]


def test_truncated_blob_stream_is_an_error(proxied: tuple[FaultProxy, str, str]) -> None:
    proxy, repo, tag = proxied
    client = client_for(proxy.url, sleep=Sleeps())
    manifest = json.loads(client.get_manifest(repo, tag).data)
    layer = manifest["layers"][0]
    proxy.truncate(rf"/blobs/{layer['digest']}", after_bytes=100, times=None)
    stream = client.open_blob(repo, layer["digest"])
    with pytest.raises(RegistryError) as info:
        while stream.read(4096):
            pass
    stream.close()
    text = str(info.value)
    assert f"repository {repo}" in text and layer["digest"] in text
    assert f"broke off after 100 bytes of {layer['size']}" in text


def test_blob_request_errors_are_retried(proxied: tuple[FaultProxy, str, str]) -> None:
    proxy, repo, tag = proxied
    client = client_for(proxy.url, sleep=Sleeps())
    layer = json.loads(client.get_manifest(repo, tag).data)["layers"][0]
    proxy.reset(rf"/blobs/{layer['digest']}", times=1)
    proxy.fail(rf"/blobs/{layer['digest']}", status=429, retry_after=1, times=1)
    with client.open_blob(repo, layer["digest"]) as stream:
        assert len(stream.read()) == layer["size"]


# --- Basic auth -----------------------------------------------------------------------------


def test_basic_auth(registry_basic: Registry, tmp_path: Path) -> None:
    ref, _ = push_fixture(registry_basic, "zstd", tmp_path)
    repo, tag = repo_of(ref)
    assert registry_basic.reader_username and registry_basic.reader_password
    good = Credential(registry_basic.reader_username, registry_basic.reader_password, "test")
    assert client_for(registry_basic.url, good).get_manifest(repo, tag).data

    with pytest.raises(AuthError) as info:
        client_for(registry_basic.url).get_manifest(repo, tag)
    text = str(info.value)
    assert "HTTP 401" in text and f"registry {registry_basic.url}" in text
    assert f"repository {repo}" in text and "none were found (anonymous" in text
    assert f"docker login {registry_basic.url}" in text

    secret = "wrong-password-7d1e"
    bad = Credential(registry_basic.reader_username, secret, "Docker config /x/config.json")
    with pytest.raises(AuthError) as info:
        client_for(registry_basic.url, bad).get_manifest(repo, tag)
    text = str(info.value)
    assert "refused user 'reader' from Docker config /x/config.json" in text
    assert secret not in text


# --- Bearer tokens ---------------------------------------------------------------------------


def test_one_token_per_repository_scope(registry_token: Registry, tmp_path: Path) -> None:
    token_server = registry_token.token_server
    assert token_server is not None
    refs = [push_fixture(registry_token, "zstd", tmp_path)[0] for _ in range(2)]
    repos = [repo_of(r) for r in refs]
    assert registry_token.reader_username and registry_token.reader_password
    cred = Credential(registry_token.reader_username, registry_token.reader_password, "test")
    client = client_for(registry_token.url, cred)
    token_server.clear_requests()
    for _round in range(2):  # alternate: a token for one repository is not sent to the other
        for repo, tag in repos:
            manifest = json.loads(client.get_manifest(repo, tag).data)
            with client.open_blob(repo, manifest["layers"][0]["digest"]) as stream:
                stream.read()
    asked = token_server.scopes_requested(registry_token.reader_username)
    assert sorted(asked) == sorted(f"repository:{repo}:pull" for repo, _ in repos)
    assert [len(s) for s in client.token_scopes] == [1, 1]


def test_token_denied_messages(registry_token: Registry, tmp_path: Path) -> None:
    ref, _ = push_fixture(registry_token, "zstd", tmp_path)
    repo, tag = repo_of(ref)
    other = unique_repo("private")  # the reader may pull app/* only
    registry_token.push_oci_layout(
        tmp_path / next(tmp_path.iterdir()).name / "zstd-oci", other, "v1"
    )
    assert registry_token.reader_username and registry_token.reader_password
    reader = Credential(registry_token.reader_username, registry_token.reader_password, "test")
    with pytest.raises(AuthError) as info:
        client_for(registry_token.url, reader).get_manifest(other, "v1")
    text = str(info.value)
    assert "HTTP 401" in text and f"repository {other}" in text
    assert "has no pull access" in text
    bad = Credential(registry_token.reader_username, "not-the-password-91", "FLY_API_TOKEN")
    with pytest.raises(AuthError) as info:
        client_for(registry_token.url, bad).get_manifest(repo, tag)
    text = str(info.value)
    assert "token server" in text and "refused user 'reader' from FLY_API_TOKEN" in text
    assert "not-the-password-91" not in text


# --- registry.fly.io, canned ----------------------------------------------------------------


class CannedAdapter(BaseAdapter):
    """Answers every request with one status, recording what was sent."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        super().__init__()
        self.status, self.headers, self.body = status, dict(headers), body
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:  # type: ignore[override]
        self.sent.append(request)
        resp = requests.Response()
        resp.status_code = self.status
        resp.headers.update(self.headers)
        resp.raw = io.BytesIO(self.body)
        resp.url = str(request.url)
        resp.request = request
        return resp

    def close(self) -> None:
        pass


@pytest.mark.parametrize("status", [401, 403])
def test_fly_hint(status: int) -> None:
    cred = Credential("x", FLY_LIKE_TOKEN, "FLY_API_TOKEN")
    client = client_for("registry.fly.io", cred)
    body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "echo " + FLY_LIKE_TOKEN}]})
    adapter = CannedAdapter(status, {"WWW-Authenticate": 'Basic realm="fly"'}, body.encode())
    client.session.mount("https://registry.fly.io/", adapter)
    with pytest.raises(AuthError) as info:
        client.get_manifest("my-app", "deployment-01JD0000000000000000000000")
    text = str(info.value)
    assert "registry registry.fly.io, repository my-app" in text
    assert "fly auth docker" in text and "FLY_API_TOKEN" in text
    assert FLY_LIKE_TOKEN not in text and "fm2_" not in text
    if status == 401:  # the Basic challenge was answered (user x), then refused
        sent = [r.headers.get("Authorization", "") for r in adapter.sent]
        assert sent == ["", requests.auth._basic_auth_str("x", FLY_LIKE_TOKEN)]


def test_fly_404_hint() -> None:
    client = client_for("registry.fly.io", Credential("x", "t", "FLY_API_TOKEN"))
    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
    client.session.mount("https://registry.fly.io/", CannedAdapter(404, {}, body.encode()))
    with pytest.raises(RegistryError) as info:
        client.get_manifest("my-app", "deployment-x")
    assert "deployment-<ULID>" in str(info.value)

"""`layerleak scan HOST/REPO:TAG` against a real registry: the same findings as from disk for
every platform, Basic auth from a flyctl-style Docker config, Bearer tokens scoped per
repository, corrupted blobs, faults, and the messages for 401 and 404."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

from fixtures.catalog import deleted_secret_image
from scanner.cli import exit_code
from scanner.registry.client import Endpoint
from scanner.registry.credentials import Credential
from scanner.results import ImageResult, Report
from scanner.scan import Scanner, ScanOptions
from scanner.sources.interface import SourceOptions
from scanner.sources.registry import RegistryBlobOpener, RegistrySource
from tests.infra.plugin import FaultProxyFactory
from tests.infra.registry import Registry
from tests.registry import (
    FLY_LIKE_TOKEN,
    add_basic_user,
    findings_view,
    flyctl_auth,
    layers_view,
    push_fixture,
    push_spec,
    unique_spec,
    write_docker_config,
)


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what a test sets up: no FLY_API_TOKEN, an empty Docker config directory."""
    monkeypatch.delenv("FLY_API_TOKEN", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))


def scan(text: str, jobs: int = 1, **options: object) -> ImageResult:
    """Scan without the layer cache (each scan must read its source) in this process,
    unless ``jobs`` asks for worker processes."""
    source = SourceOptions(**options)  # type: ignore[arg-type]
    with Scanner(ScanOptions(source=source, use_cache=False, jobs=jobs)) as scanner:
        return scanner.scan(text)


def assert_same_as_disk(remote: ImageResult, disk: ImageResult) -> None:
    assert remote.problems == [] and disk.problems == []
    assert remote.source_kind == "registry"
    assert [p.platform for p in remote.platforms] == [p.platform for p in disk.platforms]
    assert findings_view(remote) == findings_view(disk)
    assert layers_view(remote) == layers_view(disk)
    assert remote.findings, "the fixture has findings"


@pytest.mark.parametrize("fixture", ["multiplatform", "zstd", "deleted_secret", "demo"])
def test_same_findings_as_disk(registry_anonymous: Registry, tmp_path: Path, fixture: str) -> None:
    ref, layout = push_fixture(registry_anonymous, fixture, tmp_path)
    remote = scan(ref)
    disk = scan(f"oci:{layout}")
    assert_same_as_disk(remote, disk)
    if fixture == "multiplatform":
        assert len(remote.platforms) >= 2  # every platform by default
        assert remote.index_digest is not None
    if fixture == "zstd":
        assert "zstd" in {layer.compression for p in remote.platforms for layer in p.layers}


def test_worker_processes_stream_from_the_registry(
    registry_basic: Registry, tmp_path: Path
) -> None:
    """Layer openers are pickled into worker processes, which make their own clients."""
    ref, layout = push_fixture(registry_basic, "multiplatform", tmp_path)
    user, password = registry_basic.reader_username, registry_basic.reader_password
    remote = scan(ref, jobs=2, username=user, password=password)
    assert_same_as_disk(remote, scan(f"oci:{layout}"))


def test_platform_selection(registry_anonymous: Registry, tmp_path: Path) -> None:
    from scanner.image import Platform

    ref, layout = push_fixture(registry_anonymous, "multiplatform", tmp_path)
    wanted = (Platform("linux", "arm64"),)
    remote = scan(ref, platforms=wanted)
    disk = scan(f"oci:{layout}", platforms=wanted)
    assert [p.platform for p in remote.platforms] == ["linux/arm64/v8"]
    assert findings_view(remote) == findings_view(disk)


def test_by_digest(registry_anonymous: Registry, tmp_path: Path) -> None:
    ref, layout = push_fixture(registry_anonymous, "multiplatform", tmp_path)
    digest = scan(ref).index_digest
    assert digest is not None
    by_digest = scan(f"{ref.rsplit(':', 1)[0]}@{digest}")
    assert_same_as_disk(by_digest, scan(f"oci:{layout}"))


def test_basic_auth_from_flyctl_style_docker_config(
    registry_basic: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The done criterion: user `x`, a Fly-like token, URL-safe base64, in config.json only."""
    add_basic_user(registry_basic, "x", FLY_LIKE_TOKEN)
    ref, layout = push_fixture(registry_basic, "multiplatform", tmp_path)
    auth = flyctl_auth("x", FLY_LIKE_TOKEN)
    assert "-" in auth or "_" in auth  # the standard alphabet would mangle it
    config_dir = write_docker_config(tmp_path / "docker", {registry_basic.url: {"auth": auth}})
    config_before = (config_dir / "config.json").read_bytes()
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    remote = scan(ref)
    assert_same_as_disk(remote, scan(f"oci:{layout}"))
    assert len(remote.platforms) >= 2
    # Nothing was written: not the config we read, not a ~/.docker/config.json (oras login).
    assert (config_dir / "config.json").read_bytes() == config_before
    assert not (tmp_path / "home").exists()


def test_401_message(registry_basic: Registry, tmp_path: Path) -> None:
    ref, _ = push_fixture(registry_basic, "zstd", tmp_path)
    result = scan(ref)
    report = Report([result])
    assert exit_code(report) == 3
    [problem] = result.problems
    text = problem.message
    assert f"registry {registry_basic.url}" in text
    assert f"repository {ref.split('/', 1)[1].rsplit(':', 1)[0]}" in text
    assert "HTTP 401" in text and "no-docker-config" in text  # the credential source tried
    assert f"docker login {registry_basic.url}" in text and "--password-stdin" in text


def test_wrong_password_message_never_shows_it(registry_basic: Registry, tmp_path: Path) -> None:
    ref, _ = push_fixture(registry_basic, "zstd", tmp_path)
    secret = "definitely-wrong-5cd2"
    result = scan(ref, username="reader", password=secret)
    [problem] = result.problems
    assert "refused user 'reader' from --username/--password-stdin" in problem.message
    assert secret not in problem.message


def test_404_message(registry_anonymous: Registry, tmp_path: Path) -> None:
    ref, _ = push_fixture(registry_anonymous, "zstd", tmp_path)
    result = scan(ref.rsplit(":", 1)[0] + ":no-such-tag")
    assert exit_code(Report([result])) == 3
    [problem] = result.problems
    assert "HTTP 404" in problem.message and "MANIFEST_UNKNOWN" in problem.message
    assert "manifest no-such-tag" in problem.message


def test_token_auth_one_scope_per_repository(registry_token: Registry, tmp_path: Path) -> None:
    token_server = registry_token.token_server
    assert token_server is not None and registry_token.reader_username
    first, layout = push_fixture(registry_token, "multiplatform", tmp_path)
    second, _ = push_fixture(registry_token, "zstd", tmp_path)
    user, password = registry_token.reader_username, registry_token.reader_password
    repos = [ref.split("/", 1)[1].rsplit(":", 1)[0] for ref in (first, second)]
    expected = [(f"repository:{repo}:pull",) for repo in repos]

    token_server.clear_requests()
    results = [scan(ref, username=user, password=password) for ref in (first, second)]
    assert_same_as_disk(results[0], scan(f"oci:{layout}"))
    assert results[1].problems == []
    seen = [r.scopes for r in token_server.requests if r.user == user]
    # Many manifests and blobs per image, but one token per repository, scoped to it.
    assert seen == expected

    # With worker processes each worker gets its own tokens, each still for one repository.
    token_server.clear_requests()
    results = [scan(ref, jobs=2, username=user, password=password) for ref in (first, second)]
    assert_same_as_disk(results[0], scan(f"oci:{layout}"))
    seen = [r.scopes for r in token_server.requests if r.user == user]
    assert set(seen) == set(expected) and all(len(scopes) == 1 for scopes in seen)


def test_blob_corrupted_in_storage(registry_anonymous: Registry, tmp_path: Path) -> None:
    """A flipped byte in the gzip header's mtime: the layer still inflates, but its blob
    no longer matches its digest; the problem names the layer and both digests."""
    spec = unique_spec(deleted_secret_image())
    ref, layout, _ = push_spec(registry_anonymous, spec, tmp_path)
    disk = scan(f"oci:{layout}")
    layer = disk.platforms[0].layers[1]
    stored = registry_anonymous.blob_path(layer.digest).read_bytes()
    assert stored[:2] == b"\x1f\x8b"
    registry_anonymous.corrupt_blob(layer.digest, stored[:4] + bytes([stored[4] ^ 1]) + stored[5:])
    result = scan(ref)
    assert exit_code(Report([result])) == 3
    [problem] = result.problems
    assert problem.layer_index == 1
    assert problem.message.startswith(f"layer 1 ({layer.digest[:19]})")
    assert f"expected {layer.digest}, got sha256:" in problem.message
    # The other layers were scanned: their findings are there.
    assert {f.location.layer_index for f in result.findings} - {1}


def test_blob_garbled_in_storage_names_the_layer(
    registry_anonymous: Registry, tmp_path: Path
) -> None:
    spec = unique_spec(deleted_secret_image())
    ref, layout, _ = push_spec(registry_anonymous, spec, tmp_path)
    layer = scan(f"oci:{layout}").platforms[0].layers[1]
    registry_anonymous.corrupt_blob(layer.digest)  # first byte flipped: not gzip any more
    result = scan(ref)
    assert exit_code(Report([result])) == 3
    messages = [p.message for p in result.problems if p.layer_index == 1]
    assert messages and messages[0].startswith(f"layer 1 ({layer.digest[:19]})")


# --- faults through the proxy --------------------------------------------------------------


def test_faults_then_success(
    registry_anonymous: Registry, fault_proxy_factory: FaultProxyFactory, tmp_path: Path
) -> None:
    ref, layout = push_fixture(registry_anonymous, "multiplatform", tmp_path)
    proxy = fault_proxy_factory(registry_anonymous)
    disk = scan(f"oci:{layout}")
    layer_digest = disk.platforms[0].layers[0].digest
    rules = [
        proxy.fail(r"/manifests/v1", status=429, retry_after=1),
        proxy.fail(r"/manifests/sha256:", status=500),
        proxy.reset(rf"/blobs/{layer_digest}"),
        proxy.fail(r"/blobs/", status=503),
        proxy.truncate(r"/manifests/sha256:", after_bytes=10),
    ]
    remote = scan(ref.replace(registry_anonymous.url, proxy.url))
    assert [r.hits for r in rules] == [1, 1, 1, 1, 1]
    assert remote.problems == []
    assert findings_view(remote) == findings_view(disk)


def test_truncated_layer_is_an_error_naming_it(
    registry_anonymous: Registry, fault_proxy_factory: FaultProxyFactory, tmp_path: Path
) -> None:
    ref, layout = push_fixture(registry_anonymous, "deleted_secret", tmp_path)
    layer = scan(f"oci:{layout}").platforms[0].layers[1]
    proxy = fault_proxy_factory(registry_anonymous)
    proxy.truncate(rf"/blobs/{layer.digest}", after_bytes=300, times=None)
    result = scan(ref.replace(registry_anonymous.url, proxy.url))
    assert exit_code(Report([result])) == 3
    [problem] = [p for p in result.problems if p.layer_index == 1]
    assert problem.message.startswith(f"layer 1 ({layer.digest[:19]})")
    assert "broke off after 300 bytes" in problem.message


def test_wrong_blob_from_the_wire(
    registry_anonymous: Registry, fault_proxy_factory: FaultProxyFactory, tmp_path: Path
) -> None:
    ref, layout = push_fixture(registry_anonymous, "deleted_secret", tmp_path)
    layer = scan(f"oci:{layout}").platforms[0].layers[2]
    proxy = fault_proxy_factory(registry_anonymous)
    proxy.corrupt(rf"/blobs/{layer.digest}", offset=5)  # inside the gzip mtime
    result = scan(ref.replace(registry_anonymous.url, proxy.url))
    [problem] = result.problems
    assert problem.layer_index == 2
    assert f"expected {layer.digest}, got sha256:" in problem.message


def test_unreachable_registry_is_a_problem(tmp_path: Path) -> None:
    result = scan("127.0.0.1:9/app/x:v1", timeout=2.0)
    [problem] = result.problems
    assert "registry 127.0.0.1:9, repository app/x" in problem.message
    assert "connection refused" in problem.message
    assert re.search(r"gave up after [2-4] attempts", problem.message)


def test_not_a_reference_nor_a_path() -> None:
    result = scan("./no/such/Image.tar")
    [problem] = result.problems
    assert "not an existing file or directory" in problem.message


def test_opener_is_picklable_and_hides_the_credential() -> None:
    cred = Credential("x", FLY_LIKE_TOKEN, "FLY_API_TOKEN")
    opener = RegistryBlobOpener(
        Endpoint("registry.fly.io", "https", 30.0), "my-app", "sha256:" + "0" * 64, 10, cred
    )
    again = pickle.loads(pickle.dumps(opener))
    assert again == opener and again.credential.password == FLY_LIKE_TOKEN
    for text in (repr(opener), opener.describe()):
        assert FLY_LIKE_TOKEN not in text and "fm2_" not in text
    assert opener.describe() == f"registry.fly.io/my-app@sha256:{'0' * 64}"


def test_source_kind_and_name(registry_anonymous: Registry, tmp_path: Path) -> None:
    ref, _ = push_fixture(registry_anonymous, "zstd", tmp_path)
    with RegistrySource(ref, SourceOptions()) as source:
        image = source.load()
    assert image.source_kind == "registry" and image.name == ref

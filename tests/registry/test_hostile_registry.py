"""A registry that misbehaves on purpose: a blob that never ends or arrives a byte at a
time, a blob or manifest longer than its descriptor says, a registry slower than the
run's deadline, a tag list that never stops. Each ends within seconds with a problem
naming what was cut short (exit 3) and everything found so far still reported.

The real ``docker-registry`` behind the fault proxy where the proxy can express the
fault; the loopback registry of :mod:`tests.registry.loopback` where it cannot."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import pytest

from scanner.cli import exit_code
from scanner.deadline import Deadline, parse_duration
from scanner.image import BlobOpener, Image, Layer, Platform, PlatformImage
from scanner.registry.client import Endpoint, RegistryClient
from scanner.registry.credentials import Credential
from scanner.results import ImageResult, Report
from scanner.scan import Scanner, ScanOptions
from scanner.sources.interface import SourceOptions
from scanner.sources.registry import RegistrySource
from scanner.timeline import MAX_TAGS, list_tags
from tests.hostile_images import SECRET, build_image, dumps, secret_layer
from tests.infra.plugin import FaultProxyFactory, unique_repo
from tests.infra.registry import Registry
from tests.registry.loopback import LoopbackHandler, LoopbackRegistry

T = TypeVar("T")
LIMIT = 10.0  # no scan here may take longer; before this change several never ended


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FLY_API_TOKEN", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))


def bounded(fn: Callable[[], T], seconds: float = LIMIT) -> tuple[T, float]:
    """``fn()`` and how long it took; fails the test (instead of hanging) past ``seconds``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    elapsed = time.monotonic() - start
    assert not thread.is_alive(), f"still running after {seconds}s"
    if "error" in box:
        raise box["error"]
    return box["value"], elapsed


def scan(
    ref: str, *, deadline: float | None = None, jobs: int = 1, timeout: float = 5.0
) -> ImageResult:
    source = SourceOptions(deadline=Deadline.after(deadline), timeout=timeout)
    with Scanner(ScanOptions(source=source, use_cache=False, jobs=jobs)) as scanner:
        return scanner.scan(ref)


def layer_errors(result: ImageResult) -> list[str]:
    return [layer.error for p in result.platforms for layer in p.layers if layer.error]


def found_secret(result: ImageResult, path: str) -> bool:
    return any(f.location.path == path for f in result.findings)


def two_layers() -> tuple[Any, str]:
    """An image whose layer 0 holds a secret in app/0.env; returns (built, layer 1 digest).

    Layer 0 is the larger blob, so that it is scanned first (largest first)."""
    marker = uuid.uuid4().hex
    padding = uuid.uuid4().hex * 200  # incompressible enough to make layer 0 larger
    built = build_image(
        [secret_layer("app/0.env", marker + padding), secret_layer("app/1.env", marker)]
    )
    return built, built.layer_digests[1]


# --- the deadline -------------------------------------------------------------------------


def test_parse_duration() -> None:
    assert parse_duration("30m") == 1800
    assert parse_duration("90s") == 90
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    assert parse_duration("2.5") == 2.5
    assert parse_duration("0") is None and parse_duration("0s") is None
    for bad in ("", "soon", "-5", "10x", "5m junk", "inf", "nan"):
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.parametrize("jobs", [1, 2])
def test_blob_sent_a_byte_at_a_time_ends_at_the_deadline(jobs: int) -> None:
    built, slow = two_layers()
    with LoopbackRegistry(built) as server:
        server.behave(slow, "slow", interval=0.05)
        ref = f"{server.host}/hostile/slow@{built.manifest_digest}"
        result, elapsed = bounded(lambda: scan(ref, deadline=2.0, jobs=jobs))
    assert elapsed < 2.0 + 5.0
    [error] = layer_errors(result)
    assert slow[:19] in error and "--deadline of 2s passed" in error
    assert exit_code(Report([result])) == 3
    assert found_secret(result, "app/0.env"), "what was found before the deadline is kept"


def test_blob_that_never_ends_is_refused_at_its_first_excess_byte() -> None:
    """No deadline: the descriptor's size alone stops it (before: read forever)."""
    built, endless = two_layers()
    with LoopbackRegistry(built) as server:
        server.behave(endless, "endless")
        ref = f"{server.host}/hostile/endless@{built.manifest_digest}"
        result, elapsed = bounded(lambda: scan(ref, deadline=None))
    assert elapsed < 5.0
    [error] = layer_errors(result)
    assert endless[:19] in error and "more than the" in error and "descriptor" in error
    assert exit_code(Report([result])) == 3
    assert found_secret(result, "app/0.env")


def test_endless_blob_with_a_huge_declared_size_ends_at_the_deadline() -> None:
    marker = uuid.uuid4().hex
    layers = [secret_layer("app/0.env", marker), secret_layer("app/1.env", marker + "x")]
    built = build_image(layers, layer_sizes=[len(layers[0]), 1 << 40])
    with LoopbackRegistry(built) as server:
        server.behave(built.layer_digests[1], "endless")
        ref = f"{server.host}/hostile/huge@{built.manifest_digest}"
        result, elapsed = bounded(lambda: scan(ref, deadline=1.5))
    assert elapsed < 1.5 + 5.0
    errors = layer_errors(result)
    assert any(built.layer_digests[1][:19] in e and "--deadline" in e for e in errors), errors
    # Largest first: the endless blob went first; the other was then not started.
    assert any("not scanned" in e and built.layer_digests[0][:19] in e for e in errors), errors
    assert exit_code(Report([result])) == 3


def test_registry_slower_than_the_deadline(
    registry_anonymous: Registry, fault_proxy_factory: FaultProxyFactory
) -> None:
    """The real registry behind the fault proxy, every blob delayed 8 s: the request
    timeout (5 s here) is cut to what is left of a 1.5 s deadline."""
    built, _ = two_layers()
    repo = unique_repo("slow")
    for digest, data in built.blobs.items():
        if digest != built.manifest_digest:
            registry_anonymous.push_blob(repo, data)
    registry_anonymous.put_manifest(repo, "v1", built.manifest)
    proxy = fault_proxy_factory(registry_anonymous)
    proxy.delay(r"/blobs/sha256:", 8.0, times=None)
    ref = f"{proxy.url}/{repo}:v1"
    result, elapsed = bounded(lambda: scan(ref, deadline=1.5))
    assert elapsed < 1.5 + 4.0
    messages = [p.message for p in result.problems]
    assert messages and all("--deadline of 1.5s passed" in m or "timed out" in m for m in messages)
    assert any(built.config_digest[:19] in m or "layer" in m for m in messages)
    assert exit_code(Report([result])) == 3


def test_images_after_the_deadline_are_not_started(registry_anonymous: Registry) -> None:
    source = SourceOptions(deadline=Deadline(time.time() - 1, 1.0))
    with Scanner(ScanOptions(source=source, use_cache=False, jobs=1)) as scanner:
        report, elapsed = bounded(lambda: scanner.scan_all([f"{registry_anonymous.url}/x/y:z"]))
    assert elapsed < 1.0
    [problem] = report.problems
    assert "not scanned" in problem.message and "--deadline" in problem.message


# --- sizes that lie -----------------------------------------------------------------------


def push_built(registry: Registry, built: Any, repo: str) -> None:
    for digest, data in built.blobs.items():
        if digest != built.manifest_digest:
            registry.push_blob(repo, data)


def test_blob_longer_than_its_descriptor_is_refused_unread(registry_anonymous: Registry) -> None:
    """The real registry serves the blob in full; the manifest says it is shorter."""
    marker = uuid.uuid4().hex
    layers = [secret_layer("app/0.env", marker), secret_layer("app/1.env", marker + "y")]
    built = build_image(layers, layer_sizes=[len(layers[0]), len(layers[1]) - 7])
    repo = unique_repo("size")
    push_built(registry_anonymous, built, repo)
    registry_anonymous.put_manifest(repo, "v1", built.manifest)
    result, _ = bounded(lambda: scan(f"{registry_anonymous.url}/{repo}:v1"))
    [error] = layer_errors(result)
    assert "descriptor says" in error and built.layer_digests[1][:19] in error
    assert exit_code(Report([result])) == 3
    assert found_secret(result, "app/0.env") and not found_secret(result, "app/1.env")


def test_manifest_whose_size_lies_is_reported(registry_anonymous: Registry) -> None:
    """An index names the (correct) manifest with a wrong size: not trusted."""
    built = build_image([secret_layer("app/0.env", uuid.uuid4().hex)])
    repo = unique_repo("msize")
    push_built(registry_anonymous, built, repo)
    registry_anonymous.put_manifest(repo, built.manifest_digest, built.manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": built.manifest_digest,
                "size": len(built.manifest) + 100,
                "platform": {"os": "linux", "architecture": "amd64"},
            }
        ],
    }
    registry_anonymous.put_manifest(repo, "v1", dumps(index))
    result, _ = bounded(lambda: scan(f"{registry_anonymous.url}/{repo}:v1"))
    messages = " ".join(p.message for p in result.problems)
    assert "descriptor says" in messages and built.manifest_digest[:19] in messages
    assert exit_code(Report([result])) == 3


def test_config_whose_size_lies_is_reported(tmp_path: Path) -> None:
    built = build_image([secret_layer("app/0.env", uuid.uuid4().hex)])
    manifest = json.loads(built.manifest)
    manifest["config"]["size"] -= 3
    built.manifest = dumps(manifest)
    built.manifest_digest = "sha256:" + hashlib.sha256(built.manifest).hexdigest()
    built.blobs[built.manifest_digest] = built.manifest
    with LoopbackRegistry(built) as server:
        result, _ = bounded(lambda: scan(f"{server.host}/r/c@{built.manifest_digest}"))
    messages = " ".join(p.message for p in result.problems)
    assert "descriptor says" in messages and "config" in messages
    assert exit_code(Report([result])) == 3


# --- tag lists ----------------------------------------------------------------------------


def test_tag_list_is_bounded_deduplicated_and_validated() -> None:
    """MAX_TAGS + 5000 tags, each listed twice, and names that are not tags: listed in
    linear time (the old list-membership test was quadratic), cut at MAX_TAGS with a
    problem, invalid names left out."""
    tags = [f"t{i}" for i in range(MAX_TAGS + 5000)]
    with LoopbackRegistry() as server:
        server.tags = [*tags, *tags, "../../etc", "x" * 300, "ok\x1b[31m"]
        client = RegistryClient(Endpoint(server.host, "http", 5.0), Credential(None))
        problems: list[str] = []
        listed, elapsed = bounded(lambda: list_tags(client, "r/t", problems=problems))
        client.close()
    assert elapsed < 5.0
    assert listed == tags[:MAX_TAGS]
    assert any(f"more than {MAX_TAGS} tags" in p for p in problems)


def test_tag_list_invalid_names_left_out_with_a_problem() -> None:
    with LoopbackRegistry() as server:
        server.tags = ["v1", "v1", "../../etc", "x" * 300, "ok\x1b[31m", "v2"]
        client = RegistryClient(Endpoint(server.host, "http", 5.0), Credential(None))
        problems: list[str] = []
        listed, _ = bounded(lambda: list_tags(client, "r/t", problems=problems))
        client.close()
    assert listed == ["v1", "v2"]
    assert any("3 entr" in p and "not valid tag names" in p for p in problems)


def test_tag_list_larger_than_its_byte_budget() -> None:
    with LoopbackRegistry() as server:
        server.tags = [f"tag-{i:06d}" for i in range(2000)]
        client = RegistryClient(Endpoint(server.host, "http", 5.0), Credential(None))
        with pytest.raises(Exception, match="larger than 1000 bytes"):
            bounded(lambda: list_tags(client, "r/t", problems=[], max_bytes=1000))
        client.close()


def test_secret_constant_is_found_by_the_rules(tmp_path: Path) -> None:
    """Guards the other tests: the secret they plant is one the rules report."""
    built, _ = two_layers()
    with LoopbackRegistry(built) as server:
        result, _ = bounded(lambda: scan(f"{server.host}/r/ok@{built.manifest_digest}"))
    assert result.problems == [] and found_secret(result, "app/1.env")
    assert SECRET not in json.dumps([f.to_dict() for f in result.findings])


def test_one_config_shared_by_many_platforms_is_fetched_and_parsed_once() -> None:
    """Forty platforms naming one 1 MB config: one request, one parsed copy (before: one
    each, which for an 8 MB config under many platforms cost hundreds of MB)."""
    built = build_image(
        [secret_layer("app/0.env", uuid.uuid4().hex)],
        config_extra={"padding": ["x" * 1000] * 1000},
    )
    manifest = json.loads(built.manifest)
    descriptors = []
    for i in range(40):
        variant = dumps({**manifest, "annotations": {"n": str(i)}})
        digest = "sha256:" + hashlib.sha256(variant).hexdigest()
        built.blobs[digest] = variant
        descriptors.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": len(variant),
                "platform": {"os": "linux", "architecture": f"arch{i}"},
            }
        )
    index = dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": descriptors,
        }
    )
    index_digest = "sha256:" + hashlib.sha256(index).hexdigest()
    built.blobs[index_digest] = index
    with LoopbackRegistry(built) as server:

        def serve_index(handler: LoopbackHandler) -> bool:
            if index_digest not in handler.path and not handler.path.endswith("/v1"):
                return False
            handler.send_bytes(200, index, "application/vnd.oci.image.index.v1+json")
            return True

        def serve_manifest(handler: LoopbackHandler) -> bool:
            digest = handler.path.rsplit("/", 1)[1]
            if digest not in built.blobs or digest == index_digest:
                return False
            handler.send_bytes(
                200, built.blobs[digest], "application/vnd.oci.image.manifest.v1+json"
            )
            return True

        server.route(r"/manifests/", serve_index)
        server.route(r"/manifests/sha256:", serve_manifest)
        with RegistrySource(f"{server.host}/r/many:v1", SourceOptions(timeout=5.0)) as source:
            image, _ = bounded(source.load)
        config_requests = [r for r in server.requests if built.config_digest in r.path]
    assert len(image.platforms) == 40 and image.problems == []
    assert len(config_requests) == 1
    first = image.platforms[0].config
    assert all(p.config is first for p in image.platforms)


@dataclass(frozen=True)
class StuckOpener(BlobOpener):
    """A blob whose opening never returns (in the worker): nothing there checks the deadline."""

    seconds: float = 30.0

    def open(self) -> BinaryIO:
        time.sleep(self.seconds)
        raise AssertionError("should have been stopped")

    def describe(self) -> str:
        return "stuck"


def test_worker_stuck_past_the_deadline_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("scanner.scan.WORKER_GRACE", 0.5)
    layers = [Layer(i, f"sha256:{i:064x}", None, "", 100 + i, StuckOpener()) for i in range(2)]
    platform = PlatformImage(Platform("linux", "amd64"), None, {}, None, {}, layers, [])
    image = Image("stuck", "test", [platform])
    source = SourceOptions(deadline=Deadline.after(1.0))
    scanner = Scanner(ScanOptions(source=source, use_cache=False, jobs=2))
    try:
        result, elapsed = bounded(lambda: scanner._scan_image(image))
    finally:
        scanner.close()
    assert elapsed < 1.0 + 3.0
    errors = layer_errors(result)
    assert len(errors) == 2 and all("did not finish" in e for e in errors), errors
    assert exit_code(Report([result])) == 3


def test_scan_command_deadline_option_reports_what_was_found() -> None:
    """``--deadline`` on the command line: exit 3, the report still has layer 0's finding."""
    from click.testing import CliRunner

    from scanner.cli import main

    built, slow = two_layers()
    with LoopbackRegistry(built) as server:
        server.behave(slow, "slow", interval=0.05)
        ref = f"{server.host}/hostile/cli@{built.manifest_digest}"
        args = ["scan", ref, "--deadline", "1.5s", "--timeout", "5", "--no-cache", "-j", "1"]
        result, elapsed = bounded(
            lambda: CliRunner().invoke(main, [*args, "--format", "json", "-q"])
        )
    assert elapsed < 1.5 + 5.0
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout)
    paths = [f["location"]["path"] for image in report["images"] for f in image["findings"]]
    assert "app/0.env" in paths
    assert "--deadline of 1.5s passed" in result.stderr and slow[:19] in result.stderr


def test_sha512_images_from_a_registry_are_verified() -> None:
    """Before: only sha256 manifests and blobs were checked; sha512 ones were trusted."""
    layer = secret_layer("app/0.env", uuid.uuid4().hex)
    built = build_image([layer], algorithm="sha512", diff_algorithm="sha512")
    forged = "sha512:" + "0" * 128
    built.blobs[forged] = built.manifest  # served under a digest it does not have
    with LoopbackRegistry(built) as server:
        good, _ = bounded(lambda: scan(f"{server.host}/r/s@{built.manifest_digest}"))
        bad, _ = bounded(lambda: scan(f"{server.host}/r/s@{forged}"))
    assert good.problems == [] and found_secret(good, "app/0.env")
    assert exit_code(Report([bad])) == 3
    assert any("digest mismatch" in p.message for p in bad.problems)

"""`layerleak scan docker:NAME` against the suite's Docker engine, and without one."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from fixtures.catalog import deleted_secret_image, demo_image
from fixtures.imagebuilder import ImageSpec, write_docker_archive
from scanner.cli import exit_code
from scanner.image import HistoryStep, Layer, Platform, PlatformImage
from scanner.results import ImageResult, Report
from scanner.scan import Scanner, ScanOptions
from scanner.sources.blobstore import FileOpener
from scanner.sources.daemon import DaemonSource, fill_created_by
from scanner.sources.interface import SourceOptions
from tests.registry import findings_view, layers_view


def scan(text: str) -> ImageResult:
    """Scan without the layer cache, so that each scan reads its own source."""
    with Scanner(ScanOptions(use_cache=False, jobs=1)) as scanner:
        return scanner.scan(text)


# --- without an engine ------------------------------------------------------------------


def test_no_engine_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/no-such-docker.sock"
    monkeypatch.setenv("DOCKER_HOST", address)
    for text in ("docker:demo:latest", "docker-daemon:demo"):
        result = scan(text)
        assert exit_code(Report([result])) == 3
        [problem] = result.problems
        assert "\n" not in problem.message
        assert f"no Docker engine answered at {address}" in problem.message
        assert "start Docker or set DOCKER_HOST" in problem.message
        assert len(problem.message) < 250


# --- history from the engine --------------------------------------------------------------


def test_fill_created_by_from_engine_history() -> None:
    steps = [
        HistoryStep(0, "", "", None, False, 0),
        HistoryStep(1, "ENV A=1", "", None, True, None),
        HistoryStep(2, "", "", None, False, 1),
    ]
    layers = [
        Layer(i, f"sha256:{i:064x}", None, "", None, FileOpener("/dev", "null"), steps[2 * i])
        for i in range(2)
    ]
    platform = PlatformImage(Platform("linux", "amd64"), None, {}, None, {}, layers, steps)
    engine = ["ADD file:abc in /", "ENV A=1", "RUN make # buildkit"]
    filled = fill_created_by(platform, engine)
    assert [s.created_by for s in filled.history] == engine
    assert [layer.created_by for layer in filled.layers] == [
        "ADD file:abc in /",
        "RUN make # buildkit",
    ]
    # Counts that do not match cannot be paired: nothing is guessed.
    assert fill_created_by(platform, engine[:2]) is platform


# --- with the suite's engine ------------------------------------------------------------


@pytest.fixture
def engine_client(docker_engine: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import docker

    monkeypatch.setenv("DOCKER_HOST", docker_engine)
    for name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    client = docker.DockerClient(base_url=docker_engine, version="auto", timeout=120)
    yield client
    client.close()


def load_archive(
    client: Any,
    spec: ImageSpec,
    work: Path,
    layout: Literal["legacy", "docker25"] = "legacy",
) -> tuple[str, Path]:
    """`docker load` an archive of `spec` under a name no other test uses."""
    name = f"layerleak-test/daemon-{uuid.uuid4().hex[:10]}:v1"
    archive = write_docker_archive(work / f"{layout}.tar", spec, repo_tags=(name,), layout=layout)
    with open(archive, "rb") as f:
        client.images.load(f.read())
    return name, archive


def remove(client: Any, name: str) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.DockerException):
        client.images.remove(name, force=True)


@pytest.mark.engine
@pytest.mark.parametrize("layout", ["legacy", "docker25"])
def test_same_findings_as_the_archive(
    engine_client: Any, tmp_path: Path, layout: Literal["legacy", "docker25"]
) -> None:
    name, archive = load_archive(engine_client, deleted_secret_image(), tmp_path, layout)
    try:
        from_engine = scan(f"docker:{name}")
        from_disk = scan(f"docker-archive:{archive}")
    finally:
        remove(engine_client, name)
    assert from_engine.problems == [] and from_disk.problems == []
    assert from_engine.source_kind == "docker-daemon"
    assert findings_view(from_engine) == findings_view(from_disk)
    # The engine may re-pack layers, so digests are compared through diff_ids.
    assert layers_view(from_engine, with_digests=False) == layers_view(
        from_disk, with_digests=False
    )
    assert from_engine.findings
    assert all(layer.created_by for p in from_engine.platforms for layer in p.layers)


@pytest.mark.engine
def test_demo_image_and_cleanup(engine_client: Any, tmp_path: Path) -> None:
    name, archive = load_archive(engine_client, demo_image(), tmp_path)
    try:
        source = DaemonSource(f"docker:{name}", SourceOptions(), name)
        with source:
            image = source.load()
            spool = source._dir
            assert spool is not None and (spool / "image.tar").is_file()
            assert spool.stat().st_mode & 0o777 == 0o700
            assert image.source_kind == "docker-daemon"
        assert not spool.exists()  # the saved image is deleted on close
        assert findings_view(scan(f"docker:{name}")) == findings_view(
            scan(f"docker-archive:{archive}")
        )
    finally:
        remove(engine_client, name)


@pytest.mark.engine
def test_history_from_the_engine_fills_created_by(
    engine_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps the saved config leaves without created_by get the engine's CreatedBy."""
    import docker.models.images

    spec = deleted_secret_image()
    bare = dataclasses.replace(
        spec, steps=[dataclasses.replace(step, created_by="") for step in spec.steps]
    )
    name, _ = load_archive(engine_client, bare, tmp_path)
    try:
        count = len(spec.steps)
        engine = [f"RUN step {i} # from the engine" for i in range(count)]
        answer = [{"CreatedBy": text, "Id": "<missing>"} for text in reversed(engine)]
        monkeypatch.setattr(docker.models.images.Image, "history", lambda self: answer)
        with DaemonSource(f"docker:{name}", SourceOptions(), name) as source:
            image = source.load()
        [platform] = image.platforms
        assert [s.created_by for s in platform.history] == engine
        assert [layer.created_by for layer in platform.layers] == [
            engine[s.index] for s in platform.history if not s.empty_layer
        ]
    finally:
        remove(engine_client, name)


@pytest.mark.engine
def test_unknown_image(engine_client: Any) -> None:
    result = scan("docker:layerleak-test/no-such-image:v0")
    [problem] = result.problems
    assert "no image 'layerleak-test/no-such-image:v0'" in problem.message
    assert "\n" not in problem.message

"""The layer runner seam: in-process, local pool; the wire form; workers killed mid-layer."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import pytest

from scanner import signatures as signatures_module
from scanner.detection import Detection
from scanner.image import BlobOpener, Image, Layer
from scanner.results import LayerResult
from scanner.runners import DetectionSpec, InProcessRunner, ProcessPoolRunner, RunnerError
from scanner.runners.interface import detection_from_spec
from scanner.runners.pool import death_message
from scanner.scan import Scanner, ScanOptions
from scanner.signatures import SignatureSet
from scanner.sources.interface import SourceOptions
from scanner.sources.resolve import resolve

RULE = """\
rules:
  - id: cluster-test-token
    detector: ClusterTest
    title: Cluster test token
    severity: high
    keywords: [cltok_]
    regex: 'cltok_[a-z0-9]{20}'
    description: A made-up token for the runner tests.
    examples:
      match:
        - text: 'TOKEN=cltok_abcdefghij0123456789'
          secret: 'cltok_abcdefghij0123456789'
        - text: 'x = "cltok_zyxwvutsrq9876543210"'
          secret: 'cltok_zyxwvutsrq9876543210'
      no_match:
        - 'cltok_short'
        - 'cltok_ABCDEFGHIJ0123456789'
"""


def load(path: Path) -> Image:
    with resolve(str(path), SourceOptions()) as source:
        return source.load()


def layers_of(path: Path) -> list[Layer]:
    seen: dict[str, Layer] = {}
    for platform in load(path).platforms:
        for layer in platform.layers:
            seen.setdefault(layer.digest, layer)
    return list(seen.values())


def spec(reveal: bool = False) -> DetectionSpec:
    return DetectionSpec((), SignatureSet.load(()).digest, reveal)


def key(result: LayerResult) -> tuple[object, ...]:
    return (
        result.digest,
        sorted((f.rule_id, f.location.path, f.match, f.secret_hash) for f in result.findings),
        result.index.to_json(),
        result.problems,
        result.error,
        result.entries,
        result.uncompressed_bytes,
    )


def test_pool_equals_in_process(images: dict[str, Path]) -> None:
    layers = layers_of(images["deleted_secret"]) + layers_of(images["multiplatform"])
    here = dict(InProcessRunner(Detection(SignatureSet.load(()))).run(layers))
    with ProcessPoolRunner(spec(), jobs=2) as pool:
        there = list(pool.run(layers))
        assert len(pool.pids) == 2
    assert sorted(layer.digest for layer, _ in there) == sorted(layer.digest for layer in layers)
    for layer, result in there:
        assert key(result) == key(here[layer])


def test_wire_form_round_trips_problems_error_and_secret(images: dict[str, Path]) -> None:
    layer = layers_of(images["deleted_secret"])[1]
    result = InProcessRunner(Detection(SignatureSet.load(()), reveal=True)).run([layer])
    _, original = next(iter(result))
    original.problems.append("a hostile name")
    original.error = "layer 1: cut short"
    assert any(f.secret for f in original.findings)
    back = LayerResult.from_bytes(original.to_bytes(), layer.digest)
    assert key(back) == key(original)
    assert [f.secret for f in back.findings] == [f.secret for f in original.findings]
    assert not back.cached
    with pytest.raises(ValueError):
        LayerResult.from_bytes(original.to_bytes(), "sha256:" + "0" * 64)


def test_spec_carries_user_rules_and_checks_the_digest(tmp_path: Path) -> None:
    rules = tmp_path / "extra.yaml"
    rules.write_text(RULE)
    signatures = SignatureSet.load([rules])
    s = DetectionSpec.from_files([rules], signatures, reveal=False)
    rules.unlink()  # a remote worker never sees the client's file
    built = detection_from_spec(s)
    assert built.signatures.digest == signatures.digest
    assert built.signatures.get("cluster-test-token") is not None
    with pytest.raises(RunnerError, match="same layerleak version"):
        detection_from_spec(replace(s, digest="sha256:" + "1" * 64))


@dataclass(frozen=True)
class KillingOpener(BlobOpener):
    """Kills the process that opens it, unless that is ``parent`` (then leaves a mark)."""

    inner: BlobOpener
    parent: int
    mark: str

    def open(self) -> BinaryIO:
        if os.getpid() != self.parent:
            os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer does
        Path(self.mark).write_text("scanned again in the parent")
        return self.inner.open()

    def describe(self) -> str:
        return "a layer whose worker is killed"


def test_worker_killed_mid_layer_is_a_problem_for_that_layer_only(
    images: dict[str, Path], tmp_path: Path
) -> None:
    layers = layers_of(images["deleted_secret"])
    mark = tmp_path / "mark"
    doomed = replace(layers[1], opener=KillingOpener(layers[1].opener, os.getpid(), str(mark)))
    todo = [layers[0], doomed, *layers[2:]]
    with ProcessPoolRunner(spec(), jobs=2) as pool:
        results = dict((layer.digest, result) for layer, result in pool.run(todo))
        assert pool.deaths == 1
        # The pool goes on with a fresh worker: a second run works.
        again = list(pool.run(layers[:1]))
    assert again[0][1].complete
    assert set(results) == {layer.digest for layer in layers}
    bad = results[doomed.digest]
    assert bad.error is not None and "SIGKILL" in bad.error and "layer 1" in bad.error
    assert all(results[layer.digest].complete for layer in todo if layer is not doomed)
    assert not mark.exists()  # never a second attempt in the parent


def test_killed_worker_makes_the_scan_incomplete(images: dict[str, Path], tmp_path: Path) -> None:
    """Through the Scanner: the report has the problem (exit 3), the other findings stay."""
    image = load(images["deleted_secret"])
    mark = tmp_path / "mark"
    platform = image.platforms[0]
    victim = platform.layers[2]
    platform.layers[2] = replace(
        victim, opener=KillingOpener(victim.opener, os.getpid(), str(mark))
    )
    with Scanner(ScanOptions(use_cache=False, jobs=2)) as scanner:
        scanner._scan_layers(list(platform.layers))
        result = scanner._scan_image(image)
    assert [p.layer_index for p in result.problems] == [2]
    assert "died" in result.problems[0].message
    assert any(f.location.path == "app/secrets/id_rsa" for f in result.findings)
    assert scanner.stats.failed == 1 and scanner.stats.scanned == len(platform.layers)
    assert not mark.exists()


def test_death_message_names_the_signal() -> None:
    assert "SIGKILL" in death_message(-9) and "out-of-memory" in death_message(-9)
    assert "SIGSEGV" in death_message(-11)
    assert "exit status 3" in death_message(3)


def test_a_lone_layer_also_runs_in_a_worker(images: dict[str, Path], tmp_path: Path) -> None:
    """One layer left to scan still goes to a worker: its death is that layer's error."""
    layer = layers_of(images["deleted_secret"])[0]
    mark = tmp_path / "mark"
    victim = replace(layer, opener=KillingOpener(layer.opener, os.getpid(), str(mark)))
    with Scanner(ScanOptions(use_cache=False, jobs=2)) as scanner:
        scanner._scan_layers([victim])
        result = scanner._layers[victim.digest]
    assert result.error is not None and "SIGKILL" in result.error
    assert not mark.exists()


def test_pool_builds_the_engine_once_before_it_forks(images: dict[str, Path]) -> None:
    """The engine is built on first use; a pool builds it in the parent before its first
    fork, so that workers share it instead of each building its own. Rule regexes stay
    compiled on first use, in the worker that runs them."""
    signatures = signatures_module._builtin.__wrapped__()  # fresh: nothing compiled yet
    detection = Detection(signatures)
    assert "engine" not in detection.__dict__
    assert not any("regex" in rule.__dict__ for rule in signatures.rules)
    layers = layers_of(images["deleted_secret"])
    with ProcessPoolRunner(DetectionSpec((), signatures.digest), jobs=1, inherit=detection) as pool:
        results = list(pool.run(layers))
    assert len(results) == len(layers) and all(r.error is None for _, r in results)
    assert any(r.findings for _, r in results)
    assert "engine" in detection.__dict__  # the parent scanned nothing: built for the fork
    assert not any("regex" in rule.__dict__ for rule in signatures.rules)

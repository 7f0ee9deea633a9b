"""The layer runner seam: how the layer blobs of a scan are scanned.

A :class:`LayerRunner` is given layers and yields ``(layer, LayerResult)`` as each one
completes, in whatever order they finish. What it needs to build the detection is a
:class:`DetectionSpec`: a small, picklable description (the user's rule files as text,
the digest of the whole signature set, and ``reveal``). A worker builds its
:class:`Detection` from the spec once and keeps it for every later layer; nothing is
put in a module global before a fork.

Implementations, one module each: :mod:`.inprocess` (here, one layer after another),
:mod:`.pool` (local worker processes, the default) and :mod:`.cluster` (a Dask cluster).
A layer that could not be scanned is a result with ``error`` set, never an exception
and never lost.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from scanner.archives.limits import DEFAULT_LIMITS, ArchiveLimits
from scanner.deadline import NO_DEADLINE, Deadline
from scanner.detection import Detection
from scanner.errors import LayerleakError
from scanner.image import Layer
from scanner.layers import LayerIndex
from scanner.results import LayerResult
from scanner.signatures import SignatureSet

GRACE = 5.0  # seconds a worker gets after the deadline to report what it found


class RunnerError(LayerleakError):
    """A runner could not be set up (bad --cluster address, missing extra...)."""


@dataclass(frozen=True)
class DetectionSpec:
    """What a worker needs to rebuild the scan's detection, and nothing more.

    ``rule_files`` holds the user's extra rule files as ``(name, text)`` pairs (the
    built-in rules ship with the package), so a worker on another machine needs no
    access to the client's files; ``digest`` is the whole signature set's digest, which
    the worker checks after loading (a worker with other built-in rules refuses).
    """

    rule_files: tuple[tuple[str, str], ...]
    digest: str
    reveal: bool = False
    archive_limits: ArchiveLimits = DEFAULT_LIMITS
    # The fingerprint key: a worker elsewhere must hash secrets as the client does
    # (None: the worker's own installation key, which would not match).
    hash_key: bytes | None = None

    @classmethod
    def from_files(
        cls,
        files: Sequence[Path],
        signatures: SignatureSet,
        reveal: bool,
        archive_limits: ArchiveLimits = DEFAULT_LIMITS,
        hash_key: bytes | None = None,
    ) -> DetectionSpec:
        texts: list[tuple[str, str]] = []
        for path in files:
            items = sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
            for item in items:
                try:
                    texts.append((item.name, item.read_text(encoding="utf-8")))
                except OSError as exc:
                    raise RunnerError(f"{item}: cannot read rule file: {exc.strerror}") from None
        return cls(tuple(texts), signatures.digest, reveal, archive_limits, hash_key)


class LayerRunner(ABC):
    """Scans layers; a context manager that releases its workers on exit."""

    name: str = "?"

    @abstractmethod
    def run(
        self, layers: Sequence[Layer], deadline: Deadline = NO_DEADLINE, *, grace: float = GRACE
    ) -> Iterator[tuple[Layer, LayerResult]]:
        """Yield each layer with its result as it completes (every layer exactly once).

        Workers stop at the run's ``deadline`` themselves (it is checked per read and per
        entry); one that has not answered ``grace`` seconds after it is stopped, and its
        layer is an error (see :func:`stopped_result`).
        """

    def accepts(self, layer: Layer) -> bool:
        """True when this runner can scan ``layer`` (a cluster only reaches some blobs)."""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop workers (cancelling what is still running)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def failed_result(layer: Layer, message: str) -> LayerResult:
    """The result of a layer that a worker could not scan at all."""
    from scanner.layer_scan import layer_label

    return LayerResult(layer.digest, [], LayerIndex(), error=f"{layer_label(layer)}: {message}")


def stopped_result(layer: Layer, deadline: Deadline) -> LayerResult:
    """The result of a layer whose worker did not come back after the deadline."""
    return failed_result(
        layer, f"stopped: {deadline.label} passed (the worker scanning it did not finish)"
    )


def wait_limit(deadline: Deadline, grace: float) -> float | None:
    """How long to wait for workers: until the deadline and then ``grace`` (they stop
    themselves at their next read or entry); no limit without a deadline."""
    if deadline.at is None:
        return None
    return max(deadline.at + grace - time.time(), 0.0)


def detection_from_spec(spec: DetectionSpec) -> Detection:
    """Build the detection a spec describes; RunnerError when its digest differs."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="layerleak-rules-") as tmp:
        paths = []
        for i, (name, text) in enumerate(spec.rule_files):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            path = folder / Path(name).name
            path.write_text(text, encoding="utf-8")
            paths.append(path)
        signatures = SignatureSet.load(paths)
    if signatures.digest != spec.digest:
        raise RunnerError(
            f"this worker's signature set is {signatures.digest[:19]}, the client's is "
            f"{spec.digest[:19]}: install the same layerleak version on every worker"
        )
    return Detection(
        signatures,
        reveal=spec.reveal,
        archive_limits=spec.archive_limits,
        hash_key=spec.hash_key,
    )

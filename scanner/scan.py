"""The engine: ``Scanner(options).scan(source)`` -> :class:`ImageResult`.

Reads the image through its source, scans each distinct layer blob once with the
file analyzers, places the layer findings in each platform (position, build step,
forensic status), runs the image analyzers on config and history, and records
everything that could not be scanned as a problem.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from scanner import dpkg
from scanner.analyzers.builtin import IMAGE_ANALYZERS, analyzers_version
from scanner.analyzers.content_secrets import lowered
from scanner.analyzers.interface import ImageContext
from scanner.archives import DEFAULT_LIMITS, ArchiveLimits
from scanner.cache import LayerCache, default_cache_dir
from scanner.deadline import NO_DEADLINE, Deadline
from scanner.detection import Detection
from scanner.errors import LayerleakError
from scanner.findings import FileState, Finding, LocationKind, Severity, Status
from scanner.forensics import reachable_status
from scanner.image import Image, Layer, PlatformImage
from scanner.layer_scan import layer_label, place_layer_findings, scan_layer
from scanner.layers import LayerIndex
from scanner.results import (
    ImageResult,
    LayerResult,
    LayerSummary,
    PlatformResult,
    Report,
    ScanProblem,
)
from scanner.signatures import SignatureSet
from scanner.sources.interface import SourceOptions
from scanner.sources.resolve import resolve


@dataclass(frozen=True)
class ScanOptions:
    source: SourceOptions = field(default_factory=SourceOptions)
    reveal: bool = False
    fail_on: Severity = Severity.HIGH
    dockerfile: Path | None = None
    rules: tuple[Path, ...] = ()
    jobs: int = 0  # worker processes for layers; 0 = default_jobs()
    use_cache: bool = True
    cache_dir: Path | None = None  # default: the user cache directory
    archive_limits: ArchiveLimits = DEFAULT_LIMITS  # nested archives: per file, layer, image


@dataclass(frozen=True)
class Progress:
    """Reported after each layer: for progress bars."""

    layers_done: int
    layers_total: int
    bytes_done: int
    bytes_total: int
    findings: int


ProgressCallback = Callable[[Progress], None]


def default_jobs() -> int:
    """One worker more than the cores.

    Layers cost very different amounts of CPU per byte (thousands of small files
    against a few large ones), so with one worker per core the last layer often runs
    alone; an extra worker lets the operating system keep every core busy. Measured
    on 2 cores: 3 workers scan the benchmark image 12% faster than 2.
    """
    return (os.cpu_count() or 1) + 1


WORKER_GRACE = 5.0  # seconds a worker gets after the deadline to report what it found

# The detection a forked worker inherits from its parent (set just before the fork).
_WORKER_DETECTION: Detection | None = None


def _worker_scan(layer: Layer, deadline: Deadline = NO_DEADLINE) -> LayerResult:
    assert _WORKER_DETECTION is not None, "worker started without a detection"
    return scan_layer(layer, _WORKER_DETECTION, deadline=deadline)


class Scanner:
    def __init__(
        self,
        options: ScanOptions,
        detection: Detection | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.options = options
        self.detection = detection or Detection(
            SignatureSet.load(options.rules),
            reveal=options.reveal,
            archive_limits=options.archive_limits,
        )
        self._layers: dict[str, LayerResult] = {}  # by blob digest, for this run
        self._context = self._image_context()
        self._progress = progress
        self._pool: ProcessPoolExecutor | None = None
        self.jobs = options.jobs if options.jobs > 0 else default_jobs()
        self.cache: LayerCache | None = None
        if options.use_cache and not options.reveal:
            self.cache = LayerCache(
                options.cache_dir or default_cache_dir(),
                self.detection.signatures.digest,
                analyzers_version(),
            )

    def __enter__(self) -> Scanner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _image_context(self) -> ImageContext:
        path = self.options.dockerfile
        if path is None:
            return ImageContext()
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise LayerleakError(f"--dockerfile {path}: {exc.strerror or exc}") from None
        return ImageContext(dockerfile=text, dockerfile_name=path.name)

    def scan_all(self, sources: Iterable[str]) -> Report:
        report = Report(
            images=[result for s in sources for result in self.scan_source(s)],
            fail_on=self.options.fail_on,
            reveal=self.options.reveal,
        )
        self.close()
        return report

    @property
    def deadline(self) -> Deadline:
        return self.options.source.deadline

    def scan(self, source_text: str) -> ImageResult:
        """One image (a source holding several is an error naming them)."""
        return self._scan(source_text, every=False)[0]

    def scan_source(self, source_text: str) -> list[ImageResult]:
        """Every image of a source: several for a ``docker save A B`` archive."""
        return self._scan(source_text, every=True)

    def _scan(self, source_text: str, every: bool) -> list[ImageResult]:
        results = self._scan_results(source_text, every)
        for result in results:
            result.rules_digest = self.detection.signatures.digest
        return results

    def _scan_results(self, source_text: str, every: bool) -> list[ImageResult]:
        if self.deadline.expired():
            return [
                _failed(
                    source_text, "?", f"{source_text}: not scanned: {self.deadline.label} passed"
                )
            ]
        try:
            source = resolve(source_text, self.options.source)
        except LayerleakError as exc:
            return [_failed(source_text, "?", str(exc))]
        with source:
            try:
                images = source.load_all() if every else [source.load()]
            except LayerleakError as exc:
                return [_failed(source_text, source.kind, str(exc))]
            return [self._scan_image(image) for image in images]

    def _scan_image(self, image: Image) -> ImageResult:
        result = ImageResult(
            name=image.name,
            source_kind=image.source_kind,
            index_digest=image.index_digest,
            tags=list(image.tags),
        )
        result.problems += [ScanProblem(image.name, None, None, p) for p in image.problems]
        todo: dict[str, Layer] = {}
        for platform in image.platforms:
            for layer in platform.layers:
                if layer.digest not in self._layers:
                    todo.setdefault(layer.digest, layer)
        self.detection.archive_usage.reset()  # the archive budget per image starts here
        self._scan_layers(list(todo.values()))
        for platform in image.platforms:
            self._scan_platform(image, platform, result)
        result.findings = sorted(result.findings, key=_order)
        return result

    def _scan_platform(self, image: Image, platform: PlatformImage, result: ImageResult) -> None:
        name = str(platform.platform)
        summary = PlatformResult(name, platform.manifest_digest, platform.config_digest)
        result.platforms.append(summary)
        layer_results = [self._layers[layer.digest] for layer in platform.layers]
        indexes = [r.index for r in layer_results]
        conffiles = installed_conffiles(indexes)
        for layer, lr in zip(platform.layers, layer_results, strict=True):
            created_by = self.detection.redact_text(layer.created_by or "") or None
            placed = place_layer_findings(lr.findings, layer, created_by)
            for finding in placed:
                status = (
                    reachable_status(
                        finding.location.path,
                        layer.index,
                        indexes,
                        finding.location.occurrence or 1,
                    )
                    if finding.location.path is not None
                    else Status(FileState.NOT_A_FILE)
                )
                if finding.location.path is not None and conffiles:
                    md5 = lr.index.md5.get(finding.location.path)
                    finding = lowered(
                        finding, dpkg.shipped_unmodified(finding.location.path, md5, conffiles)
                    )
                result.findings.append(finding.placed(image.name, name, status))
            for problem in lr.problems:
                result.problems.append(ScanProblem(image.name, name, layer.index, problem))
            if lr.error:
                result.problems.append(ScanProblem(image.name, name, layer.index, lr.error))
            summary.layers.append(
                LayerSummary(
                    index=layer.index,
                    digest=layer.digest,
                    diff_id=layer.diff_id,
                    media_type=layer.media_type,
                    created_by=created_by,
                    history_index=layer.history.index if layer.history else None,
                    compression=lr.compression,
                    entries=lr.entries,
                    compressed_bytes=lr.compressed_bytes,
                    uncompressed_bytes=lr.uncompressed_bytes,
                    findings=len(placed),
                    cached=lr.cached,
                    error=lr.error,
                )
            )
        for cls in IMAGE_ANALYZERS:
            analyzer = cls(self.detection)
            try:
                found = list(analyzer.analyze(image, platform, self._context))
            except LayerleakError as exc:
                result.problems.append(
                    ScanProblem(image.name, name, None, f"analyzer {cls.id}: {exc}")
                )
                continue
            for finding in found:
                status = Status(FileState.NOT_A_FILE)
                result.findings.append(finding.placed(image.name, name, status))

    def _scan_layers(self, layers: list[Layer]) -> None:
        """Scan each layer blob once: from the cache, in worker processes, or here."""
        total_bytes = sum(layer.size or 0 for layer in layers)
        done = [0, 0, 0]  # layers, bytes, findings

        def record(layer: Layer, result: LayerResult) -> None:
            self._layers[layer.digest] = result
            if self.cache is not None and not result.cached:
                self.cache.put(result)
            done[0] += 1
            done[1] += layer.size or result.compressed_bytes
            done[2] += len(result.findings)
            if self._progress is not None:
                self._progress(Progress(done[0], len(layers), done[1], total_bytes, done[2]))

        remaining = []
        for layer in layers:
            cached = self.cache.get(layer.digest) if self.cache is not None else None
            if cached is not None:
                record(layer, cached)
            else:
                remaining.append(layer)
        remaining.sort(key=lambda layer: layer.size or 0, reverse=True)
        deadline = self.deadline
        if self.jobs <= 1 or len(remaining) <= 1:
            for layer in remaining:
                record(layer, scan_layer(layer, self.detection, deadline=deadline))
            return
        pool = self._get_pool()
        futures: dict[Future[LayerResult], Layer] = {
            pool.submit(_worker_scan, layer, deadline): layer for layer in remaining
        }
        stuck = False
        for future, layer in futures.items():
            try:
                result = future.result(timeout=_grace(deadline))
            except BrokenProcessPool:
                self._pool = None
                result = scan_layer(layer, self.detection, deadline=deadline)  # finish here
            except FutureTimeout:
                # The worker checks the deadline itself; one that does not come back soon
                # after it is stuck in something that does not read (it is stopped below).
                stuck = True
                result = LayerResult(
                    layer.digest,
                    [],
                    LayerIndex(),
                    error=f"{layer_label(layer)}: stopped: {deadline.label} passed "
                    "(the worker scanning it did not finish)",
                )
            record(layer, result)
        if stuck:
            self._kill_pool()

    def _kill_pool(self) -> None:
        """Stop the workers now (one is stuck past the deadline); a new pool is made if needed."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list(getattr(pool, "_processes", {}).values())
        for process in processes:
            process.kill()
        pool.shutdown(wait=True, cancel_futures=True)

    def _get_pool(self) -> ProcessPoolExecutor:
        global _WORKER_DETECTION
        if self._pool is None:
            _WORKER_DETECTION = self.detection
            self._pool = ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=multiprocessing.get_context("fork")
            )
        return self._pool


def installed_conffiles(indexes: list[LayerIndex]) -> dict[str, dpkg.Conffile]:
    """The conffiles of the dpkg status file in the final filesystem (the topmost
    layer that wrote one), or none when a layer above deleted it."""
    for position in range(len(indexes) - 1, -1, -1):
        if dpkg.STATUS_PATH in indexes[position].added:
            status = reachable_status(dpkg.STATUS_PATH, position, indexes)
            return indexes[position].conffiles if status.state is FileState.PRESENT else {}
    return {}


def _grace(deadline: Deadline) -> float | None:
    """How long to wait for a worker: until the deadline and then a little (it stops
    itself at its next read or entry); no limit without a deadline."""
    left = deadline.remaining()
    return None if left is None else left + WORKER_GRACE


def _failed(name: str, kind: str, message: str) -> ImageResult:
    result = ImageResult(name=name, source_kind=kind)
    result.problems.append(ScanProblem(name, None, None, message))
    return result


def _order(f: Finding) -> tuple[str, int, int, str, str]:
    loc = f.location
    layer = loc.layer_index if loc.layer_index is not None else -1
    kind_rank = 0 if loc.kind is LocationKind.FILE else 1
    return (f.platform, layer, kind_rank, loc.display_path(), f.rule_id)

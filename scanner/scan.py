"""The engine: ``Scanner(options).scan(source)`` -> :class:`ImageResult`.

Reads the image through its source, scans each distinct layer blob once with the
file analyzers, places the layer findings in each platform (position, build step,
forensic status), runs the image analyzers on config and history, and records
everything that could not be scanned as a problem.

The analyzers (and through them the secret engine and detect-secrets) are imported
by the methods that run them: every command imports this module for
:class:`ScanOptions`, and ``--version`` or ``--help`` should not pay for them.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

from scanner import dpkg
from scanner.analyzers.interface import ImageContext
from scanner.archives import DEFAULT_LIMITS, ArchiveLimits
from scanner.cachebackends import DEFAULT_EXPIRY, CacheBackend, open_backend
from scanner.deadline import Deadline
from scanner.detection import Detection
from scanner.errors import LayerleakError
from scanner.findings import FileState, Finding, LocationKind, Severity, Status
from scanner.forensics import reachable_status
from scanner.image import Image, Layer, PlatformImage
from scanner.layers import LayerIndex
from scanner.results import (
    ImageResult,
    LayerResult,
    LayerSummary,
    PlatformResult,
    Report,
    ScanProblem,
)
from scanner.runners import (
    ClusterOptions,
    DaskRunner,
    DetectionSpec,
    InProcessRunner,
    LayerRunner,
    ProcessPoolRunner,
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
    fingerprint_key: bytes | None = None  # default: the installation's (scanner.keys)
    archive_limits: ArchiveLimits = DEFAULT_LIMITS  # nested archives: per file, layer, image
    cache_backend: str | None = None  # --cache-backend: None = the directory
    cache_expiry: float = DEFAULT_EXPIRY  # seconds; 0 = for ever
    cluster: ClusterOptions | None = None  # --cluster: layers scanned on a Dask cluster


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


# Images loaded (manifests and configs) before their layers are fanned out together.
BATCH_IMAGES = 32


@dataclass
class LayerStats:
    """How this run's distinct layer blobs were obtained."""

    scanned: int = 0  # by a runner (here, a local worker or a cluster worker)
    reused: int = 0  # from a cache (this client's or, on a cluster, the shared one)
    failed: int = 0  # ended with an error
    bytes_scanned: int = 0  # compressed bytes of the scanned layers

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


WORKER_GRACE = 5.0  # seconds a worker gets after the deadline to report what it found


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
            hash_key=options.fingerprint_key,
            archive_limits=options.archive_limits,
        )
        self._layers: dict[str, LayerResult] = {}  # by blob digest, for this run
        self._context = self._image_context()
        self._progress = progress
        self._owner = True  # False for a sibling: it shares runners and cache, never closes them
        self.jobs = options.jobs if options.jobs > 0 else default_jobs()
        self.stats = LayerStats()
        self.cache: CacheBackend | None = None
        if options.use_cache and not self.detection.reveal:
            from scanner.analyzers.builtin import analyzers_version

            self.cache = open_backend(
                options.cache_backend,
                self.detection.signatures.digest,
                # entries hold keyed secret hashes: another key, another entry
                f"{analyzers_version()}\x1fkey:{self.detection.key_id}",
                directory=options.cache_dir,
                expiry=options.cache_expiry,
            )
        spec = DetectionSpec.from_files(
            options.rules,
            self.detection.signatures,
            self.detection.reveal,
            self.detection.archive_limits,
            self.detection.key,
        )
        self._here = InProcessRunner(self.detection)
        self._local: LayerRunner = (
            ProcessPoolRunner(spec, self.jobs, self.detection.archive_usage, self.detection)
            if self.jobs > 1
            else self._here
        )
        self._remote: DaskRunner | None = None
        if options.cluster is not None:
            shared = self.cache.spec() if self.cache is not None and self.cache.shared else None
            self._remote = DaskRunner(options.cluster, spec, shared)

    def __enter__(self) -> Scanner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception):
            stop_workers()  # Ctrl-C, SIGTERM: do not wait for the layers in progress
        self.close()

    def sibling(self, source: SourceOptions) -> Scanner:
        """A scanner with other source options (another registry credential) sharing
        this one's detection, runners, cache, statistics and scanned layers."""
        other = copy.copy(self)
        other.options = replace(self.options, source=source)
        other._owner = False
        return other

    def close(self) -> None:
        if not self._owner:
            return
        for runner in (self._local, self._remote):
            if runner is not None:
                runner.close()
        if self.cache is not None:
            self.cache.close()

    @property
    def notes(self) -> list[str]:
        """Things the user should know about how the run went (for standard error)."""
        notes = list(self._remote.notes) if self._remote is not None else []
        if self.cache is not None and self.cache.broken is not None:
            notes.append(self.cache.broken)
        return notes

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
        try:
            images = self.scan_many(list(sources), every=True)
        except BaseException:  # Ctrl-C, SIGTERM: stop the workers now, then release
            stop_workers()
            self.close()
            raise
        self.close()
        return Report(images=images, fail_on=self.options.fail_on, reveal=self.options.reveal)

    @property
    def deadline(self) -> Deadline:
        return self.options.source.deadline

    def scan(self, source_text: str) -> ImageResult:
        """One image (a source holding several is an error naming them)."""
        return self.scan_many([source_text])[0]

    def scan_source(self, source_text: str) -> list[ImageResult]:
        """Every image of a source: several for a ``docker save A B`` archive."""
        return self.scan_many([source_text], every=True)

    def scan_many(self, sources: list[str], every: bool = False) -> list[ImageResult]:
        """Scan several sources: one image each, or with ``every`` every image of each
        (the results of a source holding several images then follow each other).

        Sources are loaded (manifests and configs) in batches of :data:`BATCH_IMAGES`;
        with a cluster, every layer blob of a batch not seen before in this run goes to
        it at once, so it has a whole batch's layers to spread over its workers. Layers
        scanned here go image by image (the archive budget is per image).
        """
        results: list[ImageResult] = []
        for start in range(0, len(sources), BATCH_IMAGES):
            results.extend(self._scan_batch(sources[start : start + BATCH_IMAGES], every))
        for result in results:
            result.rules_digest = self.detection.signatures.digest
            result.problems = [
                replace(p, message=self.detection.redact_text(p.message)) for p in result.problems
            ]
        return results

    def _not_scanned(self, source_text: str) -> ImageResult:
        return _failed(
            source_text, "?", f"{source_text}: not scanned: {self.deadline.label} passed"
        )

    def _scan_batch(self, sources: list[str], every: bool) -> list[ImageResult]:
        loaded: list[Image | ImageResult] = []
        with ExitStack() as stack:
            for source_text in sources:
                if self.deadline.expired():
                    loaded.append(self._not_scanned(source_text))
                    continue
                try:
                    source = resolve(source_text, self.options.source)
                except LayerleakError as exc:
                    loaded.append(_failed(source_text, "?", str(exc)))
                    continue
                except Exception as exc:  # a hostile input must not end the run
                    message = self._unexpected(exc, f"{source_text}: reading the image")
                    loaded.append(_failed(source_text, "?", message))
                    continue
                stack.enter_context(source)
                try:
                    loaded.extend(source.load_all() if every else [source.load()])
                except LayerleakError as exc:
                    loaded.append(_failed(source_text, source.kind, str(exc)))
                except Exception as exc:  # wrong JSON types, RecursionError, UnicodeError...
                    message = self._unexpected(exc, f"{source_text}: reading the image")
                    loaded.append(_failed(source_text, source.kind, message))
            remote = self._remote
            if remote is not None:
                todo: dict[str, Layer] = {}
                for image in loaded:
                    if isinstance(image, Image):
                        for platform in image.platforms:
                            for layer in platform.layers:
                                if layer.digest not in self._layers and remote.accepts(layer):
                                    todo.setdefault(layer.digest, layer)
                self._scan_layers(list(todo.values()))
            return [
                item if isinstance(item, ImageResult) else self._scan_isolated(item)
                for item in loaded
            ]

    def _scan_isolated(self, image: Image) -> ImageResult:
        """:meth:`_scan_image`; an unexpected error is a problem of this image only, and
        what was found before it is kept."""
        partial: list[ImageResult] = []
        try:
            return self._scan_image(image, partial)
        except Exception as exc:
            message = self._unexpected(exc, f"{image.name}: scanning the image")
            result = partial[0] if partial else ImageResult(image.name, image.source_kind)
            result.problems.append(ScanProblem(image.name, None, None, message))
            return result

    def _unexpected(self, exc: BaseException, what: str) -> str:
        """The message of an unexpected error: named, never raw (it may quote a secret)."""
        detail = self.detection.redact_text(str(exc))[:300]
        return f"{what} failed: unexpected {type(exc).__name__} ({detail})"

    def _scan_image(self, image: Image, partial: list[ImageResult] | None = None) -> ImageResult:
        result = ImageResult(
            name=image.name,
            source_kind=image.source_kind,
            index_digest=image.index_digest,
            tags=list(image.tags),
        )
        if partial is not None:
            partial.append(result)
        result.problems += [ScanProblem(image.name, None, None, p) for p in image.problems]
        todo: dict[str, Layer] = {}
        for platform in image.platforms:
            for layer in platform.layers:
                if layer.digest not in self._layers:
                    todo.setdefault(layer.digest, layer)
        self.detection.archive_usage.reset()  # the archive budget per image starts here
        self._scan_layers(list(todo.values()))
        for platform in image.platforms:
            try:
                self._scan_platform(image, platform, result)
            except Exception as exc:
                message = self._unexpected(exc, f"{image.name} {platform.platform}")
                result.problems.append(
                    ScanProblem(image.name, str(platform.platform), None, message)
                )
        result.findings = sorted(result.findings, key=_order)
        return result

    def _scan_platform(self, image: Image, platform: PlatformImage, result: ImageResult) -> None:
        from scanner.analyzers.builtin import IMAGE_ANALYZERS
        from scanner.analyzers.content_secrets import lowered
        from scanner.analyzers.history import redact_step
        from scanner.layer_scan import place_layer_findings

        name = str(platform.platform)
        summary = PlatformResult(name, platform.manifest_digest, platform.config_digest)
        result.platforms.append(summary)
        layer_results = [self._layers[layer.digest] for layer in platform.layers]
        indexes = [r.index for r in layer_results]
        conffiles = installed_conffiles(indexes)
        for layer, lr in zip(platform.layers, layer_results, strict=True):
            created_by = redact_step(self.detection, layer.created_by) or None
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
            except Exception as exc:
                message = self._unexpected(exc, f"analyzer {cls.id}")
                result.problems.append(ScanProblem(image.name, name, None, message))
                continue
            for finding in found:
                status = Status(FileState.NOT_A_FILE)
                result.findings.append(finding.placed(image.name, name, status))

    def _scan_layers(self, layers: list[Layer]) -> None:
        """Scan each layer blob once: from the cache, on a cluster, in workers, or here."""
        if not layers:
            return
        total_bytes = sum(layer.size or 0 for layer in layers)
        done = [0, 0, 0]  # layers, bytes, findings

        def record(layer: Layer, result: LayerResult, remote: bool = False) -> None:
            self._layers[layer.digest] = result
            if result.cached:
                self.stats.reused += 1
            else:
                self.stats.scanned += 1
                self.stats.bytes_scanned += result.compressed_bytes or layer.size or 0
                # A cluster worker given the shared cache wrote the entry itself.
                worker_wrote = remote and self._remote is not None and self._remote.cache_spec
                if self.cache is not None and not worker_wrote:
                    self.cache.put(result)
            if result.error is not None:
                self.stats.failed += 1
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
        remote = self._remote
        if remote is not None:
            sent = [layer for layer in remaining if remote.accepts(layer)]
            remaining = [layer for layer in remaining if not remote.accepts(layer)]
            for layer, result in remote.run(sent, deadline, grace=WORKER_GRACE):
                record(layer, result, remote=True)
        # Even a single layer goes to a worker process when there are workers: a layer
        # that gets its process killed (out of memory) must not take the run with it.
        for layer, result in self._local.run(remaining, deadline, grace=WORKER_GRACE):
            record(layer, result)


def installed_conffiles(indexes: list[LayerIndex]) -> dict[str, dpkg.Conffile]:
    """The conffiles of the dpkg status file in the final filesystem (the topmost
    layer that wrote one), or none when a layer above deleted it."""
    for position in range(len(indexes) - 1, -1, -1):
        if dpkg.STATUS_PATH in indexes[position].added:
            status = reachable_status(dpkg.STATUS_PATH, position, indexes)
            return indexes[position].conffiles if status.state is FileState.PRESENT else {}
    return {}


def stop_workers() -> None:
    """Stop this process's worker processes at once (Ctrl-C or SIGTERM: nothing more
    will be reported, so the layers they are scanning are not waited for)."""
    for child in multiprocessing.active_children():
        child.terminate()


def _failed(name: str, kind: str, message: str) -> ImageResult:
    result = ImageResult(name=name, source_kind=kind)
    result.problems.append(ScanProblem(name, None, None, message))
    return result


def _order(f: Finding) -> tuple[str, int, int, str, str]:
    loc = f.location
    layer = loc.layer_index if loc.layer_index is not None else -1
    kind_rank = 0 if loc.kind is LocationKind.FILE else 1
    return (f.platform, layer, kind_rank, loc.display_path(), f.rule_id)

"""Scan one layer blob with the file analyzers.

A plain function of a :class:`Layer` and a :class:`Detection`, so that it can run
in a worker process and its result can be cached by digest. Its findings carry
the layer facts of the position it was scanned at; :func:`place_layer_findings`
moves them to wherever the same blob sits in another image.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import replace
from typing import BinaryIO, cast

from scanner import dpkg
from scanner.analyzers.builtin import FILE_ANALYZERS
from scanner.analyzers.interface import FileAnalyzer, LayerContext
from scanner.archives.limits import ArchiveBudget
from scanner.blob_limits import LimitedBlob
from scanner.deadline import NO_DEADLINE, Deadline, DeadlineExceeded
from scanner.detection import Detection
from scanner.errors import DigestMismatch, LayerError, RegistryError, SourceError
from scanner.findings import Finding
from scanner.image import Layer
from scanner.layers import EntryKind, FileInfo, LayerIndex, LayerReader
from scanner.memory import return_large_buffers
from scanner.results import LayerResult
from scanner.streams import read_up_to

# A file wanted by several content analyzers is read once into memory up to this size;
# a larger one is streamed to the first analyzer only, the others get no content.
SHARED_CONTENT_LIMIT = 16 << 20


def layer_label(layer: Layer) -> str:
    return f"layer {layer.index} ({layer.digest[:19]})"


def scan_layer(
    layer: Layer,
    detection: Detection,
    analyzers: Sequence[FileAnalyzer] | None = None,
    deadline: Deadline = NO_DEADLINE,
) -> LayerResult:
    """Walk one layer blob; ``deadline`` is the run's (checked per read and per entry)."""
    return_large_buffers()  # once per process: a large file's buffer is not kept after it
    if analyzers is None:
        analyzers = [cls(detection) for cls in FILE_ANALYZERS]
    budget = ArchiveBudget(detection.archive_limits, detection.archive_usage)
    context = LayerContext(layer.index, layer.digest, layer.diff_id, None, None, budget)
    label = layer_label(layer)
    findings: list[Finding] = []
    try:
        deadline.check(f"{label}: not scanned")
        raw = LimitedBlob(layer.opener.open(), label, layer.size, deadline)
    except (SourceError, OSError, DeadlineExceeded) as exc:
        return LayerResult(layer.digest, [], LayerIndex(), error=f"{label}: {exc}")
    reader: LayerReader | None = None
    error = None
    try:
        reader = LayerReader(
            cast(BinaryIO, raw), what=label, digest=layer.digest, diff_id=layer.diff_id
        )
        for info, content in reader:
            if raw.failure is not None:
                raise raw.failure  # swallowed by a reader on the way: still the end
            deadline.check(f"{label}: at /{info.path}, after {reader.entries} entries")
            kept = _kept_for_dpkg(info, content)
            if kept is not None:
                content = io.BytesIO(kept)
                if info.path == dpkg.STATUS_PATH:
                    reader.index.conffiles = dpkg.parse_status(kept)
            wanted = [a for a in analyzers if a.required(info)]
            if not wanted:
                continue
            first = len(findings)
            readers = [a for a in wanted if a.needs_content]
            for analyzer in wanted:
                if not analyzer.needs_content:
                    findings.extend(analyzer.analyze(info, None, context))
            if len(readers) == 1 or (readers and content is None):
                findings.extend(readers[0].analyze(info, content, context))
            elif readers and content is not None and info.size > SHARED_CONTENT_LIMIT:
                # too large to share: the stream goes to the first (the content analyzer),
                # the others are told there is no content (and say what they skipped)
                findings.extend(readers[0].analyze(info, content, context))
                for analyzer in readers[1:]:
                    findings.extend(analyzer.analyze(info, None, context))
            elif readers and content is not None:
                data = content.read(SHARED_CONTENT_LIMIT)
                for analyzer in readers:
                    findings.extend(analyzer.analyze(info, io.BytesIO(data), context))
            if kept is not None and len(findings) > first and info.path != dpkg.STATUS_PATH:
                reader.index.md5[info.path] = dpkg.md5_hex(kept)
            if info.occurrence > 1:  # a path written again in this layer: say which copy
                findings[first:] = [
                    replace(f, location=replace(f.location, occurrence=info.occurrence))
                    for f in findings[first:]
                ]
        reader.finish()
    except (LayerError, SourceError) as exc:
        cause: Exception = raw.failure or exc
        error = str(cause) if str(cause).startswith(label) else f"{label}: {cause}"
        bounded = raw.failure is not None or isinstance(cause, DeadlineExceeded | RegistryError)
        try:
            mismatch = reader.blob_mismatch() if reader is not None and not bounded else None
        except (LayerError, SourceError) as late:  # the deadline or size, while draining
            mismatch = None
            error = f"{error}; then: {late}"
        if mismatch is not None and not isinstance(cause, DigestMismatch):
            error = f"{mismatch} (so: {error.removeprefix(label + ': ')})"
    except OSError as exc:
        error = str(raw.failure) if raw.failure is not None else f"{label}: read failed ({exc})"
    except Exception as exc:  # a hostile layer must not lose what was already found
        error = f"{label}: unexpected {type(exc).__name__} while reading ({exc})"
        if raw.failure is not None:  # a decompressor wrapped it: say what really happened
            error = str(raw.failure)
    finally:
        if reader is not None:
            reader.close()
        else:
            raw.close()
    for analyzer in analyzers:  # what only the whole layer tells (even a partial one)
        findings = analyzer.finish(findings)
    if reader is None:
        return LayerResult(
            layer.digest, findings, LayerIndex(), problems=context.problems, error=error
        )
    return LayerResult(
        digest=layer.digest,
        findings=findings,
        index=reader.index,
        problems=list(reader.problems) + context.problems,
        error=error,
        entries=reader.entries,
        compressed_bytes=reader.compressed_bytes,
        uncompressed_bytes=reader.uncompressed_bytes,
        compression=reader.compression,
    )


def _kept_for_dpkg(info: FileInfo, content: BinaryIO | None) -> bytes | None:
    """The whole content of dpkg's status file and of small files under etc/ (which may
    be unmodified conffiles: see scanner.dpkg), read once here; None for other files."""
    if content is None or info.kind is not EntryKind.FILE:
        return None
    if info.path == dpkg.STATUS_PATH and info.size <= dpkg.MAX_STATUS_BYTES:
        return read_up_to(content, info.size)
    if dpkg.may_be_conffile(info.path, info.size):
        return read_up_to(content, info.size)
    return None


def place_layer_findings(
    findings: Sequence[Finding], layer: Layer, created_by: str | None
) -> list[Finding]:
    """The findings of a layer blob, with this image's position of the layer."""
    history_index = layer.history.index if layer.history else None
    return [
        replace(
            f,
            location=replace(
                f.location,
                layer_index=layer.index,
                layer_digest=layer.digest,
                diff_id=layer.diff_id,
                created_by=created_by,
                history_index=history_index,
            ),
        )
        for f in findings
    ]

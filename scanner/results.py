"""What a scan produced: per-image, per-platform, per-layer results and errors.

Something that could not be scanned is a typed entry here (a :class:`ScanProblem`),
not a crash and not silence; any problem makes the scan incomplete, and an
incomplete scan never passes a gate as clean.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from scanner.findings import Finding, Severity, Status
from scanner.layers import LayerIndex

# The version of a layer result's serialised form (the layer cache and the wire to
# workers share it; cache formats 2 to 4 came before): 5 adds problems and error, so a
# result crosses the wire whole.
LAYER_RESULT_FORMAT = 5


@dataclass(frozen=True)
class ScanProblem:
    image: str
    platform: str | None
    layer_index: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "platform": self.platform,
            "layer_index": self.layer_index,
            "message": self.message,
        }


@dataclass
class LayerResult:
    """What scanning one layer blob yielded, before it is placed in an image."""

    digest: str
    findings: list[Finding]
    index: LayerIndex
    problems: list[str] = field(default_factory=list)  # non-fatal (hostile names...)
    error: str | None = None  # the walk stopped here: the layer is incompletely scanned
    entries: int = 0
    compressed_bytes: int = 0
    uncompressed_bytes: int = 0
    compression: str = ""
    cached: bool = False

    @property
    def complete(self) -> bool:
        return self.error is None and not self.problems

    def to_doc(self) -> dict[str, Any]:
        """The serialised form as a JSON document (raw secrets kept when present:
        the cache refuses such results; the wire to a worker needs them)."""
        return {
            "format": LAYER_RESULT_FORMAT,
            "digest": self.digest,
            "findings": [f.to_dict(reveal=True) for f in self.findings],
            "index": self.index.to_json(),
            "problems": list(self.problems),
            "error": self.error,
            "entries": self.entries,
            "compressed_bytes": self.compressed_bytes,
            "uncompressed_bytes": self.uncompressed_bytes,
            "compression": self.compression,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any], digest: str, cached: bool = False) -> LayerResult:
        """Inverse of :meth:`to_doc`; ValueError/KeyError/TypeError when it is not one
        for ``digest`` in this format."""
        if doc.get("format") != LAYER_RESULT_FORMAT or doc.get("digest") != digest:
            raise ValueError("format or digest does not match")
        findings = [replace(Finding.from_dict(f), status=Status()) for f in doc["findings"]]
        problems = doc.get("problems") or []
        error = doc.get("error")
        if not isinstance(problems, list) or not (error is None or isinstance(error, str)):
            raise TypeError("problems or error of the wrong type")
        return cls(
            digest=digest,
            findings=findings,
            index=LayerIndex.from_json(doc["index"]),
            problems=[str(p) for p in problems],
            error=error,
            entries=int(doc["entries"]),
            compressed_bytes=int(doc["compressed_bytes"]),
            uncompressed_bytes=int(doc["uncompressed_bytes"]),
            compression=str(doc["compression"]),
            cached=cached,
        )

    def to_bytes(self) -> bytes:
        """The one serialised form: gzip-compressed JSON of :meth:`to_doc`."""
        return gzip.compress(json.dumps(self.to_doc()).encode(), compresslevel=5, mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes, digest: str, cached: bool = False) -> LayerResult:
        """Inverse of :meth:`to_bytes` (OSError/EOFError/ValueError/KeyError/TypeError
        when the bytes are not a result for ``digest``)."""
        return cls.from_doc(json.loads(gzip.decompress(data)), digest, cached)


@dataclass
class LayerSummary:
    index: int
    digest: str
    diff_id: str | None
    media_type: str
    created_by: str | None  # redacted
    history_index: int | None
    compression: str
    entries: int
    compressed_bytes: int
    uncompressed_bytes: int
    findings: int
    cached: bool
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PlatformResult:
    platform: str
    manifest_digest: str | None
    config_digest: str | None
    layers: list[LayerSummary] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "manifest_digest": self.manifest_digest,
            "config_digest": self.config_digest,
            "layers": [layer.to_dict() for layer in self.layers],
        }


@dataclass
class ImageResult:
    name: str
    source_kind: str
    index_digest: str | None = None
    tags: list[str] = field(default_factory=list)  # docker save's RepoTags
    platforms: list[PlatformResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    problems: list[ScanProblem] = field(default_factory=list)
    rules_digest: str | None = None  # of the signature set it was scanned with


@dataclass
class Report:
    images: list[ImageResult]
    fail_on: Severity = Severity.HIGH
    reveal: bool = False
    suppressed: Counter[str] = field(default_factory=Counter)  # reason -> count
    ignore_files: dict[str, int] = field(default_factory=dict)  # ignore file -> suppressed

    @property
    def findings(self) -> list[Finding]:
        return [f for image in self.images for f in image.findings]

    @property
    def problems(self) -> list[ScanProblem]:
        return [p for image in self.images for p in image.problems]

    @property
    def complete(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        counter = Counter(f.severity.label for f in self.findings)
        return {s.label: counter.get(s.label, 0) for s in sorted(Severity, reverse=True)}

    def failing(self) -> list[Finding]:
        return [f for f in self.findings if f.severity >= self.fail_on]

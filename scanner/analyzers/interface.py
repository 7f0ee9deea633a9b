"""The analyzer interface.

Two kinds, kept apart as in trivy's fanal: file analyzers look at one tar entry
of one layer (their results can be cached by layer digest), image analyzers look
at a platform's config, history, manifest and annotations. Each declares an ``id``
and a ``version``; the versions go into the layer cache key, so changing an
analyzer invalidates what it cached.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO, ClassVar

from scanner.archives.limits import ArchiveBudget
from scanner.detection import Detection
from scanner.findings import Finding, Location, LocationKind
from scanner.image import Image, PlatformImage
from scanner.layers import FileInfo


@dataclass(frozen=True)
class LayerContext:
    """What a file analyzer may know about the layer it is in."""

    index: int
    digest: str
    diff_id: str | None
    created_by: str | None  # redacted build step
    history_index: int | None
    # what nested archives in this layer may still cost (charged to the image too)
    archive_budget: ArchiveBudget = field(default_factory=ArchiveBudget, compare=False)
    # what a limit kept an analyzer from scanning: problems of the layer (exit 3)
    problems: list[str] = field(default_factory=list, compare=False)

    def location(
        self, path: str, *, line: int | None = None, inner_path: str | None = None
    ) -> Location:
        return Location(
            kind=LocationKind.FILE,
            layer_index=self.index,
            layer_digest=self.digest,
            diff_id=self.diff_id,
            path=path,
            inner_path=inner_path,
            line=line,
            history_index=self.history_index,
            created_by=self.created_by,
        )


@dataclass(frozen=True)
class ImageContext:
    """Inputs of image analyzers beyond the image itself."""

    dockerfile: str | None = None  # text of --dockerfile
    dockerfile_name: str | None = None


class FileAnalyzer(ABC):
    id: ClassVar[str]
    version: ClassVar[int] = 1
    needs_content: ClassVar[bool] = False

    def __init__(self, detection: Detection) -> None:
        self.detection = detection

    @abstractmethod
    def required(self, info: FileInfo) -> bool:
        """Cheap check, before any byte of the file is read."""

    @abstractmethod
    def analyze(
        self, info: FileInfo, content: BinaryIO | None, layer: LayerContext
    ) -> Iterable[Finding]:
        """Findings for one entry; ``content`` is set only for analyzers that need it."""

    def finish(self, findings: list[Finding]) -> list[Finding]:
        """After the layer's last entry: the layer's findings (all analyzers'), revised
        with what only the whole layer tells. Default: unchanged."""
        return findings


class ImageAnalyzer(ABC):
    id: ClassVar[str]
    version: ClassVar[int] = 1

    def __init__(self, detection: Detection) -> None:
        self.detection = detection

    @abstractmethod
    def analyze(
        self, image: Image, platform: PlatformImage, context: ImageContext
    ) -> Iterable[Finding]:
        """Findings from the config, history, manifest and annotations."""

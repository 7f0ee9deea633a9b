"""The shared shape of analyzers that read an environment from a structured file.

A file is picked by its name, parsed (bounded: see ``config_files``), its entries are
listed by the subclass, and each literal credential among them is reported with the
key name, the file and the line. What stops the reading (too large, too many entries,
an alias bomb) is a layer problem, never silence.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, ClassVar

from scanner.analyzers.config_files import (
    MAX_CONFIG_BYTES,
    ConfigTooLarge,
    line_of,
    literal_secret_finding,
    note_too_large,
    read_config,
)
from scanner.analyzers.content_secrets import lowered, noise_for
from scanner.analyzers.interface import FileAnalyzer, LayerContext
from scanner.findings import Finding
from scanner.layers import EntryKind, FileInfo


@dataclass(frozen=True)
class EnvironmentEntry:
    key: str
    value: object
    needle: str  # text that finds the entry's line
    title: str


class EnvironmentFileAnalyzer(FileAnalyzer):
    """Subclasses set the file name pattern, rule id, description and ``what`` (the
    part of the file named when it cannot be read), and implement parse and entries."""

    needs_content = True
    file_name: ClassVar[re.Pattern[str]]
    rule_id: ClassVar[str]
    description: ClassVar[str]
    what: ClassVar[str]

    def parse(self, data: bytes) -> Any:
        raise NotImplementedError

    def entries(self, doc: Any) -> Iterator[EnvironmentEntry]:
        raise NotImplementedError

    def required(self, info: FileInfo) -> bool:
        return (
            info.kind is EntryKind.FILE
            and info.size > 0
            and self.file_name.match(posixpath.basename(info.path)) is not None
        )

    def analyze(
        self, info: FileInfo, content: BinaryIO | None, layer: LayerContext
    ) -> Iterable[Finding]:
        if content is None or info.size > MAX_CONFIG_BYTES:
            too_large = ConfigTooLarge(f"larger than {MAX_CONFIG_BYTES >> 20} MB")
            note_too_large(layer, info.path, too_large, self.what)
            return []
        data = read_config(content)
        try:
            entries = list(self.entries(self.parse(data)))
        except ConfigTooLarge as exc:
            note_too_large(layer, info.path, exc, self.what)
            return []
        found: list[Finding] = []
        seen: set[tuple[str, str | None]] = set()
        for entry in entries:
            finding = literal_secret_finding(
                self.detection,
                entry.key,
                entry.value,
                layer.location(info.path, line=line_of(data, entry.needle)()),
                rule_id=self.rule_id,
                title=entry.title,
                description=self.description,
            )
            if finding is None or (entry.key, finding.secret_hash) in seen:
                continue  # e.g. a YAML anchor shared by several services: reported once
            seen.add((entry.key, finding.secret_hash))
            found.append(lowered(finding, noise_for(info.path, None)))
        return found

"""Files that are sensitive by name (.env, id_rsa, .docker/config.json, ...)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

from scanner.analyzers.content_secrets import third_party_noise
from scanner.analyzers.interface import FileAnalyzer, LayerContext
from scanner.findings import Finding, Severity
from scanner.layers import EntryKind, FileInfo


class SensitivePathsAnalyzer(FileAnalyzer):
    id = "sensitive-paths"
    version = 1

    def required(self, info: FileInfo) -> bool:
        return info.kind in (EntryKind.FILE, EntryKind.HARDLINK, EntryKind.SYMLINK)

    def analyze(
        self, info: FileInfo, content: BinaryIO | None, layer: LayerContext
    ) -> Iterable[Finding]:
        rules = self.detection.signatures.match_path(info.path)
        if not rules:
            return []
        noise = third_party_noise(info.path)
        found = []
        for rule in rules:
            detail = f"{info.kind.value}, {info.size} bytes"
            if info.kind is not EntryKind.FILE:
                detail = f"{info.kind.value} to {info.linkname}"
            found.append(
                Finding(
                    rule_id=rule.id,
                    title=rule.title,
                    severity=min(rule.severity, Severity.LOW) if noise else rule.severity,
                    category=rule.category,
                    location=layer.location(info.path),
                    match=detail,
                    description=rule.description,
                    noise=noise,
                )
            )
        return found

"""Files that are sensitive by name (.env, id_rsa, .docker/config.json, ...).

Links are reported once, at the link's own path, pointing at their target
(``hardlink to /app/.env``, ``symlink to ../secrets/id_rsa``); their content is
never read (a hard link's bytes are its target's, which the content analyzer
scans once at the target's path). Files inside archives are matched by the
content analyzer, which is the one that opens archives. Provenance noise (tests
and docs of installed packages, distribution-packaged files) follows
:mod:`scanner.analyzers.content_secrets`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

from scanner.analyzers.content_secrets import noise_for
from scanner.analyzers.interface import FileAnalyzer, LayerContext
from scanner.findings import Finding, Severity
from scanner.layers import EntryKind, FileInfo


def link_detail(info: FileInfo) -> str:
    """``hardlink to /target`` (normalised, absolute) or ``symlink to target`` (as written)."""
    if info.kind is EntryKind.HARDLINK:
        return f"hardlink to /{info.linkname}"
    return f"{info.kind.value} to {info.linkname}"


class SensitivePathsAnalyzer(FileAnalyzer):
    id = "sensitive-paths"
    version = 2

    def required(self, info: FileInfo) -> bool:
        return info.kind in (EntryKind.FILE, EntryKind.HARDLINK, EntryKind.SYMLINK)

    def analyze(
        self, info: FileInfo, content: BinaryIO | None, layer: LayerContext
    ) -> Iterable[Finding]:
        rules = self.detection.signatures.match_path(info.path)
        if not rules:
            return []
        noise = noise_for(info.path, None)
        detail = (
            f"{info.kind.value}, {info.size} bytes"
            if info.kind is EntryKind.FILE
            else link_detail(info)
        )
        return [
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
            for rule in rules
        ]

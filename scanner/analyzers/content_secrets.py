"""Secrets in file contents, text or binary, through the signature engine."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import BinaryIO

from scanner.analyzers.interface import FileAnalyzer, LayerContext
from scanner.findings import Finding, Severity
from scanner.layers import EntryKind, FileInfo

# Content that ships inside third-party packages as test data or documentation:
# real-looking keys there are nearly always fixtures. Reported as low, never dropped.
THIRD_PARTY_NOISE = re.compile(
    r"(^|/)(site-packages|dist-packages)/[^/]+/(.+/)?(tests?|testing|fixtures?)/"
    r"|(^|/)node_modules/(@[^/]+/)?[^/]+/(.+/)?(tests?|__tests__|spec|fixtures?|examples?)/"
    r"|^usr/share/(doc|man|info|licenses)/"
    r"|(^|/)(site-packages|dist-packages)/[^/]+/(.+/)?test_[^/]*\.py$"
)


def third_party_noise(path: str) -> str | None:
    if THIRD_PARTY_NOISE.search(path):
        return "test data or documentation of an installed third-party package"
    return None


class ContentSecretsAnalyzer(FileAnalyzer):
    id = "content-secrets"
    version = 1
    needs_content = True

    def required(self, info: FileInfo) -> bool:
        return info.kind is EntryKind.FILE and info.size > 0

    def analyze(
        self, info: FileInfo, content: BinaryIO | None, layer: LayerContext
    ) -> Iterable[Finding]:
        if content is None:
            return []
        return self._findings(info.path, content, layer)

    def _findings(self, path: str, content: BinaryIO, layer: LayerContext) -> Iterator[Finding]:
        noise = third_party_noise(path)
        for match in self.detection.engine.scan_stream(content):
            finding = self.detection.finding(match, layer.location(path, line=match.line))
            if noise and finding.noise is None:
                finding = replace(
                    finding, severity=min(finding.severity, Severity.LOW), noise=noise
                )
            yield finding

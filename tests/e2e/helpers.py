from __future__ import annotations

from pathlib import Path

from scanner.findings import Category, FileState, Finding
from scanner.results import ImageResult
from scanner.scan import Scanner, ScanOptions
from scanner.sources.interface import SourceOptions


def scan(
    source: str | Path, source_options: dict[str, object] | None = None, **options: object
) -> ImageResult:
    where = SourceOptions(**(source_options or {}))  # type: ignore[arg-type]
    options.setdefault("use_cache", False)
    with Scanner(ScanOptions(source=where, **options)) as scanner:  # type: ignore[arg-type]
        return scanner.scan(str(source))


def secrets_at(result: ImageResult, path: str, layer: int | None = None) -> list[Finding]:
    return [
        f
        for f in result.findings
        if f.category is Category.SECRET
        and f.location.path == path
        and (layer is None or f.location.layer_index == layer)
    ]


def state(finding: Finding) -> tuple[FileState, int | None]:
    return finding.status.state, finding.status.changed_in_layer


def rules(result: ImageResult) -> set[str]:
    return {f.rule_id for f in result.findings}

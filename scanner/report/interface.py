"""The formatter interface. Each format renders a whole :class:`Report` to text."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from scanner import __version__
from scanner.results import Report

JSON_SCHEMA_VERSION = 1


class Formatter(ABC):
    name: ClassVar[str]

    def __init__(self, color: bool = False) -> None:
        self.color = color

    @abstractmethod
    def render(self, report: Report) -> str:
        """The report as text (ending in a newline)."""


def summary(report: Report) -> dict[str, Any]:
    """Counts shared by every format and the one-line stderr summary."""
    platforms = sum(len(i.platforms) for i in report.images)
    layers = sum(len(p.layers) for i in report.images for p in i.platforms)
    return {
        "images": len(report.images),
        "platforms": platforms,
        "layers": layers,
        "findings": report.counts(),
        "total": len(report.findings),
        "recoverable": sum(1 for f in report.findings if f.status.recoverable),
        "suppressed": sum(report.suppressed.values()),
        "ignore_files": dict(report.ignore_files),
        "problems": len(report.problems),
        "complete": report.complete,
    }


def tool_info() -> dict[str, str]:
    return {"name": "layerleak", "version": __version__}

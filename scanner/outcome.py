"""What every command produces: an outcome with one surface.

``scan``, ``diff``, ``timeline`` and ``fly`` each return an :class:`Outcome`: its
images and problems, whether it is complete, a one-line summary, the lines that
report its problems on standard error, and its exit code under a :class:`Gate`.
Renderers (:mod:`scanner.report.registry`) are chosen by ``(outcome.kind, format)``;
the CLI only prints what an outcome says.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from scanner.gate import Gate
from scanner.ignore import summary_note
from scanner.report.interface import summary
from scanner.results import ImageResult, Report, ScanProblem


class Outcome(ABC):
    """The result of one command run, whatever the command."""

    kind: ClassVar[
        str
    ]  # "scan", "diff", "timeline", "timelines", "fly", "fly-org": the renderers' key

    @property
    @abstractmethod
    def images(self) -> list[ImageResult]:
        """Every image scanned, in the order the report shows them."""

    @property
    @abstractmethod
    def problems(self) -> list[ScanProblem]:
        """Everything that could not be scanned or listed."""

    @property
    def complete(self) -> bool:
        return not self.problems

    @abstractmethod
    def summary_line(self, gate: Gate) -> str:
        """The one-line summary printed on standard error."""

    @abstractmethod
    def exit_code(self, gate: Gate) -> int:
        """0, 1 or 3 under ``gate`` (see :mod:`scanner.gate`)."""

    def problem_lines(self) -> list[str]:
        """One line per problem, for standard error."""
        return [f"layerleak: error: {p.image}: {p.message}" for p in self.problems]


@dataclass
class ScanOutcome(Outcome):
    """``layerleak scan``: one report over every source."""

    report: Report
    kind: ClassVar[str] = "scan"

    @property
    def images(self) -> list[ImageResult]:
        return self.report.images

    @property
    def problems(self) -> list[ScanProblem]:
        return self.report.problems

    def summary_line(self, gate: Gate) -> str:
        return scan_summary_line(self.report)

    def exit_code(self, gate: Gate) -> int:
        return gate.scan_exit_code(self.report)

    def problem_lines(self) -> list[str]:
        return [f"layerleak: error: {p.message}" for p in self.report.problems]


def scan_summary_line(report: Report) -> str:
    s = summary(report)
    counts = " ".join(f"{sev}={n}" for sev, n in s["findings"].items())
    state = "complete" if s["complete"] else "INCOMPLETE"
    return (
        f"layerleak: {s['images']} image(s), {s['platforms']} platform(s), {s['layers']} "
        f"layer(s); findings {counts}; suppressed={s['suppressed']}; "
        f"errors={s['problems']} ({state})" + summary_note(report)
    )

"""``timeline --from-file``: several repositories' timelines as one outcome.

Each repository keeps its own :class:`~scanner.timeline.Timeline` (a repository
that could not be read is a timeline holding only that problem). The run gates like
single ``timeline``, over every repository: 3 when any timeline is incomplete, else
1 when any newest release has a finding at or above the gate, else 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from scanner.gate import EXIT_INCOMPLETE, Gate
from scanner.ignore import summary_note
from scanner.outcome import Outcome
from scanner.results import ImageResult, ScanProblem
from scanner.timeline import Timeline


@dataclass
class TimelineSet(Outcome):
    timelines: list[Timeline]
    kind: ClassVar[str] = "timelines"

    @property
    def images(self) -> list[ImageResult]:
        return [image for t in self.timelines for image in t.images]

    @property
    def problems(self) -> list[ScanProblem]:
        return [p for t in self.timelines for p in t.all_problems()]

    @property
    def complete(self) -> bool:
        return all(t.complete for t in self.timelines)

    @property
    def reveal(self) -> bool:
        return any(t.reveal for t in self.timelines)

    def exit_code(self, gate: Gate) -> int:
        """The worst repository's code (3 beats 1 beats 0); 3 for an empty set."""
        return max((t.exit_code(gate) for t in self.timelines), default=EXIT_INCOMPLETE)

    def ignore_files(self) -> dict[str, int]:
        summed: dict[str, int] = {}
        for t in self.timelines:
            for file, n in t.ignore_files.items():
                summed[file] = summed.get(file, 0) + n
        return summed

    def summary_line(self, gate: Gate) -> str:
        releases = sum(len(t.releases) for t in self.timelines)
        exposures = sum(len(t.exposures) for t in self.timelines)
        still = sum(1 for t in self.timelines for e in t.exposures if t.in_newest(e))
        gating = sum(len(gate.failing(t.newest_findings)) for t in self.timelines)
        incomplete = sum(1 for t in self.timelines if not t.complete)
        state = "complete" if self.complete else f"INCOMPLETE: {incomplete} repository(ies)"
        return (
            f"layerleak timeline: {len(self.timelines)} repository(ies), {releases} release(s); "
            f"{exposures} finding fingerprint(s), {still} still in a newest release; "
            f"gating {gating} ({gate.describe()}); errors={len(self.problems)} ({state})"
            + summary_note(self.ignore_files())
        )

"""What a Fly.io app runs right now, scanned: ``layerleak fly APP``.

The Machines API (:mod:`scanner.fly.machines`) says which image each Machine runs;
each distinct image is scanned once from its registry, and the report says, per image,
which Machines, process groups and regions run it.

Credentials: images on registry.fly.io are pulled with user ``x`` and the same Fly
token (what ``fly auth docker`` sets up). The token is never sent to any other
registry: images elsewhere use the usual credentials (Docker config, ``--username``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from scanner.findings import Severity
from scanner.fly.machines import (
    FLY_REGISTRY,
    DeployedImage,
    Machine,
    MachinesClient,
    deployed_images,
)
from scanner.gate import Gate
from scanner.ignore import summary_note
from scanner.outcome import Outcome
from scanner.report.interface import summary
from scanner.results import ImageResult, Report, ScanProblem

__all__ = ["FlyScan", "scan_app"]

ScanOne = Callable[[DeployedImage], ImageResult]
ScanImages = Callable[[list[DeployedImage]], dict[str, ImageResult]]


@dataclass
class FlyScan(Outcome):
    app: str
    api_url: str
    machines: list[Machine]
    deployed: list[DeployedImage]  # distinct images, in the order the Machines list them
    report: Report
    results: dict[str, ImageResult] = field(default_factory=dict)  # image ref -> result
    kind: ClassVar[str] = "fly"

    @property
    def images(self) -> list[ImageResult]:
        return self.report.images

    @property
    def problems(self) -> list[ScanProblem]:
        return self.report.problems

    def exit_code(self, gate: Gate) -> int:
        return gate.fly_exit_code(self.report)

    def summary_line(self, gate: Gate) -> str:
        s = summary(self.report)
        counts = " ".join(f"{sev}={n}" for sev, n in s["findings"].items())
        state = "complete" if s["complete"] else "INCOMPLETE"
        return (
            f"layerleak fly {self.app}: {len(self.machines)} machine(s), {s['images']} "
            f"image(s), {s['platforms']} platform(s), {s['layers']} layer(s); findings "
            f"{counts}; suppressed={s['suppressed']}; errors={s['problems']} ({state})"
            + summary_note(self.report)
        )

    def image_of(self, result_name: str) -> DeployedImage | None:
        for image in self.deployed:
            if image.ref == result_name:
                return image
        return None

    def deployments(self) -> list[dict[str, Any]]:
        out = []
        for image in self.deployed:
            entry = image.to_dict()
            result = self.results.get(image.ref)
            if result is not None:
                counts = {s.label: 0 for s in sorted(Severity, reverse=True)}
                for f in result.findings:
                    counts[f.severity.label] += 1
                entry["findings"] = counts
                entry["complete"] = not result.problems
            out.append(entry)
        return out

    def fly_section(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "api_url": self.api_url,
            "machines": len(self.machines),
            "images": self.deployments(),
        }


def scan_app(
    app: str,
    client: MachinesClient,
    scan_one: ScanOne,
    *,
    fail_on: Severity = Severity.HIGH,
    reveal: bool = False,
    scan_images: ScanImages | None = None,
) -> FlyScan:
    """List the app's Machines, scan each distinct image once (FlyError on API errors).

    ``scan_images``, when given, scans them all at once (layers fanned out together)."""
    machines = client.machines(app)
    images = deployed_images(machines)
    results: dict[str, ImageResult] = {}
    if scan_images is not None:
        results = scan_images(images)
    for image in images:
        if image.ref not in results:
            results[image.ref] = scan_one(image)
    report = Report(images=[results[i.ref] for i in images], fail_on=fail_on, reveal=reveal)
    return FlyScan(app, client.base_url, machines, images, report, results)


def is_fly_registry(image: DeployedImage) -> bool:
    return image.registry == FLY_REGISTRY

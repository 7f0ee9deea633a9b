"""What every app of a Fly.io organisation runs now, scanned: ``layerleak fly --org SLUG``.

The organisation's apps come from ``GET /v1/apps?org_slug=SLUG``; each app's Machines
from ``GET /v1/apps/{app}/machines`` exactly as for ``layerleak fly APP``. Images are
deduplicated across apps (by digest, else reference) and scanned once, their layers
once across images; the report keeps one section per app with its Machines and images.
An app without Machines is listed as such; an app whose Machines could not be read is
an error of the sweep (exit 3) and the other apps are still scanned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from scanner.findings import Severity
from scanner.fly import FlyScan
from scanner.fly.machines import (
    DeployedImage,
    FlyError,
    MachinesClient,
    NoMachines,
    deployed_images,
)
from scanner.gate import Gate
from scanner.ignore import summary_note
from scanner.outcome import Outcome
from scanner.report.interface import summary
from scanner.results import ImageResult, Report, ScanProblem

ScanImages = Callable[[list[DeployedImage]], dict[str, ImageResult]]


@dataclass
class AppSection:
    scan: FlyScan
    error: str | None = None  # the app's Machines could not be read

    def to_dict(self) -> dict[str, Any]:
        section = self.scan.fly_section()
        section.pop("api_url", None)
        section["error"] = self.error
        return section


@dataclass
class OrgScan(Outcome):
    """``layerleak fly --org SLUG``: one section per app, one report over every image."""

    org: str
    api_url: str
    apps: list[AppSection]
    deployed: list[DeployedImage]  # distinct across the organisation
    report: Report
    errors: list[str] = field(default_factory=list)  # what the Machines API did not list
    kind: ClassVar[str] = "fly-org"

    @property
    def images(self) -> list[ImageResult]:
        return self.report.images

    @property
    def problems(self) -> list[ScanProblem]:
        listing = [ScanProblem(f"fly --org {self.org}", None, None, e) for e in self.errors]
        return listing + self.report.problems

    @property
    def api_complete(self) -> bool:
        return not self.errors

    def problem_lines(self) -> list[str]:
        return [f"layerleak: error: {e}" for e in self.errors] + [
            f"layerleak: error: {p.image}: {p.message}" for p in self.report.problems
        ]

    def exit_code(self, gate: Gate) -> int:
        return gate.fly_exit_code(self.report, self.api_complete)

    def summary_line(self, gate: Gate) -> str:
        s = summary(self.report)
        counts = " ".join(f"{sev}={n}" for sev, n in s["findings"].items())
        state = "complete" if s["complete"] and self.api_complete else "INCOMPLETE"
        return (
            f"layerleak fly --org {self.org}: {len(self.apps)} app(s), {self.machines} "
            f"machine(s), {s['images']} distinct image(s), {s['layers']} layer(s); findings "
            f"{counts}; suppressed={s['suppressed']}; "
            f"errors={s['problems'] + len(self.errors)} ({state})" + summary_note(self.report)
        )

    @property
    def machines(self) -> int:
        return sum(len(a.scan.machines) for a in self.apps)

    def apps_of(self, image_name: str) -> list[str]:
        return [a.scan.app for a in self.apps if any(i.ref == image_name for i in a.scan.deployed)]

    def fly_section(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "api_url": self.api_url,
            "machines": self.machines,
            "distinct_images": len(self.deployed),
            "apps": [a.to_dict() for a in self.apps],
            "errors": list(self.errors),
        }


def _key(image: DeployedImage) -> str:
    return image.digest or image.ref


def scan_org(
    org: str,
    client: MachinesClient,
    scan_images: ScanImages,
    *,
    fail_on: Severity = Severity.HIGH,
    reveal: bool = False,
) -> OrgScan:
    """List the organisation's apps and their Machines, scan every distinct image once."""
    listed = client.list_apps(org)
    sections: list[tuple[str, list[Any], list[DeployedImage], str | None]] = []
    errors: list[str] = []
    for app in listed:
        name = str(app["name"])
        try:
            machines = client.machines(name)
        except NoMachines:
            machines = []
        except FlyError as exc:  # one app's failure does not stop the sweep
            message = str(exc)
            errors.append(message)
            sections.append((name, [], [], message))
            continue
        sections.append((name, machines, deployed_images(machines), None))
    distinct: dict[str, DeployedImage] = {}
    for _, _, images, _ in sections:
        for image in images:
            first = distinct.setdefault(
                _key(image), DeployedImage(image.ref, image.display, image.digest)
            )
            first.machines.extend(image.machines)
            first.tags.extend(t for t in image.tags if t not in first.tags)
    results = scan_images(list(distinct.values())) if distinct else {}
    apps = []
    for name, machines, images, error in sections:
        own = {i.ref: results[distinct[_key(i)].ref] for i in images}
        report = Report(images=list(own.values()), fail_on=fail_on, reveal=reveal)
        apps.append(
            AppSection(FlyScan(name, client.base_url, machines, images, report, own), error)
        )
    report = Report(
        images=[results[i.ref] for i in distinct.values()], fail_on=fail_on, reveal=reveal
    )
    return OrgScan(org, client.base_url, apps, list(distinct.values()), report, errors)

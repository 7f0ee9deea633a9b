"""What every app of a Fly.io organisation runs now, scanned: ``layerleak fly --org SLUG``.

The organisation's apps come from ``GET /v1/apps?org_slug=SLUG``; each app's Machines
from ``GET /v1/apps/{app}/machines`` exactly as for ``layerleak fly APP``. Images are
deduplicated across apps (by digest, else reference) and scanned once, their layers
once across images; the report keeps one section per app with its Machines and images.
An app without Machines is listed as such; an app whose Machines could not be read is
an error of the sweep (exit 3) and the other apps are still scanned.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scanner.findings import Severity
from scanner.fly import FlyScan
from scanner.fly.machines import (
    DeployedImage,
    FlyError,
    MachinesClient,
    NoMachines,
    deployed_images,
)
from scanner.report.interface import summary
from scanner.results import ImageResult, Report

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
class OrgScan:
    org: str
    api_url: str
    apps: list[AppSection]
    images: list[DeployedImage]  # distinct across the organisation
    report: Report
    errors: list[str] = field(default_factory=list)

    @property
    def api_complete(self) -> bool:
        return not self.errors

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
            "distinct_images": len(self.images),
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


# --- rendering ---------------------------------------------------------------------------


def render_org_table(scan: OrgScan, color: bool = False) -> str:
    from scanner.report.fly import render_table
    from scanner.report.table import TableFormatter

    lines = [
        f"Fly org {scan.org}: {len(scan.apps)} app(s), {scan.machines} machine(s), "
        f"{len(scan.images)} distinct image(s)"
    ]
    for section in scan.apps:
        if section.error:
            lines.append(f"  app {section.scan.app}: error: {section.error}")
            continue
        if not section.scan.machines:
            lines.append(f"  app {section.scan.app}: no machines")
            continue
        head = render_table(section.scan).split("\n\n", 1)[0]  # the app's deployment lines
        lines += ["  " + line for line in head.splitlines()]
    lines.append("")
    return "\n".join(lines) + "\n" + TableFormatter(color=color).render(scan.report)


def render_org_json(scan: OrgScan) -> str:
    from scanner.report.json_format import JsonFormatter

    doc = json.loads(JsonFormatter().render(scan.report))
    doc["fly"] = scan.fly_section()
    if not scan.api_complete:
        doc["complete"] = False
    return json.dumps(doc, indent=2) + "\n"


def render_org_markdown(scan: OrgScan) -> str:
    from scanner.report.fly import _machines_text
    from scanner.report.markdown import MarkdownFormatter, code, escape

    out = [
        f"## layerleak fly --org {escape(scan.org)}",
        "",
        f"{len(scan.apps)} app(s), {scan.machines} Machine(s), "
        f"{len(scan.images)} distinct image(s).",
        "",
    ]
    for section in scan.apps:
        out += [f"### {escape(section.scan.app)}", ""]
        if section.error:
            out += [f"Error: {escape(section.error)}", ""]
            continue
        if not section.scan.machines:
            out += ["No Machines.", ""]
            continue
        out += [
            "| Image | Process groups | Regions | Machines | Findings |",
            "| --- | --- | --- | --- | --- |",
        ]
        for entry, image in zip(section.scan.deployments(), section.scan.deployed, strict=True):
            counts = entry.get("findings", {})
            found = ", ".join(f"{n} {sev}" for sev, n in counts.items() if n) or "none"
            if not entry.get("complete", True):
                found += " (incomplete)"
            out.append(
                f"| {code(image.display, 120)} | {escape(', '.join(image.process_groups))} | "
                f"{escape(', '.join(image.regions))} | {len(image.machines)}: "
                f"{escape(_machines_text(image))} | {found} |"
            )
        out.append("")
    md = MarkdownFormatter().lines(scan.report, title=f"Findings in {scan.org}'s images")
    return "\n".join(out + md) + "\n"


def render_org_sarif(scan: OrgScan) -> str:
    from scanner.report.sarif import sarif_log

    log = sarif_log(scan.report)
    run = log["runs"][0]
    run["properties"]["fly"] = scan.fly_section()
    for result in run["results"]:
        apps = scan.apps_of(result["properties"].get("image", ""))
        if apps:
            result["properties"]["flyApps"] = apps
    return json.dumps(log, indent=2) + "\n"


def render_org(scan: OrgScan, fmt: str, color: bool = False) -> str:
    if fmt == "table":
        return render_org_table(scan, color)
    if fmt == "json":
        return render_org_json(scan)
    if fmt == "markdown":
        return render_org_markdown(scan)
    if fmt == "sarif":
        return render_org_sarif(scan)
    raise ValueError(f"unknown format {fmt!r}")


def org_summary_line(scan: OrgScan) -> str:
    s = summary(scan.report)
    counts = " ".join(f"{sev}={n}" for sev, n in s["findings"].items())
    complete = s["complete"] and scan.api_complete
    state = "complete" if complete else "INCOMPLETE"
    return (
        f"layerleak fly --org {scan.org}: {len(scan.apps)} app(s), {scan.machines} machine(s), "
        f"{s['images']} distinct image(s), {s['layers']} layer(s); findings {counts}; "
        f"suppressed={s['suppressed']}; errors={s['problems'] + len(scan.errors)} ({state})"
    )

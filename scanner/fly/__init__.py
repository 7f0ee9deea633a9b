"""What a Fly.io app runs right now, scanned: ``layerleak fly APP``.

The Machines API (:mod:`scanner.fly.machines`) says which image each Machine runs;
each distinct image is scanned once from its registry, and the report says, per image,
which Machines, process groups and regions run it.

Credentials: images on registry.fly.io are pulled with user ``x`` and the same Fly
token (what ``fly auth docker`` sets up). The token is never sent to any other
registry: images elsewhere use the usual credentials (Docker config, ``--username``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scanner.findings import Severity
from scanner.fly.machines import (
    FLY_REGISTRY,
    DeployedImage,
    Machine,
    MachinesClient,
    deployed_images,
)
from scanner.ignore import summary_note
from scanner.report.interface import summary
from scanner.results import ImageResult, Report

__all__ = ["FlyScan", "render", "scan_app"]

ScanOne = Callable[[DeployedImage], ImageResult]


@dataclass
class FlyScan:
    app: str
    api_url: str
    machines: list[Machine]
    images: list[DeployedImage]
    report: Report
    results: dict[str, ImageResult] = field(default_factory=dict)  # image ref -> result

    def image_of(self, result_name: str) -> DeployedImage | None:
        for image in self.images:
            if image.ref == result_name:
                return image
        return None

    def deployments(self) -> list[dict[str, Any]]:
        out = []
        for image in self.images:
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
) -> FlyScan:
    """List the app's Machines, scan each distinct image once (FlyError on API errors)."""
    machines = client.machines(app)
    images = deployed_images(machines)
    results: dict[str, ImageResult] = {}
    for image in images:
        results[image.ref] = scan_one(image)
    report = Report(images=[results[i.ref] for i in images], fail_on=fail_on, reveal=reveal)
    return FlyScan(app, client.base_url, machines, images, report, results)


def is_fly_registry(image: DeployedImage) -> bool:
    return image.registry == FLY_REGISTRY


# --- rendering ---------------------------------------------------------------------------


def _machines_text(image: DeployedImage, limit: int = 6) -> str:
    names = [f"{m.id}" + (f" ({m.name})" if m.name else "") for m in image.machines]
    text = ", ".join(names[:limit])
    if len(names) > limit:
        text += f", … {len(names) - limit} more"
    return text


def render_table(scan: FlyScan, color: bool = False) -> str:
    from scanner.report.table import TableFormatter
    from scanner.report.terminal import safe

    lines = [f"Fly app {scan.app}: {len(scan.machines)} machine(s) run {len(scan.images)} image(s)"]
    for image in scan.images:
        lines.append(f"  {image.display}")
        lines.append(
            f"    process groups: {', '.join(image.process_groups) or '-'}; "
            f"regions: {', '.join(image.regions) or '-'}; "
            f"machines ({len(image.machines)}): {_machines_text(image)}"
        )
    lines = [safe(line) for line in lines]
    lines.append("")
    return "\n".join(lines) + "\n" + TableFormatter(color=color).render(scan.report)


def render_json(scan: FlyScan) -> str:
    from scanner.report.json_format import JsonFormatter

    doc = json.loads(JsonFormatter().render(scan.report))
    doc["fly"] = scan.fly_section()
    return json.dumps(doc, indent=2) + "\n"


def render_markdown(scan: FlyScan) -> str:
    from scanner.report.markdown import MarkdownFormatter, code, escape

    out = [
        f"## layerleak fly {escape(scan.app)}",
        "",
        f"{len(scan.machines)} Machine(s) run {len(scan.images)} distinct image(s).",
        "",
        "| Image | Process groups | Regions | Machines | Findings |",
        "| --- | --- | --- | --- | --- |",
    ]
    for entry, image in zip(scan.deployments(), scan.images, strict=True):
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
    md = MarkdownFormatter().lines(scan.report, title=f"Findings in {scan.app}'s images")
    return "\n".join(out + md) + "\n"


def render_sarif(scan: FlyScan) -> str:
    from scanner.report.sarif import sarif_log

    log = sarif_log(scan.report)
    run = log["runs"][0]
    run["properties"]["fly"] = scan.fly_section()
    for result in run["results"]:
        image = scan.image_of(result["properties"].get("image", ""))
        if image is not None:
            result["properties"]["flyApp"] = scan.app
            result["properties"]["flyProcessGroups"] = image.process_groups
            result["properties"]["flyRegions"] = image.regions
            result["properties"]["flyMachines"] = [m.id for m in image.machines]
    return json.dumps(log, indent=2) + "\n"


FLY_FORMATS = ("table", "json", "markdown", "sarif")


def render(scan: FlyScan, fmt: str, color: bool = False) -> str:
    if fmt == "table":
        return render_table(scan, color)
    if fmt == "json":
        return render_json(scan)
    if fmt == "markdown":
        return render_markdown(scan)
    if fmt == "sarif":
        return render_sarif(scan)
    raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FLY_FORMATS)})")


def summary_line(scan: FlyScan) -> str:
    s = summary(scan.report)
    counts = " ".join(f"{sev}={n}" for sev, n in s["findings"].items())
    state = "complete" if s["complete"] else "INCOMPLETE"
    return (
        f"layerleak fly {scan.app}: {len(scan.machines)} machine(s), {s['images']} image(s), "
        f"{s['platforms']} platform(s), {s['layers']} layer(s); findings {counts}; "
        f"suppressed={s['suppressed']}; errors={s['problems']} ({state})"
        + summary_note(scan.report)
    )

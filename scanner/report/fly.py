"""Renderers of a ``fly`` outcome: table, json, markdown, sarif (html: :mod:`.html`)."""

from __future__ import annotations

import json

from scanner.fly import FlyScan
from scanner.fly.machines import DeployedImage
from scanner.report.json_format import document
from scanner.report.markdown import MarkdownFormatter, code, escape
from scanner.report.sarif import sarif_log
from scanner.report.table import TableFormatter
from scanner.report.terminal import safe


def machines_text(image: DeployedImage, limit: int = 6) -> str:
    names = [f"{m.id}" + (f" ({m.name})" if m.name else "") for m in image.machines]
    text = ", ".join(names[:limit])
    if len(names) > limit:
        text += f", … {len(names) - limit} more"
    return text


def render_table(scan: FlyScan, color: bool = False) -> str:
    lines = [
        f"Fly app {scan.app}: {len(scan.machines)} machine(s) run {len(scan.deployed)} image(s)"
    ]
    for image in scan.deployed:
        lines.append(f"  {image.display}")
        lines.append(
            f"    process groups: {', '.join(image.process_groups) or '-'}; "
            f"regions: {', '.join(image.regions) or '-'}; "
            f"machines ({len(image.machines)}): {machines_text(image)}"
        )
    lines = [safe(line) for line in lines]  # names from the Fly API are data
    lines.append("")
    return "\n".join(lines) + "\n" + TableFormatter(color=color).render(scan.report)


def render_json(scan: FlyScan) -> str:
    doc = document(scan.report)
    doc["fly"] = scan.fly_section()
    return json.dumps(doc, indent=2) + "\n"


def render_markdown(scan: FlyScan) -> str:
    out = [
        f"## layerleak fly {escape(scan.app)}",
        "",
        f"{len(scan.machines)} Machine(s) run {len(scan.deployed)} distinct image(s).",
        "",
        *deployments_markdown(scan),
        "",
    ]
    md = MarkdownFormatter().lines(scan.report, title=f"Findings in {scan.app}'s images")
    return "\n".join(out + md) + "\n"


def deployments_markdown(scan: FlyScan) -> list[str]:
    """The Markdown table of what runs where: one row per distinct image of the app."""
    out = [
        "| Image | Process groups | Regions | Machines | Findings |",
        "| --- | --- | --- | --- | --- |",
    ]
    for entry, image in zip(scan.deployments(), scan.deployed, strict=True):
        counts = entry.get("findings", {})
        found = ", ".join(f"{n} {sev}" for sev, n in counts.items() if n) or "none"
        if not entry.get("complete", True):
            found += " (incomplete)"
        out.append(
            f"| {code(image.display, 120)} | {escape(', '.join(image.process_groups))} | "
            f"{escape(', '.join(image.regions))} | {len(image.machines)}: "
            f"{escape(machines_text(image))} | {found} |"
        )
    return out


def render_sarif(scan: FlyScan) -> str:
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

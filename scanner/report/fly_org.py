"""``layerleak fly --org SLUG`` in table, JSON, Markdown and SARIF (HTML: report.html)."""

from __future__ import annotations

import json

from scanner.fly.org import OrgScan
from scanner.report.fly import deployments_markdown
from scanner.report.fly import render_table as render_app_table
from scanner.report.json_format import JsonFormatter
from scanner.report.markdown import MarkdownFormatter, escape
from scanner.report.sarif import sarif_log
from scanner.report.table import TableFormatter
from scanner.report.terminal import safe


def render_table(scan: OrgScan, color: bool = False) -> str:
    lines = [
        f"Fly org {safe(scan.org)}: {len(scan.apps)} app(s), {scan.machines} machine(s), "
        f"{len(scan.deployed)} distinct image(s)"
    ]
    for section in scan.apps:
        app = safe(section.scan.app)
        if section.error:
            lines.append(f"  app {app}: error: {safe(section.error)}")
            continue
        if not section.scan.machines:
            lines.append(f"  app {app}: no machines")
            continue
        head = render_app_table(section.scan).split("\n\n", 1)[0]  # the app's deployment lines
        lines += ["  " + line for line in head.splitlines()]
    lines.append("")
    return "\n".join(lines) + "\n" + TableFormatter(color=color).render(scan.report)


def render_json(scan: OrgScan) -> str:
    doc = json.loads(JsonFormatter().render(scan.report))
    doc["fly"] = scan.fly_section()
    if not scan.api_complete:
        doc["complete"] = False
    return json.dumps(doc, indent=2) + "\n"


def render_markdown(scan: OrgScan) -> str:
    out = [
        f"## layerleak fly --org {escape(scan.org)}",
        "",
        f"{len(scan.apps)} app(s), {scan.machines} Machine(s), "
        f"{len(scan.deployed)} distinct image(s).",
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
        out += deployments_markdown(section.scan)
        out.append("")
    md = MarkdownFormatter().lines(scan.report, title=f"Findings in {scan.org}'s images")
    return "\n".join(out + md) + "\n"


def render_sarif(scan: OrgScan) -> str:
    log = sarif_log(scan.report)
    run = log["runs"][0]
    run["properties"]["fly"] = scan.fly_section()
    for result in run["results"]:
        apps = scan.apps_of(result["properties"].get("image", ""))
        if apps:
            result["properties"]["flyApps"] = apps
    return json.dumps(log, indent=2) + "\n"

"""The default format for people: findings grouped by image, platform and layer."""

from __future__ import annotations

from collections import defaultdict

import click

from scanner.findings import Finding, Severity
from scanner.report.interface import Formatter, summary
from scanner.report.terminal import safe
from scanner.results import ImageResult, PlatformResult, Report

COLORS = {
    Severity.CRITICAL: "magenta",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "white",
}


def short(digest: str | None, n: int = 19) -> str:
    return (digest or "-")[:n]


def one_line(text: str | None, width: int = 100) -> str:
    """One line of at most ``width`` characters, control characters shown escaped."""
    text = " ".join((text or "").split())
    text = text if len(text) <= width else text[: width - 1] + "…"
    return safe(text)


class TableFormatter(Formatter):
    name = "table"

    def _style(self, text: str, **kw: object) -> str:
        return click.style(text, **kw) if self.color else text  # type: ignore[arg-type]

    def render(self, report: Report) -> str:
        out: list[str] = []
        for image in report.images:
            out += self._image(image, report.reveal)
        out.append(self._totals(report))
        return "\n".join(out) + "\n"

    def _image(self, image: ImageResult, reveal: bool) -> list[str]:
        lines = [
            self._style(f"Image {safe(image.name)}", bold=True) + f"  ({safe(image.source_kind)})"
        ]
        by_platform: dict[str, list[Finding]] = defaultdict(list)
        for f in image.findings:
            by_platform[f.platform].append(f)
        for platform in image.platforms:
            lines += self._platform(platform, by_platform.get(platform.platform, []), reveal)
        for problem in image.problems:
            lines.append(self._style("  ERROR ", fg="red", bold=True) + safe(problem.message))
        lines.append("")
        return lines

    def _platform(
        self, platform: PlatformResult, findings: list[Finding], reveal: bool
    ) -> list[str]:
        lines = [
            f"  Platform {safe(platform.platform)}  "
            f"manifest {safe(short(platform.manifest_digest))}"
        ]
        by_layer: dict[int | None, list[Finding]] = defaultdict(list)
        for f in findings:
            key = f.location.layer_index if f.location.kind.value == "file" else None
            by_layer[key].append(f)
        for layer in platform.layers:
            found = by_layer.get(layer.index, [])
            head = (
                f"  Layer {layer.index}  {safe(short(layer.digest))}  "
                f"{one_line(layer.created_by, 80) or '(no history)'}"
            )
            if layer.error:
                head += self._style("  [incomplete]", fg="red")
            if not found:
                lines.append(self._style(head, dim=True) + "  - no findings")
                continue
            lines.append(self._style(head, bold=True))
            for f in found:
                lines += [self._finding(f, reveal), *self._blast(f)]
        config = by_layer.get(None, [])
        if config:
            lines.append(self._style("  Config, history and build", bold=True))
            for f in config:
                lines += [self._finding(f, reveal), *self._blast(f)]
        return lines

    def _blast(self, f: Finding) -> list[str]:
        """The finding's blast radius on a line of its own, under the finding."""
        radius = f.blast_radius
        if radius is None:
            return []
        text = f"      opens: {one_line(radius.summary, 200)}"
        if radius.verified_identity:
            who = ", ".join(f"{k}={v}" for k, v in radius.verified_identity.items())
            text += f"  [verified as {one_line(who, 120)}]"
        return [self._style(text, dim=True)]

    def _finding(self, f: Finding, reveal: bool) -> str:
        sev = self._style(f"{f.severity.label.upper():<8}", fg=COLORS[f.severity], bold=True)
        loc = f.location
        where = safe(loc.display_path() or loc.field or "")
        if loc.line:
            where += f":{loc.line}"
        if loc.kind.value == "history" and loc.layer_index is None:
            where += " (no layer)"
        elif loc.kind.value == "history":
            where += f" (layer {loc.layer_index})"
        status = ""
        if f.status.recoverable:
            status = self._style(
                f"  [{f.status.describe()}; recoverable from layer {loc.layer_index}]",
                fg="red",
            )
        evidence = f.secret if (reveal and f.secret) else f.match
        noise = f"  ({safe(f.noise)})" if f.noise else ""
        verified = ""
        if f.verification:
            color = "red" if f.verification == "verified" else None
            verified = "  " + self._style(f"[{safe(f.verification)}]", fg=color, bold=bool(color))
        return (
            f"    {sev} {safe(f.rule_id):<28} {where}  {one_line(evidence, 60)}"
            f"{status}{verified}{noise}"
        )

    def _totals(self, report: Report) -> str:
        s = summary(report)
        counts = ", ".join(f"{n} {sev}" for sev, n in s["findings"].items() if n)
        text = (
            f"{s['total']} findings ({counts or 'none'}) in {s['images']} image(s), "
            f"{s['platforms']} platform(s), {s['layers']} layer(s)"
        )
        if s["recoverable"]:
            text += f"; {s['recoverable']} in deleted or overwritten files"
        if s["suppressed"]:
            reasons = ", ".join(f"{n} {safe(why)}" for why, n in sorted(report.suppressed.items()))
            text += f"; {s['suppressed']} suppressed ({reasons})"
        if s["problems"]:
            text += self._style(f"; {s['problems']} error(s): scan INCOMPLETE", fg="red")
        return text

"""``--format markdown``: for CI job summaries and merge-request comments.

Counts by severity and by category, then findings grouped by image, platform and
layer, with deleted-but-recoverable files called out first (they are the ones people
believe they already removed), suppressed counts and scan errors. GitHub-flavoured
Markdown: tables and ``<details>``; every cell is escaped so nothing found in an
image can break the layout or inject markup.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from scanner.findings import Category, Finding, LocationKind, Severity
from scanner.report.interface import Formatter, summary
from scanner.report.terminal import safe
from scanner.results import ImageResult, PlatformResult, Report

MAX_ROWS = 200  # findings listed in full; the rest are counted (comment size limits)

ICONS = {
    Severity.CRITICAL: "🟣",
    Severity.HIGH: "🔴",
    Severity.MEDIUM: "🟠",
    Severity.LOW: "🔵",
    Severity.INFO: "⚪",
}

_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def escape(text: str | None) -> str:
    """Plain text safe in a table cell: markup characters escaped, one line, control
    characters shown as escapes."""
    text = safe(" ".join((text or "").split()))
    return _SPECIAL.sub(r"\\\1", text)


def code(text: str | None, width: int = 80, *, table: bool = True) -> str:
    """An inline code span holding ``text`` whatever backticks it has; in a table cell
    (``table``) pipes are escaped too, as GFM requires even inside code spans."""
    text = " ".join((text or "").split())
    if len(text) > width:
        text = text[: width - 1] + "…"
    text = safe(text)
    if not text:
        return ""
    if table:
        text = text.replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def short(digest: str | None, n: int = 19) -> str:
    return (digest or "-")[:n]


def severity_cell(severity: Severity) -> str:
    return f"{ICONS[severity]} {severity.label}"


def where(finding: Finding) -> str:
    loc = finding.location
    text = loc.display_path() or loc.field or loc.kind.value
    if loc.line:
        text += f":{loc.line}"
    return text


def evidence(finding: Finding, reveal: bool) -> str:
    return finding.secret if (reveal and finding.secret) else finding.match


def status_cell(finding: Finding) -> str:
    if finding.status.recoverable:
        return (
            f"**{escape(finding.status.describe())}**, recoverable from layer "
            f"{finding.location.layer_index}"
        )
    if finding.location.kind is LocationKind.FILE:
        return escape(finding.status.describe())
    return ""


def counts_table(findings: Sequence[Finding]) -> list[str]:
    """Severity x category counts, with totals."""
    grid: Counter[tuple[Category, Severity]] = Counter((f.category, f.severity) for f in findings)
    severities = sorted(Severity, reverse=True)
    lines = [
        "| Category | " + " | ".join(severity_cell(s) for s in severities) + " | Total |",
        "| --- | " + " | ".join("---:" for _ in severities) + " | ---: |",
    ]
    for category in Category:
        row = [grid[(category, s)] for s in severities]
        if sum(row):
            lines.append(
                f"| {category.value} | " + " | ".join(str(n) for n in row) + f" | {sum(row)} |"
            )
    totals = [sum(grid[(c, s)] for c in Category) for s in severities]
    lines.append(
        "| **total** | " + " | ".join(f"**{n}**" for n in totals) + f" | **{sum(totals)}** |"
    )
    return lines


def findings_table(
    findings: Sequence[Finding], reveal: bool, *, layer_column: bool = False
) -> list[str]:
    head = "| Severity | Rule | Location | Evidence | Status |"
    rule = "| --- | --- | --- | --- | --- |"
    if layer_column:
        head = "| Severity | Rule | Location | Layer | Evidence | Status |"
        rule = "| --- | --- | --- | ---: | --- | --- |"
    lines = [head, rule]
    for f in findings:
        cells = [
            severity_cell(f.severity),
            f"{code(f.rule_id)}<br>{escape(f.title)}",
            code(where(f), 100),
        ]
        if layer_column:
            cells.append("" if f.location.layer_index is None else str(f.location.layer_index))
        note = f" ({escape(f.noise)})" if f.noise else ""
        if f.blast_radius:
            note += f"<br>opens: {escape(f.blast_radius.summary)}"
            if f.blast_radius.verified_identity:
                who = ", ".join(f"{k}={v}" for k, v in f.blast_radius.verified_identity.items())
                note += f"<br>verified as {escape(who)}"
        cells += [code(evidence(f, reveal)) + note, status_cell(f)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def recoverable_callout(findings: Iterable[Finding], reveal: bool) -> list[str]:
    gone = [f for f in findings if f.status.recoverable]
    if not gone:
        return []
    secrets = [f for f in gone if f.category is Category.SECRET]
    lines = [
        "> [!WARNING]",
        f"> **{len(gone)} finding(s) in files that were deleted or overwritten in a later "
        f"layer** ({len(secrets)} secret(s)). They are not in the final filesystem but anyone "
        "who can pull the image can still read them from the layer that added them: rotate "
        "the secrets and rebuild without them.",
        ">",
    ]
    for f in gone[:MAX_ROWS]:
        lines.append(
            f"> - {severity_cell(f.severity)} {code(f.rule_id, table=False)} "
            f"{code(where(f), 100, table=False)} "
            f"added in layer {f.location.layer_index}, {escape(f.status.describe())}"
            + (f" — {escape(f.image)} {escape(f.platform)}" if f.image else "")
        )
    if len(gone) > MAX_ROWS:
        lines.append(f"> - … and {len(gone) - MAX_ROWS} more")
    return lines


class MarkdownFormatter(Formatter):
    name = "markdown"

    def render(self, report: Report) -> str:
        return "\n".join(self.lines(report)) + "\n"

    def lines(self, report: Report, title: str = "layerleak scan") -> list[str]:
        s = summary(report)
        findings = report.findings
        failing = report.failing()
        verdict = (
            "⚠️ **scan incomplete**"
            if not report.complete
            else (
                f"❌ **{len(failing)} finding(s) at or above {report.fail_on.label}**"
                if failing
                else f"✅ nothing at or above {report.fail_on.label}"
            )
        )
        out = [
            f"## {title}",
            "",
            f"{verdict} — {s['total']} finding(s) in {s['images']} image(s), "
            f"{s['platforms']} platform(s), {s['layers']} layer(s)"
            + (f"; {s['suppressed']} suppressed" if s["suppressed"] else "")
            + (f"; {s['problems']} error(s)" if s["problems"] else ""),
            "",
        ]
        if findings:
            out += [*counts_table(findings), ""]
        callout = recoverable_callout(findings, report.reveal)
        if callout:
            out += [*callout, ""]
        budget = [MAX_ROWS]
        for image in report.images:
            out += self._image(image, report.reveal, budget)
        out += suppressed_lines(report)
        out += problem_lines(report)
        return out

    def _image(self, image: ImageResult, reveal: bool, budget: list[int]) -> list[str]:
        out = [f"### Image {code(image.name, 200, table=False)} ({escape(image.source_kind)})", ""]
        by_platform: dict[str, list[Finding]] = defaultdict(list)
        for f in image.findings:
            by_platform[f.platform].append(f)
        for platform in image.platforms:
            out += self._platform(platform, by_platform.get(platform.platform, []), reveal, budget)
        if not image.platforms and not image.findings:
            out += ["Nothing was scanned in this image (see the errors below).", ""]
        return out

    def _platform(
        self,
        platform: PlatformResult,
        findings: list[Finding],
        reveal: bool,
        budget: list[int],
    ) -> list[str]:
        out = [
            f"#### {escape(platform.platform)} — manifest "
            f"{code(short(platform.manifest_digest), table=False)}, "
            f"{len(platform.layers)} layer(s), {len(findings)} finding(s)",
            "",
        ]
        by_layer: dict[int | None, list[Finding]] = defaultdict(list)
        for f in findings:
            key = f.location.layer_index if f.location.kind is LocationKind.FILE else None
            by_layer[key].append(f)
        for layer in platform.layers:
            found = by_layer.get(layer.index, [])
            if not found and not layer.error:
                continue
            step = code(layer.created_by, 100, table=False) if layer.created_by else "(no history)"
            head = f"**Layer {layer.index}** {code(short(layer.digest), table=False)} {step}"
            if layer.error:
                head += f" — ⚠️ incomplete: {escape(layer.error)}"
            out += [head, ""]
            if found:
                out += [*_limited(found, reveal, budget, layer_column=False), ""]
        clean = [
            str(layer.index)
            for layer in platform.layers
            if not by_layer.get(layer.index) and not layer.error
        ]
        if clean:
            out += [f"No findings in layer(s) {', '.join(clean)}.", ""]
        config = by_layer.get(None, [])
        if config:
            out += ["**Config, history and build**", ""]
            out += [*_limited(config, reveal, budget, layer_column=True), ""]
        return out


def _limited(
    findings: Sequence[Finding], reveal: bool, budget: list[int], *, layer_column: bool
) -> list[str]:
    shown = list(findings[: max(budget[0], 0)])
    budget[0] -= len(shown)
    if not shown:
        return [f"_{len(findings)} finding(s) not listed (the first {MAX_ROWS} are)._"]
    lines = findings_table(shown, reveal, layer_column=layer_column)
    if len(shown) < len(findings):
        lines += ["", f"_… and {len(findings) - len(shown)} more not listed._"]
    return lines


def suppressed_lines(report: Report) -> list[str]:
    total = sum(report.suppressed.values())
    if not total:
        return []
    reasons = ", ".join(f"{escape(k)}: {n}" for k, n in sorted(report.suppressed.items()))
    return [f"**Suppressed:** {total} ({reasons})", ""]


def problem_lines(report: Report) -> list[str]:
    if not report.problems:
        return []
    out = [
        f"### ⚠️ Errors: the scan is incomplete ({len(report.problems)})",
        "",
        "Parts of the image(s) below could not be scanned; findings there are unknown.",
        "",
    ]
    for p in report.problems:
        where_ = escape(p.image)
        if p.platform:
            where_ += f" {escape(p.platform)}"
        if p.layer_index is not None:
            where_ += f" layer {p.layer_index}"
        out.append(f"- {where_}: {escape(p.message)}")
    out.append("")
    return out

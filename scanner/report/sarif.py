"""``--format sarif``: SARIF 2.1.0 for GitHub code scanning and other SARIF consumers.

One run per report. ``tool.driver.rules[]`` is built once, one entry per rule id with
its help text, and every result points at its rule with ``ruleIndex``; severity maps
to a SARIF ``level`` and a GitHub ``security-severity`` through the one table below.
Each result's location is the file path inside the image (config, history and
Dockerfile findings get stable pseudo-paths), its properties carry the layer index,
layer digest, build step and forensic status, and ``partialFingerprints`` holds the
finding's fingerprint, which does not change when the image is rebuilt, so code
scanning recognises the same finding from release to release.

Raw secrets appear only when the report was made with ``--reveal``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from scanner.findings import Category, Finding, LocationKind, Severity
from scanner.report.interface import Formatter, summary, tool_info
from scanner.results import Report

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/layerleak/layerleak"
FINGERPRINT_KEY = "layerleak/v1"

# The one severity map: SARIF level and GitHub's security-severity (a CVSS-like score
# that code scanning buckets as critical >= 9.0, high >= 7.0, medium >= 4.0, low > 0).
LEVELS: dict[Severity, tuple[str, str]] = {
    Severity.CRITICAL: ("error", "9.5"),
    Severity.HIGH: ("error", "8.0"),
    Severity.MEDIUM: ("warning", "5.5"),
    Severity.LOW: ("note", "3.0"),
    Severity.INFO: ("note", "0.0"),
}

# Where non-file findings point: stable across releases (the image name is not).
PSEUDO_PATHS: dict[LocationKind, str] = {
    LocationKind.CONFIG: "image-config.json",
    LocationKind.HISTORY: "image-config.json",
    LocationKind.MANIFEST: "image-manifest.json",
    LocationKind.IMAGE: "image-manifest.json",
}

REMEDIATION: dict[Category, str] = {
    Category.SECRET: (
        "Rotate the credential now: anyone who can pull the image can read every layer, "
        "and deleting the file in a later layer does not remove it from the earlier one. "
        "Then rebuild without it: pass build-time secrets with `RUN --mount=type=secret` "
        "(not `ARG`/`--build-arg`, which land in the image history), keep secret files "
        "out of the build context with `.dockerignore`, and give the running app its "
        "secrets at run time (`fly secrets set`)."
    ),
    Category.SENSITIVE_FILE: (
        "Keep the file out of the image: add it to `.dockerignore`, or build it in an "
        "earlier stage of a multi-stage build and copy only what the app needs. Deleting "
        "it in a later layer leaves it recoverable from the layer that added it."
    ),
    Category.MISCONFIG: "Change the Dockerfile or the image configuration as described.",
    Category.SUPPLY_CHAIN: (
        "Pin what the build pulls in: base images by digest (`FROM image@sha256:...`), "
        "downloads by checksum; do not pipe remote scripts into a shell."
    ),
}


class SarifFormatter(Formatter):
    name = "sarif"

    def render(self, report: Report) -> str:
        return json.dumps(sarif_log(report), indent=2) + "\n"


def sarif_log(
    report: Report,
    baseline: Mapping[str, str] | None = None,
    absent: Sequence[Finding] = (),
) -> dict[str, Any]:
    """The SARIF log of ``report``.

    ``baseline`` (fingerprint -> ``new`` / ``unchanged``) sets each result's
    ``baselineState``; ``absent`` findings (fixed since the baseline) are added with
    ``baselineState: absent``. Both are used by ``layerleak diff``.
    """
    findings = list(report.findings)
    rules, rule_index = _rules([*findings, *absent])
    results = [
        _result(f, rule_index[f.rule_id], report.reveal, (baseline or {}).get(f.fingerprint))
        for f in findings
    ]
    results += [_result(f, rule_index[f.rule_id], report.reveal, "absent") for f in absent]
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": tool_info()["name"],
                "version": tool_info()["version"],
                "semanticVersion": tool_info()["version"],
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }
        },
        "invocations": [_invocation(report)],
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": {
            "failOn": report.fail_on.label,
            "summary": summary(report),
            "suppressed": dict(sorted(report.suppressed.items())),
            "images": [
                {
                    "name": image.name,
                    "sourceKind": image.source_kind,
                    "indexDigest": image.index_digest,
                    "platforms": [
                        {
                            "platform": p.platform,
                            "manifestDigest": p.manifest_digest,
                            "configDigest": p.config_digest,
                            "layers": len(p.layers),
                        }
                        for p in image.platforms
                    ],
                }
                for image in report.images
            ],
        },
    }
    return {"$schema": SARIF_SCHEMA_URI, "version": SARIF_VERSION, "runs": [run]}


# --- rules -------------------------------------------------------------------------------


def _rules(findings: Sequence[Finding]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``rules[]`` in first-seen order, and rule id -> index. Built once per log."""
    by_rule: dict[str, list[Finding]] = {}
    for f in findings:
        by_rule.setdefault(f.rule_id, []).append(f)
    rules = [_rule(rule_id, group) for rule_id, group in by_rule.items()]
    return rules, {rule_id: i for i, rule_id in enumerate(by_rule)}


def _rule(rule_id: str, findings: Sequence[Finding]) -> dict[str, Any]:
    first = findings[0]
    severity = max(f.severity for f in findings)
    level, score = LEVELS[severity]
    description = next((f.description for f in findings if f.description), "") or first.title
    remediation = REMEDIATION[first.category]
    help_text = f"{first.title}.\n\n{description}\n\n{remediation}"
    help_markdown = (
        f"**{first.title}** ({first.category.value}, {severity.label})\n\n"
        f"{description}\n\n{remediation}\n\n"
        "layerleak reports findings per layer: a file deleted or overwritten in a later "
        "layer is still readable from the layer that added it."
    )
    properties: dict[str, Any] = {
        "tags": ["security", first.category.value],
        "category": first.category.value,
    }
    if severity > Severity.INFO:
        properties["security-severity"] = score
    if first.detector:
        properties["detector"] = first.detector
    return {
        "id": rule_id,
        "name": _pascal(rule_id),
        "shortDescription": {"text": first.title},
        "fullDescription": {"text": description},
        "help": {"text": help_text, "markdown": help_markdown},
        "defaultConfiguration": {"level": level},
        "properties": properties,
    }


def _pascal(rule_id: str) -> str:
    parts = [p for p in "".join(c if c.isalnum() else " " for c in rule_id).split() if p]
    return "".join(p[:1].upper() + p[1:] for p in parts) or "Rule"


# --- results -----------------------------------------------------------------------------


def _result(finding: Finding, index: int, reveal: bool, baseline: str | None) -> dict[str, Any]:
    level, _ = LEVELS[finding.severity]
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "ruleIndex": index,
        "level": level,
        "kind": "fail",
        "message": {"text": message_text(finding)},
        "locations": [_location(finding)],
        "partialFingerprints": {FINGERPRINT_KEY: finding.fingerprint},
        "properties": result_properties(finding, reveal),
    }
    if baseline is not None:
        result["baselineState"] = baseline
    return result


def message_text(finding: Finding) -> str:
    loc = finding.location
    text = finding.title
    if finding.match:
        text += f": {finding.match}"
    where = loc.display_path() or loc.field or loc.kind.value
    if loc.line:
        where += f":{loc.line}"
    text += f" in {where}"
    if loc.layer_index is not None:
        text += f" (layer {loc.layer_index}"
        if loc.created_by:
            text += f", {_clip(loc.created_by, 80)}"
        text += ")"
    if finding.status.recoverable:
        text += f"; {finding.status.describe()}, still recoverable from layer {loc.layer_index}"
    if finding.image:
        text += f" of {finding.image}"
        if finding.platform:
            text += f" [{finding.platform}]"
    if finding.noise:
        text += f" (likely noise: {finding.noise})"
    if finding.blast_radius:
        text += f". Opens: {finding.blast_radius.summary}"
    return text


def result_properties(finding: Finding, reveal: bool) -> dict[str, Any]:
    loc = finding.location
    props: dict[str, Any] = {
        "image": finding.image,
        "platform": finding.platform,
        "category": finding.category.value,
        "severity": finding.severity.label,
        "locationKind": loc.kind.value,
        "path": loc.display_path() if loc.path is not None else None,
        "field": loc.field,
        "layerIndex": loc.layer_index,
        "layerDigest": loc.layer_digest,
        "diffId": loc.diff_id,
        "historyIndex": loc.history_index,
        "buildStep": loc.created_by,
        "status": finding.status.state.value,
        "statusDescription": finding.status.describe(),
        "changedInLayer": finding.status.changed_in_layer,
        "recoverable": finding.status.recoverable,
        "match": finding.match,
        "fingerprint": finding.fingerprint,
        "detector": finding.detector,
        "noise": finding.noise,
        "verification": finding.verification,
        "blastRadius": finding.blast_radius.to_dict() if finding.blast_radius else None,
    }
    props = {k: v for k, v in props.items() if v is not None}
    if reveal and finding.secret:
        props["secret"] = finding.secret
    return props


def _location(finding: Finding) -> dict[str, Any]:
    loc = finding.location
    physical: dict[str, Any] = {"artifactLocation": {"uri": artifact_uri(finding)}}
    if loc.line and (loc.kind is LocationKind.FILE or loc.kind is LocationKind.DOCKERFILE):
        physical["region"] = {"startLine": loc.line}
    location: dict[str, Any] = {"physicalLocation": physical}
    logical = loc.field or (loc.inner_path and f"{loc.path}!{loc.inner_path}")
    if loc.kind is LocationKind.HISTORY and loc.history_index is not None:
        logical = f"history[{loc.history_index}]"
    if logical:
        location["logicalLocations"] = [{"fullyQualifiedName": logical}]
    return location


def artifact_uri(finding: Finding) -> str:
    """A relative URI: the file path in the image, or a stable pseudo-path."""
    loc = finding.location
    if loc.kind is LocationKind.FILE and loc.path:
        return quote(loc.path.lstrip("/"), safe="/")
    if loc.kind is LocationKind.DOCKERFILE:
        name = (loc.field or "Dockerfile").rsplit(":", 1)[0] if loc.line else loc.field
        return quote((name or "Dockerfile").lstrip("/"), safe="/")
    if loc.path:
        return quote(loc.path.lstrip("/"), safe="/")
    return PSEUDO_PATHS.get(loc.kind, "image-config.json")


def _invocation(report: Report) -> dict[str, Any]:
    notifications = []
    for problem in report.problems:
        props = {
            k: v
            for k, v in {
                "image": problem.image,
                "platform": problem.platform,
                "layerIndex": problem.layer_index,
            }.items()
            if v is not None
        }
        notifications.append(
            {"level": "error", "message": {"text": problem.message}, "properties": props}
        )
    invocation: dict[str, Any] = {"executionSuccessful": report.complete}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return invocation


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"

"""Baselines: the fingerprints of today's findings, so later scans report only new ones.

``layerleak baseline SOURCE... -o baseline.json`` writes::

    {
      "layerleak_baseline": 1,
      "created": "2024-05-02T10:00:00+00:00",
      "sources": ["registry.fly.io/app:deployment-01H..."],
      "findings": [
        {"fingerprint": "4b1d...", "rule_id": "aws-access-key-id",
         "severity": "high", "where": "/app/.env"}
      ]
    }

``scan --baseline baseline.json`` drops every finding whose fingerprint is in it and
counts them as suppressed ``in baseline``. Fingerprints are built from the rule,
the path (or config field) and the secret's hash, never from layer digests, so a
rebuild of the same content matches its baseline. A ``--format json`` report is
also accepted as a baseline (its findings' fingerprints are used). The file never
holds a secret: only fingerprints, rule ids and paths.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner.errors import ConfigError
from scanner.findings import Finding
from scanner.results import Report

BASELINE_VERSION = 1
BASELINE_REASON = "in baseline"


@dataclass(frozen=True)
class Baseline:
    fingerprints: frozenset[str]
    path: Path | None = None

    def __contains__(self, finding: object) -> bool:
        return isinstance(finding, Finding) and finding.fingerprint in self.fingerprints


def _where(finding: Finding) -> str:
    loc = finding.location
    return loc.display_path() if loc.path is not None else (loc.field or loc.kind.value)


def build(findings: Iterable[Finding], sources: Sequence[str] = ()) -> dict[str, Any]:
    """The baseline document for ``findings`` (one entry per distinct fingerprint)."""
    entries: dict[str, dict[str, str]] = {}
    for f in findings:
        entries.setdefault(
            f.fingerprint,
            {
                "fingerprint": f.fingerprint,
                "rule_id": f.rule_id,
                "severity": f.severity.label,
                "where": _where(f),
            },
        )
    return {
        "layerleak_baseline": BASELINE_VERSION,
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "sources": list(sources),
        "findings": sorted(entries.values(), key=lambda e: (e["where"], e["rule_id"])),
    }


def write(path: Path, findings: Iterable[Finding], sources: Sequence[str] = ()) -> int:
    """Write a baseline file; returns the number of fingerprints written."""
    doc = build(findings, sources)
    try:
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write baseline {path}: {exc.strerror or exc}") from None
    return len(doc["findings"])


def load(path: Path) -> Baseline:
    """Read a baseline file (or a ``--format json`` report); raises ConfigError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"baseline {path}: cannot read ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"baseline {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"baseline {path}: expected a JSON object")
    if "layerleak_baseline" in data:
        items = data.get("findings")
    elif "images" in data:  # a JSON report
        images = data["images"] if isinstance(data["images"], list) else []
        items = [f for i in images if isinstance(i, dict) for f in i.get("findings") or []]
    else:
        raise ConfigError(f"baseline {path}: not a layerleak baseline or JSON report")
    if not isinstance(items, list):
        raise ConfigError(f"baseline {path}: 'findings' must be a list")
    fingerprints = set()
    for item in items:
        value = item.get("fingerprint") if isinstance(item, dict) else item
        if not isinstance(value, str) or not value:
            raise ConfigError(f"baseline {path}: a finding without a fingerprint")
        fingerprints.add(value)
    return Baseline(frozenset(fingerprints), path)


def apply(report: Report, baseline: Baseline) -> int:
    """Remove the findings already in ``baseline``; returns how many were removed."""
    removed = 0
    for image in report.images:
        kept = [f for f in image.findings if f not in baseline]
        removed += len(image.findings) - len(kept)
        image.findings = kept
    if removed:
        report.suppressed[BASELINE_REASON] += removed
    return removed

"""What the benchmark compares across code versions: the findings of a JSON report.

A speed-up must not change findings. The benchmark records, per image, the set of
(fingerprint, layer, severity, state, noise) of the pre-change code once (``make
bench-baseline``) and checks every later cold scan against it. The rule files'
digest is stored with it: a baseline made with other rules is not comparable.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def rules_digest(root: Path = ROOT) -> str:
    """sha256 over the built-in rule files (names and bytes) of a checkout."""
    h = hashlib.sha256()
    for path in sorted((root / "signatures").glob("*.yaml")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def finding_keys(report: dict[str, Any]) -> list[str]:
    """Sorted identities of every finding in a JSON report (duplicates kept)."""
    keys = []
    for image in report.get("images", []):
        for finding in image.get("findings", []):
            loc = finding.get("location", {})
            status = finding.get("status", {})
            keys.append(
                "|".join(
                    str(x)
                    for x in (
                        finding.get("fingerprint"),
                        loc.get("layer_index"),
                        loc.get("line"),
                        finding.get("severity"),
                        status.get("state"),
                        finding.get("noise"),
                    )
                )
            )
    return sorted(keys)


def load_keys(path: Path) -> list[str]:
    return finding_keys(json.loads(path.read_text()))


class Baseline:
    """bench/out/baseline-findings.json: {image name: {"rules": digest, "keys": [...]}}."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def record(self, image: str, keys: list[str], root: Path = ROOT) -> None:
        self.data[image] = {"rules": rules_digest(root), "keys": keys}
        self.path.write_text(json.dumps(self.data, indent=1, sort_keys=True))

    def compare(self, image: str, keys: list[str]) -> str:
        """A one-line verdict: identical, different (with counts), or not comparable."""
        entry = self.data.get(image)
        if entry is None:
            return "no baseline recorded (make bench-baseline on the pre-change code)"
        if entry["rules"] != rules_digest():
            return "baseline made with other rule files: not comparable (re-record it)"
        old, new = entry["keys"], keys
        if old == new:
            return f"identical to the baseline ({len(new)} findings)"
        gone = len(set(old) - set(new))
        added = len(set(new) - set(old))
        return f"DIFFERENT from the baseline: {gone} missing, {added} new ({len(new)} findings)"

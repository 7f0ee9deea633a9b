"""Live verification (``--verify``): ask the provider whether a found secret works.

:func:`verify_report` runs after the scan on a report scanned with
``ScanOptions(reveal=True)`` (the raw secret is needed); it sets each supported
finding's ``verification`` to ``verified``, ``invalid`` or ``unknown`` (one call
per distinct secret and companions) and, unless ``keep_secrets``, removes the raw
secrets from the report again. Where the provider says who the credential is, the
finding's blast radius records it (``verified_identity``). Verifiers that need
other parts of a credential (an AWS key id's secret key) get them from the findings
next to it (:mod:`scanner.verify.pairing`). Findings of rules without a verifier
are left as they are (``verification`` stays None). Base URLs come from
``LAYERLEAK_VERIFY_<NAME>_URL``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace

from scanner.findings import BlastRadius, Finding
from scanner.results import Report
from scanner.verify.interface import Outcome, Verdict, Verifier
from scanner.verify.pairing import companions
from scanner.verify.providers import VERIFIERS


def verifiers(env: Mapping[str, str] | None = None, timeout: float = 10.0) -> dict[str, Verifier]:
    """rule id -> the verifier for it."""
    env = os.environ if env is None else env
    out: dict[str, Verifier] = {}
    for cls in VERIFIERS:
        verifier = cls(env, timeout)
        for rule_id in cls.rule_ids:
            if rule_id in out:
                raise RuntimeError(f"two verifiers for rule {rule_id}")
            out[rule_id] = verifier
    return out


def verify_report(
    report: Report,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    keep_secrets: bool = False,
) -> Counter[str]:
    """Verify the report's findings in place; returns counts per verdict."""
    table = verifiers(env, timeout)
    cache: dict[tuple[str, ...], Outcome] = {}
    counts: Counter[str] = Counter()
    for image in report.images:
        updated = []
        accepted: dict[int, Outcome] = {}  # companions of credentials the provider accepted
        for finding in image.findings:
            verifier = table.get(finding.rule_id)
            if verifier is not None:
                outcome = Outcome(Verdict.UNKNOWN)
                if finding.secret:
                    found = companions(finding, image.findings, verifier.companions)
                    parts = {rule_id: str(other.secret) for rule_id, other in found.items()}
                    key = (  # in memory only: the raw values identify the call
                        verifier.name,
                        finding.secret,
                        *sorted(f"{r}\x1f{s}" for r, s in parts.items()),
                    )
                    if key not in cache:
                        cache[key] = verifier.check(finding.secret, parts)
                    outcome = cache[key]
                    if outcome.verdict is Verdict.VERIFIED:
                        accepted.update((id(other), outcome) for other in found.values())
                counts[outcome.verdict.value] += 1
                finding = _with_outcome(finding, outcome, verifier.name)
            updated.append(finding)
        for i, finding in enumerate(updated):
            if id(image.findings[i]) in accepted and finding.verification is None:
                outcome = accepted[id(image.findings[i])]
                finding = _with_outcome(finding, outcome, finding.detector or finding.rule_id)
            updated[i] = replace(finding, secret=finding.secret if keep_secrets else None)
        image.findings = updated
    return counts


def _with_outcome(finding: Finding, outcome: Outcome, provider: str) -> Finding:
    radius = finding.blast_radius
    if outcome.identity:
        who = ", ".join(f"{k} {v}" for k, v in outcome.identity.items())
        radius = replace(
            radius or BlastRadius(summary=f"live {provider} credential of {who}"),
            verified_identity=dict(outcome.identity),
        )
    return replace(finding, verification=outcome.verdict.value, blast_radius=radius)


__all__ = ["VERIFIERS", "Verdict", "Verifier", "verifiers", "verify_report"]

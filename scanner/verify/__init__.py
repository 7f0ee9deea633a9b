"""Live verification (``--verify``): ask the provider whether a found secret works.

:func:`verify_report` runs after the scan on a report scanned with
``ScanOptions(reveal=True)`` (the raw secret is needed); it sets each supported
finding's ``verification`` to ``verified``, ``invalid`` or ``unknown`` (one call
per distinct secret) and, unless ``keep_secrets``, removes the raw secrets from
the report again. Findings of rules without a verifier are left as they are
(``verification`` stays None). Base URLs come from ``LAYERLEAK_VERIFY_<NAME>_URL``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace

from scanner.results import Report
from scanner.verify.interface import Verdict, Verifier
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
    cache: dict[tuple[str, str], Verdict] = {}
    counts: Counter[str] = Counter()
    for image in report.images:
        updated = []
        for finding in image.findings:
            verifier = table.get(finding.rule_id)
            verification = finding.verification
            if verifier is not None and not finding.suppressed:
                if finding.secret:
                    key = (verifier.name, finding.secret_hash or finding.secret)
                    if key not in cache:
                        cache[key] = verifier.verify(finding.secret)
                    verification = cache[key].value
                else:
                    verification = Verdict.UNKNOWN.value
                counts[verification] += 1
            secret = finding.secret if keep_secrets else None
            updated.append(replace(finding, verification=verification, secret=secret))
        image.findings = updated
    return counts


__all__ = ["VERIFIERS", "Verdict", "Verifier", "verifiers", "verify_report"]

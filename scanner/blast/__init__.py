"""Blast radius: what a found credential opens, decoded offline from the credential.

:func:`radius` picks the decoder for a rule (by rule id, then by detector name) and
runs it on the secret and the text around it. One explicit list of decoders,
:data:`DECODERS`; a rule id or detector claimed twice is an error at import.
Hostile secrets cannot crash a scan: any error in a decoder means "nothing decoded".
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from typing import Any

from scanner.blast.aws import AwsDecoder
from scanner.blast.docker import DockerAuthDecoder
from scanner.blast.fly import FlyDecoder
from scanner.blast.interface import MAX_SECRET, Clue, Decoder, Radius
from scanner.blast.jwt import JwtDecoder
from scanner.blast.pypi import PyPIDecoder
from scanner.blast.slack import SlackDecoder
from scanner.blast.stripe import StripeDecoder
from scanner.blast.urls import ConnectionUrlDecoder
from scanner.findings import Finding, Severity

DECODERS: tuple[Decoder, ...] = (
    FlyDecoder(),
    AwsDecoder(),
    PyPIDecoder(),
    JwtDecoder(),
    SlackDecoder(),
    StripeDecoder(),
    DockerAuthDecoder(),
    ConnectionUrlDecoder(),
)


def _tables() -> tuple[dict[str, Decoder], dict[str, Decoder]]:
    by_rule: dict[str, Decoder] = {}
    by_detector: dict[str, Decoder] = {}
    for decoder in DECODERS:
        for table, keys in ((by_rule, decoder.rule_ids), (by_detector, decoder.detectors)):
            for key in keys:
                if key in table:
                    raise RuntimeError(
                        f"{key} claimed by decoders {table[key].name} and {decoder.name}"
                    )
                table[key] = decoder
    return by_rule, by_detector


BY_RULE, BY_DETECTOR = _tables()


def decoder_for(rule_id: str, detector: str | None) -> Decoder | None:
    found = BY_RULE.get(rule_id)
    if found is None and detector is not None:
        found = BY_DETECTOR.get(detector)
    return found


def radius(clue: Clue) -> Radius | None:
    """The blast radius of one secret, or None when no decoder knows it."""
    decoder = decoder_for(clue.rule_id, clue.detector)
    if decoder is None or not clue.secret or len(clue.secret) > MAX_SECRET:
        return None
    try:
        return decoder.decode(clue)
    except Exception:  # hostile input must never stop a scan: nothing decoded
        return None


def refreshed(finding: Finding, now: float | None = None) -> Finding:
    """``finding`` as of ``now``: a credential that was valid when its layer was scanned
    (and cached) but has expired since is lowered to medium and says so."""
    radius_ = finding.blast_radius
    if radius_ is None:
        return finding
    now = time.time() if now is None else now
    details = dict(radius_.details)
    changed = _expire(details, now)
    nested = details.get("fly")
    if isinstance(nested, dict):
        nested = dict(nested)
        if _expire(nested, now):
            details["fly"] = nested
            changed = True
    if not changed:
        return finding
    summary = radius_.summary.replace("; expires ", "; expired on ")
    return replace(
        finding,
        severity=Severity(min(finding.severity, Severity.MEDIUM)),
        blast_radius=replace(radius_, summary=summary, details=details),
    )


def _expire(details: dict[str, Any], now: float) -> bool:
    if details.get("expired") is not False or not isinstance(details.get("expires_at"), str):
        return False
    try:
        when = datetime.fromisoformat(details["expires_at"]).timestamp()
    except ValueError:
        return False
    if when > now:
        return False
    details["expired"] = True
    return True


__all__ = ["DECODERS", "Clue", "Decoder", "Radius", "decoder_for", "radius", "refreshed"]

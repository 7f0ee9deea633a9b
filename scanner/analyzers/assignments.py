"""Findings for ``NAME=value`` pairs wherever an image keeps them: build args and
ARG/ENV steps in history, config.Env, labels and annotations.

A value is reported when a signature matches it (the rule's own finding), or when
its name says it is a credential and the value is not empty or a placeholder.
"""

from __future__ import annotations

from collections.abc import Callable

from scanner.detection import Detection, is_sensitive_name
from scanner.findings import Category, Finding, Location, Severity, redact
from scanner.secrets.noise import placeholder_reason


def assignment_findings(
    detection: Detection,
    name: str,
    value: str,
    location: Callable[[str], Location],
    *,
    rule_id: str,
    what: str,
    severity: Severity = Severity.HIGH,
) -> list[Finding]:
    """Findings for one assignment; ``location(field)`` builds where it sits."""
    field = f"{what} {name}"
    found: list[Finding] = []
    seen: set[str] = set()
    for match in detection.scan_text(f"{name}={value}"):
        if match.end <= len(name.encode("utf-8", "surrogateescape")):
            continue  # the match lies in the name, not the value
        key = detection.hash(match.secret)
        if key in seen:
            continue
        seen.add(key)
        found.append(detection.finding(match, location(field)))
    if found or not is_sensitive_name(name):
        return found
    bare = value.strip().strip("\"'")
    if not bare:
        return found
    noise = placeholder_reason(bare)
    found.append(
        Finding(
            rule_id=rule_id,
            title=f"{what} {name} holds a credential by its name",
            severity=Severity.LOW if noise else severity,
            category=Category.SECRET,
            location=location(field),
            match=f"{name}={redact(bare)}",
            secret_hash=detection.hash(bare),
            description=(
                f"The {what.lower()} is stored in the image and readable by anyone who can pull "
                "it. Use build secrets (RUN --mount=type=secret) or runtime secrets "
                "(fly secrets set) instead, and rotate the value."
            ),
            secret=bare if detection.reveal else None,
            noise=noise,
        )
    )
    return found

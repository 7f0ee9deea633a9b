"""Which secrets found next to a finding belong with it (``Verifier.companions``).

Pairing rule: a companion is a finding of one of the wanted rule ids, with a raw
secret, in the same image and platform and at the same place: the same file (layer,
path, archive member and copy), or the image config, or the same build step. Among
several, the nearest by line wins (a file with two key pairs pairs each id with
the secret key on the closest line; on a tie, the one after the id, as
``~/.aws/credentials`` and ``.env`` files write them). Nothing found means the
verifier answers ``unknown``: a key id is never tried with a secret from elsewhere.
When the provider accepts the whole credential, its companions are ``verified`` too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from scanner.findings import Finding, LocationKind


def place(finding: Finding) -> tuple[object, ...]:
    loc = finding.location
    if loc.kind is LocationKind.CONFIG:
        where: tuple[object, ...] = ("config",)
    elif loc.kind is LocationKind.HISTORY:
        where = ("history", loc.history_index)
    else:
        where = (loc.kind.value, loc.layer_index, loc.path, loc.inner_path, loc.occurrence)
    return (finding.image, finding.platform, *where)


def companions(
    finding: Finding, candidates: Sequence[Finding], rule_ids: Iterable[str]
) -> dict[str, Finding]:
    """rule id -> the nearest companion of ``finding`` with that rule (with a secret)."""
    wanted = frozenset(rule_ids)
    if not wanted:
        return {}
    here = place(finding)
    line = finding.location.line or 0
    best: dict[str, tuple[tuple[int, int], Finding]] = {}
    for other in candidates:
        if other.rule_id not in wanted or not other.secret or place(other) != here:
            continue
        other_line = other.location.line or 0
        rank = (abs(other_line - line), 0 if other_line >= line else 1)
        if other.rule_id not in best or rank < best[other.rule_id][0]:
            best[other.rule_id] = (rank, other)
    return {rule_id: other for rule_id, (_, other) in best.items()}

"""Fly.io tokens: what a ``FlyV1 fm2_...`` bundle opens, read from its macaroons.

Format (see ``../shared/fly-tokens.md``): a header value ``FlyV1 `` (or ``Bearer ``)
followed by tokens joined by ``,``, each ``LABEL_PAYLOAD``. ``fm2``/``fm1r``/``fm1a``
payloads are base64 MessagePack macaroons ``[nonce, location, caveats, tail]`` where
``nonce`` is ``[kid, rnd]`` or ``[kid, rnd, proof]`` (``proof`` marks the discharge
token) and ``caveats`` a flat ``[type, body, type, body, ...]`` array. ``fo1`` is an
opaque user session token. Nothing here needs or checks a signing key.

Every caveat must pass, so a token's power is the intersection of its caveats: the
AND of every Organization mask, narrowed by Apps, Action, Mutations and IfPresent.
The expiry is the smallest ``not_after`` of any ValidityWindow in the bundle.

Hostile input is bounded: at most :data:`MAX_TOKENS` tokens of at most
:data:`MAX_PAYLOAD` characters, MessagePack lengths limited to the payload size
(the library refuses larger headers), caveat arrays walked to :data:`MAX_DEPTH`
levels and :data:`MAX_CAVEATS` entries; anything malformed makes that token
"not decodable", never an exception.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack

from scanner.blast.interface import (
    Clue,
    Decoder,
    Radius,
    clean,
    expired_cap,
    expiry_note,
    iso_date,
)
from scanner.findings import Severity

MAX_TOKENS = 16
MAX_PAYLOAD = 16 << 10  # base64 characters of one macaroon
MAX_CAVEATS = 256  # caveats read per macaroon, nested ones included
MAX_DEPTH = 4  # IfPresent nesting followed
MAX_IDS = 50  # ids listed per kind

# caveat types (fly-tokens.md)
ORGANIZATION = 0
APPS = 3
VALIDITY_WINDOW = 4
FEATURE_SET = 5
MUTATIONS = 6
MACHINES = 7
CONFINE_USER = 8
CONFINE_ORGANIZATION = 9
IS_USER = 10
THIRD_PARTY = 11
IF_PRESENT = 13
MAX_VALIDITY = 21
FLYIO_USER_ID = 23
ACTION = 26
COMMANDS = 27

KNOWN_TYPES = frozenset(range(32))

READ, WRITE, CREATE, DELETE, CONTROL = 1, 2, 4, 8, 16
ALL_ACTIONS = 0x1F
WILDCARD_MASK = 0xFFFF
ACTION_NAMES = ((READ, "read"), (WRITE, "write"), (CREATE, "create"), (DELETE, "delete"))
SSH_MUTATIONS = frozenset({"issueCertificate", "addWireGuardPeer"})

_SCHEME = re.compile(r"^\s*(?:(?:FlyV1|Bearer)\s+)+", re.IGNORECASE)


class NotAToken(ValueError):
    """A payload that is not a readable macaroon (the reason says why)."""


def actions(mask: int) -> str:
    """A permission mask as words: ``read, write`` or ``all``."""
    if mask & ALL_ACTIONS == ALL_ACTIONS:
        return "all"
    names = [name for bit, name in ACTION_NAMES if mask & bit]
    if mask & CONTROL:
        names.append("control")
    return ", ".join(names) or "none"


@dataclass
class Macaroon:
    label: str
    location: str = ""
    discharge: bool = False
    caveats: list[tuple[int, Any]] = field(default_factory=list)
    truncated: bool = False


@dataclass
class Reading:
    """What the bundle's caveats say, accumulated over every permission token."""

    org_ids: set[int] = field(default_factory=set)  # reported as strings (uint64)
    org_mask: int = WILDCARD_MASK
    action_mask: int = WILDCARD_MASK
    app_ids: set[str] = field(default_factory=set)
    app_wildcard: bool = False
    conditional_apps: set[str] = field(default_factory=set)  # Apps inside IfPresent
    else_mask: int | None = None  # IfPresent's mask when its caveats do not apply
    features: set[str] = field(default_factory=set)
    mutations: set[str] = field(default_factory=set)
    commands: list[str] = field(default_factory=list)
    machines: set[str] = field(default_factory=set)
    user_ids: set[int] = field(default_factory=set)
    third_parties: set[str] = field(default_factory=set)
    not_before: int | None = None
    not_after: int | None = None
    max_validity: int | None = None
    unknown_types: set[int] = field(default_factory=set)
    permission_tokens: int = 0
    discharge_tokens: int = 0
    truncated: bool = False  # a bound stopped the walk: more caveats than were read

    def window(self, not_before: Any, not_after: Any) -> None:
        if _is_int(not_after):
            self.not_after = not_after if self.not_after is None else min(self.not_after, not_after)
        if _is_int(not_before):
            self.not_before = (
                not_before if self.not_before is None else max(self.not_before, not_before)
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _one(body: Any) -> Any:
    """A one-field struct encoded as a one-element array, or the bare value."""
    if isinstance(body, list) and len(body) == 1:
        return body[0]
    return body


def _ids(resource_map: Any) -> Iterator[str]:
    if isinstance(resource_map, dict):
        for key in list(resource_map)[:MAX_IDS]:
            yield clean(key.hex() if isinstance(key, bytes) else key, 80)


def split_bundle(text: str) -> list[tuple[str, str]]:
    """``FlyV1 fm2_A,fm2_B`` -> [("fm2", "A"), ("fm2", "B")] (at most MAX_TOKENS)."""
    text = _SCHEME.sub("", text.strip())
    out: list[tuple[str, str]] = []
    for part in text.split(",")[:MAX_TOKENS]:
        label, sep, payload = part.strip().partition("_")
        if sep and label:
            out.append((label.lower(), payload))
    return out


def decode_payload(label: str, payload: str) -> Macaroon:
    """One ``fm2``/``fm1r``/``fm1a`` payload as a :class:`Macaroon` (raises NotAToken)."""
    if len(payload) > MAX_PAYLOAD:
        raise NotAToken("longer than any real token")
    data = payload.strip().rstrip("=")
    padded = data + "=" * (-len(data) % 4)
    try:
        if "-" in data or "_" in data:
            raw = base64.urlsafe_b64decode(padded)
        else:
            raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise NotAToken("not base64") from None
    try:
        obj = msgpack.unpackb(raw, raw=False, strict_map_key=False, unicode_errors="replace")
    except msgpack.ExtraData as exc:
        obj = exc.unpacked
    except (ValueError, msgpack.UnpackException, TypeError):
        raise NotAToken("not MessagePack, or truncated") from None
    if not isinstance(obj, list) or len(obj) != 4:
        raise NotAToken("not a 4-element macaroon")
    nonce, location, caveats, _tail = obj
    if not isinstance(nonce, list) or len(nonce) not in (2, 3):
        raise NotAToken("no nonce")
    if not isinstance(caveats, list) or len(caveats) % 2:
        raise NotAToken("caveats are not type/body pairs")
    macaroon = Macaroon(
        label=label,
        location=clean(location, 100) if isinstance(location, str) else "",
        discharge=len(nonce) == 3 and nonce[2] is True,
    )
    macaroon.caveats = list(_pairs(caveats))
    macaroon.truncated = len(caveats) > 2 * MAX_CAVEATS
    return macaroon


def _pairs(flat: list[Any]) -> Iterator[tuple[int, Any]]:
    for i in range(0, min(len(flat), 2 * MAX_CAVEATS) - 1, 2):
        kind = flat[i]
        if _is_int(kind) and kind >= 0:
            yield kind, flat[i + 1]


def read_caveats(
    caveats: list[tuple[int, Any]], into: Reading, depth: int = 0, budget: list[int] | None = None
) -> None:
    """Fold one macaroon's caveats into ``into`` (IfPresent followed to MAX_DEPTH)."""
    budget = budget if budget is not None else [MAX_CAVEATS]
    for kind, body in caveats:
        budget[0] -= 1
        if budget[0] < 0:
            into.truncated = True
            return
        if kind == ORGANIZATION and isinstance(body, list) and len(body) >= 2:
            org, mask = body[0], body[1]
            if _is_int(org):
                into.org_ids.add(org)
            if _is_int(mask):
                into.org_mask &= mask
        elif kind == APPS:
            apps = _one(body)
            keys = list(_ids(apps))
            if depth:
                into.conditional_apps.update(keys)
            else:
                into.app_ids.update(keys)
            if isinstance(apps, dict) and (0 in apps or "" in apps):
                into.app_wildcard = True
        elif kind == VALIDITY_WINDOW and isinstance(body, list) and len(body) >= 2:
            into.window(body[0], body[1])
        elif kind == FEATURE_SET:
            into.features.update(_ids(_one(body)))
        elif kind == MUTATIONS:
            names = _one(body)
            if isinstance(names, list):
                into.mutations.update(clean(n, 80) for n in names[:MAX_IDS] if isinstance(n, str))
        elif kind == MACHINES:
            into.machines.update(_ids(_one(body)))
        elif kind in (CONFINE_USER, IS_USER, FLYIO_USER_ID):
            user = _one(body)
            if _is_int(user):
                into.user_ids.add(user)
        elif kind == CONFINE_ORGANIZATION:
            org = _one(body)
            if _is_int(org):
                into.org_ids.add(org)
        elif kind == THIRD_PARTY and isinstance(body, list) and body:
            if isinstance(body[0], str):
                into.third_parties.add(clean(body[0], 100))
        elif kind == IF_PRESENT and isinstance(body, list) and len(body) >= 2:
            ifs, otherwise = body[0], body[1]
            if isinstance(ifs, list) and len(ifs) % 2 == 0:
                if depth >= MAX_DEPTH or len(ifs) > 2 * MAX_CAVEATS:
                    into.truncated = True
                if depth < MAX_DEPTH:
                    read_caveats(list(_pairs(ifs)), into, depth + 1, budget)
            if _is_int(otherwise):
                into.else_mask = otherwise if into.else_mask is None else into.else_mask & otherwise
        elif kind == MAX_VALIDITY and _is_int(_one(body)):
            into.max_validity = _one(body)
        elif kind == ACTION and _is_int(_one(body)):
            into.action_mask &= _one(body)
        elif kind == COMMANDS:
            for command in (body if isinstance(body, list) else [])[:MAX_IDS]:
                args = command[0] if isinstance(command, list) and command else None
                if isinstance(args, list):
                    into.commands.append(clean(" ".join(str(a) for a in args[:20]), 120))
        elif kind not in KNOWN_TYPES:
            into.unknown_types.add(kind)  # registrable / user-defined: reported, never fatal


@dataclass(frozen=True)
class Kind:
    key: str
    summary: str
    severity: Severity


def classify(reading: Reading) -> Kind:
    """Name what the bundle can do, most specific shape first."""
    effective = reading.org_mask & reading.action_mask
    apps = sorted(reading.app_ids | reading.conditional_apps)
    org = _orgs(reading)
    if reading.mutations & SSH_MUTATIONS:
        return Kind(
            "ssh",
            f"Fly.io SSH token for {org}: issues SSH certificates and adds WireGuard "
            "peers, a shell on the organisation's Machines (and the secrets in their "
            "environment)",
            Severity.HIGH,
        )
    if reading.commands:
        return Kind(
            "machine-exec",
            f"Fly.io machine-exec token for {org}: runs {_list(reading.commands)} on "
            "Machines, read-only otherwise",
            Severity.HIGH,
        )
    if effective & ALL_ACTIONS and not effective & ~READ & ALL_ACTIONS:
        return Kind(
            "read-only",
            f"Fly.io read-only token for {org}: reads apps, Machines and configuration, "
            "cannot deploy or change anything",
            Severity.MEDIUM,
        )
    if apps and not reading.app_wildcard:
        extra = f", plus {_list(sorted(reading.features))}" if reading.features else ""
        return Kind(
            "app-deploy",
            f"Fly.io app-scoped deploy token for {org}: deploys to and reads the secrets "
            f"of app id(s) {_list(apps)} only{extra}; read-only on the rest",
            Severity.HIGH,
        )
    if reading.org_ids and effective & ~READ & ALL_ACTIONS:
        return Kind(
            "org-deploy",
            f"Fly.io organisation-wide deploy token for {org}: deploys to and reads the "
            "secrets of every app in the organisation",
            Severity.CRITICAL,
        )
    return Kind(
        "limited",
        f"Fly.io token for {org} with permissions {actions(effective)}",
        Severity.HIGH,
    )


def _orgs(reading: Reading) -> str:
    ids = sorted(reading.org_ids)[:MAX_IDS]
    if not ids:
        return "an unnamed organisation"
    return "organisation " + ", ".join(str(i) for i in ids)


def _list(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


class FlyDecoder(Decoder):
    name = "fly"
    rule_ids = frozenset(
        {"flyio-api-token", "flyio-macaroon", "flyio-legacy-token", "flyio-org-token"}
    )
    detectors = frozenset({"FlyIO"})

    def decode(self, clue: Clue) -> Radius | None:
        return decode_bundle(clue.secret, clue.now)


def decode_bundle(text: str, now: float) -> Radius | None:
    """The radius of a Fly.io token bundle, or None when it holds no Fly.io token."""
    parts = split_bundle(text)
    if not parts:
        return None
    reading = Reading()
    undecodable: list[str] = []
    session = False
    for label, payload in parts:
        if label == "fo1":
            session = True
            continue
        if label not in ("fm2", "fm1r", "fm1a"):
            undecodable.append(f"{clean(label, 10)}: unknown label")
            continue
        try:
            macaroon = decode_payload(label, payload)
        except NotAToken as exc:
            undecodable.append(f"{label}: {exc}")
            continue
        if macaroon.discharge:
            reading.discharge_tokens += 1
        else:
            reading.permission_tokens += 1
        reading.truncated |= macaroon.truncated
        read_caveats(macaroon.caveats, reading)
    details: dict[str, Any] = {"provider": "Fly.io"}
    if undecodable:
        details["not_decodable"] = undecodable[:MAX_TOKENS]
    note, expired = expiry_note(reading.not_after, now)
    if session:
        kind = Kind(
            "user-session",
            "Fly.io user session token (fo1_): acts as the user who logged in, with all "
            "their rights in every organisation they belong to",
            Severity.CRITICAL,
        )
    elif reading.permission_tokens:
        kind = classify(reading)
    elif reading.discharge_tokens:
        kind = Kind("discharge-only", "Fly.io discharge token alone", Severity.MEDIUM)
    else:
        return Radius(
            "Fly.io token whose contents could not be decoded (" + "; ".join(undecodable[:3]) + ")",
            details,
        )
    details["kind"] = kind.key
    if reading.permission_tokens or reading.discharge_tokens:
        details.update(_facts(reading))
    if reading.not_after is not None:
        details["expires_at"] = iso_date(reading.not_after)
        details["expired"] = expired
    summary = kind.summary + (f"; {note}" if note else "; no expiry in the token")
    return Radius(summary, details, severity=kind.severity, at_most=expired_cap(expired))


def _facts(reading: Reading) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "organization_ids": [str(i) for i in sorted(reading.org_ids)[:MAX_IDS]],
        "permissions": actions(reading.org_mask & reading.action_mask),
        "permission_tokens": reading.permission_tokens,
        "discharge_tokens": reading.discharge_tokens,
    }
    optional: dict[str, Any] = {
        "app_ids": sorted(reading.app_ids | reading.conditional_apps)[:MAX_IDS],
        "features": sorted(reading.features)[:MAX_IDS],
        "mutations": sorted(reading.mutations)[:MAX_IDS],
        "commands": reading.commands[:MAX_IDS],
        "machine_ids": sorted(reading.machines)[:MAX_IDS],
        "user_ids": [str(i) for i in sorted(reading.user_ids)[:MAX_IDS]],
        "third_party_locations": sorted(reading.third_parties)[:MAX_IDS],
        "unknown_caveat_types": [str(i) for i in sorted(reading.unknown_types)[:MAX_IDS]],
    }
    facts.update({k: v for k, v in optional.items() if v})
    if reading.else_mask is not None:
        facts["otherwise_permissions"] = actions(reading.else_mask)
    if reading.not_before is not None:
        facts["not_before"] = iso_date(reading.not_before)
    if reading.max_validity is not None:
        facts["max_validity_seconds"] = reading.max_validity
    if reading.truncated:
        facts["not_fully_read"] = (
            f"more than {MAX_CAVEATS} caveats or IfPresent nested deeper than {MAX_DEPTH}: "
            "the rest was not read, the token may be narrower than shown"
        )
    return facts

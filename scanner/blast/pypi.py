"""PyPI API tokens: which projects a token may upload to, and until when.

A token is ``pypi-`` + the URL-safe base64 (no padding) of a macaroon in the
libmacaroons version 2 binary format: a version byte ``0x02``, then fields, each a
type byte (1 location, 2 identifier, 4 verification id, 6 signature, 0 end of
section) and, except for 0, a varint length and that many bytes. The header section
holds the location (``pypi.org``) and identifier (the token's id); each caveat section
holds a caveat identifier, which PyPI writes as JSON:

* ``[0, expires_at, not_before]`` expiry, ``[1, [project names]]``,
  ``[2, [project ids]]``, ``[3, user_id]``, ``[4, oidc_publisher_id]`` (a trusted
  publishing token);
* the older objects ``{"version": 1, "permissions": "user"}`` (every project of the
  user) or ``{"permissions": {"projects": [...]}}``, and ``{"exp": .., "nbf": ..}``.

No caveat narrowing the projects means the token can upload to every project the
user owns or maintains.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from scanner.blast.interface import (
    Clue,
    Decoder,
    Radius,
    clean,
    clean_list,
    expired_cap,
    expiry_note,
    iso_date,
)
from scanner.findings import Severity

MAX_TOKEN = 8 << 10  # characters; real tokens are a few hundred
MAX_CAVEATS = 64
LOCATION, IDENTIFIER, VID, SIGNATURE, EOS = 1, 2, 4, 6, 0


class NotAMacaroon(ValueError):
    pass


@dataclass
class BinaryMacaroon:
    location: str = ""
    identifier: bytes = b""
    caveats: list[bytes] = field(default_factory=list)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise NotAMacaroon("truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self) -> int:
        value = shift = 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise NotAMacaroon("length too large")

    def field(self) -> tuple[int, bytes]:
        kind = self.byte()
        if kind == EOS:
            return EOS, b""
        length = self.varint()
        if self.pos + length > len(self.data):
            raise NotAMacaroon("field runs past the end")
        value = self.data[self.pos : self.pos + length]
        self.pos += length
        return kind, value


def parse_v2(data: bytes) -> BinaryMacaroon:
    """A libmacaroons v2 binary macaroon (raises NotAMacaroon)."""
    reader = _Reader(data)
    if reader.byte() != 2:
        raise NotAMacaroon("not a version 2 macaroon")
    out = BinaryMacaroon()
    kind, value = reader.field()
    if kind == LOCATION:
        out.location = value.decode("utf-8", "replace")
        kind, value = reader.field()
    if kind != IDENTIFIER:
        raise NotAMacaroon("no identifier")
    out.identifier = value
    if reader.field()[0] != EOS:
        raise NotAMacaroon("header section not closed")
    while len(out.caveats) <= MAX_CAVEATS:
        kind, value = reader.field()
        if kind == EOS:  # end of the caveat list
            return out
        if kind == LOCATION:  # a third-party caveat's location comes first
            kind, value = reader.field()
        if kind != IDENTIFIER:
            raise NotAMacaroon("caveat without identifier")
        out.caveats.append(value)
        while True:
            kind, _ = reader.field()
            if kind == EOS:
                break
            if kind not in (VID, LOCATION):
                raise NotAMacaroon("unexpected caveat field")
    raise NotAMacaroon("too many caveats")


@dataclass
class Scope:
    user_wide: bool = True
    projects: list[str] = field(default_factory=list)
    project_ids: list[str] = field(default_factory=list)
    user_id: str | None = None
    publisher: str | None = None
    expires: int | None = None
    not_before: int | None = None
    unreadable: int = 0

    def add(self, caveat: bytes) -> None:
        try:
            value = json.loads(caveat[:4096].decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            self.unreadable += 1
            return
        if isinstance(value, dict):
            value = _legacy(value)
        if not isinstance(value, list) or not value or not isinstance(value[0], int):
            self.unreadable += 1
            return
        tag, args = value[0], value[1:]
        if tag == 0 and len(args) >= 2 and all(isinstance(a, int) for a in args[:2]):
            self.expires = args[0] if self.expires is None else min(self.expires, args[0])
            self.not_before = args[1]
        elif tag == 1 and args:
            self.user_wide = False
            self.projects += clean_list(args[0])
        elif tag == 2 and args:
            self.user_wide = False
            self.project_ids += clean_list(args[0])
        elif tag == 3 and args:
            self.user_id = clean(args[0], 80)
        elif tag == 4 and args:
            self.user_wide = False
            self.publisher = clean(args[0], 80)
        else:
            self.unreadable += 1


def _legacy(value: dict[str, Any]) -> list[Any] | None:
    permissions = value.get("permissions")
    if value.get("version") == 1 and permissions == "user":
        return [3, "(the token's owner)"]
    if isinstance(permissions, dict) and "projects" in permissions:
        return [1, permissions["projects"]]
    if "exp" in value and "nbf" in value:
        return [0, value["exp"], value["nbf"]]
    if "project_ids" in value:
        return [2, value["project_ids"]]
    return None


class PyPIDecoder(Decoder):
    name = "pypi"
    rule_ids = frozenset({"pypi-upload-token", "testpypi-upload-token"})
    detectors = frozenset({"PyPI"})

    def decode(self, clue: Clue) -> Radius | None:
        token = clue.secret.strip()
        if not token.startswith("pypi-") or len(token) > MAX_TOKEN:
            return None
        body = token[5:].rstrip("=")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            macaroon = parse_v2(raw)
        except (binascii.Error, ValueError) as exc:
            reason = str(exc) if isinstance(exc, NotAMacaroon) else "not base64"
            return Radius(
                f"PyPI token whose macaroon could not be decoded ({reason})",
                {"provider": "PyPI"},
            )
        scope = Scope()
        for caveat in macaroon.caveats:
            scope.add(caveat)
        index = clean(macaroon.location, 60) or "pypi.org"
        details: dict[str, Any] = {
            "provider": "PyPI",
            "index": index,
            "token_id": clean(macaroon.identifier.decode("utf-8", "replace"), 80),
            "user_wide": scope.user_wide,
        }
        if scope.projects:
            details["projects"] = scope.projects
        if scope.project_ids:
            details["project_ids"] = scope.project_ids
        if scope.user_id:
            details["user_id"] = scope.user_id
        if scope.publisher:
            details["trusted_publisher_id"] = scope.publisher
        if scope.unreadable:
            details["unreadable_caveats"] = scope.unreadable
        note, expired = expiry_note(scope.expires, clue.now)
        if scope.expires is not None:
            details["expires_at"] = iso_date(scope.expires)
            details["expired"] = expired
        if scope.publisher:
            what = "trusted-publishing upload token (short-lived) for the publisher's projects"
            severity = Severity.HIGH
        elif scope.user_wide:
            what = "user-wide upload token: can upload to every project its user maintains"
            severity = Severity.CRITICAL
        else:
            names = scope.projects or [f"id {i}" for i in scope.project_ids]
            what = "project-scoped upload token for " + ", ".join(names[:5])
            severity = Severity.HIGH
        if index != "pypi.org":
            severity = min(severity, Severity.MEDIUM)  # TestPyPI: nothing real is published
        summary = f"{index} {what}" + (f"; {note}" if note else "")
        return Radius(summary, details, severity=severity, at_most=expired_cap(expired))

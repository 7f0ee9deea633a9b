"""Checks a rule can ask the engine to run on a candidate secret (``validate:``).

A regex cannot say "the header decodes to JSON"; these can. Each takes the raw
secret bytes and returns whether it is what the rule claims. They never touch the
network and never raise.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable

Validator = Callable[[bytes], bool]


def _b64decode(data: bytes) -> bytes | None:
    data = data.strip().rstrip(b"=")
    if not data:
        return None
    padded = data + b"=" * (-len(data) % 4)
    try:
        if b"-" in data or b"_" in data:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _json_object(segment: bytes) -> dict[str, object] | None:
    raw = _b64decode(segment.replace(b"+", b"-").replace(b"/", b"_"))
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def is_jwt(secret: bytes) -> bool:
    """Three dot-separated segments whose header is a JSON object naming an ``alg``."""
    parts = secret.split(b".")
    if len(parts) != 3:
        return False
    header = _json_object(parts[0])
    if header is None or not isinstance(header.get("alg"), str):
        return False
    return _json_object(parts[1]) is not None


def credentials_password(secret: bytes) -> str | None:
    """The password of base64 ``user:password`` text, or None when it is not that."""
    raw = _b64decode(secret)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    user, sep, password = text.partition(":")
    if not (sep and password) or not text.isprintable() or len(user) > 256:
        return None
    return password


def is_base64_credentials(secret: bytes) -> bool:
    """Base64 (standard or URL-safe) of printable ``user:password`` text."""
    return credentials_password(secret) is not None


VALIDATORS: dict[str, Validator] = {
    "jwt": is_jwt,
    "base64-credentials": is_base64_credentials,
}

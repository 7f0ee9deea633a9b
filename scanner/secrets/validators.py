"""Checks a rule can ask the engine to run on a candidate secret (``validate:``).

A regex cannot say "the header decodes to JSON" or "the last six characters are the
CRC32 of the rest"; these can. Each takes the raw secret bytes and returns whether it
is what the rule claims. They never touch the network and never raise.

A candidate that fails its rule's check is not dropped: the engine keeps it as
noise with the check's :data:`REASONS` entry (``checksum mismatch`` for checksums,
``structure mismatch`` for formats), reported as a suppressed ``info`` finding.
"""

from __future__ import annotations

import base64
import binascii
import json
import string
import zlib
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


BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_BASE62_VALUE = {c: i for i, c in enumerate(BASE62.encode())}
CRC_CHARS = 6


def _base62_value(data: bytes) -> int | None:
    value = 0
    for byte in data:
        digit = _BASE62_VALUE.get(byte)
        if digit is None:
            return None
        value = value * 62 + digit
    return value


def has_crc32_base62_suffix(secret: bytes) -> bool:
    """GitHub's and npm's token checksum.

    After the prefix (up to the last ``_``), the token is random base62 characters
    followed by 6 characters holding the CRC32 of those random characters in base62
    (digits, then upper, then lower case), left-padded with ``0``
    (``ghp_`` + 30 + 6, ``npm_`` + 30 + 6).
    """
    body = secret.rsplit(b"_", 1)[-1]
    if len(body) <= CRC_CHARS:
        return False
    entropy, check = body[:-CRC_CHARS], body[-CRC_CHARS:]
    value = _base62_value(check)
    return value is not None and value == zlib.crc32(entropy)


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    value = shift = 0
    while pos < len(data) and shift <= 28:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    return None


MACAROON_V2 = 2
FIELD_EOS, FIELD_LOCATION, FIELD_IDENTIFIER, FIELD_VID, FIELD_SIGNATURE = 0, 1, 2, 4, 6
MAX_CAVEATS = 256


def _macaroon_section(data: bytes, pos: int) -> tuple[list[int], int] | None:
    """The field types of one section (up to its end-of-section byte), and the next offset."""
    types: list[int] = []
    while pos < len(data):
        if data[pos] == FIELD_EOS:
            return types, pos + 1
        head = _varint(data, pos)
        if head is None:
            return None
        kind, pos = head
        size = _varint(data, pos)
        if size is None:
            return None
        length, pos = size
        if kind not in (FIELD_LOCATION, FIELD_IDENTIFIER, FIELD_VID) or pos + length > len(data):
            return None
        types.append(kind)
        pos += length
    return None


def is_macaroon_v2(raw: bytes) -> bool:
    """libmacaroons' binary format, version 2: a header section with an identifier,
    caveat sections, an empty section, then a 32-byte signature field that ends it."""
    if not raw or raw[0] != MACAROON_V2:
        return False
    section = _macaroon_section(raw, 1)
    if section is None or FIELD_IDENTIFIER not in section[0]:
        return False
    pos = section[1]
    for _ in range(MAX_CAVEATS + 1):
        if pos < len(raw) and raw[pos] == FIELD_EOS:
            pos += 1
            break
        section = _macaroon_section(raw, pos)
        if section is None or FIELD_IDENTIFIER not in section[0]:
            return False
        pos = section[1]
    else:
        return False
    return raw[pos : pos + 2] == bytes([FIELD_SIGNATURE, 32]) and len(raw) == pos + 34


def is_pypi_macaroon(secret: bytes) -> bool:
    """A PyPI API token: ``pypi-`` + base64url of a version-2 macaroon."""
    _, sep, body = secret.partition(b"-")
    if not sep:
        return False
    raw = _b64decode(body.replace(b"+", b"-").replace(b"/", b"_"))
    return raw is not None and is_macaroon_v2(raw)


def is_base64_jwt(secret: bytes) -> bool:
    """Base64 of a JWT (Kubernetes Secret ``data:`` values, CI variables)."""
    raw = _b64decode(secret)
    return raw is not None and is_jwt(raw.strip())


def is_base64_json(secret: bytes) -> bool:
    """The part after the prefix (up to the first ``_``) is base64 of a JSON object
    (Grafana Cloud ``glc_`` tokens, Grafana's legacy ``eyJrIjoi`` keys)."""
    body = secret.split(b"_", 1)[1] if b"_" in secret[:8] else secret
    return _json_object(body) is not None


VALIDATORS: dict[str, Validator] = {
    "jwt": is_jwt,
    "base64-credentials": is_base64_credentials,
    "crc32-base62": has_crc32_base62_suffix,
    "pypi-macaroon": is_pypi_macaroon,
    "base64-json": is_base64_json,
    "base64-jwt": is_base64_jwt,
}

NOISE_CHECKSUM = "checksum mismatch"
NOISE_STRUCTURE = "structure mismatch"

# the noise reason of a candidate that fails each check
REASONS: dict[str, str] = {
    "jwt": NOISE_STRUCTURE,
    "base64-credentials": NOISE_STRUCTURE,
    "crc32-base62": NOISE_CHECKSUM,
    "pypi-macaroon": NOISE_STRUCTURE,
    "base64-json": NOISE_STRUCTURE,
    "base64-jwt": NOISE_STRUCTURE,
}

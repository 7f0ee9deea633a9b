"""AWS access key ids: which account a key belongs to, and what kind of key it is.

An access key id is a 4-character type prefix (``AKIA`` long-term IAM user key,
``ASIA`` temporary STS credentials) and 16 base32 characters (``A-Z2-7``). In keys
of the current generation (the first bit after the prefix is set) the next 40 bits
hold the 12-digit account id: base32-decode the 16 characters, take the first six
bytes as a big-endian integer, keep bits 7..46 (mask ``0x7fffffffff80``) and shift
right by 7. Older keys do not carry the account. Only the key id is read: it is an
identifier, not the secret half of the key.
"""

from __future__ import annotations

import base64
import binascii
import re

from scanner.blast.interface import Clue, Decoder, Radius

KEY_ID = re.compile(r"^(AKIA|ASIA)([A-Z2-7]{16})$")
ACCOUNT_MASK = 0x7FFFFFFFFF80
KINDS = {
    "AKIA": "long-term access key of an IAM user",
    "ASIA": "temporary STS access key (valid minutes to hours, with its session token)",
}


def account_id(key_id: str) -> str | None:
    """The 12-digit account id encoded in ``key_id``, or None (old generation, bad id)."""
    m = KEY_ID.match(key_id.strip())
    if m is None:
        return None
    try:
        raw = base64.b32decode(m.group(2))
    except (binascii.Error, ValueError):
        return None
    value = int.from_bytes(raw[:6], "big")
    if not value >> 47:  # the generation bit: older keys do not encode the account
        return None
    return f"{(value & ACCOUNT_MASK) >> 7:012d}"


class AwsDecoder(Decoder):
    name = "aws"
    rule_ids = frozenset({"aws-access-key-id", "aws-temporary-access-key-id"})

    def decode(self, clue: Clue) -> Radius | None:
        m = KEY_ID.match(clue.secret.strip())
        if m is None:
            return None
        prefix = m.group(1)
        account = account_id(clue.secret)
        details = {"provider": "AWS", "key_type": prefix, "description": KINDS[prefix]}
        if account is None:
            summary = f"AWS {KINDS[prefix]}; account not encoded (older key format)"
        else:
            details["account_id"] = account
            summary = (
                f"AWS {KINDS[prefix]} of account {account}: whatever that user's or "
                "role's IAM policies allow, with the paired secret access key"
            )
        return Radius(summary, details)

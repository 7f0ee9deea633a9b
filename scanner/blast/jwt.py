"""JSON Web Tokens: who issued one, for whom, for which audience, until when.

Only the claims are read (the payload segment, base64url JSON); the signature is not
checked (no key is at hand) and the token is bounded in size before decoding.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from scanner.blast.interface import Clue, Decoder, Radius, clean, expired_cap, expiry_note, iso_date

MAX_JWT = 16 << 10
CLAIMS = ("iss", "sub", "aud", "azp", "scope", "role")


def _segment(text: str) -> Any:
    text = text.strip().rstrip("=")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return json.loads(raw.decode("utf-8"))


class JwtDecoder(Decoder):
    name = "jwt"
    rule_ids = frozenset({"jwt"})
    detectors = frozenset({"JWT"})

    def decode(self, clue: Clue) -> Radius | None:
        token = clue.secret.strip()
        parts = token.split(".")
        if len(token) > MAX_JWT or len(parts) != 3:
            return None
        try:
            header, claims = _segment(parts[0]), _segment(parts[1])
        except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
            return None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return None
        details: dict[str, Any] = {"provider": "JWT", "algorithm": clean(header.get("alg", ""), 20)}
        for name in CLAIMS:
            value = claims.get(name)
            if isinstance(value, list):
                details[name] = [clean(v, 120) for v in value[:20]]
            elif value is not None and not isinstance(value, dict):
                details[name] = clean(value, 200)
        exp = claims.get("exp")
        expires = exp if isinstance(exp, int | float) and not isinstance(exp, bool) else None
        note, expired = expiry_note(expires, clue.now)
        if expires is not None:
            details["expires_at"] = iso_date(expires)
            details["expired"] = expired
        who = []
        if "iss" in details:
            who.append(f"issued by {details['iss']}")
        if "sub" in details:
            who.append(f"for subject {details['sub']}")
        if "aud" in details:
            aud = details["aud"]
            who.append(f"audience {', '.join(aud) if isinstance(aud, list) else aud}")
        summary = "JWT " + (", ".join(who) or "with no issuer, subject or audience")
        summary += f"; {note}" if note else "; no expiry (valid until its key is rotated)"
        return Radius(summary, details, at_most=expired_cap(expired))

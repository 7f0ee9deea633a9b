"""Fly.io tokens: the GraphQL ``viewer`` query, read-only.

``POST /graphql`` with ``{ viewer { id email } }`` and the token in the
``Authorization`` header as found (``FlyV1 fm2_...``; a bare macaroon gets the
``FlyV1`` scheme, an ``fo1_`` session token ``Bearer``). 200 with ``data.viewer``:
live, and the viewer's id and email are recorded; 401/403, or an error saying the
request is not authenticated: rejected; anything else (a token allowed to deploy
but not to read the viewer, say): unknown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from scanner.verify.interface import Outcome, Verdict, Verifier

QUERY = "{ viewer { id email } }"


def authorization(token: str) -> str:
    token = token.strip()
    lowered = token.lower()
    if lowered.startswith("flyv1 ") or lowered.startswith("bearer "):
        return token
    if token.startswith("fo1_"):
        return f"Bearer {token}"
    return f"FlyV1 {token}"


class FlyVerifier(Verifier):
    name = "fly"
    rule_ids: ClassVar[frozenset[str]] = frozenset(
        {"flyio-api-token", "flyio-macaroon", "flyio-legacy-token", "flyio-org-token"}
    )
    default_url = "https://api.fly.io"
    url_env = "LAYERLEAK_VERIFY_FLY_URL"

    def verify(self, secret: str) -> Verdict:
        return self.check(secret, {}).verdict

    def check(self, secret: str, companions: Mapping[str, str]) -> Outcome:
        response = self.request(
            "/graphql",
            {"Authorization": authorization(secret), "Content-Type": "application/json"},
            method="POST",
            data=json.dumps({"query": QUERY}).encode(),
        )
        if response.status in (401, 403):
            return Outcome(Verdict.INVALID)
        body = response.json()
        if response.status != 200 or not isinstance(body, dict):
            return Outcome(Verdict.UNKNOWN)
        data = body.get("data")
        viewer = data.get("viewer") if isinstance(data, dict) else None
        if isinstance(viewer, dict):
            identity = {k: str(viewer[k])[:200] for k in ("id", "email") if viewer.get(k)}
            return Outcome(Verdict.VERIFIED, identity or None)
        if _unauthenticated(body.get("errors")):
            return Outcome(Verdict.INVALID)
        return Outcome(Verdict.UNKNOWN)


def _unauthenticated(errors: Any) -> bool:
    if not isinstance(errors, list):
        return False
    for error in errors[:20]:
        message = str(error.get("message", "")) if isinstance(error, dict) else ""
        code = ""
        if isinstance(error, dict) and isinstance(error.get("extensions"), dict):
            code = str(error["extensions"].get("code", ""))
        if "authenticat" in message.lower() or code.upper() == "UNAUTHORIZED":
            return True
    return False

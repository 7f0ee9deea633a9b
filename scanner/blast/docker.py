"""Docker ``config.json`` ``auths`` entries: the user name and the registry it is for.

The ``auth`` value is base64 of ``user:password`` (``fly auth docker`` writes it with
the URL-safe alphabet); the registry is the key of the object holding it, read from
the text just before the match. A registry.fly.io password is a Fly.io token: its
own radius (organisation or app, expiry) is decoded and becomes this one's.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from scanner.blast.fly import decode_bundle
from scanner.blast.interface import Clue, Decoder, Radius, clean

MAX_AUTH = 16 << 10
REGISTRY_KEY = re.compile(r'"([^"\\\n]{1,256})"\s*:\s*\{\s*"auth"\s*:\s*"$')
DOCKER_HUB = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


def user_and_password(auth: str) -> tuple[str, str] | None:
    data = auth.strip().rstrip("=")
    if not data or len(data) > MAX_AUTH:
        return None
    padded = data + "=" * (-len(data) % 4)
    try:
        if "-" in data or "_" in data:
            raw = base64.urlsafe_b64decode(padded)
        else:
            raw = base64.b64decode(padded, validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep else None


def registry_of(clue: Clue) -> str | None:
    """The ``auths`` key whose ``auth`` value is this secret, from the text before it."""
    at = clue.context.find(clue.secret)
    head = clue.context[:at] if at >= 0 else ""
    m = REGISTRY_KEY.search(head)
    return clean(m.group(1), 120) if m else None


class DockerAuthDecoder(Decoder):
    name = "docker-auth"
    rule_ids = frozenset({"docker-config-auth", "flyio-registry-auth"})

    def decode(self, clue: Clue) -> Radius | None:
        pair = user_and_password(clue.secret)
        if pair is None:
            return None
        user, password = pair
        registry = registry_of(clue)
        if registry is None and clue.rule_id == "flyio-registry-auth":
            registry = "registry.fly.io"
        details: dict[str, Any] = {"provider": "Docker registry", "user": clean(user, 120)}
        if registry:
            details["registry"] = registry
        where = registry or "an unnamed registry"
        if registry in DOCKER_HUB:
            where = "Docker Hub"
        summary = f"Docker registry credential for {where}, user {details['user']}: pulls"
        summary += " and pushes the images that user may access"
        fly = (
            decode_bundle(password, clue.now) if "fm2_" in password or "fo1_" in password else None
        )
        if fly is not None:
            details["fly"] = fly.details
            return Radius(
                f"Docker registry credential for {where} holding a {fly.summary}",
                details,
                severity=fly.severity,
                at_most=fly.at_most,
            )
        return Radius(summary, details)

"""Which credential to present to a registry, and where it came from.

First found wins:

1. ``--username`` with ``--password-stdin`` (passed in explicitly);
2. ``FLY_API_TOKEN`` for registry.fly.io: user ``x``, the token as the password,
   sent as it is (a ``FlyV1 fm2_...`` token keeps its prefix);
3. the Docker config (``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``):
   ``auths.<host>.auth`` (base64 of ``user:password``, in the URL-safe alphabet when
   flyctl wrote it, the standard one when docker did: we detect which), then
   ``credHelpers.<host>``, then ``credsStore``, both through
   ``docker-credential-<name> get``;
4. anonymous.

A :class:`Credential` never shows its password: not in ``repr``, not in ``str``, not
in an error. Its ``source`` says where it came from, for error messages.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.errors import AuthError
from scanner.reference import FLY_REGISTRY, registry_aliases

FLY_TOKEN_ENV = "FLY_API_TOKEN"
FLY_USER = "x"
HELPER_TIMEOUT = 30.0
IDENTITY_TOKEN_USER = "<token>"  # what credential helpers answer for an identity token

SOURCE_OPTIONS = "--username/--password-stdin"
SOURCE_ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Credential:
    """A username and password (or none, anonymous), and where they were found."""

    username: str | None
    password: str | None = field(default=None, repr=False)
    source: str = SOURCE_ANONYMOUS
    # An OAuth2 refresh token (docker's "identitytoken"), exchanged at the token realm.
    identity_token: str | None = field(default=None, repr=False)

    @property
    def anonymous(self) -> bool:
        return self.password is None and self.identity_token is None

    def __str__(self) -> str:
        if self.anonymous:
            return f"no credentials ({self.source})"
        return f"user {self.username!r} from {self.source}"

    def scrub(self, text: str) -> str:
        """``text`` with the secret parts replaced, for messages built from server output."""
        for secret in (self.password, self.identity_token):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "<redacted>")
        return text


ANONYMOUS = Credential(None)


def docker_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    directory = env.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".docker" / "config.json"


def resolve_credential(
    registry: str,
    *,
    username: str | None = None,
    password: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Credential:
    """The credential for ``registry`` (host[:port] as in the reference), first found wins."""
    env = os.environ if env is None else env
    if username is not None or password is not None:
        if username is None or password is None:
            raise AuthError(
                f"{registry}: --username and --password-stdin go together; give both or neither"
            )
        return Credential(username, password, SOURCE_OPTIONS)
    if registry == FLY_REGISTRY:
        token = env.get(FLY_TOKEN_ENV, "").strip()
        if token:
            return Credential(FLY_USER, token, FLY_TOKEN_ENV)
    path = docker_config_path(env)
    config = _load_config(path, registry)
    if config is not None:
        found = _from_config(config, path, registry, env)
        if found is not None:
            return found
        return Credential(None, None, f"anonymous: nothing for {registry} in {path}")
    return Credential(None, None, f"anonymous: no Docker config at {path}")


def _load_config(path: Path, registry: str) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuthError(
            f"{registry}: cannot read the Docker config {path}: {exc.strerror or exc}"
        ) from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        # The message of a JSON error quotes no input, so it cannot leak a credential.
        raise AuthError(f"{registry}: the Docker config {path} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise AuthError(f"{registry}: the Docker config {path} is not a JSON object")
    return value


def _from_config(
    config: Mapping[str, Any], path: Path, registry: str, env: Mapping[str, str]
) -> Credential | None:
    auths = config.get("auths")
    if isinstance(auths, dict):
        for key in registry_aliases(registry):
            entry = auths.get(key)
            if not isinstance(entry, dict):
                continue
            where = f"Docker config {path} (auths[{key!r}])"
            found = _from_auth_entry(entry, where, registry)
            if found is not None:
                return found
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key in registry_aliases(registry):
            name = helpers.get(key)
            if isinstance(name, str) and name:
                found = _from_helper(name, key, registry, f"credHelpers in {path}", env)
                if found is not None:
                    return found
                break
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        for key in registry_aliases(registry):
            found = _from_helper(store, key, registry, f"credsStore in {path}", env)
            if found is not None:
                return found
    return None


def _from_auth_entry(entry: Mapping[str, Any], where: str, registry: str) -> Credential | None:
    identity = entry.get("identitytoken")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded.strip():
        user, password = decode_auth(encoded, where, registry)
        if isinstance(identity, str) and identity:
            return Credential(user, None, where, identity_token=identity)
        return Credential(user, password, where)
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(secret, str) and name:
        return Credential(name, secret, where)
    if isinstance(identity, str) and identity:
        return Credential(name if isinstance(name, str) else None, None, where, identity)
    return None


def decode_auth(encoded: str, where: str = "auth", registry: str = "") -> tuple[str, str]:
    """Decode an ``auths.<host>.auth`` value: base64 of ``user:password``.

    flyctl writes it with the URL-safe alphabet (``-`` and ``_``) and docker with the
    standard one (``+`` and ``/``); ``b64decode`` would silently drop ``-`` and ``_``,
    so the alphabet is chosen from the characters present. Padding is optional.
    """
    text = "".join(encoded.split())
    prefix = f"{registry}: " if registry else ""
    urlsafe = "-" in text or "_" in text
    standard = "+" in text or "/" in text
    if urlsafe and standard:
        raise AuthError(f"{prefix}{where}: 'auth' mixes two base64 alphabets; log in again")
    text += "=" * (-len(text) % 4)
    try:
        if urlsafe:
            raw = base64.b64decode(text, altchars=b"-_", validate=True)
        else:
            raw = base64.b64decode(text, validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise AuthError(f"{prefix}{where}: 'auth' is not valid base64; log in again") from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise AuthError(f"{prefix}{where}: 'auth' does not decode to user:password; log in again")
    return user, password


def _from_helper(
    name: str,
    key: str,
    registry: str,
    where: str,
    env: Mapping[str, str],
) -> Credential | None:
    """Ask ``docker-credential-<name> get`` for ``key``; None when it knows nothing of it."""
    binary = f"docker-credential-{name}"
    source = f"{binary} ({where})"
    try:
        proc = subprocess.run(
            [binary, "get"],
            input=key.encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT,
            check=False,
            env=dict(env),
        )
    except FileNotFoundError:
        raise AuthError(
            f"{registry}: the Docker config names the credential helper {binary} "
            f"({where}), which is not installed or not on PATH"
        ) from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise AuthError(f"{registry}: {source} could not run ({type(exc).__name__})") from None
    if proc.returncode != 0:
        # Helpers answer "credentials not found in native keychain" when they know nothing.
        out = (proc.stdout + proc.stderr).decode(errors="replace").lower()
        if "not found" in out:
            return None
        raise AuthError(f"{registry}: {source} failed with exit status {proc.returncode}")
    try:
        payload = json.loads(proc.stdout)
        user = payload.get("Username")
        secret = payload.get("Secret")
    except (ValueError, AttributeError):
        raise AuthError(f"{registry}: {source} answered something other than JSON") from None
    if not isinstance(secret, str) or not secret:
        return None
    if user == IDENTITY_TOKEN_USER:
        return Credential(None, None, source, identity_token=secret)
    return Credential(str(user or ""), secret, source)

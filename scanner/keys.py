"""The fingerprint key: what makes secret hashes and fingerprints unguessable.

A report carries, for every secret, a hash of it and a fingerprint built from that
hash. A plain SHA-256 would let anyone holding a SARIF or JSON file confirm a guess
(hash ``hunter2``, compare). So the hash is an HMAC-SHA256 keyed with a secret of
the installation:

1. the file given with ``--fingerprint-key-file`` (env
   ``LAYERLEAK_FINGERPRINT_KEY_FILE``);
2. else ``LAYERLEAK_FINGERPRINT_KEY`` (the key itself, e.g. a CI secret shared by a
   team so that everyone's baselines and ignore files match);
3. else ``fingerprint.key`` in the user configuration directory
   (``~/.config/layerleak/`` on Linux), created on first use with 32 random bytes,
   mode 0600 in a 0700 directory.

The same key gives the same hash for the same secret, so fingerprints are stable
across runs of one user (or of a team sharing the key); without the key a hash
says nothing about the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import platformdirs

from scanner.errors import ConfigError

KEY_ENV = "LAYERLEAK_FINGERPRINT_KEY"
KEY_FILE_ENV = "LAYERLEAK_FINGERPRINT_KEY_FILE"
KEY_FILE_NAME = "fingerprint.key"
MIN_KEY_CHARS = 16


def default_key_file() -> Path:
    return Path(platformdirs.user_config_dir("layerleak")) / KEY_FILE_NAME


def key_id(key: bytes) -> str:
    """A short public name of a key (it says which key, not what the key is)."""
    return hmac.new(key, b"layerleak fingerprint key id", hashlib.sha256).hexdigest()[:16]


def load_key(key_file: Path | None = None, environ: Mapping[str, str] | None = None) -> bytes:
    """The fingerprint key (see the module docstring); ConfigError when it cannot be had."""
    if key_file is not None:
        return _read(key_file)
    env = os.environ if environ is None else environ
    if env.get(KEY_FILE_ENV, "").strip():
        return _read(Path(env[KEY_FILE_ENV].strip()))
    text = env.get(KEY_ENV, "").strip()
    if text:
        if len(text) < MIN_KEY_CHARS:
            raise ConfigError(
                f"{KEY_ENV} is shorter than {MIN_KEY_CHARS} characters: use a random key "
                "(for example `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        return text.encode("utf-8")
    return _read_or_create(default_key_file())


def _read(path: Path) -> bytes:
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"fingerprint key file {path}: {exc.strerror or exc}") from None
    if len(key) < MIN_KEY_CHARS:
        raise ConfigError(f"fingerprint key file {path}: shorter than {MIN_KEY_CHARS} characters")
    return key


def _read_or_create(path: Path) -> bytes:
    if path.exists():
        return _read(path)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)  # another run created it first
    except OSError as exc:
        raise ConfigError(
            f"cannot create the fingerprint key {path} ({exc.strerror or exc}); set "
            f"{KEY_ENV} or --fingerprint-key-file"
        ) from None
    key = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key

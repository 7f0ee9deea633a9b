"""What layerleak compiles from its rules, kept between runs, like Python's ``__pycache__``.

Two kinds of entries: the prefilter's Hyperscan database (about a second to compile;
:mod:`scanner.secrets.prefilter.hyperscan_db`) and the built-in rule files parsed
(:mod:`scanner.signatures`, a tenth of a second of YAML on every start).

``<user cache dir>/layerleak/compiled/<key>.db`` (``$XDG_CACHE_HOME`` on Linux), where
the key is a SHA-256 of everything the entry was made from (library versions, rule
texts), so a changed rule set or library never loads an old entry. The file is written
atomically in a 0700 directory as 0600 and carries a SHA-256 of its content: a
truncated or altered file is ignored (and made again), never loaded. Nothing here holds
a secret: only the rules. ``LAYERLEAK_NO_COMPILED_CACHE=1`` turns it off (every run
compiles). A directory that cannot be written is not an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import platformdirs

MAX_BYTES = 64 << 20  # a database of the built-in rules is about 2.5 MB
KEEP = 8  # databases kept (other rule sets, versions); older ones are removed
_MAGIC = b"layerleak compiled prefilter v1\n"


def directory() -> Path:
    return Path(platformdirs.user_cache_dir("layerleak")) / "compiled"


def _enabled() -> bool:
    return os.environ.get("LAYERLEAK_NO_COMPILED_CACHE", "") in ("", "0")


def load(key: str) -> bytes | None:
    """The database stored under ``key``, or None (absent, damaged, or turned off)."""
    if not _enabled():
        return None
    try:
        with open(directory() / f"{key}.db", "rb") as f:
            blob = f.read(MAX_BYTES + len(_MAGIC) + 65)
    except OSError:
        return None
    head = len(_MAGIC) + 64
    if not blob.startswith(_MAGIC) or len(blob) > MAX_BYTES + head:
        return None
    digest, data = blob[len(_MAGIC) : head], blob[head:]
    if hashlib.sha256(data).hexdigest().encode() != digest:
        return None
    return data


def store(key: str, data: bytes) -> None:
    """Keep ``data`` under ``key``; silently nothing where the cache cannot be written."""
    if not _enabled() or len(data) > MAX_BYTES:
        return
    folder = directory()
    with contextlib.suppress(OSError):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")  # created 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + hashlib.sha256(data).hexdigest().encode() + data)
            os.replace(tmp, folder / f"{key}.db")
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return
        _prune(folder)


def _prune(folder: Path) -> None:
    """Keep the :data:`KEEP` most recently written databases."""
    with contextlib.suppress(OSError):
        files = sorted(folder.glob("*.db"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[KEEP:]:
            old.unlink()

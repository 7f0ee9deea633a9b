"""Layer cache: what scanning a layer blob yielded, keyed by what could change it.

The key is the layer's digest plus the signature set's digest, the file analyzers'
ids and versions and the scanner version: any of these changing makes a new key.
Entries hold findings *without* forensic status (a secret's deleted-in-layer status
depends on the layers above, so it is recomputed per image) and never hold a raw
secret (scans with ``--reveal`` neither read nor write the cache). A corrupt or
truncated entry is ignored and rewritten; an incomplete layer scan is not cached.

Integrity: only layers named by a digest layerleak verifies (sha256, sha512) are
cached or looked up, and only after a complete scan, which verified the blob. Each
entry carries the sha256 of its payload and is ignored when that does not match (a
bit flip, a half-written file, an edit). The checksum is not a signature: whoever can
write to the cache directory can make layerleak skip a layer, so directories are
created 0700 and a shared cache must be writable only by trusted users.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import platformdirs

from scanner import __version__
from scanner.blast import refreshed
from scanner.digests import is_supported
from scanner.results import LAYER_RESULT_FORMAT, LayerResult

# 2: layer indexes record paths written twice; 3: payload checksum; 4: layer indexes
# record dpkg conffiles and the MD5 of etc/ files with findings; 5: the payload is the
# layer result's one serialised form (LayerResult.to_doc), shared with the worker wire.
CACHE_FORMAT = LAYER_RESULT_FORMAT
DIR_MODE = 0o700


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("layerleak")) / "layers"


class LayerCache:
    def __init__(self, directory: Path, signatures_digest: str, analyzers: str) -> None:
        self.directory = directory
        self._salt = "\x1f".join([str(CACHE_FORMAT), __version__, signatures_digest, analyzers])
        self.hits = 0
        self.misses = 0
        self.errors: list[str] = []  # entries found corrupt (they are rewritten)

    def key(self, digest: str) -> str:
        return hashlib.sha256(f"{self._salt}\x1f{digest}".encode()).hexdigest()

    def _path(self, digest: str) -> Path:
        key = self.key(digest)
        return self.directory / key[:2] / f"{key}.json.gz"

    def get(self, digest: str) -> LayerResult | None:
        if not is_supported(digest):
            self.misses += 1
            return None  # never trusted: nothing could have verified what it names
        path = self._path(digest)
        try:
            raw = path.read_bytes()
        except OSError:
            self.misses += 1
            return None
        try:
            doc = unseal(gzip.decompress(raw))
            result = _decode(doc, digest)
        except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
            self.errors.append(f"cache entry {path.name} for {digest[:19]} unreadable ({exc})")
            self.misses += 1
            return None
        self.hits += 1
        return result

    def put(self, result: LayerResult) -> None:
        if not result.complete or any(f.secret for f in result.findings):
            return
        if not is_supported(result.digest):
            return
        path = self._path(result.digest)
        data = gzip.compress(seal(_encode(result)), compresslevel=5, mtime=0)
        tmp: str | None = None
        try:
            make_private_dirs(path.parent)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # atomic: a reader never sees half an entry
            tmp = None
        except OSError:
            pass  # a cache that cannot be written only costs time
        finally:
            if tmp is not None:  # a failed write, or Ctrl-C/SIGTERM in the middle
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


def make_private_dirs(path: Path) -> None:
    """``path`` and its missing parents, each created 0700 (whatever the umask).

    Directories that already exist are left as they are: the user chose them (a
    shared cache is their call; the README says who may write to one).
    """
    missing: list[Path] = []
    current = path
    while not current.exists() and current.parent != current:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made by a concurrent worker
        os.chmod(directory, DIR_MODE)


def seal(doc: dict[str, Any]) -> bytes:
    """The entry's bytes: its JSON payload, prefixed by the payload's sha256."""
    payload = json.dumps(doc, sort_keys=True).encode()
    return json.dumps(
        {"sha256": hashlib.sha256(payload).hexdigest(), "payload": payload.decode()}
    ).encode()


def unseal(data: bytes) -> dict[str, Any]:
    """The payload of a sealed entry; ValueError when the checksum does not match."""
    outer = json.loads(data)
    if not isinstance(outer, dict) or not isinstance(outer.get("payload"), str):
        raise ValueError("not a checksummed entry")
    payload = outer["payload"].encode()
    if hashlib.sha256(payload).hexdigest() != outer.get("sha256"):
        raise ValueError("checksum does not match")
    doc = json.loads(payload)
    if not isinstance(doc, dict):
        raise ValueError("payload is not an object")
    return doc


def _encode(result: LayerResult) -> dict[str, Any]:
    return result.to_doc()


def _decode(doc: dict[str, Any], digest: str) -> LayerResult:
    result = LayerResult.from_doc(doc, digest, cached=True)
    # refreshed: a credential that expired since the layer was cached is lowered now
    result.findings = [refreshed(f) for f in result.findings]
    return result

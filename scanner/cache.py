"""Layer cache: what scanning a layer blob yielded, keyed by what could change it.

The key is the layer's digest plus the signature set's digest, the file analyzers'
ids and versions and the scanner version: any of these changing makes a new key.
Entries hold findings *without* forensic status (a secret's deleted-in-layer status
depends on the layers above, so it is recomputed per image) and never hold a raw
secret (scans with ``--reveal`` neither read nor write the cache). A corrupt or
truncated entry is ignored and rewritten; an incomplete layer scan is not cached.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import platformdirs

from scanner import __version__
from scanner.results import LAYER_RESULT_FORMAT, LayerResult

# 2: layer indexes record paths written twice in a layer; 3: the entry is the layer
# result's one serialised form (LayerResult.to_bytes), shared with the worker wire.
CACHE_FORMAT = LAYER_RESULT_FORMAT


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
        path = self._path(digest)
        try:
            raw = path.read_bytes()
        except OSError:
            self.misses += 1
            return None
        try:
            doc = json.loads(gzip.decompress(raw))
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
        path = self._path(result.digest)
        data = gzip.compress(json.dumps(_encode(result)).encode(), compresslevel=5, mtime=0)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # atomic: a reader never sees half an entry
        except OSError:
            pass  # a cache that cannot be written only costs time


def _encode(result: LayerResult) -> dict[str, Any]:
    return result.to_doc()


def _decode(doc: dict[str, Any], digest: str) -> LayerResult:
    return LayerResult.from_doc(doc, digest, cached=True)

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
from dataclasses import replace
from pathlib import Path
from typing import Any

import platformdirs

from scanner import __version__
from scanner.blast import refreshed
from scanner.findings import Finding, Status
from scanner.layers import LayerIndex
from scanner.results import LayerResult

CACHE_FORMAT = 2  # 2: layer indexes record paths written twice in a layer


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
    return {
        "format": CACHE_FORMAT,
        "digest": result.digest,
        "findings": [f.to_dict() for f in result.findings],
        "index": result.index.to_json(),
        "entries": result.entries,
        "compressed_bytes": result.compressed_bytes,
        "uncompressed_bytes": result.uncompressed_bytes,
        "compression": result.compression,
    }


def _decode(doc: dict[str, Any], digest: str) -> LayerResult:
    if doc.get("format") != CACHE_FORMAT or doc.get("digest") != digest:
        raise ValueError("format or digest does not match")
    # refreshed: a credential that expired since the layer was cached is lowered now
    findings = [refreshed(replace(Finding.from_dict(f), status=Status())) for f in doc["findings"]]
    return LayerResult(
        digest=digest,
        findings=findings,
        index=LayerIndex.from_json(doc["index"]),
        entries=int(doc["entries"]),
        compressed_bytes=int(doc["compressed_bytes"]),
        uncompressed_bytes=int(doc["uncompressed_bytes"]),
        compression=str(doc["compression"]),
        cached=True,
    )

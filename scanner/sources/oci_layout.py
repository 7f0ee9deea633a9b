"""OCI image layouts, as a directory or a tar (``oci:PATH[:TAG]``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scanner.errors import ManifestError, SourceError
from scanner.image import OCI_INDEX, BlobOpener, Image, load_json
from scanner.sources.blobstore import BlobStore, DirStore, TarStore, blob_path
from scanner.sources.interface import Source, SourceOptions
from scanner.sources.manifests import ManifestFetcher, image_from_root

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


class StoreFetcher(ManifestFetcher):
    """Blobs of an OCI layout (``blobs/<alg>/<hex>``) in a directory or tar."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    def fetch(self, descriptor: Mapping[str, Any], what: str) -> bytes:
        return self.store.read(blob_path(str(descriptor.get("digest", ""))), what)

    def opener(self, descriptor: Mapping[str, Any]) -> BlobOpener:
        return self.store.opener(blob_path(str(descriptor.get("digest", ""))))


def open_store(path: Path) -> BlobStore:
    if path.is_dir():
        return DirStore(path)
    if path.is_file():
        return TarStore(path)
    raise SourceError(f"{path}: no such file or directory")


def tag_of(descriptor: Mapping[str, Any]) -> str | None:
    annotations = descriptor.get("annotations") or {}
    if REF_NAME in annotations:
        return str(annotations[REF_NAME])
    name = annotations.get(CONTAINERD_NAME)
    if name and ":" in str(name).rsplit("/", 1)[-1]:
        return str(name).rsplit(":", 1)[1]
    return None


def select_tag(index: dict[str, Any], tag: str | None, what: str) -> dict[str, Any]:
    """The layout's index.json, narrowed to the descriptors tagged ``tag``."""
    if tag is None:
        return index
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise ManifestError(f"{what}: index.json has no 'manifests' list")
    chosen = [d for d in manifests if isinstance(d, dict) and tag_of(d) == tag]
    if not chosen:
        tags = sorted({t for d in manifests if isinstance(d, dict) and (t := tag_of(d))})
        raise SourceError(f"{what}: no manifest tagged {tag!r} (tags: {', '.join(tags) or 'none'})")
    return {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": chosen,
        "annotations": index.get("annotations") or {},
    }


class OciLayoutSource(Source):
    kind = "oci"

    def __init__(self, name: str, options: SourceOptions, path: Path, tag: str | None) -> None:
        super().__init__(name, options)
        self.path = path
        self.tag = tag
        self.store: BlobStore | None = None

    def load(self) -> Image:
        self.store = open_store(self.path)
        what = str(self.path)
        if not self.store.exists("index.json"):
            raise ManifestError(f"{what}: not an OCI image layout (no index.json)")
        index = load_json(self.store.read("index.json", what), f"{what}: index.json")
        root = select_tag(index, self.tag, what)
        return image_from_root(
            self.name, self.kind, StoreFetcher(self.store), root, None, self.options.platforms
        )

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

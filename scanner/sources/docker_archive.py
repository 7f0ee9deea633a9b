"""``docker save`` archives, legacy and Docker 25+ layouts (``docker-archive:PATH[:TAG]``).

Both layouts carry a ``manifest.json`` listing each saved image's config and layer
files. Legacy archives keep ``<id>/layer.tar`` (uncompressed; no blob digest, so the
layer is checked against its diff_id); Docker 25+ ones are an OCI layout whose
blobs are named by digest. Without ``manifest.json`` the archive is read as an OCI
layout.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from scanner.errors import ManifestError, SourceError
from scanner.image import (
    Image,
    PlatformImage,
    assemble_platform_image,
    diff_ids,
    load_json,
    platform_of,
)
from scanner.sources.blobstore import BlobStore
from scanner.sources.interface import Source, SourceOptions
from scanner.sources.manifests import check_digest, image_from_root
from scanner.sources.oci_layout import StoreFetcher, open_store, select_tag

BLOB_NAME = re.compile(r"^blobs/(sha256|sha384|sha512)/([a-f0-9]{64,128})$")
CONFIG_NAME = re.compile(r"^([a-f0-9]{64})\.json$")
LEGACY_LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar"


def digest_from_name(name: str) -> str | None:
    m = BLOB_NAME.match(name)
    if m:
        return f"{m.group(1)}:{m.group(2)}"
    m = CONFIG_NAME.match(name)
    return f"sha256:{m.group(1)}" if m else None


class DockerArchiveSource(Source):
    kind = "docker-archive"

    def __init__(self, name: str, options: SourceOptions, path: Path, tag: str | None) -> None:
        super().__init__(name, options)
        self.path = path
        self.tag = tag
        self.store: BlobStore | None = None

    def load(self) -> Image:
        self.store = store = open_store(self.path)
        what = str(self.path)
        if not store.exists("manifest.json"):
            if store.exists("index.json"):
                index = load_json(store.read("index.json", what), f"{what}: index.json")
                root = select_tag(index, self.tag, what)
                return image_from_root(
                    self.name, self.kind, StoreFetcher(store), root, None, self.options.platforms
                )
            raise ManifestError(f"{what}: not a docker save archive (no manifest.json)")
        raw = store.read("manifest.json", what)
        try:
            entries = json.loads(raw)
        except ValueError as exc:
            raise ManifestError(f"{what}: manifest.json is not valid JSON ({exc})") from None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ManifestError(f"{what}: manifest.json is not a list of image entries")
        if self.tag is not None:
            entries = [e for e in entries if self._has_tag(e)]
            if not entries:
                raise SourceError(f"{what}: no image tagged {self.tag!r} in the archive")
        image = Image(name=self.name, source_kind=self.kind, platforms=[])
        for n, entry in enumerate(entries):
            label = f"{what} image {n} ({', '.join(entry.get('RepoTags') or []) or 'untagged'})"
            try:
                pi = self._platform_image(store, entry, label, image.problems)
            except SourceError as exc:
                image.problems.append(str(exc))
                continue
            wanted = self.options.platforms
            if wanted and not any(pi.platform.matches(w) for w in wanted):
                continue
            image.platforms.append(pi)
        if not image.platforms and not image.problems:
            raise SourceError(f"{what}: no image of the requested platform in the archive")
        return image

    def _has_tag(self, entry: dict[str, Any]) -> bool:
        for ref in entry.get("RepoTags") or []:
            if ref == self.tag or str(ref).rsplit(":", 1)[-1] == self.tag:
                return True
        return False

    def _platform_image(
        self, store: BlobStore, entry: dict[str, Any], what: str, problems: list[str]
    ) -> PlatformImage:
        config_name = entry.get("Config")
        layer_names = entry.get("Layers")
        if not isinstance(config_name, str) or not isinstance(layer_names, list):
            raise ManifestError(f"{what}: manifest.json entry lacks Config or Layers")
        data = store.read(config_name, f"{what}: config")
        config_digest = digest_from_name(config_name)
        if config_digest:
            check_digest(data, config_digest, f"{what}: config {config_name}")
        config = load_json(data, f"{what}: config {config_name}")
        ids = diff_ids(config)
        descriptors: list[dict[str, Any]] = []
        openers = []
        for i, layer_name in enumerate(layer_names):
            if not isinstance(layer_name, str):
                raise ManifestError(f"{what}: layer {i} has no file name")
            digest = digest_from_name(layer_name) or (ids[i] if i < len(ids) else None)
            if digest is None:
                raise ManifestError(f"{what}: layer {i} ({layer_name}) has no digest or diff_id")
            descriptors.append({"digest": digest, "mediaType": LEGACY_LAYER_TYPE})
            openers.append(store.opener(layer_name))
        return assemble_platform_image(
            platform_of(config),
            None,
            {"layers": descriptors},
            config_digest,
            config,
            openers,
            descriptors,
            problems,
            what,
        )

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

"""``docker save`` archives, legacy and Docker 25+ layouts
(``docker-archive:PATH[:REFERENCE]`` or ``docker-archive:PATH:@N``).

An archive made by ``docker save A B`` holds several images: each is its own image
(its ``RepoTags``, its config digest), all of them are scanned, and one is picked the
way docker and skopeo do, by its full reference (``app`` means
``docker.io/library/app:latest``) or by its position ``@N`` in ``manifest.json``.

Both layouts carry a ``manifest.json`` listing each saved image's config and layer
files. Legacy archives keep ``<id>/layer.tar`` (uncompressed; no blob digest, so the
layer is checked against its diff_id); Docker 25+ ones are an OCI layout whose
blobs are named by digest. Without ``manifest.json`` the archive is read as an OCI
layout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scanner.errors import ManifestError, SourceError, UsageError
from scanner.image import (
    Image,
    PlatformImage,
    assemble_platform_image,
    diff_ids,
    load_json,
    platform_of,
)
from scanner.reference import Reference, parse_reference
from scanner.sources.blobstore import BlobStore
from scanner.sources.interface import Source, SourceOptions
from scanner.sources.manifests import check_digest, image_from_root
from scanner.sources.oci_layout import StoreFetcher, open_store, select_tag

BLOB_NAME = re.compile(r"^blobs/(sha256|sha384|sha512)/([a-f0-9]{64,128})$")
CONFIG_NAME = re.compile(r"^([a-f0-9]{64})\.json$")
LEGACY_LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar"
INDEX_SELECTOR = re.compile(r"^@([0-9]{1,9})$")
MAX_LISTED = 20  # references named in a "no such image" message


def digest_from_name(name: str) -> str | None:
    m = BLOB_NAME.match(name)
    if m:
        return f"{m.group(1)}:{m.group(2)}"
    m = CONFIG_NAME.match(name)
    return f"sha256:{m.group(1)}" if m else None


def normalised(reference: str) -> Reference | None:
    """A RepoTags entry as docker reads it, or None when it is not a reference."""
    try:
        ref = parse_reference(reference)
    except UsageError:
        return None
    return ref


def repo_tags(entry: dict[str, Any]) -> list[str]:
    tags = entry.get("RepoTags")
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


class DockerArchiveSource(Source):
    kind = "docker-archive"

    def __init__(self, name: str, options: SourceOptions, path: Path, tag: str | None) -> None:
        super().__init__(name, options)
        self.path = path
        self.tag = tag  # a reference, or @N
        self.store: BlobStore | None = None

    def load(self) -> Image:
        images = self.load_all()
        if len(images) > 1:
            held = ", ".join(_shown(image.name for image in images))
            raise SourceError(
                f"{self.path}: holds {len(images)} images ({held}); pick one with "
                "docker-archive:PATH:REFERENCE or docker-archive:PATH:@N"
            )
        return images[0]

    def load_all(self) -> list[Image]:
        self.store = store = open_store(self.path)
        what = str(self.path)
        if not store.exists("manifest.json"):
            if store.exists("index.json"):
                index = load_json(store.read("index.json", what), f"{what}: index.json")
                root = select_tag(index, self.tag, what)
                return [
                    image_from_root(
                        self.name,
                        self.kind,
                        StoreFetcher(store),
                        root,
                        None,
                        self.options.platforms,
                    )
                ]
            raise ManifestError(f"{what}: not a docker save archive (no manifest.json)")
        raw = store.read("manifest.json", what)
        try:
            entries = json.loads(raw)
        except ValueError as exc:
            raise ManifestError(f"{what}: manifest.json is not valid JSON ({exc})") from None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ManifestError(f"{what}: manifest.json is not a list of image entries")
        if not entries:
            raise ManifestError(f"{what}: manifest.json lists no image")
        chosen = self._select(list(enumerate(entries)), what)
        images = []
        for n, entry in chosen:
            tags = repo_tags(entry)
            name = self.name if len(chosen) == 1 else self._name_of(n, tags)
            label = f"{what} image {n} ({', '.join(_shown(tags)) or 'untagged'})"
            image = Image(name=name, source_kind=self.kind, platforms=[], tags=tags)
            try:
                pi = self._platform_image(store, entry, label, image.problems)
            except SourceError as exc:
                image.problems.append(str(exc))
                images.append(image)
                continue
            wanted = self.options.platforms
            if wanted and not any(pi.platform.matches(w) for w in wanted):
                continue
            image.platforms.append(pi)
            images.append(image)
        if not images:
            raise SourceError(f"{what}: no image of the requested platform in the archive")
        return images

    def _name_of(self, n: int, tags: list[str]) -> str:
        """How to name (and select) one image of several: its first reference, or @N."""
        ref = next((t for t in tags if normalised(t) is not None), None)
        return f"{self.kind}:{self.path}:{ref if ref is not None else f'@{n}'}"

    def _select(
        self, entries: list[tuple[int, dict[str, Any]]], what: str
    ) -> list[tuple[int, dict[str, Any]]]:
        if self.tag is None:
            return entries
        by_index = INDEX_SELECTOR.match(self.tag)
        if by_index:
            n = int(by_index.group(1))
            if n >= len(entries):
                raise SourceError(
                    f"{what}: no image @{n}: the archive holds {len(entries)} "
                    f"(@0 to @{len(entries) - 1})"
                )
            return [entries[n]]
        try:
            wanted = parse_reference(self.tag)
        except UsageError as exc:
            raise UsageError(f"docker-archive: {exc}") from None
        chosen = [
            (n, e)
            for n, e in entries
            if any(_same(normalised(t), wanted) for t in repo_tags(e))
            or (wanted.digest is not None and _config_digest(e) == wanted.digest)
        ]
        if not chosen:
            held = [t for _, e in entries for t in repo_tags(e)]
            untagged = sum(1 for _, e in entries if not repo_tags(e))
            listing = ", ".join(_shown(held)) or "no tagged image"
            if untagged:
                listing += f"; {untagged} untagged (select with @N)"
            raise SourceError(f"{what}: no image {self.tag} in the archive; it holds {listing}")
        return chosen

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


def _same(held: Reference | None, wanted: Reference) -> bool:
    """``wanted`` names ``held``: same registry and repository, and same tag (a reference
    without a tag means :latest; with only a digest, the tag is not compared)."""
    if held is None or (held.registry, held.repository) != (wanted.registry, wanted.repository):
        return False
    if wanted.digest is not None and wanted.tag is None:
        return False  # RepoTags hold no digests: matched against the config digest instead
    return held.tag == wanted.tag


def _config_digest(entry: dict[str, Any]) -> str | None:
    config = entry.get("Config")
    return digest_from_name(config) if isinstance(config, str) else None


def _shown(names: Iterable[str]) -> list[str]:
    """At most MAX_LISTED names, then how many more."""
    listed = list(names)
    if len(listed) <= MAX_LISTED:
        return listed
    return [*listed[:MAX_LISTED], f"and {len(listed) - MAX_LISTED} more"]

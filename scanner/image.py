"""The in-memory model of an image: platforms, layers, history and how they map.

A source turns whatever it reads (an OCI layout, a ``docker save`` archive, a
registry, a Docker engine) into an :class:`Image`. Layers are not read here: each
:class:`Layer` carries a :class:`BlobOpener`, a small picklable description of
where its bytes are, so layers can be streamed later, in this process or another.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from scanner.errors import ManifestError

# Media types we treat as image manifests, indexes and attestations.
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
ATTESTATION_REF_TYPE = "attestation-manifest"

BASE_NAME_KEY = "org.opencontainers.image.base.name"
BASE_DIGEST_KEY = "org.opencontainers.image.base.digest"


class BlobOpener(ABC):
    """Where a blob's bytes are. Must be picklable (layers may be scanned in workers)."""

    @abstractmethod
    def open(self) -> BinaryIO:
        """A fresh stream over the blob's raw (possibly compressed) bytes."""

    @abstractmethod
    def describe(self) -> str:
        """Where the blob is, for error messages."""


@dataclass(frozen=True)
class Platform:
    os: str = "unknown"
    architecture: str = "unknown"
    variant: str | None = None

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().split("/")
        if len(parts) < 2 or len(parts) > 3 or not all(parts):
            raise ValueError(f"platform {text!r} is not os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Platform:
        data = data or {}
        return cls(
            str(data.get("os") or "unknown"),
            str(data.get("architecture") or "unknown"),
            str(data["variant"]) if data.get("variant") else None,
        )

    def matches(self, wanted: Platform) -> bool:
        """True when this platform is what the user asked for (variant optional)."""
        if (self.os, self.architecture) != (wanted.os, wanted.architecture):
            return False
        return wanted.variant is None or wanted.variant == self.variant


@dataclass(frozen=True)
class HistoryStep:
    index: int
    created_by: str
    comment: str
    created: str | None
    empty_layer: bool
    layer_index: int | None  # None for empty_layer steps


@dataclass(frozen=True)
class Layer:
    index: int
    digest: str  # the blob digest in the manifest (compressed, as distributed)
    diff_id: str | None  # the uncompressed digest from config.rootfs.diff_ids
    media_type: str
    size: int | None
    opener: BlobOpener
    history: HistoryStep | None = None

    @property
    def created_by(self) -> str | None:
        return self.history.created_by if self.history else None


@dataclass
class PlatformImage:
    """One runnable image: a manifest, its config and its layers."""

    platform: Platform
    manifest_digest: str | None
    manifest: dict[str, Any]
    config_digest: str | None
    config: dict[str, Any]
    layers: list[Layer]
    history: list[HistoryStep]
    annotations: dict[str, str] = field(default_factory=dict)  # manifest annotations
    # The base images a build provenance (SLSA) recorded, as (name, digest) pairs.
    provenance_bases: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def runtime(self) -> dict[str, Any]:
        """config.config: Env, User, Labels, ExposedPorts, Healthcheck..."""
        value = self.config.get("config")
        return value if isinstance(value, dict) else {}


@dataclass
class Image:
    """What a source hands the scanner: every platform it found, and what it could not read."""

    name: str  # how the user named it, e.g. "oci:./demo:latest" or "registry.fly.io/app:tag"
    source_kind: str  # "oci", "docker-archive", "registry", "docker-daemon"
    platforms: list[PlatformImage]
    index_annotations: dict[str, str] = field(default_factory=dict)
    index_digest: str | None = None
    tags: list[str] = field(default_factory=list)  # docker save's RepoTags, when read from one
    # Parts of the image that could not be read (a platform manifest, a config...):
    # scanned around, reported, and they make the scan incomplete.
    problems: list[str] = field(default_factory=list)


def load_json(data: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object, with an error that names what was being parsed."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ManifestError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def history_steps(config: Mapping[str, Any]) -> list[HistoryStep]:
    """config.history with each non-empty step mapped to its layer index."""
    raw = config.get("history")
    if not isinstance(raw, list):
        return []
    steps: list[HistoryStep] = []
    layer_index = 0
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            continue
        empty = bool(item.get("empty_layer", False))
        steps.append(
            HistoryStep(
                index=i,
                created_by=str(item.get("created_by") or ""),
                comment=str(item.get("comment") or ""),
                created=str(item["created"]) if item.get("created") else None,
                empty_layer=empty,
                layer_index=None if empty else layer_index,
            )
        )
        if not empty:
            layer_index += 1
    return steps


def diff_ids(config: Mapping[str, Any]) -> list[str]:
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        return []
    return [str(d) for d in rootfs["diff_ids"]]


def descriptor_list(manifest: Mapping[str, Any], key: str, what: str) -> list[dict[str, Any]]:
    value = manifest.get(key)
    if not isinstance(value, list) or not all(isinstance(d, dict) for d in value):
        raise ManifestError(f"{what}: '{key}' is missing or not a list of descriptors")
    for d in value:
        if not isinstance(d.get("digest"), str) or ":" not in d["digest"]:
            raise ManifestError(f"{what}: a descriptor in '{key}' has no valid digest")
    return list(value)


def assemble_platform_image(
    platform: Platform,
    manifest_digest: str | None,
    manifest: dict[str, Any],
    config_digest: str | None,
    config: dict[str, Any],
    openers: Sequence[BlobOpener],
    layer_descriptors: Sequence[Mapping[str, Any]],
    problems: list[str],
    what: str,
) -> PlatformImage:
    """Tie manifest layers, config diff_ids and history together.

    Mismatched counts are reported as problems (the image is scanned anyway, by
    manifest order) rather than raised: a hostile or sloppy image must not hide its
    layers behind a bookkeeping error.
    """
    steps = history_steps(config)
    ids = diff_ids(config)
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        problems.append(f"{what}: config has no rootfs.diff_ids list; layers not checked")
    if "history" in config and not isinstance(config.get("history"), list):
        problems.append(f"{what}: config history is not a list; build steps unknown")
    if ids and len(ids) != len(layer_descriptors):
        problems.append(
            f"{what}: config lists {len(ids)} diff_ids but the manifest has "
            f"{len(layer_descriptors)} layers"
        )
    layer_steps = [s for s in steps if not s.empty_layer]
    if steps and len(layer_steps) != len(layer_descriptors):
        problems.append(
            f"{what}: history has {len(layer_steps)} non-empty steps for "
            f"{len(layer_descriptors)} layers; build steps may be attributed wrongly"
        )
    layers: list[Layer] = []
    for i, (desc, opener) in enumerate(zip(layer_descriptors, openers, strict=True)):
        size = desc.get("size")
        layers.append(
            Layer(
                index=i,
                digest=str(desc["digest"]),
                diff_id=ids[i] if i < len(ids) else None,
                media_type=str(desc.get("mediaType") or ""),
                size=int(size) if isinstance(size, int) else None,
                opener=opener,
                history=layer_steps[i] if i < len(layer_steps) else None,
            )
        )
    annotations = manifest.get("annotations")
    return PlatformImage(
        platform=platform,
        manifest_digest=manifest_digest,
        manifest=manifest,
        config_digest=config_digest,
        config=config,
        layers=layers,
        history=steps,
        annotations=dict(annotations) if isinstance(annotations, dict) else {},
    )


def platform_of(config: Mapping[str, Any]) -> Platform:
    return Platform.from_json(config)


def is_attestation(descriptor: Mapping[str, Any]) -> bool:
    annotations = descriptor.get("annotations") or {}
    return annotations.get("vnd.docker.reference.type") == ATTESTATION_REF_TYPE

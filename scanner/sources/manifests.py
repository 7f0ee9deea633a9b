"""Turn an index or manifest into an :class:`Image`, whatever the source.

The OCI layout, the Docker 25+ archive and the registry all serve the same graph:
an index (or Docker manifest list) pointing at per-platform manifests, nested
indexes and attestation manifests; each manifest pointing at a config and layers.
A source implements :class:`ManifestFetcher` (how to get a blob by descriptor) and
:func:`image_from_root` walks the graph, choosing platforms, reading SLSA
provenance from attestations and recording what could not be read as problems.
"""

from __future__ import annotations

import json
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from scanner.digests import check_digest
from scanner.errors import ManifestError, SourceError
from scanner.image import (
    INDEX_TYPES,
    BlobOpener,
    Image,
    Platform,
    PlatformImage,
    assemble_platform_image,
    descriptor_list,
    is_attestation,
    load_json,
)

MAX_INDEX_DEPTH = 4


class ManifestFetcher(ABC):
    @abstractmethod
    def fetch(self, descriptor: Mapping[str, Any], what: str) -> bytes:
        """The bytes of a manifest, index or config blob (small; size-limited)."""

    @abstractmethod
    def opener(self, descriptor: Mapping[str, Any]) -> BlobOpener:
        """An opener for a layer blob."""

    def fetch_json(self, descriptor: Mapping[str, Any], what: str) -> dict[str, Any]:
        data = self.fetch(descriptor, what)
        check_size(data, descriptor, what)
        check_digest(data, str(descriptor.get("digest", "")), what)
        return load_json(data, what)


def check_size(data: bytes, descriptor: Mapping[str, Any], what: str) -> None:
    """ManifestError when the content's length is not the descriptor's ``size``: the
    spec says such content must not be trusted, even when its digest matches."""
    size = descriptor.get("size")
    if size is None:
        return
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{what}: descriptor size {str(size)[:40]!r} is not a byte count")
    if len(data) != size:
        raise ManifestError(
            f"{what}: is {len(data)} bytes but its descriptor says {size}; not trusted"
        )


def is_index(doc: Mapping[str, Any], media_type: str | None = None) -> bool:
    mt = media_type or doc.get("mediaType")
    return mt in INDEX_TYPES or ("manifests" in doc and "layers" not in doc)


def image_from_root(
    name: str,
    kind: str,
    fetcher: ManifestFetcher,
    root: dict[str, Any],
    root_digest: str | None,
    platforms: Sequence[Platform] = (),
) -> Image:
    """Walk from a root document (index or manifest) to every wanted platform image."""
    image = Image(name=name, source_kind=kind, platforms=[])
    # One parsed copy of each config, whatever the number of platforms pointing at it
    # (an 8 MB config under a hundred platforms must not be parsed a hundred times).
    configs: dict[str, dict[str, Any]] = {}
    if is_index(root):
        image.index_digest = root_digest
        annotations = root.get("annotations")
        image.index_annotations = dict(annotations) if isinstance(annotations, dict) else {}
        attestations: list[tuple[dict[str, Any], str]] = []
        candidates = _platform_manifests(fetcher, root, name, image.problems, attestations, 0)
        available = [p for _, p in candidates]
        chosen = [
            (d, p) for d, p in candidates if not platforms or any(p.matches(w) for w in platforms)
        ]
        if platforms and not chosen:
            names = ", ".join(sorted({str(p) for p in available})) or "none"
            wanted = ", ".join(str(p) for p in platforms)
            raise SourceError(f"{name}: no platform matches {wanted} (available: {names})")
        for desc, platform in chosen:
            what = f"{name} [{platform}] manifest {desc['digest']}"
            try:
                manifest = fetcher.fetch_json(desc, what)
                image.platforms.append(
                    _platform_image(
                        fetcher, manifest, desc["digest"], platform, what, image, configs
                    )
                )
            except SourceError as exc:
                image.problems.append(str(exc))
        _attach_provenance(fetcher, image, attestations)
    else:
        what = f"{name} manifest"
        pi = _platform_image(fetcher, root, root_digest, None, what, image, configs)
        if platforms and not any(pi.platform.matches(w) for w in platforms):
            wanted = ", ".join(str(p) for p in platforms)
            raise SourceError(f"{name}: single-platform image is {pi.platform}, not {wanted}")
        image.platforms.append(pi)
    if not image.platforms and not image.problems:
        image.problems.append(f"{name}: the index lists no image manifests")
    return image


def _platform_manifests(
    fetcher: ManifestFetcher,
    index: dict[str, Any],
    name: str,
    problems: list[str],
    attestations: list[tuple[dict[str, Any], str]],
    depth: int,
) -> list[tuple[dict[str, Any], Platform]]:
    if depth > MAX_INDEX_DEPTH:
        problems.append(f"{name}: indexes nested deeper than {MAX_INDEX_DEPTH}; not followed")
        return []
    found: list[tuple[dict[str, Any], Platform]] = []
    for desc in descriptor_list(index, "manifests", f"{name} index"):
        if is_attestation(desc):
            attestations.append((desc, str(desc["digest"])))
            continue
        mt = desc.get("mediaType")
        if mt in INDEX_TYPES:
            what = f"{name} nested index {desc['digest']}"
            try:
                child = fetcher.fetch_json(desc, what)
            except SourceError as exc:
                problems.append(str(exc))
                continue
            found.extend(
                _platform_manifests(fetcher, child, name, problems, attestations, depth + 1)
            )
            continue
        platform = Platform.from_json(desc.get("platform"))
        if str(platform) == "unknown/unknown" and "platform" in desc:
            continue  # not a runnable image (attestations without annotations, SBOMs...)
        found.append((desc, platform))
    # The same manifest can be listed twice (tags in an OCI layout); scan it once.
    seen: set[str] = set()
    unique = []
    for desc, platform in found:
        if desc["digest"] not in seen:
            seen.add(desc["digest"])
            unique.append((desc, platform))
    return unique


def _platform_image(
    fetcher: ManifestFetcher,
    manifest: dict[str, Any],
    manifest_digest: str | None,
    platform: Platform | None,
    what: str,
    image: Image,
    configs: dict[str, dict[str, Any]],
) -> PlatformImage:
    if is_index(manifest):
        raise ManifestError(f"{what}: expected an image manifest, found an index")
    config_desc = manifest.get("config")
    if not isinstance(config_desc, dict) or not isinstance(config_desc.get("digest"), str):
        raise ManifestError(f"{what}: has no config descriptor")
    layers = descriptor_list(manifest, "layers", what)
    config_key = f"{config_desc['digest']}\x00{config_desc.get('size')}"
    config = configs.get(config_key)
    if config is None:
        config = fetcher.fetch_json(config_desc, f"{what}: config {config_desc['digest']}")
        configs[config_key] = config
    actual = Platform.from_json(config)
    if platform is None or str(platform) == "unknown/unknown":
        platform = actual
    openers = [fetcher.opener(d) for d in layers]
    return assemble_platform_image(
        platform,
        manifest_digest,
        manifest,
        str(config_desc["digest"]),
        config,
        openers,
        layers,
        image.problems,
        what,
    )


def _attach_provenance(
    fetcher: ManifestFetcher,
    image: Image,
    attestations: Sequence[tuple[dict[str, Any], str]],
) -> None:
    by_digest = {p.manifest_digest: p for p in image.platforms}
    for desc, digest in attestations:
        subject = (desc.get("annotations") or {}).get("vnd.docker.reference.digest")
        target = by_digest.get(subject)
        if target is None:
            continue
        what = f"{image.name} attestation {digest}"
        try:
            manifest = fetcher.fetch_json(desc, what)
            for layer in descriptor_list(manifest, "layers", what):
                ptype = (layer.get("annotations") or {}).get("in-toto.io/predicate-type", "")
                if "slsa.dev/provenance" not in ptype:
                    continue
                with fetcher.opener(layer).open() as f:
                    data = f.read(8 << 20)
                target.provenance_bases.extend(provenance_bases(data))
        except (SourceError, OSError) as exc:
            image.problems.append(f"{what}: provenance not readable ({exc})")


def provenance_bases(statement: bytes) -> list[tuple[str, str | None]]:
    """Base images named in an in-toto SLSA provenance statement (v0.2 or v1)."""
    try:
        doc = json.loads(statement)
    except ValueError:
        return []
    pred = doc.get("predicate") if isinstance(doc, dict) else None
    if not isinstance(pred, dict):
        return []
    materials = pred.get("materials")
    if not isinstance(materials, list):
        build = pred.get("buildDefinition")
        materials = build.get("resolvedDependencies") if isinstance(build, dict) else None
    bases: list[tuple[str, str | None]] = []
    for m in materials if isinstance(materials, list) else []:
        if not isinstance(m, dict):
            continue
        uri = str(m.get("uri", ""))
        if not uri.startswith("pkg:docker/"):
            continue
        digests = m.get("digest") if isinstance(m.get("digest"), dict) else {}
        sha = digests.get("sha256") if isinstance(digests, dict) else None
        bases.append((purl_to_reference(uri), f"sha256:{sha}" if sha else None))
    return bases


def purl_to_reference(purl: str) -> str:
    """``pkg:docker/library/debian@bookworm?platform=...`` -> ``library/debian:bookworm``."""
    body = purl[len("pkg:docker/") :].split("?", 1)[0]
    body = urllib.parse.unquote(body)
    name, _, version = body.partition("@")
    if not version:
        return name
    return f"{name}@{version}" if version.startswith("sha256:") else f"{name}:{version}"

"""Small images built byte by byte for the hostile-input tests (digests, layouts, registries).

Unlike :mod:`fixtures.imagebuilder`, nothing here is checked or normalised: a test can
name a blob by any digest algorithm, lie about a size, or leave a blob out and put a
symlink in its place.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

# A token in the documented GitHub format: found by the content rules.
SECRET = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"


def digest(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def layer_tar(files: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def secret_layer(name: str = "app/.env", marker: str = "") -> bytes:
    """A gzip layer with one file holding :data:`SECRET` (``marker`` makes it unique)."""
    return gzip.compress(
        layer_tar({name: f"GITHUB_TOKEN={SECRET}\n# {marker}\n".encode()}), mtime=0
    )


@dataclass
class Built:
    """Every blob of an image by digest, and its root documents."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifest: bytes = b""
    manifest_digest: str = ""
    config_digest: str = ""
    layer_digests: list[str] = field(default_factory=list)
    index: dict[str, Any] = field(default_factory=dict)


def build_image(
    layers: Sequence[bytes],
    *,
    algorithm: str = "sha256",
    diff_algorithm: str = "sha256",
    layer_digests: Sequence[str] | None = None,
    layer_sizes: Sequence[int] | None = None,
    diff_ids: Sequence[str] | None = None,
    config_extra: Mapping[str, Any] | None = None,
) -> Built:
    """One linux/amd64 image of gzip ``layers``, named by ``algorithm`` digests.

    ``layer_digests``, ``layer_sizes`` and ``diff_ids`` override what the manifest and
    config say (to lie about them); blobs are stored under their true digest unless
    ``layer_digests`` names another, in which case they are stored under that name.
    """
    built = Built()
    ids = (
        list(diff_ids)
        if diff_ids is not None
        else [digest(gzip.decompress(layer), diff_algorithm) for layer in layers]
    )
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ids},
        "history": [{"created_by": f"COPY layer{i} /"} for i in range(len(layers))],
        **(config_extra or {}),
    }
    config_bytes = dumps(config)
    built.config_digest = digest(config_bytes, algorithm)
    built.blobs[built.config_digest] = config_bytes
    descriptors = []
    for i, layer in enumerate(layers):
        name = layer_digests[i] if layer_digests is not None else digest(layer, algorithm)
        built.blobs[name] = layer
        built.layer_digests.append(name)
        size = layer_sizes[i] if layer_sizes is not None else len(layer)
        descriptors.append({"mediaType": OCI_LAYER_GZIP, "digest": name, "size": size})
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": built.config_digest,
            "size": len(config_bytes),
        },
        "layers": descriptors,
    }
    built.manifest = dumps(manifest)
    built.manifest_digest = digest(built.manifest, algorithm)
    built.blobs[built.manifest_digest] = built.manifest
    built.index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": built.manifest_digest,
                "size": len(built.manifest),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    return built


def blob_file(layout: Path, name: str) -> Path:
    algorithm, _, encoded = name.partition(":")
    return layout / "blobs" / algorithm / encoded


def write_layout(layout: Path, built: Built, *, skip: Sequence[str] = ()) -> Path:
    """Write ``built`` as an OCI layout directory (blobs named in ``skip`` left out)."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_bytes(dumps(built.index))
    for name, data in built.blobs.items():
        if name in skip:
            continue
        path = blob_file(layout, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return layout

"""Build the deterministic benchmark image: >= 1.5 GB uncompressed in >= 4 gzip layers.

Real content available on the machine (system libraries, /usr/share, the Python
installation with its site-packages) plus a generated layer of source files and
minified bundles. Files are taken in sorted order with fixed metadata, so the same
machine always builds the same image; the content manifest (paths and sizes) is
hashed into the image's tag so a changed machine gives a visibly different image.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import sys
import sysconfig
import tarfile
from collections.abc import Iterator
from pathlib import Path

from isal import igzip

MiB = 1 << 20
SOURCES: list[tuple[str, list[str], int]] = [
    # (layer name, roots, byte budget)
    (
        "system-libraries",
        ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"],
        620 * MiB,
    ),
    ("share-and-docs", ["/usr/share"], 420 * MiB),
    (
        "python-and-site-packages",
        [sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]],
        420 * MiB,
    ),
]
GENERATED_BYTES = 180 * MiB


def walk(roots: list[str], budget: int, seen: set[str]) -> Iterator[tuple[str, str, int]]:
    """(path on disk, name in the layer, size) of regular files, sorted, within budget."""
    used = 0
    for root in roots:
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                real = os.path.realpath(path)
                if real in seen or not os.path.isfile(path) or os.path.islink(path):
                    continue
                size = os.path.getsize(path)
                if used + size > budget or size == 0:
                    continue
                seen.add(real)
                used += size
                yield path, path.lstrip("/"), size
                if used >= budget - 4096:
                    return


def generated_files(total: int) -> Iterator[tuple[str, bytes]]:
    """Source files and minified one-line bundles, from a fixed seed."""
    rng = random.Random(1234)
    words = [
        "const",
        "return",
        "function",
        "value",
        "config",
        "items",
        "render",
        "state",
        "props",
        "index",
        "module",
        "export",
        "default",
        "import",
        "from",
        "await",
    ]
    made = 0
    n = 0
    while made < total:
        n += 1
        if n % 10 == 0:  # a minified bundle: one long line
            parts = [f"{rng.choice(words)}{rng.randrange(1000)}" for _ in range(300_000)]
            data = ("!function(){" + ";".join(parts) + "}();\n").encode()
            name = f"app/static/js/bundle.{n:05d}.min.js"
        else:
            lines = []
            for i in range(rng.randrange(200, 2000)):
                indent = "    " * rng.randrange(0, 4)
                lines.append(
                    f"{indent}{rng.choice(words)}_{i} = {rng.choice(words)}"
                    f"({rng.randrange(10**6)}, '{rng.choice(words)}')"
                )
            data = ("\n".join(lines) + "\n").encode()
            name = f"app/src/pkg{n % 50:02d}/module_{n:05d}.py"
        made += len(data)
        yield name, data


def _info(name: str, size: int, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid = size, mode, 1700000000, 0, 0
    return info


class HashingWriter(io.RawIOBase):
    def __init__(self, f: io.BufferedWriter) -> None:
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.f.write(b)
        self.h.update(b)
        self.n += len(b)
        return len(b)


def write_layer(blobs: Path, fill: object) -> tuple[str, str, int, int]:
    """Write one gzip layer; returns (digest, diff_id, compressed size, uncompressed size)."""
    tmp = blobs / "tmp-layer"
    with open(tmp, "wb") as raw:
        outer = HashingWriter(raw)  # type: ignore[arg-type]
        with igzip.IGzipFile(fileobj=outer, mode="wb", compresslevel=1, mtime=0) as gz:
            inner = HashingWriter(gz)  # type: ignore[arg-type]
            with tarfile.open(fileobj=inner, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                fill(tar)  # type: ignore[operator]
    digest = "sha256:" + outer.h.hexdigest()
    os.replace(tmp, blobs / outer.h.hexdigest())
    return digest, "sha256:" + inner.h.hexdigest(), outer.n, inner.n


VARIANTS = {
    # name -> (image file, how a layer's files are placed)
    "real": "bench-image.tar",  # files at their real paths (/usr/lib, /usr/share, ...)
    "data": "bench-image-data.tar",  # layer i's files under /data<i>/: an application path
}


def build(out: Path, variant: str = "real") -> Path:
    """Write the OCI layout as a tar at ``out/<VARIANTS[variant]>`` (trivy reads it too).

    The ``data`` variant holds the same files, each layer's under ``/data0`` ...
    ``/data3``, so no path-based provenance shortcut applies and every file gets
    the full treatment.
    """
    layout = out / f"layout-{variant}"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    layers = []
    for number, (name, roots, budget) in enumerate(SOURCES):
        files = list(walk(roots, budget, seen))
        if variant == "data":
            files = [(path, f"data{number}/{arc}", size) for path, arc, size in files]

        def fill(tar: tarfile.TarFile, files: list[tuple[str, str, int]] = files) -> None:
            for path, arc, _size in files:
                with open(path, "rb") as f:
                    data = f.read()
                tar.addfile(_info(arc, len(data)), io.BytesIO(data))

        layers.append((name, *write_layer(blobs, fill)))
        print(f"  layer {name}: {len(files)} files, {layers[-1][4] / MiB:.0f} MiB", flush=True)

    generated_prefix = f"data{len(SOURCES)}/" if variant == "data" else ""

    def fill_generated(tar: tarfile.TarFile) -> None:
        for arc, data in generated_files(GENERATED_BYTES):
            tar.addfile(_info(generated_prefix + arc, len(data)), io.BytesIO(data))

    layers.append(("generated-sources-and-bundles", *write_layer(blobs, fill_generated)))
    print(f"  layer generated: {layers[-1][4] / MiB:.0f} MiB", flush=True)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"User": "app", "Healthcheck": {"Test": ["CMD", "true"]}},
        "rootfs": {"type": "layers", "diff_ids": [entry[2] for entry in layers]},
        "history": [{"created_by": f"COPY {entry[0]} / # buildkit"} for entry in layers],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    (blobs / hashlib.sha256(config_bytes).hexdigest()).write_bytes(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + hashlib.sha256(config_bytes).hexdigest(),
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": entry[1],
                "size": entry[3],
            }
            for entry in layers
        ],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    manifest_digest = hashlib.sha256(manifest_bytes).hexdigest()
    (blobs / manifest_digest).write_bytes(manifest_bytes)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": manifest["mediaType"],
                "digest": "sha256:" + manifest_digest,
                "size": len(manifest_bytes),
                "annotations": {"org.opencontainers.image.ref.name": "bench"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    # manifest.json too, as Docker 25+ archives have, so trivy (which reads OCI layouts
    # only as directories) can read the same file as a docker archive.
    docker_manifest = [
        {
            "Config": "blobs/sha256/" + hashlib.sha256(config_bytes).hexdigest(),
            "RepoTags": ["bench:latest"],
            "Layers": ["blobs/sha256/" + entry[1].split(":")[1] for entry in layers],
        }
    ]
    (layout / "manifest.json").write_text(json.dumps(docker_manifest))
    target = out / VARIANTS[variant]
    with tarfile.open(target, "w") as tar:
        for name in ["oci-layout", "index.json", "manifest.json"]:
            tar.add(layout / name, arcname=name)
        for blob in sorted(blobs.iterdir()):
            tar.add(blob, arcname=f"blobs/sha256/{blob.name}")
    for blob in blobs.iterdir():
        blob.unlink()
    return target


if __name__ == "__main__":
    print(
        build(
            Path(sys.argv[1] if len(sys.argv) > 1 else "bench/out"),
            sys.argv[2] if len(sys.argv) > 2 else "real",
        )
    )

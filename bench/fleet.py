"""A fleet of images that share base layers the way real ones do, in one OCI layout.

A few bases (an OS-like layer of real files from this machine's Python installation
and a runtime layer), many apps on each base, several releases per app; each release
adds two small app layers (generated source, one config file that differs per
release, a planted fake token in some). Every image is a tag of one OCI layout, so
each blob is stored once, as in a registry. Deterministic: the same machine always
builds the same fleet.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import random
import sysconfig
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from isal import igzip

MiB = 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class FleetShape:
    bases: int = 3
    apps_per_base: int = 4
    releases: int = 3
    base_bytes: int = 24 * MiB  # uncompressed, per base (two layers)
    app_bytes: int = 1 * MiB  # uncompressed, per release (two layers)
    real_files: bool = True  # base layers from this machine's files (else generated text)

    @property
    def images(self) -> int:
        return self.bases * self.apps_per_base * self.releases


@functools.cache
def _stdlib_files() -> tuple[Path, list[Path]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return root, sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _real_files(budget: int, skip: int) -> Iterator[tuple[str, bytes]]:
    """Files of the Python installation in sorted order, from the ``skip``-th on."""
    root, paths = _stdlib_files()
    used = 0
    for path in paths[skip:]:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if used + len(data) > budget:
            if used:
                return
            continue
        used += len(data)
        yield "usr/lib/python3/" + str(path.relative_to(root)), data


def _generated_files(budget: int, seed: str) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)
    for i in range(max(1, budget // (64 << 10))):
        yield f"usr/lib/base/{seed}/file{i}.txt", _source(rng, 64 << 10)


def _source(rng: random.Random, size: int) -> bytes:
    words = ["def", "return", "import", "class", "self", "value", "config", "request", "user"]
    out = io.StringIO()
    while out.tell() < size:
        out.write(" ".join(rng.choice(words) for _ in range(10)) + f" = {rng.randrange(1 << 30)}\n")
    return out.getvalue().encode()


def _tar(files: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Layout:
    def __init__(self, dest: Path) -> None:
        self.dest = dest
        (dest / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.manifests: list[dict[str, object]] = []
        self.uncompressed = 0

    def blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.dest / "blobs" / "sha256" / digest[7:]
        if not path.exists():
            path.write_bytes(data)
        return digest

    def layer(self, files: list[tuple[str, bytes]]) -> tuple[dict[str, object], str]:
        raw = _tar(files)
        self.uncompressed += len(raw)
        gz = igzip.compress(raw, 1)
        return (
            {"mediaType": OCI_LAYER, "digest": self.blob(gz), "size": len(gz)},
            "sha256:" + hashlib.sha256(raw).hexdigest(),
        )

    def image(
        self, tag: str, layers: list[tuple[dict[str, object], str]], steps: list[str]
    ) -> None:
        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin"], "User": "app"},
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
            "history": [{"created_by": s} for s in steps],
        }
        cdata = json.dumps(config).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self.blob(cdata), "size": len(cdata)},
            "layers": [d for d, _ in layers],
        }
        mdata = json.dumps(manifest).encode()
        self.manifests.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": self.blob(mdata),
                "size": len(mdata),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        )

    def finish(self) -> None:
        index = {"schemaVersion": 2, "manifests": self.manifests}
        (self.dest / "index.json").write_text(json.dumps(index))


def build_fleet(dest: Path, shape: FleetShape = FleetShape()) -> list[str]:
    """Write the fleet's layout at ``dest``; returns the image references (``oci:...:TAG``)."""
    layout = _Layout(dest)
    refs = []
    for b in range(shape.bases):
        half = shape.base_bytes // 2
        if shape.real_files:
            os_layer = layout.layer(list(_real_files(half, skip=b * 400)))
            runtime = layout.layer(list(_real_files(half, skip=b * 400 + 2500)))
        else:
            os_layer = layout.layer(list(_generated_files(half, f"os{b}")))
            runtime = layout.layer(list(_generated_files(half, f"runtime{b}")))
        for a in range(shape.apps_per_base):
            app = f"app{b}-{a}"
            for r in range(shape.releases):
                rng = random.Random(f"{app}-{r}")
                files = [
                    (f"app/src/module{i}.py", _source(rng, shape.app_bytes // 8)) for i in range(6)
                ]
                config = [("app/config/release.txt", f"{app} release {r}\n".encode())]
                if a % 2 == 0:  # a made-up token some apps leak
                    token = "ghp_" + "".join(
                        rng.choice("abcdefghijkmnpqrstuvwxyz0123456789") for _ in range(36)
                    )
                    config.append(("app/.env", f"GITHUB_TOKEN={token}\n".encode()))
                layers = [os_layer, runtime, layout.layer(files), layout.layer(config)]
                tag = f"{app}-r{r}"
                layout.image(
                    tag,
                    layers,
                    [
                        f"ADD base{b} /",
                        f"RUN install runtime {b}",
                        "COPY src /app/src",
                        "COPY config /app",
                    ],
                )
                refs.append(f"oci:{dest}:{tag}")
    layout.finish()
    return refs

"""Precision on real benign content: nothing above low.

One uncompressed layer is made from this test environment's own installed
site-packages (as ``usr/local/lib/python3.11/site-packages``), ``/usr/share/doc``,
the shared libraries of ``/usr/lib/x86_64-linux-gnu`` (files under 4 MB;
libgnutls embeds PEM self-test keys), ``/var/lib/dpkg`` and ``/etc`` (an
application path: full severity; without the host's own shadow file, TLS
private keys and SSH host keys, which a base image does not carry), plus one
planted secret in ``/app`` as a control. Files over 20 MB are left out to keep
the test short. Everything the scanner reports from the real content must be
``low`` or ``info``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import sysconfig
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures import fakesecrets as fs
from scanner.findings import Severity
from tests.e2e.helpers import scan

MAX_FILE = 20 << 20
# the host's own credentials, which a base image does not have (root:* in Debian's)
HOST_SECRETS = ("etc/shadow", "etc/gshadow", "etc/ssl/private/", "etc/ssh/ssh_host_")
MAX_LIB = 4 << 20
CONTROL = f"GITHUB_TOKEN={fs.github_pat('precision')}\n".encode()


def _files(
    root: Path, image_root: str, max_size: int, depth: int | None = None
) -> Iterator[tuple[Path, str]]:
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if depth is not None and len(rel_dir.parts) >= depth:
            dirnames.clear()
        for name in filenames:
            path = Path(dirpath) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if not path.is_file() or path.is_symlink() or st.st_size > max_size:
                continue
            yield path, f"{image_root}/{(rel_dir / name).as_posix()}".replace("/./", "/")


def _write_layout(dest: Path, layer: Path) -> Path:
    """A one-layer OCI image layout around an uncompressed layer tar."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    digest = hashlib.sha256()
    with layer.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    layer_hex = digest.hexdigest()
    layer.rename(blobs / layer_hex)

    def blob(obj: dict[str, object]) -> tuple[str, int]:
        data = json.dumps(obj).encode()
        hexd = hashlib.sha256(data).hexdigest()
        (blobs / hexd).write_bytes(data)
        return hexd, len(data)

    config_hex, config_size = blob(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"User": "app"},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_hex}"]},
            "history": [{"created_by": "COPY rootfs/ / # buildkit"}],
        }
    )
    manifest_hex, manifest_size = blob(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{config_hex}",
                "size": config_size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": f"sha256:{layer_hex}",
                    "size": (blobs / layer_hex).stat().st_size,
                }
            ],
        }
    )
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": f"sha256:{manifest_hex}",
                "size": manifest_size,
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    (dest / "index.json").write_text(json.dumps(index))
    return dest


@pytest.fixture(scope="module")
def benign_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("precision")
    site = Path(sysconfig.get_paths()["purelib"])
    py = f"python{sys.version_info.major}.{sys.version_info.minor}"
    sources = [
        *_files(site, f"usr/local/lib/{py}/site-packages", MAX_FILE),
        *_files(Path("/usr/share/doc"), "usr/share/doc", MAX_FILE),
        *_files(Path("/usr/lib/x86_64-linux-gnu"), "usr/lib/x86_64-linux-gnu", MAX_LIB, 1),
        *_files(Path("/var/lib/dpkg"), "var/lib/dpkg", MAX_FILE),
        *[
            (path, name)
            for path, name in _files(Path("/etc"), "etc", MAX_FILE)
            if not name.startswith(HOST_SECRETS)
        ],
    ]
    layer = tmp / "layer.tar"
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
        for path, name in sources:
            try:
                tar.add(path, arcname=name, recursive=False)
            except OSError:
                continue
        info = tarfile.TarInfo("app/.env")
        info.size = len(CONTROL)
        tar.addfile(info, io.BytesIO(CONTROL))
    return _write_layout(tmp / "benign-oci", layer)


def test_real_benign_content_gives_nothing_above_low(benign_image: Path) -> None:
    result = scan(benign_image)
    assert result.problems == []
    control = [f for f in result.findings if f.location.path == "app/.env"]
    assert any(f.rule_id == "github-personal-access-token" for f in control)
    loud = [
        (f.rule_id, f.severity.label, f.location.display_path())
        for f in result.findings
        if f.severity > Severity.LOW
        and f.location.path is not None
        and f.location.path != "app/.env"
    ]
    assert loud == []
    lowered = [f for f in result.findings if f.noise and f.location.path != "app/.env"]
    assert all(f.severity <= Severity.LOW for f in lowered)

"""Hostile layers: random damage to real layer bytes never crashes the scan.

Each mutated layer either scans (possibly with problems) or ends in a one-line error
naming the layer; nothing raises out of scan_layer, and no finding is lost from
the undamaged part before the damage.
"""

from __future__ import annotations

import gzip
import io
import random
import tarfile
from typing import BinaryIO

import pytest

from fixtures import fakesecrets
from scanner.detection import Detection
from scanner.image import BlobOpener, Layer
from scanner.layer_scan import scan_layer
from scanner.signatures import SignatureSet
from tests.test_layers import make_tar, sha

DETECTION = Detection(SignatureSet.builtin())
SECRET = f"GITHUB_TOKEN={fakesecrets.github_pat()}\n".encode()
TAR = make_tar(
    [("app", None, 0o755), ("app/first.env", SECRET, 0o644)]
    + [(f"app/f{i:03d}.txt", bytes(random.Random(i).randbytes(3000)), 0o644) for i in range(40)]
    + [("app/.wh.gone", b"", 0o644), ("usr/bin/tool", b"\x7fELF" + b"\0" * 4000, 0o4755)]
)


def _end_of(name: str) -> int:
    with tarfile.open(fileobj=io.BytesIO(TAR)) as tar:
        member = tar.getmember(name)
        return member.offset_data + member.size + 512  # and the next header's block


FIRST_FILE_END = _end_of("app/first.env")


class Bytes(BlobOpener):
    def __init__(self, data: bytes) -> None:
        self.data = data

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)

    def describe(self) -> str:
        return "memory"


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    kind = rng.choice(["flip", "truncate", "zero-run", "junk-run"])
    at = rng.randrange(len(buf))
    if kind == "flip":
        for _ in range(rng.randrange(1, 8)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del buf[at:]
    elif kind == "zero-run":
        buf[at : at + rng.randrange(1, 2048)] = b"\0" * min(2048, len(buf) - at)
    else:
        buf[at : at + 512] = rng.randbytes(512)
    return bytes(buf)


@pytest.mark.parametrize("compress", ["none", "gzip"])
@pytest.mark.parametrize("seed", range(60))
def test_random_damage_never_crashes(seed: int, compress: str) -> None:
    rng = random.Random(seed)
    original = TAR if compress == "none" else gzip.compress(TAR, mtime=0)
    damaged = mutate(original, rng)
    # The manifest claims the damaged blob's own digest (a hostile image can), but the
    # diff_id of the undamaged tar: damage must still be noticed, not trusted.
    layer = Layer(3, sha(damaged), sha(TAR), "", len(damaged), Bytes(damaged))
    result = scan_layer(layer, DETECTION)
    changed = damaged != original
    if result.error is not None:
        assert result.error.startswith("layer 3 (") and "\n" not in result.error
    elif changed:
        # Damage that decodes cleanly must still show up: as a diff_id mismatch or a
        # problem, never as a clean layer.
        assert result.problems or not result.complete, "damaged layer scanned as clean"
    first_damage = next(
        (i for i, (a, b) in enumerate(zip(original, damaged, strict=False)) if a != b),
        min(len(original), len(damaged)),
    )
    if compress == "none" and first_damage >= FIRST_FILE_END:
        # Damage after the secret's file: the finding made before it is kept.
        assert any(f.location.path == "app/first.env" for f in result.findings)

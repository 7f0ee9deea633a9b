"""The layer walker on real gzip, zstd and plain tar streams built here."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import pytest
import zstandard

from scanner.errors import DigestMismatch, LayerError
from scanner.layers import EntryKind, LayerReader, normalize_member_name


def make_tar(members: list[tuple[str, bytes | None, int]]) -> bytes:
    """(name, content or None for a directory, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content, mode in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            info.mtime = 0
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


TAR = make_tar(
    [
        ("app", None, 0o755),
        ("app/.env", b"SECRET=1\n", 0o644),
        ("app/.wh.old", b"", 0o644),
        ("etc/cfg/.wh..wh..opq", b"", 0o644),
        ("usr/bin/su", b"\x7fELF", 0o4755),
    ]
)


@pytest.mark.parametrize(
    ("compress", "kind"),
    [
        (lambda d: d, "none"),
        (lambda d: gzip.compress(d, mtime=0), "gzip"),
        (lambda d: zstandard.ZstdCompressor().compress(d), "zstd"),
    ],
)
def test_walks_every_compression(compress, kind) -> None:  # type: ignore[no-untyped-def]
    blob = compress(TAR)
    reader = LayerReader(io.BytesIO(blob), what="layer 0", digest=sha(blob), diff_id=sha(TAR))
    seen = {}
    for info, content in reader:
        seen[info.path] = (info.kind, content.read() if content else None)
    reader.finish()
    assert reader.compression == kind
    assert seen["app/.env"] == (EntryKind.FILE, b"SECRET=1\n")
    assert seen["app/old"][0] is EntryKind.WHITEOUT
    assert seen["etc/cfg"][0] is EntryKind.OPAQUE
    assert reader.index.whiteouts == {"app/old"}
    assert reader.index.opaque_dirs == {"etc/cfg"}
    assert reader.index.added == {"app/.env", "usr/bin/su"}
    assert reader.index.dirs == {"app"}
    assert reader.uncompressed_bytes == len(TAR)


def test_content_left_unread_is_skipped() -> None:
    blob = gzip.compress(TAR, mtime=0)
    reader = LayerReader(io.BytesIO(blob), what="layer 0", digest=sha(blob), diff_id=sha(TAR))
    assert len(list(reader)) == 5
    reader.finish()


def test_blob_digest_mismatch_names_both_digests() -> None:
    blob = gzip.compress(TAR, mtime=0)
    wrong = "sha256:" + "0" * 64
    reader = LayerReader(io.BytesIO(blob), what="layer 3", digest=wrong, diff_id=sha(TAR))
    list(reader)
    with pytest.raises(DigestMismatch) as exc:
        reader.finish()
    assert "layer 3" in str(exc.value) and wrong in str(exc.value) and sha(blob) in str(exc.value)


def test_diff_id_mismatch() -> None:
    blob = gzip.compress(TAR, mtime=0)
    reader = LayerReader(io.BytesIO(blob), what="layer 1", digest=sha(blob), diff_id=sha(b"x"))
    list(reader)
    with pytest.raises(DigestMismatch, match="diff_id"):
        reader.finish()


def test_truncated_gzip_is_a_layer_error() -> None:
    big = make_tar([(f"f{i}", bytes([i % 251]) * 5000, 0o644) for i in range(200)])
    blob = gzip.compress(big, mtime=0)[:2000]
    reader = LayerReader(io.BytesIO(blob), what="layer 2", digest=None, diff_id=None)
    with pytest.raises(LayerError, match="layer 2"):
        for _info, content in reader:
            if content:
                content.read()
        reader.finish()


def test_not_a_tar() -> None:
    blob = gzip.compress(b"this is not a tar archive at all" * 40, mtime=0)
    reader = LayerReader(io.BytesIO(blob), what="layer 5", digest=None, diff_id=None)
    with pytest.raises(LayerError, match="layer 5"):
        list(reader)


@pytest.mark.parametrize(
    ("name", "path", "problem"),
    [
        ("./app/x", "app/x", False),
        ("/etc/passwd", "etc/passwd", True),
        ("../../etc/evil", "etc/evil", True),
        ("a/../../b", "b", True),
        ("a/./b/", "a/b", False),
    ],
)
def test_member_names_are_normalised(name: str, path: str, problem: bool) -> None:
    got, why = normalize_member_name(name)
    assert got == path
    assert (why is not None) is problem


def test_hostile_names_are_reported_and_still_walked() -> None:
    tar = make_tar([("../../etc/evil", b"x", 0o644), ("/abs/file", b"y", 0o644)])
    reader = LayerReader(io.BytesIO(tar), what="layer 0", digest=None, diff_id=None)
    paths = [info.path for info, _ in reader]
    assert paths == ["etc/evil", "abs/file"]
    assert len(reader.problems) == 2
    assert "'../../etc/evil'" in reader.problems[0]


def test_undecodable_blob_with_wrong_digest_names_both_digests() -> None:
    from scanner.detection import Detection
    from scanner.image import BlobOpener, Layer
    from scanner.layer_scan import scan_layer
    from scanner.signatures import SignatureSet

    good = gzip.compress(TAR, mtime=0)
    bad = b"\x00" + good[1:]  # the first byte flipped: no longer gzip, and not a tar either

    class Opener(BlobOpener):
        def open(self) -> io.BytesIO:
            return io.BytesIO(bad)

        def describe(self) -> str:
            return "memory"

    layer = Layer(
        1, sha(good), sha(TAR), "application/vnd.oci.image.layer.v1.tar+gzip", len(good), Opener()
    )
    result = scan_layer(layer, Detection(SignatureSet.builtin()))
    assert result.error is not None
    assert result.error.startswith("layer 1 (")
    assert sha(good) in result.error and sha(bad) in result.error


def test_data_hidden_after_the_end_of_the_archive_is_a_problem() -> None:
    first = make_tar([("visible", b"x", 0o644)])  # ends with two zero blocks
    hidden = make_tar([("hidden/id_rsa", b"-----BEGIN OPENSSH PRIVATE KEY-----", 0o600)])
    data = first + hidden
    reader = LayerReader(io.BytesIO(data), what="layer 4", digest=sha(data), diff_id=sha(data))
    assert [info.path for info, _ in reader] == ["visible"]
    reader.finish()
    assert len(reader.problems) == 1
    assert "layer 4" in reader.problems[0] and "not walked" in reader.problems[0]


def test_zero_padding_after_the_archive_is_fine() -> None:
    data = TAR + b"\0" * 20480
    reader = LayerReader(io.BytesIO(data), what="layer 0", digest=sha(data), diff_id=sha(data))
    list(reader)
    reader.finish()
    assert reader.problems == []


def test_a_path_written_twice_in_one_layer_is_counted() -> None:
    data = make_tar([("app/.env", b"A=1", 0o644), ("app/x", b"", 0o644), ("app/.env", b"", 0o644)])
    reader = LayerReader(io.BytesIO(data), what="layer 0", digest=None, diff_id=None)
    seen = [(info.path, info.occurrence) for info, _ in reader]
    assert seen == [("app/.env", 1), ("app/x", 1), ("app/.env", 2)]
    assert reader.index.duplicates == {"app/.env": 2}

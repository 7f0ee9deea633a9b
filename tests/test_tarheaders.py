"""The tar header parser against tarfile: fixtures, random archives, sparse files, hostile headers.

Every member must come out as CPython's tarfile (3.11) reads it: name, link name,
type, mode, ids, size, where its data starts and its content (sparse holes
included). Where tarfile stops silently, so does the parser; where tarfile raises,
the parser raises TarHeaderError. Hostile headers (huge PAX, the CVE-2024-6232
hdrcharset input, negative or overflowing sizes, truncation, long chains) end in
bounded time and memory.
"""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
import time
import tracemalloc
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.detection import Detection
from scanner.errors import LayerError
from scanner.image import BlobOpener, Layer
from scanner.layer_scan import scan_layer
from scanner.layers import ForwardReader, LayerReader, MemberReader, SparseReader, decompressed
from scanner.signatures import SignatureSet
from scanner.sources.interface import SourceOptions
from scanner.sources.resolve import resolve
from scanner.tarheaders import (
    MAX_EXTENSION_BYTES,
    MAX_EXTENSION_CHAIN,
    TarHeaderError,
    TarHeaderReader,
    TarMember,
    byte_sum,
    pax_records,
)

Row = tuple[str, str, int, int, int, int, int, int, bytes | None]


def _reference(data: bytes) -> tuple[list[Row], bool]:
    """(members, raised?) as tarfile reads ``data``."""
    rows: list[Row] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            while (m := tar.next()) is not None:
                content = None
                if m.isreg():
                    f = tar.extractfile(m)
                    assert f is not None
                    content = f.read()
                row = (m.name, m.linkname, m.type[0], m.mode, m.uid, m.gid, m.size)
                rows.append((*row, m.offset_data, content))
    except (tarfile.TarError, ValueError, OSError):
        return rows, True
    return rows, False


def _content(forward: ForwardReader, m: TarMember) -> bytes:
    if m.sparse is not None:
        return SparseReader(forward, m, "test", m.name).read()
    return MemberReader(forward, m.offset_data, m.size, "test", m.name).read()


def _mine(data: bytes) -> tuple[list[Row], bool]:
    rows: list[Row] = []
    forward = ForwardReader(io.BytesIO(data))  # type: ignore[arg-type]
    reader = TarHeaderReader(forward)
    try:
        while (m := reader.next()) is not None:
            content = _content(forward, m) if m.isreg() else None
            rows.append(
                (m.name, m.linkname, m.type, m.mode, m.uid, m.gid, m.size, m.offset_data, content)
            )
    except (TarHeaderError, LayerError):  # tarfile: ReadError for truncated content
        return rows, True
    return rows, False


def _same(data: bytes) -> None:
    assert _mine(data) == _reference(data)


# -- every layer of every fixture image ----------------------------------------------------


def _fixture_layers(images: dict[str, Path]) -> list[tuple[str, bytes]]:
    out = []
    for name, path in sorted(images.items()):
        try:
            source = resolve(str(path), SourceOptions())
            image = source.load()
        except Exception:  # broken-on-purpose fixtures are not tar tests
            continue
        with source:
            for platform in image.platforms:
                for layer in platform.layers:
                    try:
                        with layer.opener.open() as raw:
                            _kind, stream = decompressed(raw)  # type: ignore[arg-type]
                            out.append((f"{name}/{layer.index}", stream.read()))
                    except Exception:
                        continue
    return out


def test_every_fixture_layer_reads_as_tarfile_reads_it(images: dict[str, Path]) -> None:
    layers = _fixture_layers(images)
    assert len(layers) > 20
    for name, data in layers:
        assert _mine(data) == _reference(data), name


# -- random archives written by tarfile ---------------------------------------------------

NAME_CHARS = st.sampled_from("ab/._-xyzé日\\ ")
names = st.text(NAME_CHARS, min_size=1, max_size=260).filter(lambda s: s.strip("/"))
entry = st.tuples(
    names,
    st.sampled_from(
        [
            tarfile.REGTYPE,
            tarfile.DIRTYPE,
            tarfile.SYMTYPE,
            tarfile.LNKTYPE,
            tarfile.FIFOTYPE,
            tarfile.AREGTYPE,
            b"V",
        ]
    ),
    st.binary(max_size=1500),
    names,
    st.integers(0, 2**22),
    st.integers(0, 0o7777),
)


def _write(
    entries: list[tuple[str, bytes, bytes, str, int, int]],
    fmt: int,
    pax_global: dict[str, str] | None,
) -> bytes | None:
    buf = io.BytesIO()
    try:
        with tarfile.open(fileobj=buf, mode="w", format=fmt, pax_headers=pax_global or {}) as tar:
            for name, kind, content, link, uid, mode in entries:
                info = tarfile.TarInfo(name)
                info.type, info.uid, info.mode, info.mtime = kind, uid, mode, 0
                info.linkname = link if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
                if kind in (tarfile.REGTYPE, tarfile.AREGTYPE, b"V"):
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
                else:
                    tar.addfile(info)
    except ValueError:  # a name this format cannot hold
        return None
    return buf.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(entry, max_size=8),
    st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
    st.none()
    | st.dictionaries(st.sampled_from(["comment", "uid", "gid", "path"]), names, max_size=2),
    st.data(),
)
def test_random_archives_read_as_tarfile_reads_them(
    entries: list[tuple[str, bytes, bytes, str, int, int]],
    fmt: int,
    pax_global: dict[str, str] | None,
    data: st.DataObject,
) -> None:
    archive = _write(entries, fmt, pax_global if fmt == tarfile.PAX_FORMAT else None)
    if archive is None:
        return
    _same(archive)
    # and with damage: a flipped byte or a cut anywhere agrees on what was read before it
    at = data.draw(st.integers(0, max(0, len(archive) - 1)))
    cut = archive[:at]
    mine, theirs = _mine(cut), _reference(cut)
    assert mine[0] == theirs[0] or mine[1]  # same members, or the parser refused sooner
    flipped = bytearray(archive)
    if flipped:
        flipped[at] ^= 0xFF
        mine_rows, _ = _mine(bytes(flipped))
        ref_rows, _ = _reference(bytes(flipped))
        common = min(len(mine_rows), len(ref_rows))
        assert mine_rows[: common - 1] == ref_rows[: common - 1]


# -- hand-made headers: GNU long names, PAX overrides, base-256, sparse ---------------------


def _checksum(block: bytearray) -> None:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)


def header(
    name: bytes,
    kind: bytes = b"0",
    size: int | bytes = 0,
    *,
    link: bytes = b"",
    prefix: bytes = b"",
    extra: dict[int, bytes] | None = None,
) -> bytes:
    block = bytearray(512)
    block[0 : len(name[:100])] = name[:100]
    block[100:108] = b"0000644\0"
    block[108:116] = b"0000000\0"
    block[116:124] = b"0000000\0"
    block[124:136] = size if isinstance(size, bytes) else b"%011o\0" % size
    block[136:148] = b"00000000000\0"
    block[156:157] = kind
    block[157 : 157 + len(link)] = link
    block[257:265] = b"ustar\x0000"
    block[345 : 345 + len(prefix)] = prefix
    for at, value in (extra or {}).items():
        block[at : at + len(value)] = value
    _checksum(block)
    return bytes(block)


def pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def pax(records: dict[str, str] | list[tuple[str, str]], kind: bytes = b"x") -> bytes:
    body = b""
    for key, value in records.items() if isinstance(records, dict) else records:
        text = f" {key}={value}\n".encode("utf-8", "surrogateescape")
        n = len(text) + 1
        while len(str(n)) + len(text) != n:
            n += 1
        body += str(n).encode() + text
    return header(b"PaxHeader", kind, len(body)) + pad(body)


END = b"\0" * 1024


def member(name: bytes, content: bytes, kind: bytes = b"0", **kw: object) -> bytes:
    return header(name, kind, len(content), **kw) + pad(content)  # type: ignore[arg-type]


HAND_MADE = {
    "gnu long name and link": header(b"././@LongLink", b"L", 301)
    + pad(b"d/" * 150 + b"x\0")
    + header(b"././@LongLink", b"K", 200)
    + pad(b"t" * 200)
    + member(b"short", b"data", b"1"),
    "long name chain: the first wins": header(b"././@LongLink", b"L", 6)
    + pad(b"first\0")
    + header(b"././@LongLink", b"L", 7)
    + pad(b"second\0")
    + member(b"short", b"x"),
    "pax then L: pax wins": pax({"path": "from-pax"})
    + header(b"././@LongLink", b"L", 7)
    + pad(b"from-L\0")
    + member(b"short", b"x"),
    "L then pax: L wins": header(b"././@LongLink", b"L", 7)
    + pad(b"from-L\0")
    + pax({"path": "from-pax"})
    + member(b"short", b"x"),
    "pax size override": pax({"size": "5", "uid": "7", "gid": "x", "linkpath": "l"})
    + header(b"f", b"0", 3)
    + pad(b"12345")
    + member(b"g", b"after"),
    "pax size on a directory": pax({"size": "600"})
    + header(b"dir/", b"5", 0)
    + member(b"g", b"after"),
    "global pax applies to later members": pax({"uid": "42", "comment": "c"}, b"g")
    + member(b"a", b"1")
    + pax({"uid": "5"})
    + member(b"b", b"2")
    + member(b"c", b"3"),
    "prefix and v7 directory": member(b"name", b"x", prefix=b"some/prefix")
    + header(b"olddir/", b"\0"),
    "base-256 size and uid": header(
        b"big",
        b"0",
        b"\x80" + (5).to_bytes(11, "big"),
        extra={108: b"\x80" + (1 << 40).to_bytes(7, "big")},
    )
    + pad(b"hello"),
    "unknown type skips its data": member(b"weird", b"payload", b"V") + member(b"next", b"n"),
    "hardlink with size is not skipped": header(b"h", b"1", 512, link=b"t") + member(b"n", b"n"),
    "hdrcharset binary": pax({"hdrcharset": "BINARY", "path": "caf\udce9"}) + member(b"x", b"1"),
    "empty archive": END,
    "no end blocks": member(b"a", b"1"),
}


def _old_sparse() -> bytes:
    # 2 data runs of 512 bytes at 0 and 2048, file of 4096 bytes; extension block with one more
    extra = {
        386: b"%011o\0" % 0 + b"%011o\0" % 512,
        410: b"%011o\0" % 2048 + b"%011o\0" % 512,
        482: b"\x01",
        483: b"%011o\0" % 5000,
    }
    ext = bytearray(512)
    ext[0:24] = b"%011o\0" % 3000 + b"%011o\0" % 100
    body = b"A" * 512 + b"B" * 512 + b"C" * 100
    return header(b"sparse", b"S", len(body), extra=extra) + bytes(ext) + pad(body)


def _pax_sparse_01() -> bytes:
    body = b"A" * 10 + b"B" * 20
    return pax(
        {"GNU.sparse.map": "5,10,100,20", "GNU.sparse.size": "300", "GNU.sparse.name": "s01"}
    ) + member(b"ignored", body)


def _pax_sparse_00() -> bytes:
    body = b"A" * 10 + b"B" * 20
    records = [
        ("GNU.sparse.size", "300"),
        ("GNU.sparse.numblocks", "2"),
        ("GNU.sparse.offset", "5"),
        ("GNU.sparse.numbytes", "10"),
        ("GNU.sparse.offset", "100"),
        ("GNU.sparse.numbytes", "20"),
    ]
    return pax(records) + member(b"s00", body)


def _pax_sparse_10() -> bytes:
    stored = pad(b"2\n5\n10\n100\n20\n") + b"A" * 10 + b"B" * 20
    records = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": "s10",
        "GNU.sparse.realsize": "300",
    }
    return pax(records) + member(b"GNUSparseFile.0/s10", stored)


HAND_MADE |= {
    "old gnu sparse": _old_sparse(),
    "pax sparse 0.0": _pax_sparse_00(),
    "pax sparse 0.1": _pax_sparse_01(),
    "pax sparse 1.0": _pax_sparse_10(),
}


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_hand_made_headers_read_as_tarfile_reads_them(name: str) -> None:
    data = HAND_MADE[name] + END
    mine, theirs = _mine(data), _reference(data)
    assert mine == theirs
    assert mine[0] or name == "empty archive"


def test_sparse_holes_are_zeros() -> None:
    rows, error = _mine(_pax_sparse_01() + END)
    assert not error
    content = rows[0][-1]
    assert content is not None and len(content) == 300
    assert content[5:15] == b"A" * 10 and content[100:120] == b"B" * 20
    assert content.count(0) == 270


@pytest.mark.parametrize("max_hole", [None, 4])
def test_member_readers_know_exactly_what_is_left(max_hole: int | None) -> None:
    # the content analyzer trusts left() to skip reading a binary too large for the
    # glued-token pass: it must equal what the reader still yields, after any read
    cases = ["pax sparse 0.1", "pax sparse 1.0", "old gnu sparse", "gnu long name and link"]
    for data in (HAND_MADE[name] + END for name in cases):
        forward = ForwardReader(io.BytesIO(data))  # type: ignore[arg-type]
        m = TarHeaderReader(forward).next()
        assert m is not None
        reader: MemberReader | SparseReader
        if m.sparse is not None:
            reader = SparseReader(forward, m, "test", m.name, max_hole)
        else:
            reader = MemberReader(forward, m.offset_data, m.size, "test", m.name)
        got = b""
        for size in (1, 7, 0, 50, 3, 1000, -1):
            left = reader.left()
            chunk = reader.read(size)
            got += chunk
            assert left == len(chunk) + reader.left()
        assert reader.left() == 0 and reader.read() == b""
        if max_hole is None or m.sparse is None:
            assert len(got) == m.size


def test_byte_sum_is_the_sum_of_a_blocks_bytes() -> None:
    rng = random.Random(5)
    blocks = [bytes(512), b"\xff" * 512, b"\xff" * 256 + bytes(256), bytes(256) + b"\xff" * 256]
    blocks += [bytes(rng.randrange(256) for _ in range(512)) for _ in range(500)]
    blocks += [bytes(rng.choice((0, 255, 254, 1)) for _ in range(512)) for _ in range(500)]
    for block in blocks:
        assert byte_sum(block) == sum(block)


def test_pax_records_split_in_one_pass() -> None:
    records, clean = pax_records(b"12 path=abc\n8 uid=7\n\0\0\0")
    assert records == [("path", "abc"), ("uid", "7")] and clean
    records, clean = pax_records(b"12 path=abc\njunk")
    assert records == [("path", "abc")] and not clean


# -- hostile headers --------------------------------------------------------------------------


class LazyStream(io.RawIOBase):
    """A stream of parts; an int part is that many filler bytes, made as they are read."""

    def __init__(self, parts: list[bytes | int], filler: bytes = b"9 path=x\n") -> None:
        self._parts = list(parts)
        self._filler = filler * (1 << 16)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while self._parts:
            part = self._parts[0]
            if isinstance(part, int):
                n = min(part, len(buffer), len(self._filler))
                buffer[:n] = self._filler[:n]
                self._parts[0] = part - n
            else:
                n = min(len(part), len(buffer))
                buffer[:n] = part[:n]
                self._parts[0] = part[n:]
            if not self._parts[0]:
                self._parts.pop(0)
            if n:
                return n
        return 0


def _walk_bounded(stream: io.RawIOBase) -> tuple[LayerReader, list[str], str | None, int, float]:
    """Walk a layer stream: (reader, paths, error, peak traced bytes, seconds)."""
    tracemalloc.start()
    start = time.perf_counter()
    reader = LayerReader(stream, what="layer 1")  # type: ignore[arg-type]
    paths, error = [], None
    try:
        for info, content in reader:
            paths.append(info.path)
            if content is not None:
                content.read()
        reader.finish()
    except Exception as exc:
        error = str(exc)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return reader, paths, error, peak, seconds


def test_a_pax_header_of_hundreds_of_mb_is_never_read_into_memory() -> None:
    size = 300 << 20
    parts: list[bytes | int] = [header(b"PaxHeader", b"x", size), size + (-size % 512)]
    parts += [member(b"app/after.txt", b"still scanned"), END]
    reader, paths, error, peak, seconds = _walk_bounded(LazyStream(parts))
    assert error is None
    assert paths == ["app/after.txt"]
    assert any("over the" in p and str(size) in p for p in reader.problems)
    assert peak < 16 << 20
    assert seconds < 10


def test_the_hdrcharset_cve_input_takes_linear_time() -> None:
    # CVE-2024-6232: a long run of digits makes tarfile's ``\d+ hdrcharset=`` search
    # backtrack quadratically (hours for a megabyte); the one-pass split is linear.
    body = b"1" * (MAX_EXTENSION_BYTES - 600) + b" hdrcharset"
    data = header(b"PaxHeader", b"x", len(body)) + pad(body) + member(b"a", b"1") + END
    start = time.perf_counter()
    rows, raised = _mine(data)
    assert time.perf_counter() - start < 2
    assert [r[0] for r in rows] == ["a"] and not raised
    big = b"1" * (8 << 20)  # over the bound: skipped unread
    data = header(b"PaxHeader", b"x", len(big)) + pad(big) + member(b"b", b"2") + END
    start = time.perf_counter()
    reader, paths, error, _peak, _s = _walk_bounded(io.BytesIO(data))  # type: ignore[arg-type]
    assert time.perf_counter() - start < 5
    assert paths == ["b"] and error is None and reader.problems


@pytest.mark.parametrize(
    "name,data",
    [
        ("negative base-256 size", header(b"neg", b"0", b"\xff" * 12) + END),
        ("negative pax size", pax({"size": "-5000"}) + member(b"f", b"x") + END),
        ("negative long-name size", header(b"././@LongLink", b"L", b"\xff" * 12) + END),
        ("overflowing size", header(b"huge", b"0", b"\x80" + b"\xff" * 11) + b"x" * 2048),
        ("truncated long name", header(b"././@LongLink", b"L", 3000) + b"n" * 100),
        ("header cut after an extension", pax({"path": "p"}) + b"\x01" * 100),
        ("zero-length pax record", header(b"PaxHeader", b"x", 512) + pad(b"0 path=x\n") + END),
        ("bad sparse map", pax({"GNU.sparse.map": "1,x"}) + member(b"s", b"ab") + END),
        ("bad sparse size", pax({"GNU.sparse.size": "lots"}) + member(b"s", b"ab") + END),
        (
            "sparse map out of order",
            pax({"GNU.sparse.map": "100,1,0,1", "GNU.sparse.size": "200"})
            + member(b"s", b"ab")
            + END,
        ),
        (
            "sparse 1.0 map count",
            pax({"GNU.sparse.major": "1", "GNU.sparse.minor": "0"})
            + member(b"s", pad(b"99999999999\n"))
            + END,
        ),
    ],
)
def test_hostile_headers_end_in_an_error_or_a_problem(name: str, data: bytes) -> None:
    reader, _paths, error, peak, seconds = _walk_bounded(io.BytesIO(data))  # type: ignore[arg-type]
    assert error is not None or reader.problems, name
    assert peak < 16 << 20 and seconds < 5


def test_a_deep_chain_of_long_names_is_cut_off() -> None:
    link = header(b"././@LongLink", b"L", 5) + pad(b"name\0")
    data = link * 100_000 + member(b"a", b"1") + END
    _reader, _paths, error, _peak, seconds = _walk_bounded(io.BytesIO(data))  # type: ignore[arg-type]
    assert error is not None and f"more than {MAX_EXTENSION_CHAIN}" in error
    assert seconds < 5
    shallow = link * MAX_EXTENSION_CHAIN + member(b"a", b"1") + END
    assert _mine(shallow) == _reference(shallow)


def test_a_bad_header_block_is_itself_reported_as_not_walked() -> None:
    bad = bytearray(member(b"x", b"secret"))
    bad[148] ^= 1  # checksum no longer matches: tarfile stops without a word
    data = member(b"a", b"1") + bytes(bad[:512]) + END
    reader, paths, error, _peak, _s = _walk_bounded(io.BytesIO(data))  # type: ignore[arg-type]
    assert paths == ["a"] and error is None
    assert any("not walked" in p for p in reader.problems)


class Lazy(BlobOpener):
    def __init__(self, parts: list[bytes | int]) -> None:
        self.parts = parts

    def open(self) -> BinaryIO:
        return LazyStream(self.parts)  # type: ignore[return-value]

    def describe(self) -> str:
        return "lazy"


def test_scan_layer_with_a_huge_pax_header_is_incomplete_and_keeps_findings() -> None:
    from fixtures import fakesecrets

    secret = f"GITHUB_TOKEN={fakesecrets.github_pat()}\n".encode()
    size = 200 << 20
    parts: list[bytes | int] = [member(b"app/.env", secret), header(b"PaxHeader", b"x", size)]
    parts += [size, member(b"app/later.env", secret), END]
    digest, size = hashlib.sha256(), 0
    stream = LazyStream(parts)
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    blob = "sha256:" + digest.hexdigest()
    layer = Layer(1, blob, blob, "", size, Lazy(parts))
    result = scan_layer(layer, Detection(SignatureSet.builtin()))
    assert not result.complete
    assert {f.location.path for f in result.findings} == {"app/.env", "app/later.env"}


@settings(max_examples=400, deadline=None)
@given(st.text(st.sampled_from("ab./\\é"), max_size=12))
def test_the_fast_name_path_agrees_with_the_full_normalisation(name: str) -> None:
    from scanner.layers import _normalize, normalize_member_name

    assert normalize_member_name(name) == _normalize(name)


@settings(max_examples=400, deadline=None)
@given(
    st.binary(min_size=8, max_size=8)
    | st.text(st.sampled_from("0178 \0\t\r\n\x0b\x1c_x+-"), min_size=8, max_size=8).map(str.encode)
)
def test_the_fast_number_path_agrees_with_the_exact_one(field: bytes) -> None:
    from scanner.tarheaders import _Invalid, _number, _number_exact

    def read(parse: object) -> int | str:
        try:
            return parse(field)  # type: ignore[operator]
        except _Invalid:
            return "invalid"

    assert read(_number) == read(_number_exact)


def test_a_sparse_file_of_a_terabyte_of_holes_is_cut_short_and_reported() -> None:
    records = {"GNU.sparse.map": "0,5,1099511627000,3", "GNU.sparse.size": str(1 << 40)}
    data = pax(records) + member(b"app/huge.img", b"hello" + b"abc") + member(b"b", b"2") + END
    start = time.perf_counter()
    reader, paths, error, peak, _s = _walk_bounded(io.BytesIO(data))  # type: ignore[arg-type]
    assert time.perf_counter() - start < 5 and peak < 16 << 20
    assert error is None and paths == ["app/huge.img", "b"]
    assert any("holes add up to" in p for p in reader.problems)
    forward = ForwardReader(io.BytesIO(data))  # type: ignore[arg-type]
    m = TarHeaderReader(forward).next()
    assert m is not None
    content = SparseReader(forward, m, "t", m.name, max_hole=4096).read()
    tail = (1 << 40) - 1099511627003  # the last hole is shorter than what is kept
    assert content == b"hello" + bytes(4096) + b"abc" + bytes(tail)

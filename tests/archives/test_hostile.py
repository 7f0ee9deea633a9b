"""Hostile archives, built in code: bombs, huge directories, hidden data, damage.

A limit that stops the scanning of content is reported with ``limit=True`` (a
problem of the layer, exit 3); what nobody can open is ``limit=False`` (info).
"""

from __future__ import annotations

import struct
import time
import zipfile
import zlib

import pytest

from scanner.archives import ArchiveBudget, ArchiveLimits
from tests.archives.helpers import (
    COMPRESS,
    ar_bytes,
    ar_header,
    leaves,
    limits_hit,
    seven_zip_bytes,
    tar_bytes,
    zip_bytes,
)

SECRET = b"AWS_SECRET_ACCESS_KEY=hidden-behind-the-budget\n"
MB = 1 << 20


# -- bombs -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_compression_bomb_stops_at_the_member_cap(kind: str) -> None:
    bomb = COMPRESS[kind](bytes(16 * MB) + SECRET)
    started = time.monotonic()
    got, walk = leaves(bomb, "bomb.bin", member_cap=MB)
    assert len(got["bomb.bin"]) == MB
    assert time.monotonic() - started < 5
    (reason,) = limits_hit(walk)
    assert "per-member cap of 1 MB" in reason


def test_seven_zip_bomb_stops_at_the_byte_budget() -> None:
    bomb = seven_zip_bytes({"a": bytes(8 * MB), "b.env": SECRET})
    got, walk = leaves(bomb, "bomb.7z", budget=2 * MB)
    assert "b.env" not in got
    assert any("7z extraction stopped" in r for r in limits_hit(walk))


def test_seven_zip_member_over_the_cap_is_truncated_and_reported() -> None:
    got, walk = leaves(seven_zip_bytes({"big": bytes(3 * MB)}), "x.7z", member_cap=MB)
    assert len(got["big"]) == MB
    assert any("per-member cap" in r for r in limits_hit(walk))


def test_zip_bomb_member_stops_at_the_cap() -> None:
    got, walk = leaves(zip_bytes({"z": bytes(8 * MB)}), "x.zip", member_cap=MB)
    assert len(got["z"]) == MB
    assert limits_hit(walk)


def test_many_small_bombs_in_one_layer_share_the_layer_budget() -> None:
    """The 31st small bomb: the layer's budget has run out before it, and says so."""
    limits = ArchiveLimits(layer_budget=4 * MB)
    budget = ArchiveBudget(limits)
    bomb = COMPRESS["zstd"](bytes(256 << 10))
    last = COMPRESS["zstd"](bytes(256 << 10) + SECRET)
    reasons = []
    seen = b""
    for i in range(31):
        got, walk = leaves(last if i == 30 else bomb, f"b{i}.zst", layer=budget)
        seen += b"".join(got.values())
        reasons += limits_hit(walk)
    assert budget.bytes <= 4 * MB
    # not opened, so scanned raw: zstd keeps the trailing literal readable here, and
    # whether or not the raw bytes show it, the walk says that a limit cut it short
    assert reasons and all("per layer" in r for r in reasons)


def test_image_budget_is_shared_by_the_layers() -> None:
    from scanner.archives import ImageUsage

    limits = ArchiveLimits(image_budget=3 * MB)
    image = ImageUsage()
    data = COMPRESS["gzip"](bytes(2 * MB))
    _, first = leaves(data, "a.gz", layer=ArchiveBudget(limits, image))
    assert limits_hit(first) == []
    _, second = leaves(data, "a.gz", layer=ArchiveBudget(limits, image))
    (reason,) = limits_hit(second)
    assert "per image" in reason
    assert image.totals()[0] == 3 * MB


# -- zip central directory ----------------------------------------------------------------


def stored_zip(count: int, last: bytes) -> bytes:
    """A zip of ``count`` stored entries, built by hand (fast), the last holding ``last``."""
    local: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    empty = zlib.crc32(b"")
    for i in range(count):  # fmt: skip
        name = b"f%07d" % i
        data = last if i == count - 1 else b""
        crc = zlib.crc32(data) if data else empty
        head = struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 10, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0
        )
        local.append(head + name + data)
        central.append(
            struct.pack(
                "<4s6H3L5H2L",
                b"PK\x01\x02",
                20,
                10,
                0,
                0,
                0,
                0,
                crc,
                len(data),
                len(data),
                len(name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + name
        )
        offset += len(head) + len(name) + len(data)
    cd = b"".join(central)
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
        len(cd), offset, 0,
    )  # fmt: skip
    return b"".join(local) + cd + end


def test_zip_with_400k_entries_is_refused_before_zipfile_parses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = stored_zip(400_000, SECRET)

    def no_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("zipfile must not parse this directory")

    monkeypatch.setattr(zipfile, "ZipFile", no_parse)
    got, walk = leaves(data, "many.zip")
    (reason,) = limits_hit(walk)
    assert "zip with 400000 entries" in reason and "100000 per file" in reason
    # refused, so scanned raw: the stored last entry is still seen
    assert SECRET in got[None]


def test_zip_entries_count_against_the_layer_entry_budget() -> None:
    budget = ArchiveBudget(ArchiveLimits(layer_members=100))
    _, walk = leaves(stored_zip(80, b"x"), "a.zip", layer=budget)
    assert limits_hit(walk) == []
    _, walk = leaves(stored_zip(80, b"x"), "b.zip", layer=budget)
    (reason,) = limits_hit(walk)
    assert "zip with 80 entries" in reason and "per layer" in reason


def test_zip_central_directory_larger_than_the_limit_is_refused() -> None:
    data = stored_zip(100, b"x")
    _, walk = leaves(data, "a.zip", zip_directory=1024)
    (reason,) = limits_hit(walk)
    assert "central directory" in reason and "larger than the limit of 1 KB" in reason


def test_zip_whose_end_record_claims_a_huge_directory_is_refused() -> None:
    data = bytearray(zip_bytes({"a": b"1"}))
    eocd = data.rfind(b"PK\x05\x06")
    data[eocd + 12 : eocd + 16] = struct.pack("<L", 0xFFFFFFF0)
    _, walk = leaves(bytes(data), "a.zip")
    assert any("central directory" in r for r in limits_hit(walk))


# -- hidden data -------------------------------------------------------------------------


def test_data_appended_to_a_zip_is_scanned() -> None:
    got, walk = leaves(zip_bytes({"a": b"1"}) + SECRET, "a.zip")
    assert got["a"] == b"1" and got[None].endswith(SECRET)
    assert walk.skipped == []


def test_zip_comment_is_scanned() -> None:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a", b"1")
        z.comment = SECRET
    got, _ = leaves(buf.getvalue(), "a.zip")
    assert SECRET in got[None]


def test_data_appended_to_a_nested_zip_keeps_its_inner_path() -> None:
    inner = zip_bytes({"a": b"1"}) + SECRET
    got, _ = leaves(tar_bytes({"lib/x.jar": inner}), "t.tar")
    assert got["lib/x.jar"].endswith(SECRET)


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_data_appended_to_a_compressed_stream_is_scanned(kind: str) -> None:
    got, walk = leaves(COMPRESS[kind](b"log\n") + SECRET, "app.log.c")
    assert got == {"app.log.c": b"log\n", None: SECRET}
    assert walk.skipped == []


def test_concatenated_gzip_members_are_one_stream() -> None:
    data = COMPRESS["gzip"](b"one\n") + COMPRESS["gzip"](b"two\n" + SECRET)
    got, _ = leaves(data, "x.gz")
    assert got == {"x": b"one\ntwo\n" + SECRET}


def test_data_after_a_nested_tars_end_of_archive_marker_is_scanned() -> None:
    hidden = tar_bytes({"a": b"1"}) + SECRET
    got, walk = leaves(tar_bytes({"srv/backup.tar": hidden}), "layer.tar")
    assert got == {"srv/backup.tar!a": b"1", "srv/backup.tar": SECRET}
    assert walk.skipped == []


def test_concatenated_tars_are_all_walked() -> None:
    data = tar_bytes({"a": b"1"}) + tar_bytes({"b.env": SECRET}) + tar_bytes({"c": b"3"})
    got, _ = leaves(COMPRESS["xz"](data), "x.tar.xz")
    assert got == {"a": b"1", "b.env": SECRET, "c": b"3"}


def test_garbage_instead_of_a_tar_header_is_scanned_not_skipped() -> None:
    data = tar_bytes({"a": b"1"})
    cut = 1024  # one header block, one data block, then the end-of-archive marker
    damaged = data[:cut] + b"not a header " + SECRET + bytes(1024)
    got, _ = leaves(damaged, "x.tar")
    assert SECRET in got[None]


# -- what no scanner can open: info, not a limit ------------------------------------------


def test_encrypted_zip_is_info() -> None:
    data = bytearray(zip_bytes({"s.txt": b"x"}, zipfile.ZIP_STORED))
    data[6] |= 1
    data[data.find(b"PK\x01\x02") + 8] |= 1
    got, walk = leaves(bytes(data), "x.zip")
    assert got == {}
    (skipped,) = walk.skipped
    assert not skipped.limit and "encrypted" in skipped.reason


def test_encrypted_seven_zip_is_info_and_scanned_raw() -> None:
    data = seven_zip_bytes({"s.env": SECRET}, password="pw")
    got, walk = leaves(data, "x.7z")
    assert got == {None: data}
    (skipped,) = walk.skipped
    assert not skipped.limit and "encrypted 7z" in skipped.reason


# -- malformed ---------------------------------------------------------------------------


def test_malformed_ar_header_scans_the_rest_raw() -> None:
    data = ar_bytes({"debian-binary": b"2.0\n"}) + b"garbage header that is not one " * 3 + SECRET
    got, walk = leaves(data, "x.deb")
    assert got["debian-binary"] == b"2.0\n"
    assert SECRET in got[None]
    assert not walk.skipped[0].limit and "malformed ar" in walk.skipped[0].reason


def test_truncated_ar_member_is_reported() -> None:
    data = ar_bytes({"debian-binary": b"2.0\n"}) + ar_header(b"data.tar", 10_000) + SECRET
    got, walk = leaves(data, "x.deb")
    assert got["data.tar"] == SECRET
    assert walk.skipped and not any(s.limit for s in walk.skipped)


def test_malformed_seven_zip_is_scanned_raw() -> None:
    data = bytearray(seven_zip_bytes({"s.env": SECRET}))
    data[-20:] = b"\xff" * 20  # the header at the end
    got, walk = leaves(bytes(data), "x.7z")
    assert got[None] == bytes(data)
    assert walk.skipped and not walk.skipped[0].limit


def test_seven_zip_with_more_entries_than_the_budget_is_refused() -> None:
    data = seven_zip_bytes({f"f{i}": b"x" for i in range(20)})
    got, walk = leaves(data, "x.7z", max_members=10)
    assert got == {None: data}
    assert any("7z with 20 entries" in r for r in limits_hit(walk))


@pytest.mark.parametrize("kind", ["xz", "zstd", "gzip"])
def test_truncated_compressed_data_yields_what_it_could(kind: str) -> None:
    text = b"".join(b"line %d\n" % i for i in range(50_000))
    data = COMPRESS[kind](text)
    got, walk = leaves(data[: len(data) // 2], "x.log.c")
    assert got["x.log.c"].startswith(b"line 0\n")
    assert walk.skipped and not walk.skipped[0].limit


@pytest.mark.parametrize("kind", ["xz", "lzma", "bzip2"])
def test_garbage_after_the_magic_is_scanned_raw(kind: str) -> None:
    head = COMPRESS[kind](b"x")[:13]
    data = head + b"\x00\xff" * 40 + SECRET
    got, walk = leaves(data, "x.bin")
    assert got[None] == data
    assert "unreadable" in walk.skipped[0].reason and not walk.skipped[0].limit


def test_xz_asking_for_a_huge_dictionary_is_refused_not_allocated() -> None:
    data = bytearray(COMPRESS["xz"](b"x" * 100))
    size = (data[12] + 1) * 4  # the block header after the 12-byte stream header
    props = data.find(b"\x21\x01", 12, 12 + size) + 2  # LZMA2 filter, 1 property byte
    data[props] = 40  # dictionary of 4 GB
    data[12 + size - 4 : 12 + size] = struct.pack("<L", zlib.crc32(data[12 : 12 + size - 4]))
    got, walk = leaves(bytes(data), "x.xz")
    (reason,) = limits_hit(walk)
    assert "needs more than 256 MB of memory" in reason
    assert got[None] == bytes(data)


@pytest.mark.parametrize(
    "filters",
    [
        [{"id": 33, "dict_size": 64 << 20}],  # py7zr.FILTER_LZMA2
        [{"id": 54, "order": 6, "mem": 24}],  # py7zr.FILTER_PPMD, 16 MB model
    ],
)
def test_seven_zip_coder_asking_for_huge_memory_is_refused(filters: list[dict[str, int]]) -> None:
    import io

    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", filters=filters) as z:
        z.encoded_header_mode = False  # a plain header: its coder properties can be edited
        z.writestr(SECRET, "s.env")
    data = bytearray(buf.getvalue())
    archive = py7zr.SevenZipFile(io.BytesIO(bytes(data)))
    (coder,) = archive.header.main_streams.unpackinfo.folders[0].coders
    archive.close()
    # raise the declared dictionary / model size to 4 GB in the (plain) header
    props = bytes(coder["properties"])
    big = bytes([40]) if len(props) == 1 else props[:1] + b"\xff\xff\xff\xff" + props[5:]
    declared = bytes(coder["method"]) + bytes([len(props)]) + props  # id, size, properties
    at = data.rfind(declared) + len(declared) - len(props)
    data[at : at + len(props)] = big
    offset, size = struct.unpack("<QQ", data[12:28])
    data[28:32] = struct.pack("<L", zlib.crc32(data[32 + offset : 32 + offset + size]))
    data[8:12] = struct.pack("<L", zlib.crc32(data[12:32]))  # the start header's own CRC
    _, walk = leaves(bytes(data), "x.7z")
    assert any("of memory, more than the limit" in r for r in limits_hit(walk)), walk.skipped


def test_truncated_nested_tar_yields_its_complete_members() -> None:
    data = tar_bytes({"a": b"1", "b": b"2" * 5000})
    got, walk = leaves(tar_bytes({"t.tar": data[:2048]}), "outer.tar")
    assert got["t.tar!a"] == b"1"
    assert walk.skipped and not any(s.limit for s in walk.skipped)


def test_image_counts_never_hang_on_a_lock_a_dead_worker_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    from scanner.archives import ImageUsage, limits

    monkeypatch.setattr(limits, "LOCK_TIMEOUT", 0.05)
    usage = ImageUsage()
    held, done = threading.Event(), threading.Event()

    def keep_lock() -> None:
        usage._shared.get_lock().acquire()
        held.set()
        done.wait(5)

    thread = threading.Thread(target=keep_lock)
    thread.start()
    held.wait(5)
    started = time.monotonic()
    assert usage.add(10, 1) == (10, 1)
    assert time.monotonic() - started < 2
    done.set()
    thread.join()


def test_entry_left_out_of_the_central_directory_is_scanned() -> None:
    """A local entry no central record lists: unzip tools never show it."""
    data = bytearray(zip_bytes({"a": b"1", "s.env": SECRET, "b": b"2"}, zipfile.ZIP_STORED))
    cd = data.find(b"PK\x01\x02")
    record = data.find(b"PK\x01\x02", data.find(b"s.env", cd) - 46)
    name_len = struct.unpack("<H", data[record + 28 : record + 30])[0]
    record_len = 46 + name_len
    del data[record : record + record_len]
    eocd = data.rfind(b"PK\x05\x06")
    count, size = struct.unpack("<2HL", data[eocd + 8 : eocd + 16])[1:]
    data[eocd + 8 : eocd + 16] = struct.pack("<2HL", count - 1, count - 1, size - record_len)
    got, walk = leaves(bytes(data), "x.zip")
    assert got["a"] == b"1" and got["b"] == b"2"
    assert SECRET in got[None]
    assert walk.skipped == []


def one_member_zip(data: bytes, method: int) -> tuple[bytearray, int, int]:
    """A zip of one member, its central record's offset and its end record's offset."""
    raw = bytearray(zip_bytes({"m.txt": data}, method))
    return raw, raw.find(b"PK\x01\x02"), raw.rfind(b"PK\x05\x06")


def grow_member(raw: bytearray, cd: int, eocd: int, extra: bytes) -> bytes:
    """``extra`` inserted after the member's data, its compressed size grown to match."""
    size = struct.unpack("<L", raw[18:22])[0] + len(extra)
    raw[18:22] = struct.pack("<L", size)  # local header
    raw[cd + 20 : cd + 24] = struct.pack("<L", size)  # central record
    out = raw[:cd] + extra + raw[cd:]
    eocd += len(extra)
    out[eocd + 16 : eocd + 20] = struct.pack("<L", cd + len(extra))  # directory offset
    return bytes(out)


def test_data_after_a_members_deflate_stream_is_scanned() -> None:
    raw, cd, eocd = one_member_zip(b"hello\n" * 100, zipfile.ZIP_DEFLATED)
    got, walk = leaves(grow_member(raw, cd, eocd, SECRET), "x.zip")
    assert got["m.txt"] == b"hello\n" * 100 + SECRET  # the member, then what follows it
    assert walk.skipped == []


def test_stored_member_bytes_beyond_its_declared_file_size_are_scanned() -> None:
    raw, cd, eocd = one_member_zip(b"hello\n", zipfile.ZIP_STORED)
    got, _ = leaves(grow_member(raw, cd, eocd, SECRET), "x.zip")
    assert got["m.txt"] == b"hello\n" + SECRET


def test_member_whose_file_size_lies_is_read_to_the_end_of_its_stream() -> None:
    raw, cd, _ = one_member_zip(b"x" * 1000 + SECRET, zipfile.ZIP_DEFLATED)
    raw[22:26] = struct.pack("<L", 10)  # uncompressed size: 10 (zipfile stops there)
    raw[cd + 24 : cd + 28] = struct.pack("<L", 10)
    got, _ = leaves(bytes(raw), "x.zip")
    assert got["m.txt"].endswith(SECRET)

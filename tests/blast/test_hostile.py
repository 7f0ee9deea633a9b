"""Hostile credentials: every decoder returns (something or nothing) quickly and never
raises, whatever the bytes. Inputs are built here: truncations, lying length headers,
deep nesting, wrong types in every position, bad base64, floods of caveats."""

from __future__ import annotations

import base64
import random
import time

import msgpack
import pytest

from fixtures import flytokens as ft
from scanner.blast import DECODERS, Clue, radius
from scanner.blast.fly import MAX_PAYLOAD, decode_bundle

NOW = 1_800_000_000
GOOD = ft.macaroon([(ft.ORGANIZATION, [7, ft.ALL]), ft.third_party("h")])


def fm2(raw: bytes) -> str:
    return "FlyV1 " + ft.encode(raw)


def wrap(obj: object) -> str:
    return fm2(msgpack.packb(obj))


def nested_if_present(depth: int) -> list[object]:
    caveats: list[object] = [0, [1, 31]]
    for _ in range(depth):
        caveats = [13, [caveats, 1]]
    return caveats


HOSTILE_FLY = [
    fm2(GOOD[: len(GOOD) // 2]),  # truncated
    fm2(GOOD[:3]),
    fm2(b"\xdd\xff\xff\xff\xff"),  # array32 claiming 4 billion elements
    fm2(b"\xdf\xff\xff\xff\xff"),  # map32 likewise
    fm2(b"\xc6\xff\xff\xff\xff"),  # bin32 of 4 GB
    fm2(b"\x91" * 50_000 + b"\xc0"),  # 50 000 nested arrays
    fm2(GOOD + b"\x00junk"),  # trailing bytes
    wrap([1, 2, 3, 4]),  # wrong types everywhere
    wrap([[b"k", b"r", True], 5, [0, "x"], b""]),
    wrap([[b"k", b"r"], "loc", [0], b""]),  # odd caveat array
    wrap([[b"k", b"r"], "loc", ["zero", [1, 2]], b""]),  # non-integer type
    wrap([[b"k", b"r"], "loc", [-1, [1, 2], 0, "not a list", 0, [None, None]], b""]),
    wrap([[b"k", b"r"], "loc", [4, ["a", "b"], 4, [2**63, -(2**63)]], b""]),
    wrap([[b"k", b"r"], "loc", [3, [{b"\xff": "x", 1.5: [], None: {}}]], b""]),
    wrap([[b"k", b"r"], "loc", nested_if_present(500), b""]),  # IfPresent in IfPresent...
    wrap([[b"k", b"r"], "loc", nested_if_present(20), b""]),  # ...followed MAX_DEPTH deep
    wrap([[b"k", b"r"], "loc", [26, 1] * 5000, b""]),  # 5 000 caveats: MAX_CAVEATS read
    wrap([[b"k", b"r"], "loc", [13, "x", 13, [None, None], 27, [[["a"] * 5000, True]] * 100], b""]),
    wrap([[b"k", b"r"], "loc", [0, [1, 31]] * 200_000, b""]),  # 400 000 entries: bounded walk
    wrap([[b"k", b"r"], "\x1b[31mred\x07", [11, ["\x1b]8;;evil\x07", b"", b""]], b""]),
    wrap({"nonce": 1}),
    "FlyV1 fm2_" + "!" * 200,  # not base64
    "FlyV1 fm2_" + "A" * 201,  # impossible base64 length
    "FlyV1 fm2_" + "A" * (MAX_PAYLOAD + 4),  # longer than any real token
    "FlyV1 " + ",".join(["fm2_lJPE"] * 10_000),  # far too many tokens
    "FlyV1 zz9_abc,fm3_xyz,_,fm2,",
    "Bearer Bearer FlyV1 FlyV1",
]


@pytest.mark.parametrize("token", HOSTILE_FLY, ids=range(len(HOSTILE_FLY)))
def test_hostile_fly_tokens_never_raise_and_are_bounded(token: str) -> None:
    start = time.perf_counter()
    result = decode_bundle(token, NOW)
    assert time.perf_counter() - start < 5
    if result is not None:
        assert "\x1b" not in result.summary and "\x07" not in result.summary
        assert all("\x1b" not in str(v) for v in result.details.values())


def test_caveat_floods_stop_at_the_budget() -> None:
    flood = wrap([[b"k", b"r"], "loc", [0, [1, 31]] + [20, 5] * 4000 + [0, [1, 1]], b""])
    result = decode_bundle(flood, NOW)
    assert result is not None and result.details["permissions"] == "all"  # last one unread
    assert "not read" in result.details["not_fully_read"]  # and the report says so


def test_random_mutations_of_a_real_layout_never_raise() -> None:
    rng = random.Random(1234)
    base = bytearray(ft.macaroon([(ft.ORGANIZATION, [7, ft.ALL])], seed="m"))
    for _ in range(3000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.5:
                data[pos] = rng.randrange(256)
            elif choice < 0.75:
                del data[pos:]
            else:
                data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 9)))
            if not data:
                break
        decode_bundle("fm2_" + base64.b64encode(bytes(data)).decode(), NOW)


HOSTILE_ANY = [
    "",
    "\x00" * 100,
    "A" * 100_000,  # longer than any credential: not decoded
    "pypi-" + "A" * 3000,
    "pypi-AgEIcHlwaS5vcmc" + "_" * 300,
    "pypi-" + base64.urlsafe_b64encode(b"\x02\x02\xff\xff\xff\xff\x0f").decode(),
    "pypi-" + base64.urlsafe_b64encode(b"\x02\x01\x05ab").decode(),
    "eyJ" + "A" * 5000 + ".eyJ" + "A" * 5000 + ".sig",
    "eyJhbGciOiJub25lIn0." + base64.urlsafe_b64encode(b"[" * 5000).decode() + ".x",
    "eyJhbGciOiJub25lIn0." + base64.urlsafe_b64encode(b'{"exp": 1e400}').decode() + ".x",
    "AKIA" + "1" * 16,
    "ASIA",
    "xoxb-" + "9" * 40 + "-1-x",
    base64.b64encode(b"user-without-colon").decode(),
    base64.b64encode(b"\xff\xfe:\x00").decode(),
]


@pytest.mark.parametrize("secret", HOSTILE_ANY, ids=range(len(HOSTILE_ANY)))
def test_every_decoder_survives_every_hostile_secret(secret: str) -> None:
    for decoder in DECODERS:
        rules = sorted(decoder.rule_ids) or ["x"]
        detectors: list[str | None] = [*sorted(decoder.detectors)] or [None]
        for rule_id in rules:
            for detector in detectors:
                context = "postgres://" + "a" * 5000 + ":" + secret[:300] + "@" + "h" * 600
                radius(Clue(rule_id, detector, secret, context=context, now=NOW))
                decoder.decode(Clue(rule_id, detector, secret[:70_000], context=context))

"""The ``validate:`` checks: checksums and token structures, on tokens built here, and
on hostile input (truncated, oversized, garbage) that must be refused, never raise."""

from __future__ import annotations

import base64
import json
import random
import string
import zlib

import pytest

from scanner.secrets.validators import (
    BASE62,
    REASONS,
    VALIDATORS,
    has_crc32_base62_suffix,
    is_base64_json,
    is_macaroon_v2,
    is_pypi_macaroon,
)

RNG = random.Random(12)


def crc_token(prefix: str, entropy: str | None = None) -> str:
    entropy = entropy or "".join(RNG.choice(BASE62) for _ in range(30))
    value, check = zlib.crc32(entropy.encode()), ""
    while value:
        value, digit = divmod(value, 62)
        check = BASE62[digit] + check
    return prefix + entropy + check.rjust(6, "0")


def varint(n: int) -> bytes:
    out = b""
    while n > 0x7F:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def field(kind: int, data: bytes) -> bytes:
    return varint(kind) + varint(len(data)) + data


def macaroon(location: bytes = b"pypi.org", caveats: int = 1, signature: int = 32) -> bytes:
    raw = b"\x02" + field(1, location) + field(2, b'{"nonce": "ab12"}') + b"\x00"
    for i in range(caveats):
        raw += field(2, json.dumps({"permissions": "user", "n": i}).encode()) + b"\x00"
    return raw + b"\x00" + field(6, bytes(range(signature)))


def pypi(raw: bytes) -> bytes:
    return b"pypi-" + base64.urlsafe_b64encode(raw).rstrip(b"=")


@pytest.mark.parametrize("prefix", ["ghp_", "gho_", "ghu_", "ghs_", "npm_"])
def test_crc32_base62_accepts_real_checksums(prefix: str) -> None:
    token = crc_token(prefix)
    assert has_crc32_base62_suffix(token.encode())
    wrong = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert not has_crc32_base62_suffix(wrong.encode())


def test_crc32_base62_pads_small_checksums() -> None:
    # find an entropy string whose CRC32 needs fewer than 6 base62 digits
    for i in range(200_000):
        entropy = f"{i:030d}"
        if zlib.crc32(entropy.encode()) < 62**5:
            token = crc_token("ghp_", entropy)
            assert token[-6] == "0"
            assert has_crc32_base62_suffix(token.encode())
            return
    pytest.fail("no small checksum in the range tried (about one CRC32 in five is small)")


@pytest.mark.parametrize(
    "value", [b"", b"ghp_", b"ghp_abc", b"ghp_" + b"!" * 36, b"\xff" * 40, b"npm_" + b"z" * 6]
)
def test_crc32_base62_refuses_garbage(value: bytes) -> None:
    assert not has_crc32_base62_suffix(value)


def test_pypi_macaroon_structure() -> None:
    assert is_pypi_macaroon(pypi(macaroon()))
    assert is_pypi_macaroon(pypi(macaroon(caveats=0)))
    assert is_pypi_macaroon(pypi(macaroon(caveats=5)))
    assert is_pypi_macaroon(pypi(macaroon(location=b"test.pypi.org")))
    assert pypi(macaroon()).startswith(b"pypi-AgEIcHlwaS5vcmc")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x01" + macaroon()[1:],  # version 1
        macaroon()[:-1],  # signature cut short
        macaroon() + b"\x00",  # trailing bytes
        macaroon(signature=16),
        b"\x02" + field(1, b"pypi.org") + b"\x00",  # no identifier
        b"\x02" + b"\x02\xff\xff\xff\xff\xff\xff\x0f",  # absurd length varint
        b"\x02" + b"\x02" + b"\x80" * 64,  # unterminated varint
        b"\x02" + field(9, b"x") + b"\x00",  # unknown field type
        b"\x02" + field(2, b"id") + b"\x00" + (field(2, b"c") + b"\x00") * 300,  # caveat flood
        bytes(random.Random(3).getrandbits(8) for _ in range(200)),
    ],
)
def test_macaroon_refuses_hostile_bytes(raw: bytes) -> None:
    assert not is_macaroon_v2(raw)
    assert not is_pypi_macaroon(pypi(raw))


def test_pypi_refuses_non_base64() -> None:
    assert not is_pypi_macaroon(b"pypi-AgEIcHlwaS5vcmc!!!!")
    assert not is_pypi_macaroon(b"pypiAgEI")
    body = "".join(RNG.choice(string.ascii_letters) for _ in range(150))
    assert not is_pypi_macaroon(b"pypi-AgEIcHlwaS5vcmc" + body.encode())


def test_base64_json() -> None:
    body = base64.b64encode(json.dumps({"o": "1", "n": "stack", "k": "x"}).encode())
    assert is_base64_json(b"glc_" + body)
    assert is_base64_json(body)
    assert not is_base64_json(b"glc_" + base64.b64encode(b"[1, 2]"))
    assert not is_base64_json(b"glc_" + b"not base64 at all")


def test_every_validator_has_a_noise_reason() -> None:
    assert set(REASONS) == set(VALIDATORS)
    assert REASONS["crc32-base62"] == "checksum mismatch"
    for check in VALIDATORS.values():
        assert check(b"") is False


def test_base64_jwt() -> None:
    def seg(doc: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    token = f"{seg({'alg': 'RS256'})}.{seg({'sub': 'system:serviceaccount:ci:bot'})}.c2ln"
    assert VALIDATORS["base64-jwt"](base64.b64encode(token.encode()))
    assert not VALIDATORS["base64-jwt"](base64.b64encode(b"eyJhbGciOi.not.json"))
    assert not VALIDATORS["base64-jwt"](b"ZXlK!!!!")

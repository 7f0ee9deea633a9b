"""The archive walk's stream wrappers: un-reading a head, and what is left to read."""

from __future__ import annotations

import io
import random

import pytest

from scanner.archives.streams import Prefixed
from scanner.layers import ForwardReader, MemberReader


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_prefixed_yields_head_then_rest_whatever_the_read_sizes(kind: type) -> None:
    # a large bytearray head (a binary read whole) is handed back, not grown, when a
    # read asks for more than it: later reads must not see the rest twice
    rng = random.Random(1)
    for _ in range(200):
        data = rng.randbytes(rng.randrange(1, 3000))
        cut = rng.randrange(len(data) + 1)
        stream = Prefixed(kind(data[:cut]), io.BytesIO(data[cut:]))
        got = b""
        while chunk := stream.read(rng.choice([1, 10, 100, 5000, -1])):
            got += bytes(chunk)
        assert got == data


def test_prefixed_knows_what_is_left_over_a_member() -> None:
    body = bytes(range(256)) * 4
    member = MemberReader(ForwardReader(io.BytesIO(body)), 0, len(body), "test", "f")  # type: ignore[arg-type]
    head = member.read(100)
    stream = Prefixed(head, member)
    assert stream.left() == len(body)
    stream.read(60)
    assert stream.left() == len(body) - 60
    stream.read(500)
    assert stream.left() == len(body) - 560
    assert len(stream.read()) == len(body) - 560 and stream.left() == 0


def test_prefixed_over_a_plain_stream_does_not_know() -> None:
    assert Prefixed(b"head", io.BytesIO(b"rest")).left() is None
    assert Prefixed(b"head", io.BytesIO(b""), at_eof=True).left() == 4

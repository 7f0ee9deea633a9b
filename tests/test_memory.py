"""Large buffers are returned to the system when freed (scanner.memory)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# A 30 MB buffer freed (glibc then raises its mmap threshold to 30 MB), a 20 MB one taken
# from the heap, small buffers allocated after it, the 20 MB one freed: how many MB are
# still resident?
CHILD = """
import os, sys
from scanner.memory import return_large_buffers
def rss():
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
if sys.argv[1] == "set" and not return_large_buffers():
    print("unsupported")
    raise SystemExit
base = rss()
a = bytearray(30 << 20); a[:] = b"x" * len(a); del a
b = bytearray(20 << 20); b[:] = b"y" * len(b)
pin = [bytearray(300 << 10) for _ in range(4)]
del b
print(rss() - base)
"""


def _kept(mode: str) -> str:
    # glibc's MALLOC_* variables (Dask sets MALLOC_TRIM_THRESHOLD_ for its workers, and
    # any explicit setting ends the threshold's adjustment) would decide for the child
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    return subprocess.run(
        [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_freed_large_buffer_does_not_stay_resident() -> None:
    kept = _kept("set")
    if kept == "unsupported":
        pytest.skip("no glibc mallopt here")
    control = int(_kept("default"))
    if control < 15:
        pytest.skip(f"this C library returned the buffer by itself ({control} MB kept)")
    assert int(kept) < 8, f"{kept} MB still resident (without the setting: {control} MB)"


def test_a_layer_scan_sets_it() -> None:
    from scanner.detection import Detection
    from scanner.image import Layer
    from scanner.layer_scan import scan_layer
    from scanner.memory import return_large_buffers
    from scanner.signatures import SignatureSet
    from tests.test_hostile_layers import Bytes
    from tests.test_layers import make_tar, sha

    tar = make_tar([("app/readme", b"hello\n", 0o644)])
    return_large_buffers.cache_clear()
    result = scan_layer(
        Layer(0, sha(tar), sha(tar), "", len(tar), Bytes(tar)), Detection(SignatureSet.builtin())
    )
    assert result.error is None
    assert return_large_buffers.cache_info().currsize == 1

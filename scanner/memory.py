"""Large buffers go back to the system when freed, so a worker's memory follows its file.

glibc's malloc serves a request of 128 KB or more with a mapping of its own and unmaps it
on free, but each time it frees such a block it raises that threshold to the block's size
(up to 32 MB). A worker that has read one 30 MB binary whole then takes every later
buffer below 30 MB from the heap, where a freed buffer stays resident while anything
allocated after it lives: the worker keeps its largest files' worth of memory for the
rest of the layer, and three workers keep three times that. Setting the threshold
(which also ends the adjustment) keeps buffers of :data:`LARGE_BUFFER` bytes and more
out of the heap. Smaller ones (the 1 MB reads, the stream windows) stay in the heap,
where reuse costs nothing; a few mappings per large file cost a few page faults.
"""

from __future__ import annotations

import ctypes
import functools

LARGE_BUFFER = 8 << 20
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


@functools.cache
def return_large_buffers() -> bool:
    """Set the C library's mmap threshold to :data:`LARGE_BUFFER`, once per process;
    False where there is no glibc ``mallopt`` (musl has a stub, macOS none)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, LARGE_BUFFER))

"""Forensic status: is a file from layer N still in the final filesystem?

Layers stack: a later layer deletes a file with a whiteout (``.wh.NAME``), hides a
whole directory of the layers below with an opaque marker (``.wh..wh..opq``,
applied before that layer's own entries), replaces a file by adding the same path
again, or replaces a directory by putting a non-directory at its path. The first
later layer that does any of these decides the status; the bytes stay in layer N
either way, which is what makes a deleted secret recoverable.
"""

from __future__ import annotations

from collections.abc import Sequence

from scanner.findings import FileState, Status
from scanner.layers import LayerIndex


def ancestors(path: str) -> list[str]:
    """Proper ancestor directories of a path, outermost first ("" is the root)."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def file_status(
    path: str, layer_index: int, layers: Sequence[LayerIndex], occurrence: int = 1
) -> Status:
    if occurrence < layers[layer_index].duplicates.get(path, 1):
        return Status(FileState.OVERWRITTEN, layer_index)  # a later copy in the same layer
    parents = ancestors(path)
    for later in range(layer_index + 1, len(layers)):
        idx = layers[later]
        hidden = "" in idx.opaque_dirs or any(p in idx.opaque_dirs for p in parents)
        if path in idx.added:
            return Status(FileState.OVERWRITTEN, later)
        if hidden or path in idx.whiteouts or any(p in idx.whiteouts for p in parents):
            return Status(FileState.DELETED, later)
        if any(p in idx.added for p in parents):  # a parent directory became a file or link
            return Status(FileState.DELETED, later)
        if path in idx.dirs:  # the file became a directory
            return Status(FileState.OVERWRITTEN, later)
    return Status(FileState.PRESENT, None)


def reachable_status(
    path: str, layer_index: int, layers: Sequence[LayerIndex], occurrence: int = 1
) -> Status:
    """:func:`file_status`, but a file deleted under its own name that a hard link of the
    same layer still reaches is present: its bytes are in the final filesystem."""
    status = file_status(path, layer_index, layers, occurrence)
    if not status.recoverable:
        return status
    for link, target in layers[layer_index].hardlinks.items():
        if target == path and file_status(link, layer_index, layers).state is FileState.PRESENT:
            return Status(FileState.PRESENT)
    return status

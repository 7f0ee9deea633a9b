"""Layer runners: where layer blobs are scanned (see :mod:`.interface`)."""

from __future__ import annotations

from scanner.runners.cluster import ClusterOptions, DaskRunner
from scanner.runners.inprocess import InProcessRunner
from scanner.runners.interface import DetectionSpec, LayerRunner, RunnerError
from scanner.runners.pool import ProcessPoolRunner

__all__ = [
    "ClusterOptions",
    "DaskRunner",
    "DetectionSpec",
    "InProcessRunner",
    "LayerRunner",
    "ProcessPoolRunner",
    "RunnerError",
]

"""Scan layers here, one after another, with the caller's detection."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from scanner.deadline import NO_DEADLINE, Deadline
from scanner.detection import Detection
from scanner.image import Layer
from scanner.results import LayerResult
from scanner.runners.interface import GRACE, LayerRunner


class InProcessRunner(LayerRunner):
    name = "in-process"

    def __init__(self, detection: Detection) -> None:
        self.detection = detection

    def run(
        self, layers: Sequence[Layer], deadline: Deadline = NO_DEADLINE, *, grace: float = GRACE
    ) -> Iterator[tuple[Layer, LayerResult]]:
        from scanner.layer_scan import scan_layer  # the analyzers: imported when used

        for layer in layers:
            yield layer, scan_layer(layer, self.detection, deadline=deadline)

"""A one-line progress bar on standard error, for people watching a long scan.

Shown only when standard error is a terminal and --quiet is not given, and only
once a scan has taken more than a moment.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from scanner.scan import Progress

SHOW_AFTER_SECONDS = 0.5
WIDTH = 24


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB"


class ProgressBar:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, p: Progress) -> None:
        if time.monotonic() - self.started < SHOW_AFTER_SECONDS:
            return
        fraction = p.layers_done / p.layers_total if p.layers_total else 1.0
        if p.bytes_total:
            fraction = min(1.0, p.bytes_done / p.bytes_total)
        bar = "#" * int(fraction * WIDTH)
        self.stream.write(
            f"\r[{bar:<{WIDTH}}] layers {p.layers_done}/{p.layers_total}  "
            f"{_mb(p.bytes_done)}/{_mb(p.bytes_total)}  findings {p.findings}  "
        )
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False

"""Local worker processes (the default runner): one layer per worker at a time.

Each worker is a forked process with its own pipe. Its detection is the one the
:class:`DetectionSpec` describes: handed over by the fork when the parent passes its own
(``inherit``, an explicit argument of the worker, never a module global: no rebuild, so
workers start at once), else built from the spec once. It takes layers one by one and
sends back each result in its one serialised form (:meth:`LayerResult.to_bytes`).
The parent always knows which layer each worker holds, so when the kernel kills a
worker (out of memory, or any signal) exactly that layer becomes an error in the report
(exit 3), a fresh worker takes its place, and the rest of the run goes on. The layer is
never tried again in the parent, where the same input would kill the whole run.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from scanner.archives.limits import ImageUsage
from scanner.deadline import NO_DEADLINE, Deadline
from scanner.detection import Detection
from scanner.image import Layer
from scanner.results import LayerResult
from scanner.runners.interface import (
    GRACE,
    DetectionSpec,
    LayerRunner,
    failed_result,
    stopped_result,
    wait_limit,
)

_STOP = None


def _worker_main(
    conn: Connection,
    spec: DetectionSpec,
    usage: ImageUsage | None,
    inherited: Detection | None,
) -> None:
    """The loop of one worker process: layer in, result bytes out."""
    from scanner.layer_scan import scan_layer  # the analyzers: imported when used
    from scanner.runners.worker import detection_for

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    try:
        if inherited is not None and inherited.signatures.digest == spec.digest:
            detection = inherited  # the parent's, handed over by the fork (no rebuild)
        else:
            detection = detection_for(spec)
        if usage is not None:
            # The parent's per-image archive counts, in shared memory (inherited by the
            # fork, never pickled): every worker adds to the image being scanned.
            detection.archive_usage = usage
        while True:
            task = conn.recv()
            if task is _STOP:
                return
            layer, deadline = task
            conn.send_bytes(scan_layer(layer, detection, deadline=deadline).to_bytes())
    except (EOFError, OSError, KeyboardInterrupt):
        return  # the parent went away


class _Worker:
    def __init__(
        self, spec: DetectionSpec, usage: ImageUsage | None, inherited: Detection | None
    ) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.process: BaseProcess = ctx.Process(
            target=_worker_main,
            args=(child, spec, usage, inherited),
            daemon=True,
            name="layerleak-worker",
        )
        self.process.start()
        child.close()
        self.layer: Layer | None = None

    def stop(self, kill: bool = False) -> None:
        if not kill and self.process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self.conn.send(_STOP)
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()


def death_message(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = " (the kernel's out-of-memory killer sends SIGKILL)" if -exitcode == 9 else ""
    else:
        name, why = f"exit status {exitcode}", ""
    return (
        f"the worker process scanning this layer died ({name}){why}; the layer was not "
        "scanned and is not retried"
    )


class ProcessPoolRunner(LayerRunner):
    """Up to ``jobs`` forked workers, started on first use and kept for the run."""

    name = "process-pool"

    def __init__(
        self,
        spec: DetectionSpec,
        jobs: int,
        usage: ImageUsage | None = None,
        inherit: Detection | None = None,
    ) -> None:
        self.spec = spec
        self.jobs = max(1, jobs)
        self.usage = usage
        self.inherit = inherit
        self._workers: list[_Worker] = []
        self.deaths = 0  # workers lost while scanning

    def _idle(self) -> _Worker | None:
        for worker in self._workers:
            if worker.layer is None:
                return worker
        if len(self._workers) < self.jobs:
            self._prepare()
            worker = _Worker(self.spec, self.usage, self.inherit)
            self._workers.append(worker)
            return worker
        return None

    def _prepare(self) -> None:
        """Load once, here, what every worker needs, so that the fork hands it over
        instead of each worker loading its own: the layer scanner (the analyzers, the
        engine and detect-secrets) and the inherited detection's engine."""
        import scanner.layer_scan  # noqa: F401

        if self.inherit is not None:
            self.inherit.prepare()

    def run(
        self, layers: Sequence[Layer], deadline: Deadline = NO_DEADLINE, *, grace: float = GRACE
    ) -> Iterator[tuple[Layer, LayerResult]]:
        todo = list(layers)
        todo.reverse()  # pop() takes them in the order given
        try:
            while todo or any(w.layer is not None for w in self._workers):
                while todo:
                    worker = self._idle()
                    if worker is None:
                        break
                    layer = todo.pop()
                    try:
                        worker.conn.send((layer, deadline))
                    except (OSError, ValueError) as exc:
                        self._replace(worker)
                        yield layer, failed_result(layer, f"could not hand it to a worker ({exc})")
                        continue
                    worker.layer = layer
                yield from self._collect(deadline, grace)
        except BaseException:
            self.close(kill=True)  # Ctrl-C or the caller gave up: stop every worker now
            raise

    def _collect(self, deadline: Deadline, grace: float) -> Iterator[tuple[Layer, LayerResult]]:
        busy = [w for w in self._workers if w.layer is not None]
        handles: list[object] = [w.conn for w in busy] + [w.process.sentinel for w in busy]
        ready = set(wait(handles, timeout=wait_limit(deadline, grace)))  # type: ignore[arg-type]
        if not ready:
            # The deadline passed and then the grace: a worker that has not answered is
            # stuck in something that does not read (it would have stopped itself).
            for worker in busy:
                stuck = worker.layer
                assert stuck is not None
                self._replace(worker)
                yield stuck, stopped_result(stuck, deadline)
            return
        for worker in busy:
            layer = worker.layer
            assert layer is not None
            if worker.conn in ready or worker.conn.poll():
                try:
                    data = worker.conn.recv_bytes()
                except (EOFError, OSError):
                    data = None
                if data is not None:
                    worker.layer = None
                    try:
                        result = LayerResult.from_bytes(data, layer.digest)
                    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
                        result = failed_result(layer, f"unreadable result from a worker ({exc})")
                    yield layer, result
                    continue
            if worker.process.sentinel in ready or not worker.process.is_alive():
                worker.process.join(1)
                self.deaths += 1
                message = death_message(worker.process.exitcode)
                self._replace(worker)
                yield layer, failed_result(layer, message)

    def _replace(self, worker: _Worker) -> None:
        worker.stop(kill=True)
        self._workers.remove(worker)

    def close(self, kill: bool = False) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop(kill=kill or worker.layer is not None)

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.pid is not None]


def worker_pid_holding(runner: ProcessPoolRunner, digest: str) -> int | None:
    """The pid of the worker scanning ``digest`` now (for tests that kill one)."""
    for worker in runner._workers:
        if worker.layer is not None and worker.layer.digest == digest:
            return worker.process.pid
    return None

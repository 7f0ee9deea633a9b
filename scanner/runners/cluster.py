"""Scan layers on a Dask cluster (``--cluster ADDRESS``; ``pip install layerleak[cluster]``).

``tcp://HOST:PORT`` or ``tls://HOST:PORT`` connects to a running ``dask scheduler``;
``local:N`` starts a local cluster of N worker processes for the run. Each layer is one
task (:func:`scanner.runners.worker.scan_task`): the worker looks in the shared cache
(when the backend is shared, e.g. Redis), else pulls the blob straight from its
registry and scans it, and returns the result's one serialised form.

What travels with a task: the layer's registry endpoint, repository and digest, and the
registry credential needed to pull it (and the Redis password of a shared cache).
So a task carries a secret whenever the registry needs a login (or ``--reveal`` /
``--verify`` make results carry raw secrets back). Such tasks are only sent over a
link that cannot be read on the way: TLS (``tls://``, with Dask's
:class:`distributed.security.Security` options) or a scheduler on the loopback
interface (``local:N`` included); over plain ``tcp://`` to another host they are
refused, layer by layer (each is an error, exit 3), unless ``--allow-insecure-cluster``.

Layers of local sources (OCI layout, ``docker save`` archive, Docker daemon) are read
by the client (:meth:`accepts` is False) unless ``--shared-path`` says every worker sees
the same paths. A worker that dies mid-layer gets the task rescheduled by Dask; a layer
whose task failed twice (``local:N`` sets ``distributed.scheduler.allowed-failures`` to 1;
give a remote scheduler the same setting) is an error in the report, never lost.

Dask counts a death against every task the worker held, the ones queued behind the
running task included, so a healthy layer that sat twice on a worker killed by another
layer ends with ``KilledWorker`` just like the layer that killed it. A layer whose task
ended so is therefore tried once more, after the rest of the batch and alone (one such
layer at a time, under a fresh key, so Dask counts afresh): a bystander is then scanned,
and a layer that kills its workers again on its own is the error. "Alone" is among this
run's layers; tasks of other clients of the same scheduler are not known here.
Interrupting the scan cancels the futures still pending.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scanner.cachebackends.interface import CacheSpec
from scanner.deadline import NO_DEADLINE, Deadline
from scanner.image import Layer
from scanner.results import LayerResult
from scanner.runners.interface import (
    GRACE,
    DetectionSpec,
    LayerRunner,
    RunnerError,
    failed_result,
    stopped_result,
    wait_limit,
)

ENV_CLUSTER = "LAYERLEAK_CLUSTER"
CONNECT_TIMEOUT = 30.0
ALLOWED_FAILURES = 1  # a task is tried again once after its worker died, then it fails
POLL_SECONDS = 2.0
LOST_AFTER = 60.0  # seconds without a scheduler before the pending layers are given up
INSTALL_HINT = "--cluster needs Dask distributed: pip install 'layerleak[cluster]'"


@dataclass(frozen=True)
class ClusterOptions:
    address: str
    allow_insecure: bool = False
    shared_path: bool = False
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @property
    def local_workers(self) -> int | None:
        """N for ``local:N``, else None."""
        if not self.address.startswith("local:"):
            return None
        text = self.address[len("local:") :]
        if not text.isdigit() or not 1 <= int(text) <= 256:
            raise RunnerError(f"--cluster {self.address}: give local:N with N from 1 to 256")
        return int(text)

    @property
    def scheme(self) -> str:
        if self.local_workers is not None:
            return "local"
        return urlsplit(self.address).scheme if "://" in self.address else "tcp"

    def check(self) -> None:
        """RunnerError for an address that cannot work."""
        if self.scheme not in ("local", "tcp", "tls"):
            raise RunnerError(
                f"--cluster {self.address}: use tcp://HOST:PORT, tls://HOST:PORT or local:N"
            )
        if self.scheme != "local" and not self.host:
            raise RunnerError(f"--cluster {self.address}: no scheduler host")
        if any((self.tls_ca, self.tls_cert, self.tls_key)) and self.scheme != "tls":
            raise RunnerError("--cluster-tls-* options need a tls:// scheduler address")

    @property
    def host(self) -> str:
        if "://" in self.address:
            return urlsplit(self.address).hostname or ""
        return self.address.rsplit(":", 1)[0].strip("[]")

    @property
    def private_link(self) -> bool:
        """True when nothing on the network can read what goes to the scheduler."""
        return self.scheme in ("local", "tls") or is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def _carries_credential(layer: Layer) -> bool:
    from scanner.sources.registry import RegistryBlobOpener

    opener = layer.opener
    return isinstance(opener, RegistryBlobOpener) and not opener.credential.anonymous


class DaskRunner(LayerRunner):
    name = "dask"

    def __init__(
        self,
        options: ClusterOptions,
        spec: DetectionSpec,
        cache_spec: CacheSpec | None = None,
    ) -> None:
        options.check()
        import importlib.util

        if importlib.util.find_spec("distributed") is None:
            raise RunnerError(INSTALL_HINT)
        self.options = options
        self.spec = spec
        self.cache_spec = cache_spec
        self._cluster: Any = None
        self._client: Any = None
        self.lost_after = LOST_AFTER
        self.connect_timeout = CONNECT_TIMEOUT
        self._connect_error: str | None = None
        self.notes: list[str] = []
        if cache_spec is not None and cache_spec.password and not self._secrets_ok:
            self.cache_spec = None
            self.notes.append(
                "the Redis password is not sent over plain tcp to a non-loopback scheduler: "
                "workers do not use the shared cache (use tls:// or --allow-insecure-cluster)"
            )

    @property
    def _secrets_ok(self) -> bool:
        return self.options.private_link or self.options.allow_insecure

    def accepts(self, layer: Layer) -> bool:
        from scanner.sources.registry import RegistryBlobOpener

        return self.options.shared_path or isinstance(layer.opener, RegistryBlobOpener)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _security(self) -> Any:
        from distributed.security import Security

        o = self.options
        if not any((o.tls_ca, o.tls_cert, o.tls_key)):
            return Security()  # Dask's configuration (DASK_DISTRIBUTED__COMM__TLS__...)
        return Security(
            tls_ca_file=str(o.tls_ca) if o.tls_ca else None,
            tls_client_cert=str(o.tls_cert) if o.tls_cert else None,
            tls_client_key=str(o.tls_key) if o.tls_key else None,
            require_encryption=True,
        )

    def _connect(self) -> Any:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise RunnerError(INSTALL_HINT) from None
        n = self.options.local_workers
        try:
            if n is not None:
                with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
                    self._cluster = LocalCluster(
                        n_workers=n,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address=None,
                        silence_logs=logging.ERROR,
                    )
                return Client(self._cluster, timeout=CONNECT_TIMEOUT)
            return Client(self.options.address, security=self._security(), timeout=CONNECT_TIMEOUT)
        except Exception as exc:  # OSError, TimeoutError, TLS errors, bad configuration...
            raise RunnerError(
                f"cannot use the Dask scheduler at {self.options.address} "
                f"({type(exc).__name__}: {exc}); the layer was not scanned"
            ) from None

    def run(
        self, layers: Sequence[Layer], deadline: Deadline = NO_DEADLINE, *, grace: float = GRACE
    ) -> Iterator[tuple[Layer, LayerResult]]:
        sendable: list[Layer] = []
        for layer in layers:
            if (_carries_credential(layer) or self.spec.reveal) and not self._secrets_ok:
                yield layer, failed_result(layer, refusal(self.options.address))
            else:
                sendable.append(layer)
        if not sendable:
            return
        if self._connect_error is None and self._client is None:
            try:
                self._client = self._connect()
            except RunnerError as exc:
                self._connect_error = str(exc)  # not tried again for every batch
        if self._connect_error is not None:
            for layer in sendable:
                yield layer, failed_result(layer, self._connect_error)
            return
        run_id = uuid.uuid4().hex[:8]
        futures: dict[Any, Layer] = {}
        for i, layer in enumerate(sendable):
            token = f"layerleak-{layer.digest[7:23]}-{run_id}-{i}"
            futures[self._submit(layer, token, token, deadline)] = layer
        killed: list[tuple[Layer, str]] = []
        yield from self._gather(futures, deadline, grace, killed)
        for layer, token in killed:
            yield from self._alone(layer, token, deadline, grace)

    def _submit(self, layer: Layer, token: str, key: str, deadline: Deadline) -> Any:
        """One layer's task. ``token`` names the attempt's claim in a shared cache and
        stays the same when the layer is submitted again under another ``key``: the new
        task then takes over a claim its killed predecessor may still hold instead of
        waiting for it to lapse."""
        from scanner.runners.worker import scan_task

        return self.client.submit(
            scan_task,
            self.spec,
            layer,
            self.cache_spec,
            token,
            deadline,
            key=key,
            pure=False,
            retries=1,
        )

    def _alone(
        self, layer: Layer, token: str, deadline: Deadline, grace: float
    ) -> Iterator[tuple[Layer, LayerResult]]:
        """Try a layer whose workers died twice once more, as the only task of the run.

        Nothing else of this run is on the cluster by now, so a second ``KilledWorker``
        is this layer's own doing (the error :meth:`_result` reports). Past the deadline,
        or without a scheduler, it is not tried again and that error stands.
        """
        if deadline.expired() or self.client.status != "running":
            yield layer, killed_result(layer)
            return
        again = self._submit(layer, token, f"{token}-alone", deadline)
        yield from self._gather({again: layer}, deadline, grace)

    def _gather(
        self,
        futures: dict[Any, Layer],
        deadline: Deadline,
        grace: float,
        killed: list[tuple[Layer, str]] | None = None,
    ) -> Iterator[tuple[Layer, LayerResult]]:
        """Yield each future's layer and result as it finishes, until the deadline (and
        its grace) or a scheduler lost for ``lost_after`` seconds ends the wait.

        With ``killed``, a layer whose task ended with ``KilledWorker`` is not yielded but
        put there with its claim token (the future's key): it may only have been queued
        on a worker that another layer killed, so :meth:`run` tries it again alone.
        """
        from distributed import wait

        client = self.client
        pending = set(futures)
        lost_since: float | None = None
        try:
            while pending:
                try:
                    done, pending = wait(
                        pending, timeout=_poll(deadline, grace), return_when="FIRST_COMPLETED"
                    )
                    connected = True
                except TimeoutError:
                    done, connected = set(), True
                except Exception:  # the scheduler cannot be reached, futures were cancelled...
                    done = {f for f in pending if f.status in ("cancelled", "error", "finished")}
                    pending -= done
                    connected = False
                for future in done:
                    if killed is not None and _killed(future):
                        killed.append((futures[future], future.key))
                    else:
                        yield futures[future], self._result(future, futures[future])
                limit = wait_limit(deadline, grace)
                if pending and limit is not None and limit <= 0:
                    # Workers stop at the deadline themselves; these did not come back.
                    client.cancel(list(pending))
                    for future in pending:
                        yield futures[future], stopped_result(futures[future], deadline)
                    pending = set()
                    continue
                if done or (connected and client.status == "running"):
                    lost_since = None
                    continue
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > self.lost_after:
                    message = (
                        f"the connection to the Dask scheduler {self.options.address} was "
                        f"lost for {self.lost_after:.0f}s; the layer was not scanned"
                    )
                    for future in pending:
                        yield futures[future], failed_result(futures[future], message)
                    pending = set()
        except BaseException:
            with contextlib.suppress(Exception):  # the scheduler may be gone already
                client.cancel(list(pending))  # Ctrl-C, or the caller stopped reading
            raise

    def _result(self, future: Any, layer: Layer) -> LayerResult:
        from concurrent.futures import CancelledError

        from distributed import KilledWorker

        try:
            from_cache, data = future.result()
        except CancelledError:
            return failed_result(
                layer,
                f"the Dask scheduler {self.options.address} dropped the task (connection lost); "
                "the layer was not scanned",
            )
        except KilledWorker:
            return killed_result(layer)
        except Exception as exc:  # a task error after its retry, or the cluster went away
            return failed_result(
                layer, f"the cluster task failed twice ({type(exc).__name__}: {exc})"
            )
        try:
            return LayerResult.from_bytes(data, layer.digest, cached=bool(from_cache))
        except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
            return failed_result(layer, f"unreadable result from a Dask worker ({exc})")

    def close(self) -> None:
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        # Closing a client or cluster whose scheduler is gone may raise anything.
        if client is not None:
            with contextlib.suppress(Exception):
                client.close(timeout=10)
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=10)


def killed_result(layer: Layer) -> LayerResult:
    """The result of a layer whose Dask workers kept dying under it."""
    return failed_result(
        layer,
        "the Dask workers running this layer died twice (killed, out of memory?); "
        "it was not scanned",
    )


def _killed(future: Any) -> bool:
    """True when Dask gave up the future's task because workers holding it died."""
    from distributed import KilledWorker

    return future.status == "error" and isinstance(future.exception(), KilledWorker)


def _poll(deadline: Deadline, grace: float) -> float:
    limit = wait_limit(deadline, grace)
    return POLL_SECONDS if limit is None else max(0.05, min(POLL_SECONDS, limit))


def refusal(address: str) -> str:
    return (
        f"not sent to the Dask scheduler {address}: the task would carry a registry "
        "credential (or revealed secrets) over plain tcp to a host that is not loopback; "
        "use tls:// (--cluster-tls-ca/--cluster-tls-cert/--cluster-tls-key) or pass "
        "--allow-insecure-cluster"
    )

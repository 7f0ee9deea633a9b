"""The Dask runner against real processes: ``dask scheduler`` + two ``dask worker``
processes on 127.0.0.1, a ``local:2`` cluster, the real registry and redis-server."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
from click.testing import CliRunner

from bench.fleet import FleetShape, build_fleet
from scanner.cli import main
from scanner.image import BlobOpener, Layer
from scanner.results import LayerResult
from scanner.runners import ClusterOptions, DaskRunner, DetectionSpec, RunnerError
from scanner.runners.cluster import is_loopback
from scanner.scan import Scanner, ScanOptions
from scanner.signatures import SignatureSet
from scanner.sources.interface import SourceOptions
from scanner.sources.resolve import resolve
from tests.infra.dask_cluster import DaskCluster, executed_counts
from tests.infra.plugin import unique_repo
from tests.infra.redis_server import RedisServer
from tests.infra.registry import Registry

pytest.importorskip("distributed")

SHAPE = FleetShape(
    bases=2, apps_per_base=2, releases=2, base_bytes=384 << 10, app_bytes=48 << 10, real_files=False
)


@pytest.fixture(scope="module")
def fleet(registry_anonymous: Registry, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Eight images on two shared bases, pushed to the registry (one repository per app)."""
    layout = tmp_path_factory.mktemp("fleet") / "layout"
    refs = build_fleet(layout, SHAPE)
    prefix = unique_repo("fleet")
    out = []
    for ref in refs:
        tag = ref.rsplit(":", 1)[1]
        app, release = tag.rsplit("-", 1)
        registry_anonymous.push_oci_layout(layout, f"{prefix}/{app}", tag)
        out.append(f"{registry_anonymous.url}/{prefix}/{app}:{tag}")
        assert release.startswith("r")
    return out


def summary(results: list[Any]) -> list[tuple[object, ...]]:
    return [
        (
            r.name,
            [
                (f.fingerprint, f.platform, f.location.layer_index, f.status.describe())
                for f in r.findings
            ],
            [p.message for p in r.problems],
        )
        for r in results
    ]


def spec() -> DetectionSpec:
    return DetectionSpec((), SignatureSet.load(()).digest, False)


def registry_layers(refs: list[str]) -> list[Layer]:
    seen: dict[str, Layer] = {}
    for ref in refs:
        with resolve(ref, SourceOptions()) as source:
            for layer in source.load().platforms[0].layers:
                seen.setdefault(layer.digest, layer)
    return list(seen.values())


def test_scheduler_and_worker_processes_scan_the_sweep_like_a_local_run(
    dask_cluster: DaskCluster, fleet: list[str]
) -> None:
    before = executed_counts(dask_cluster.address)
    options = ScanOptions(use_cache=False, cluster=ClusterOptions(dask_cluster.address))
    with Scanner(options) as remote:
        there = remote.scan_many(fleet)
    with Scanner(ScanOptions(use_cache=False, jobs=2)) as local:
        here = local.scan_many(fleet)
    assert summary(there) == summary(here)
    assert any(r.findings for r in there) and not any(r.problems for r in there)
    distinct = 2 * SHAPE.bases + 2 * SHAPE.images
    assert remote.stats.scanned == distinct and remote.stats.reused == 0
    after = executed_counts(dask_cluster.address)
    ran = {w: after[w] - before.get(w, 0) for w in after}
    assert sum(ran.values()) == distinct  # every distinct layer once, on the workers
    assert len(ran) == 2 and all(n > 0 for n in ran.values()), ran


@dataclass(frozen=True)
class DyingOpener(BlobOpener):
    """Kills the Dask worker process that opens it: the first time only (``mark`` then
    exists), or every time."""

    inner: BlobOpener
    mark: str
    always: bool = False

    def open(self) -> BinaryIO:
        if self.always or not os.path.exists(self.mark):
            Path(self.mark).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.open()

    def describe(self) -> str:
        return "a blob whose reader dies"


def test_killed_worker_gets_the_layer_rescheduled_and_nothing_is_lost(
    dask_cluster: DaskCluster, fleet: list[str], tmp_path: Path
) -> None:
    layers = registry_layers(fleet[:4])
    victim = replace(layers[0], opener=DyingOpener(layers[0].opener, str(tmp_path / "once")))
    todo = [victim, *layers[1:]]
    options = ClusterOptions(dask_cluster.address, shared_path=True)
    with DaskRunner(options, spec()) as runner:
        results = dict((layer.digest, r) for layer, r in runner.run(todo))
    assert (tmp_path / "once").exists()  # a worker did die on it
    assert set(results) == {layer.digest for layer in todo}
    assert all(r.complete for r in results.values()), [r.error for r in results.values()]


def test_layer_whose_worker_dies_twice_is_an_error(
    dask_cluster: DaskCluster, fleet: list[str], tmp_path: Path
) -> None:
    layers = registry_layers(fleet[:2])
    doomed = replace(
        layers[1], opener=DyingOpener(layers[1].opener, str(tmp_path / "x"), always=True)
    )
    options = ClusterOptions(dask_cluster.address, shared_path=True)
    with DaskRunner(options, spec()) as runner:
        results = dict((layer.digest, r) for layer, r in runner.run([layers[0], doomed]))
    assert results[layers[0].digest].complete
    error = results[doomed.digest].error
    assert error is not None and "died twice" in error and "layer 1" in error


def test_healthy_layer_on_the_worker_a_layer_kills_twice_is_still_scanned(
    fleet: list[str], cluster_base: Path, tmp_path: Path
) -> None:
    """One worker with one thread holds both tasks: the doomed layer (submitted first, so
    run first) kills it, twice, while the healthy one waits behind it on the same worker;
    Dask counts both deaths against both tasks and gives both up. The healthy layer is
    tried again alone and scanned; the doomed one kills its worker alone too and is the
    only error."""
    from tests.infra.dask_cluster import start_dask

    own = start_dask(cluster_base / f"bystander-{uuid.uuid4().hex[:6]}", workers=1)
    try:
        layers = registry_layers(fleet[:1])
        doomed = replace(
            layers[0], opener=DyingOpener(layers[0].opener, str(tmp_path / "x"), always=True)
        )
        healthy = layers[1]
        options = ClusterOptions(own.address, shared_path=True)
        with DaskRunner(options, spec()) as runner:
            results = dict((layer.digest, r) for layer, r in runner.run([doomed, healthy]))
            ends = task_ends(runner.client, healthy.digest[7:23])
    finally:
        own.stop()
    assert set(results) == {doomed.digest, healthy.digest}
    assert results[healthy.digest].complete, results[healthy.digest].error
    error = results[doomed.digest].error
    assert error is not None and "died twice" in error and "layer 0" in error
    # The scenario did happen: Dask gave up the healthy layer's first task (a bystander),
    # and its second one, alone, finished.
    assert sorted(ends.values()) == ["erred", "memory"], ends


def test_layer_tried_again_alone_takes_over_its_own_claim_in_the_shared_cache(
    dask_cluster: DaskCluster, redis_server: RedisServer, fleet: list[str], tmp_path: Path
) -> None:
    """A task killed mid-layer still holds the layer's claim in Redis. The try alone runs
    under a fresh Dask key but the same claim token, so it takes the claim over at once
    instead of waiting for it to lapse (here: until the deadline)."""
    from scanner.analyzers.builtin import analyzers_version
    from scanner.cachebackends.redis import RedisBackend
    from scanner.deadline import Deadline

    redis_server.client().flushall()  # no result of another test: the layer is scanned
    layer = registry_layers(fleet[:1])[0]
    doomed = replace(layer, opener=DyingOpener(layer.opener, str(tmp_path / "x"), always=True))
    cache = RedisBackend(redis_server.url, spec().digest, analyzers_version())
    options = ClusterOptions(dask_cluster.address, shared_path=True)
    try:
        with DaskRunner(options, spec(), cache.spec()) as runner:
            _ = runner.client  # connected first: the time is about the scan
            began = time.monotonic()
            results = list(runner.run([doomed], Deadline.after(120.0)))
            took = time.monotonic() - began
        assert redis_server.client().keys("layerleak:claim:*")  # the dead task's claim
    finally:
        redis_server.client().flushall()
    error = results[0][1].error
    assert error is not None and "died twice" in error, error
    assert took < 60.0, took


def task_ends(client: Any, part: str) -> dict[str, str]:
    """The last state of each task on the scheduler whose key contains ``part``."""

    def ends(dask_scheduler: Any) -> dict[str, str]:
        found: dict[str, str] = {}
        for key, _start, finish, *_ in dask_scheduler.transition_log:
            if part in str(key) and finish in ("memory", "erred"):
                found[str(key)] = finish
        return found

    return cast(dict[str, str], client.run_on_scheduler(ends))


def test_credentials_never_go_to_a_plain_tcp_scheduler_on_another_host(
    registry_basic: Registry, tmp_path: Path
) -> None:
    from tests.registry import push_fixture

    ref, _ = push_fixture(registry_basic, "deleted_secret", tmp_path)
    user, password = registry_basic.reader_username, registry_basic.reader_password
    assert user is not None and password is not None
    source = SourceOptions(username=user, password=password)
    with resolve(ref, source) as src:
        layers = src.load().platforms[0].layers
    remote = ClusterOptions("tcp://192.0.2.10:8786")  # TEST-NET-1: never reachable
    assert not remote.private_link and not is_loopback("192.0.2.10")
    with DaskRunner(remote, spec()) as runner:
        results = list(runner.run(layers))
        assert runner._client is None  # refused before any connection
    assert all(r.error and "--allow-insecure-cluster" in r.error for _, r in results)
    # Through the command line: exit 3, the reason on stderr, the password nowhere.
    out = CliRunner().invoke(
        main,
        [
            "scan",
            ref,
            "--format",
            "json",
            "--no-cache",
            "--username",
            user,
            "--password-stdin",
            "--cluster",
            "tcp://192.0.2.10:8786",
        ],
        input=password,
    )
    assert out.exit_code == 3, out.output
    assert "plain tcp" in out.stderr and password not in out.output
    # Loopback and TLS links are private; the flag allows the rest.
    assert ClusterOptions("tcp://127.0.0.1:8786").private_link
    assert ClusterOptions("tls://sched.example:8786").private_link
    assert ClusterOptions("local:2").private_link
    assert DaskRunner(ClusterOptions(remote.address, allow_insecure=True), spec())._secrets_ok


def test_cluster_addresses_are_checked() -> None:
    for bad in ("local:0", "local:x", "http://h:1", "tcp://:8786"):
        with pytest.raises(RunnerError):
            DaskRunner(ClusterOptions(bad), spec())
    with pytest.raises(RunnerError, match="tls://"):
        DaskRunner(ClusterOptions("tcp://127.0.0.1:1", tls_ca=Path("/ca.pem")), spec())
    out = CliRunner().invoke(main, ["scan", "x", "--cluster", "udp://h:1"])
    assert out.exit_code == 2 and "tcp://HOST:PORT" in out.output
    out = CliRunner().invoke(main, ["scan", "x", "--shared-path"])
    assert out.exit_code == 2 and "needs --cluster" in out.output


def test_stopping_the_sweep_cancels_the_futures(
    dask_cluster: DaskCluster, fleet: list[str], tmp_path: Path
) -> None:
    layers = registry_layers(fleet[:2])
    slow = [replace(layer, opener=SlowOpener(layer.opener, 2.0)) for layer in layers[1:]]
    options = ClusterOptions(dask_cluster.address, shared_path=True)
    with DaskRunner(options, spec()) as runner:
        stream = cast(Generator[tuple[Layer, LayerResult]], runner.run([layers[0], *slow]))
        first = next(stream)
        assert first[1].complete
        stream.close()  # what Ctrl-C does to the loop reading the results
        client = runner.client
        deadline = time.monotonic() + 10
        while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
            assert time.monotonic() < deadline, "futures still on the scheduler"
            time.sleep(0.1)


@dataclass(frozen=True)
class SlowOpener(BlobOpener):
    inner: BlobOpener
    seconds: float

    def open(self) -> BinaryIO:
        time.sleep(self.seconds)
        return self.inner.open()

    def describe(self) -> str:
        return "a slow blob"


def test_local2_sweep_equals_a_local_run_and_redis_remembers_it(
    redis_server: RedisServer, dask_cluster: DaskCluster, fleet: list[str], tmp_path: Path
) -> None:
    """`--cluster local:2` with a Redis cache gives the local run's report, finding for
    finding; a second sweep by another client without any local cache (through the
    scheduler processes) scans nothing."""
    refs = tmp_path / "refs.txt"
    refs.write_text("\n".join(fleet) + "\n")
    db = f"{redis_server.url[:-2]}/{1 + uuid.uuid4().int % 14}"
    runner = CliRunner()
    base = ["scan", "--from-file", str(refs), "--format", "json", "-q"]
    local = runner.invoke(main, [*base, "--no-cache"])
    swept = runner.invoke(main, [*base, "--cluster", "local:2", "--cache-backend", db])
    again = runner.invoke(main, [*base, "--cluster", dask_cluster.address, "--cache-backend", db])
    assert local.exit_code == swept.exit_code == again.exit_code == 1, swept.output
    docs = [json.loads(r.stdout) for r in (local, swept, again)]

    def findings(doc: dict[str, Any]) -> list[tuple[object, ...]]:
        return [
            (i["name"], f["fingerprint"], f["status"]["state"], f["location"]["layer_index"])
            for i in doc["images"]
            for f in i["findings"]
        ]

    assert findings(docs[0]) == findings(docs[1]) == findings(docs[2])
    assert findings(docs[0])
    assert docs[1]["complete"] and docs[2]["complete"]

    def cached(doc: dict[str, Any]) -> dict[str, bool]:
        return {
            layer["digest"]: layer["cached"]
            for i in doc["images"]
            for p in i["platforms"]
            for layer in p["layers"]
        }

    distinct = 2 * SHAPE.bases + 2 * SHAPE.images
    assert len(cached(docs[1])) == distinct and not any(cached(docs[1]).values())
    assert all(cached(docs[2]).values())  # the second sweep scanned nothing
    number = int(db.rsplit("/", 1)[1])
    import redis

    assert redis.Redis(port=redis_server.port, db=number).dbsize() == distinct  # once each


def test_two_sweeps_at_once_scan_each_layer_once(
    dask_cluster: DaskCluster, redis_server: RedisServer, fleet: list[str]
) -> None:
    """Two clients sweep the same layers at the same moment through one Redis: a layer
    one of them is scanning is waited for by the other, never scanned twice."""
    import threading

    from scanner.analyzers.builtin import analyzers_version
    from scanner.cachebackends.redis import RedisBackend

    redis_server.client().flushall()
    layers = [
        replace(layer, opener=SlowOpener(layer.opener, 0.3)) for layer in registry_layers(fleet[:3])
    ]
    cache = RedisBackend(redis_server.url, spec().digest, analyzers_version())
    options = ClusterOptions(dask_cluster.address, shared_path=True)
    outcomes: list[dict[str, bool]] = [{}, {}]

    def sweep(n: int) -> None:
        with DaskRunner(options, spec(), cache.spec()) as runner:
            outcomes[n] = {layer.digest: r.cached for layer, r in runner.run(layers)}

    threads = [threading.Thread(target=sweep, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(outcomes[0]) == set(outcomes[1]) == {layer.digest for layer in layers}
    scans = {d: [not o[d] for o in outcomes].count(True) for d in outcomes[0]}
    assert set(scans.values()) == {1}, scans  # exactly one sweep scanned each layer
    assert not redis_server.client().keys("layerleak:claim:*")  # every claim released


def test_losing_the_scheduler_mid_sweep_fails_the_layers_instead_of_hanging(
    fleet: list[str], cluster_base: Path
) -> None:
    import threading

    from tests.infra.dask_cluster import start_dask

    own = start_dask(cluster_base / f"lost-{uuid.uuid4().hex[:6]}", workers=1)
    try:
        layers = [
            replace(layer, opener=SlowOpener(layer.opener, 3.0))
            for layer in registry_layers(fleet[:1])
        ]
        runner = DaskRunner(ClusterOptions(own.address, shared_path=True), spec())
        runner.lost_after = 5
        _ = runner.client  # connected before the scheduler goes away

        def kill_all() -> None:
            for proc in [own.scheduler, *own.workers]:
                proc.kill()

        killer = threading.Timer(1.0, kill_all)
        killer.start()
        began = time.monotonic()
        results = list(runner.run(layers))
        runner.close()
    finally:
        own.stop()
    assert time.monotonic() - began < 60
    assert {layer.digest for layer, _ in results} == {layer.digest for layer in layers}
    assert all(r.error and "scheduler" in r.error for _, r in results)


def test_tls_scheduler_gets_credentialed_layers_and_plain_clients_are_refused(
    registry_basic: Registry, cluster_base: Path, tmp_path: Path
) -> None:
    """A scheduler and worker speaking TLS only: with --cluster-tls-* the credentialed
    registry layers go through and scan like a local run; without them the client cannot
    connect and every layer is an error (exit 3), quickly."""
    from tests.infra.dask_cluster import make_tls, start_dask
    from tests.registry import push_fixture

    tls = make_tls(cluster_base / "tls")
    own = start_dask(cluster_base / f"tls-{uuid.uuid4().hex[:6]}", workers=1, tls=tls)
    try:
        assert own.address.startswith("tls://")
        ref, _ = push_fixture(registry_basic, "deleted_secret", tmp_path)
        user, password = registry_basic.reader_username, registry_basic.reader_password
        source = SourceOptions(username=user, password=password)
        cluster = ClusterOptions(own.address, tls_ca=tls.ca, tls_cert=tls.cert, tls_key=tls.key)
        with Scanner(ScanOptions(source=source, use_cache=False, cluster=cluster)) as remote:
            there = remote.scan_many([ref])
        with Scanner(ScanOptions(source=source, use_cache=False, jobs=1)) as local:
            here = local.scan_many([ref])
        assert summary(there) == summary(here) and not there[0].problems
        assert remote.stats.scanned == len(there[0].platforms[0].layers)
        plain = ScanOptions(source=source, use_cache=False, cluster=ClusterOptions(own.address))
        with Scanner(plain) as refused:
            assert refused._remote is not None
            refused._remote.connect_timeout = 3
            failed = refused.scan_many([ref])
        assert failed[0].problems
        assert all("cannot use the Dask scheduler" in p.message for p in failed[0].problems)
    finally:
        own.stop()


def test_redis_password_stays_home_over_plain_tcp() -> None:
    from scanner.cachebackends import CacheSpec

    cache = CacheSpec("redis://10.0.0.5:6379/0", "sha256:x", "a", password="hunter2-redis")
    runner = DaskRunner(ClusterOptions("tcp://192.0.2.10:8786"), spec(), cache)
    assert runner.cache_spec is None and "Redis password" in runner.notes[0]
    assert "hunter2-redis" not in " ".join(runner.notes)
    allowed = ClusterOptions("tcp://192.0.2.10:8786", allow_insecure=True)
    assert DaskRunner(allowed, spec(), cache).cache_spec == cache
    assert DaskRunner(ClusterOptions("local:1"), spec(), cache).cache_spec == cache


def test_cluster_layers_past_the_deadline_are_stopped(
    dask_cluster: DaskCluster, fleet: list[str]
) -> None:
    from scanner.deadline import Deadline

    layers = [
        replace(layer, opener=SlowOpener(layer.opener, 4.0)) for layer in registry_layers(fleet[:1])
    ][:2]
    options = ClusterOptions(dask_cluster.address, shared_path=True)
    with DaskRunner(options, spec()) as runner:
        _ = runner.client  # connected first: the deadline is about the scan
        began = time.monotonic()
        results = list(runner.run(layers, Deadline.after(1.0), grace=0.5))
        took = time.monotonic() - began
    assert took < 4.0, took
    assert {layer.digest for layer, _ in results} == {layer.digest for layer in layers}
    assert all(r.error and "did not finish" in r.error for _, r in results)

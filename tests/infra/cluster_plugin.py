"""Session fixtures for the cluster and cache-backend tests (see dask_cluster.py and
redis_server.py): ``dask_cluster`` (a scheduler and two worker processes) and
``redis_server`` (an open server), ``redis_with_password``; each skips, saying why,
when it cannot run here."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.dask_cluster import DaskCluster, DaskUnavailable, start_dask
from tests.infra.redis_server import RedisServer, RedisUnavailable, start_redis

REDIS_PASSWORD = "test-only-redis-password-8d1f"


@pytest.fixture(scope="session")
def cluster_base() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="llc-", dir="/tmp"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def dask_cluster(cluster_base: Path) -> Iterator[DaskCluster]:
    pytest.importorskip("distributed")
    try:
        cluster = start_dask(cluster_base / "dask", workers=2)
    except DaskUnavailable as exc:
        pytest.skip(str(exc))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_server(cluster_base: Path) -> Iterator[RedisServer]:
    pytest.importorskip("redis")
    try:
        server = start_redis(cluster_base / "redis")
    except RedisUnavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_with_password(cluster_base: Path) -> Iterator[RedisServer]:
    pytest.importorskip("redis")
    try:
        server = start_redis(cluster_base / "redis-auth", password=REDIS_PASSWORD)
    except RedisUnavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()

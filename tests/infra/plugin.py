"""pytest fixtures for the real-registry and real-Docker-engine tests.

Loaded by ``tests/conftest.py`` (``pytest_plugins = ["tests.infra.plugin"]``). Everything is
session-scoped, started lazily on first use and stopped at the end of the session:

* ``docker_engine`` -> the ``DOCKER_HOST`` string of a private dockerd (see dockerd.py);
  skips, saying why, when none can be had. Tests marked ``@pytest.mark.engine`` get the
  same skip without asking for the fixture.
* ``registry_anonymous``, ``registry_basic``, ``registry_token`` -> a `Registry`
  (registry.py): through testcontainers on the engine when there is one, else the same
  binary as a subprocess (``.via`` says which, ``.via_reason`` why); skips when Debian's
  ``docker-registry`` is not installed. They are shared by the whole session: use your
  own repository names (``unique_repo()``).
* ``fault_proxy_factory`` -> ``make(upstream)``: a started `FaultProxy` in front of a
  `Registry`, a URL or "host:port"; stopped at session end (or use it as a context manager).

Environment: ``LAYERLEAK_TEST_DOCKER_HOST`` (use this engine instead of starting one),
``LAYERLEAK_TEST_REGISTRY_VIA`` = auto (default) | testcontainers | subprocess,
``LAYERLEAK_TEST_REGISTRY_BIN``, ``LAYERLEAK_TEST_DOCKERD`` (binaries).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.infra.dockerd import Engine, EngineUnavailable, acquire_engine
from tests.infra.fault_proxy import FaultProxy
from tests.infra.registry import (
    Mode,
    Registry,
    RegistryUnavailable,
    find_registry_binary,
    start_registry,
)

ENV_VIA = "LAYERLEAK_TEST_REGISTRY_VIA"
FaultProxyFactory = Callable[["Registry | FaultProxy | str"], FaultProxy]
_SESSION_KEY = pytest.StashKey["InfraSession"]()


def unique_repo(prefix: str = "test") -> str:
    """A repository name no other test uses (the registries live for the whole session)."""
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def require_testcontainers(registry: Registry) -> None:
    """Skip the calling test unless `registry` runs through testcontainers."""
    if registry.via != "testcontainers":
        pytest.skip(f"needs the registry in a container (testcontainers): {registry.via_reason}")


class InfraSession:
    """What the fixtures started in this session, and the reasons for what they could not."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._base: Path | None = None
        self._engine: Engine | None = None
        self._engine_error: str | None = None
        self._registries: dict[str, Registry] = {}
        self._registry_errors: dict[str, str] = {}
        self._proxies: list[FaultProxy] = []
        self.timings: list[tuple[str, float]] = []

    @property
    def base_dir(self) -> Path:
        if self._base is None:
            self._base = Path(tempfile.mkdtemp(prefix="llt-", dir="/tmp"))
        return self._base

    def engine(self) -> Engine:
        """The engine (started once); EngineUnavailable says why there is none."""
        with self._lock:
            if self._engine_error is not None:
                raise EngineUnavailable(self._engine_error)
            if self._engine is None:
                try:
                    self._engine = acquire_engine()
                except EngineUnavailable as exc:
                    self._engine_error = str(exc)
                    raise
                what = "dockerd start" if self._engine.started else "engine reused"
                self.timings.append((what, self._engine.start_seconds))
            return self._engine

    def registry(self, mode: Mode) -> Registry:
        """The registry in `mode` (started once); RegistryUnavailable says why there is none."""
        with self._lock:
            if mode in self._registries:
                return self._registries[mode]
            if mode in self._registry_errors:
                raise RuntimeError(self._registry_errors[mode])
            if find_registry_binary() is None:
                raise RegistryUnavailable(
                    "docker-registry binary not found; run scripts/system-deps.sh "
                    "(installs Debian's docker-registry) as root"
                )
            via = os.environ.get(ENV_VIA, "auto").strip().lower() or "auto"
            docker_host: str | None = None
            reason = ""
            if via == "subprocess":
                reason = f"{ENV_VIA}=subprocess"
            else:
                try:
                    docker_host = self.engine().docker_host
                except EngineUnavailable as exc:
                    if via == "testcontainers":
                        raise RegistryUnavailable(
                            f"{ENV_VIA}=testcontainers but no Docker engine: {exc}"
                        ) from exc
                    reason = f"no Docker engine: {exc}"
            began = time.monotonic()
            try:
                registry = start_registry(
                    mode, self.base_dir / mode, docker_host=docker_host, via_reason=reason
                )
            except Exception as exc:
                self._registry_errors[mode] = f"{type(exc).__name__}: {exc}"
                raise
            total = time.monotonic() - began
            if total - registry.start_seconds > 0.01:
                self.timings.append(("registry image", total - registry.start_seconds))
            self.timings.append((f"registry {mode} via {registry.via}", registry.start_seconds))
            self._registries[mode] = registry
            return registry

    def fault_proxy(self, upstream: Registry | FaultProxy | str) -> FaultProxy:
        target = upstream if isinstance(upstream, str) else upstream.base_url
        proxy = FaultProxy(target).start()
        with self._lock:
            self._proxies.append(proxy)
        return proxy

    def close(self) -> None:
        with self._lock:
            for proxy in self._proxies:
                with contextlib.suppress(Exception):
                    proxy.stop()
            self._proxies.clear()
            for registry in self._registries.values():
                with contextlib.suppress(Exception):
                    registry.stop()
            self._registries.clear()
            if self._engine is not None:
                self._engine.stop()  # a no-op for an engine we did not start
                self._engine = None
            if self._base is not None:
                shutil.rmtree(self._base, ignore_errors=True)
                self._base = None

    def summary(self) -> str:
        return ", ".join(f"{what} {seconds:.2f}s" for what, seconds in self.timings)


@pytest.fixture(scope="session")
def layerleak_infra(request: pytest.FixtureRequest) -> Iterator[InfraSession]:
    """The session's infrastructure; prefer the specific fixtures below."""
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    infra = InfraSession()
    request.config.stash[_SESSION_KEY] = infra
    try:
        yield infra
    finally:
        infra.close()


@pytest.fixture(scope="session")
def docker_engine(layerleak_infra: InfraSession) -> str:
    """DOCKER_HOST of a running engine (pass it explicitly: the process env is left alone)."""
    try:
        return layerleak_infra.engine().docker_host
    except EngineUnavailable as exc:
        pytest.skip(f"no Docker engine: {exc}")


def _registry(infra: InfraSession, mode: Mode) -> Registry:
    try:
        return infra.registry(mode)
    except RegistryUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def registry_anonymous(layerleak_infra: InfraSession) -> Registry:
    return _registry(layerleak_infra, "anonymous")


@pytest.fixture(scope="session")
def registry_basic(layerleak_infra: InfraSession) -> Registry:
    return _registry(layerleak_infra, "basic")


@pytest.fixture(scope="session")
def registry_token(layerleak_infra: InfraSession) -> Registry:
    return _registry(layerleak_infra, "token")


@pytest.fixture(scope="session")
def fault_proxy_factory(layerleak_infra: InfraSession) -> FaultProxyFactory:
    return layerleak_infra.fault_proxy


@pytest.fixture(autouse=True)
def _layerleak_engine_marker(request: pytest.FixtureRequest) -> None:
    """Tests marked `engine` skip, saying why, when no engine can be had."""
    if request.node.get_closest_marker("engine") is not None:
        request.getfixturevalue("docker_engine")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "engine: needs a Docker engine started by the suite")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    infra = terminalreporter.config.stash.get(_SESSION_KEY, None)
    if infra is not None and infra.timings:
        terminalreporter.write_line(f"layerleak test infra start-up: {infra.summary()}")

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.catalog import build_all

pytest_plugins = ["tests.infra.plugin", "tests.infra.cluster_plugin"]

TEST_FINGERPRINT_KEY = b"layerleak-test-suite-fingerprint-key"


@pytest.fixture(autouse=True, scope="session")
def _private_layer_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The CLI's layer cache goes to a temporary directory, never the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LAYERLEAK_CACHE_DIR", str(tmp_path_factory.mktemp("layer-cache")))
    # one fingerprint key for the whole suite, never the user's own key file
    mp.setenv("LAYERLEAK_FINGERPRINT_KEY", TEST_FINGERPRINT_KEY.decode())
    mp.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config-home")))
    # compiled rule artefacts (scanner.compiled_cache) too
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every fixture image of fixtures.catalog, built once per session."""
    return build_all(tmp_path_factory.mktemp("images"))

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.infra.plugin"]


@pytest.fixture(autouse=True, scope="session")
def _private_layer_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The CLI's layer cache goes to a temporary directory, never the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LAYERLEAK_CACHE_DIR", str(tmp_path_factory.mktemp("layer-cache")))
    yield
    mp.undo()

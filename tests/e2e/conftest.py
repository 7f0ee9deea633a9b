"""Fixture images for end-to-end tests, built once per session from fixtures.catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.catalog import build_all


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_all(tmp_path_factory.mktemp("images"))

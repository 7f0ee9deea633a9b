"""The one list of built-in analyzers. Ids must be unique; versions feed cache keys."""

from __future__ import annotations

from scanner.analyzers.base_image import BaseImageAnalyzer
from scanner.analyzers.compose import ComposeAnalyzer
from scanner.analyzers.config_values import ConfigValuesAnalyzer, IndexAnnotationsAnalyzer
from scanner.analyzers.content_secrets import ContentSecretsAnalyzer
from scanner.analyzers.fly_toml import FlyTomlAnalyzer
from scanner.analyzers.history import HistoryAnalyzer
from scanner.analyzers.interface import FileAnalyzer, ImageAnalyzer
from scanner.analyzers.permissions import PermissionsAnalyzer
from scanner.analyzers.runtime_config import HealthcheckAnalyzer, PortsAnalyzer, UserAnalyzer
from scanner.analyzers.sensitive_paths import SensitivePathsAnalyzer

FILE_ANALYZERS: tuple[type[FileAnalyzer], ...] = (
    ContentSecretsAnalyzer,
    SensitivePathsAnalyzer,
    PermissionsAnalyzer,
    FlyTomlAnalyzer,
    ComposeAnalyzer,
)
IMAGE_ANALYZERS: tuple[type[ImageAnalyzer], ...] = (
    HistoryAnalyzer,
    ConfigValuesAnalyzer,
    IndexAnnotationsAnalyzer,
    UserAnalyzer,
    PortsAnalyzer,
    HealthcheckAnalyzer,
    BaseImageAnalyzer,
)


def _check_unique() -> None:
    ids = [a.id for a in FILE_ANALYZERS] + [a.id for a in IMAGE_ANALYZERS]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RuntimeError(f"duplicate analyzer ids: {', '.join(duplicates)}")


_check_unique()


def analyzers_version() -> str:
    """Every file analyzer's id and version: part of the layer cache key."""
    return ",".join(f"{a.id}@{a.version}" for a in FILE_ANALYZERS)

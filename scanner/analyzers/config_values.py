"""Secrets in config.Env, config.Labels, and manifest and index annotations."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from scanner.analyzers.assignments import assignment_findings
from scanner.analyzers.interface import ImageAnalyzer, ImageContext
from scanner.findings import Finding, Location, LocationKind
from scanner.image import Image, PlatformImage


class ConfigValuesAnalyzer(ImageAnalyzer):
    id = "config-values"
    version = 1

    def analyze(
        self, image: Image, platform: PlatformImage, context: ImageContext
    ) -> Iterable[Finding]:
        found: list[Finding] = []
        env = platform.runtime.get("Env")
        for i, item in enumerate(env if isinstance(env, list) else []):
            name, _, value = str(item).partition("=")
            found += assignment_findings(
                self.detection,
                name,
                value,
                _at(LocationKind.CONFIG, f"config.Env[{i}]"),
                rule_id="env-secret",
                what="Environment variable",
            )
        for name, value in _mapping(platform.runtime.get("Labels")):
            found += assignment_findings(
                self.detection,
                name,
                value,
                _at(LocationKind.CONFIG, f"config.Labels[{name}]"),
                rule_id="label-secret",
                what="Label",
            )
        for name, value in _mapping(platform.annotations):
            found += assignment_findings(
                self.detection,
                name,
                value,
                _at(LocationKind.MANIFEST, f"manifest.annotations[{name}]"),
                rule_id="annotation-secret",
                what="Annotation",
            )
        return found


class IndexAnnotationsAnalyzer(ImageAnalyzer):
    """Index annotations belong to the whole image: checked once, on the first platform."""

    id = "index-annotations"
    version = 1

    def analyze(
        self, image: Image, platform: PlatformImage, context: ImageContext
    ) -> Iterable[Finding]:
        if not image.platforms or platform is not image.platforms[0]:
            return []
        found: list[Finding] = []
        for name, value in _mapping(image.index_annotations):
            found += assignment_findings(
                self.detection,
                name,
                value,
                _at(LocationKind.MANIFEST, f"index.annotations[{name}]"),
                rule_id="annotation-secret",
                what="Annotation",
            )
        return found


def _mapping(value: object) -> list[tuple[str, str]]:
    if not isinstance(value, Mapping):
        return []
    return [(str(k), str(v)) for k, v in value.items()]


def _at(kind: LocationKind, field: str) -> Callable[[str], Location]:
    def where(_label: str) -> Location:
        return Location(kind=kind, field=field)

    return where

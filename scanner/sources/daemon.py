"""Images in a local Docker engine (``docker:IMAGE`` or ``docker-daemon:IMAGE``).

Through docker-py: ``docker.from_env()`` (so ``DOCKER_HOST``, ``DOCKER_TLS_VERIFY`` and
``DOCKER_CERT_PATH`` are honoured), ``images.get(name).save()`` streamed to a file, and
that file read by :class:`~scanner.sources.docker_archive.DockerArchiveSource` (legacy
and Docker 25+ layouts alike). The build history is also read from the engine
(``image.history()``) to fill in ``created_by`` where the saved config has none.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from scanner.errors import DaemonError
from scanner.image import HistoryStep, Image, PlatformImage
from scanner.sources.docker_archive import DockerArchiveSource
from scanner.sources.interface import Source, SourceOptions

KIND = "docker-daemon"
DEFAULT_HOST = "unix:///var/run/docker.sock"
SAVE_CHUNK = 1 << 20


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def _reason(exc: BaseException) -> str:
    """docker-py's errors are long and nested; keep the gist, on one line."""
    text = " ".join(str(exc).split())
    for marker in ("No such file or directory", "Connection refused", "Permission denied"):
        if marker in text:
            return marker
    if "timed out" in text.lower():
        return "timed out"
    return text[:300] or type(exc).__name__


class DaemonSource(Source):
    kind = KIND

    def __init__(self, name: str, options: SourceOptions, image_name: str) -> None:
        super().__init__(name, options)
        self.image_name = image_name
        self._dir: Path | None = None
        self._archive: DockerArchiveSource | None = None

    def load(self) -> Image:
        import docker  # imported here: only this source needs it, and it is slow to import
        import docker.errors
        import requests
        import urllib3.exceptions

        engine_errors: tuple[type[Exception], ...] = (
            docker.errors.DockerException,
            requests.RequestException,
            urllib3.exceptions.HTTPError,
        )

        address = engine_address()
        connect_errors: tuple[type[Exception], ...] = (*engine_errors, OSError)
        try:
            client = docker.from_env(timeout=max(int(self.options.timeout), 1))
            client.ping()
        except connect_errors as exc:
            raise DaemonError(
                f"{self.name}: no Docker engine answered at {address} ({_reason(exc)}); "
                "start Docker or set DOCKER_HOST"
            ) from None
        try:
            try:
                image = client.images.get(self.image_name)
            except docker.errors.ImageNotFound:
                raise DaemonError(
                    f"{self.name}: no image {self.image_name!r} in the Docker engine at "
                    f"{address} (see `docker images`; pull or load it first)"
                ) from None
            except engine_errors as exc:
                raise DaemonError(
                    f"{self.name}: the Docker engine at {address} could not look up "
                    f"{self.image_name!r} ({_reason(exc)})"
                ) from None
            history = self._engine_history(image, engine_errors)
            archive_path = self._save(image, address, engine_errors)
        finally:
            client.close()
        self._archive = DockerArchiveSource(self.name, self.options, archive_path, None)
        loaded = self._archive.load()
        loaded.source_kind = self.kind
        if history is not None and len(loaded.platforms) == 1:
            loaded.platforms[0] = fill_created_by(loaded.platforms[0], history)
        return loaded

    def _engine_history(self, image: Any, errors: tuple[type[Exception], ...]) -> list[str] | None:
        """``CreatedBy`` of each history step, oldest first; None if the engine won't say."""
        try:
            entries = image.history()
        except errors:
            return None
        if not isinstance(entries, list):
            return None
        return [str(e.get("CreatedBy") or "") for e in reversed(entries) if isinstance(e, dict)]

    def _save(self, image: Any, address: str, errors: tuple[type[Exception], ...]) -> Path:
        """Spool ``docker save`` to a private temporary file.

        The archive reader needs random access (``manifest.json`` can come last, and
        layers are read by offset), which an HTTP stream cannot give; a file on disk keeps
        memory flat whatever the image size. The directory is private (0700) because the
        archive holds every file of the image, secrets included, and it is deleted when
        the source is closed.
        """
        self._dir = Path(tempfile.mkdtemp(prefix="layerleak-daemon-"))
        path = self._dir / "image.tar"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                for chunk in image.save(chunk_size=SAVE_CHUNK, named=False):
                    out.write(chunk)
        except OSError as exc:
            raise DaemonError(
                f"{self.name}: cannot write the saved image to {self._dir}: {exc.strerror or exc}"
            ) from None
        except errors as exc:
            raise DaemonError(
                f"{self.name}: the Docker engine at {address} failed to save the image "
                f"({_reason(exc)})"
            ) from None
        return path

    def close(self) -> None:
        if self._archive is not None:
            with contextlib.suppress(Exception):
                self._archive.close()
            self._archive = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def fill_created_by(platform: PlatformImage, engine_history: list[str]) -> PlatformImage:
    """The platform with empty ``created_by`` steps filled from the engine's history.

    The engine lists one entry per config history step, newest first (``engine_history``
    is reversed already); when the counts differ the steps cannot be matched and the
    platform is returned unchanged.
    """
    steps = platform.history
    if not steps or len(steps) != len(engine_history):
        return platform
    if all(s.created_by for s in steps):
        return platform
    filled: list[HistoryStep] = [
        dataclasses.replace(s, created_by=engine_history[i])
        if not s.created_by and engine_history[i]
        else s
        for i, s in enumerate(steps)
    ]
    by_index = {s.index: s for s in filled}
    layers = [
        dataclasses.replace(layer, history=by_index.get(layer.history.index, layer.history))
        if layer.history is not None
        else layer
        for layer in platform.layers
    ]
    return dataclasses.replace(platform, history=filled, layers=layers)

"""The source interface: something that can hand the scanner an :class:`Image`.

Each source lives in its own module; :mod:`scanner.sources.resolve` picks one from
the text the user typed. A source is a context manager so it can hold open files
or connections while the scanner streams layers; the :class:`BlobOpener` objects
it hands out must stay usable (and picklable) while it is open.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType

from scanner.deadline import NO_DEADLINE, Deadline
from scanner.image import Image, Platform


@dataclass(frozen=True)
class SourceOptions:
    platforms: tuple[Platform, ...] = ()  # empty: every platform
    insecure: bool = False
    timeout: float = 30.0
    username: str | None = None
    password: str | None = None
    # The whole run's deadline (absolute; --deadline), for every source and worker.
    deadline: Deadline = NO_DEADLINE


class Source(ABC):
    kind: str = "?"

    def __init__(self, name: str, options: SourceOptions) -> None:
        self.name = name
        self.options = options

    @abstractmethod
    def load(self) -> Image:
        """Read manifests and configs (not layers); raise SourceError when impossible."""

    def load_all(self) -> list[Image]:
        """Every image the source holds (a ``docker save A B`` archive holds several)."""
        return [self.load()]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files or connections."""

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

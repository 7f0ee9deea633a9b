"""Pick a source from what the user typed.

``oci:PATH[:TAG]``, ``docker-archive:PATH[:REFERENCE|:@N]``, ``docker:IMAGE`` /
``docker-daemon:IMAGE``, ``registry:REF``; a bare existing path is recognised by
its content; anything else is an image reference in a registry. A bare text that is
both an existing path and a valid reference (``app``, ``out/app``) is refused: which
one the user meant cannot be guessed, and guessing the local path would silently
scan whatever the current directory holds under that name.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

from scanner.errors import SourceError, UsageError
from scanner.reference import parse_reference
from scanner.sources.docker_archive import DockerArchiveSource
from scanner.sources.interface import Source, SourceOptions
from scanner.sources.oci_layout import OciLayoutSource

PathSource = Callable[[str, SourceOptions, Path, "str | None"], Source]


def split_path_tag(text: str) -> tuple[Path, str | None]:
    """``PATH[:TAG]``: the whole text when it exists, else the longest existing path before
    a ``:`` and what follows it (a reference such as ``registry.fly.io/app:deployment-01J``
    holds ``/`` and ``:`` itself)."""
    if Path(text).exists() or ":" not in text:
        return Path(text), None
    cut = len(text)
    while (cut := text.rfind(":", 0, cut)) > 0:
        if Path(text[:cut]).exists():
            return Path(text[:cut]), text[cut + 1 :] or None
    return Path(text), None


def sniff(path: Path) -> str:
    """'oci' or 'docker-archive' by content."""
    if path.is_dir():
        if (path / "manifest.json").is_file():
            return "docker-archive"
        if (path / "index.json").is_file():
            return "oci"
        raise SourceError(f"{path}: neither an OCI layout nor a docker save archive")
    names: set[str] = set()
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                names.add(member.name.lstrip("./"))
                if "manifest.json" in names:
                    return "docker-archive"
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SourceError(
            f"{path}: not a directory or an uncompressed tar archive ({exc})"
        ) from None
    if "index.json" in names:
        return "oci"
    raise SourceError(f"{path}: a tar archive, but neither an OCI layout nor a docker save archive")


PATH_SOURCES: dict[str, PathSource] = {
    "oci": OciLayoutSource,
    "docker-archive": DockerArchiveSource,
}


_WHAT = {"oci": "OCI layout", "docker-archive": "docker save archive"}


def is_reference(text: str) -> bool:
    """True when ``text`` parses as an image reference (``app``, ``team/app:v1``)."""
    try:
        parse_reference(text)
    except UsageError:
        return False
    return True


def resolve(text: str, options: SourceOptions) -> Source:
    scheme, sep, rest = text.partition(":")
    if sep and scheme in PATH_SOURCES:
        if not rest:
            raise UsageError(f"{text!r}: {scheme}: needs a path")
        path, tag = split_path_tag(rest)
        if not path.exists():
            raise SourceError(f"{path}: no such file or directory")
        return PATH_SOURCES[scheme](text, options, path, tag)
    if sep and scheme in ("docker", "docker-daemon"):
        from scanner.sources.daemon import DaemonSource

        if not rest:
            raise UsageError(f"{text!r}: {scheme}: needs an image name")
        return DaemonSource(text, options, rest)
    if sep and scheme == "registry":
        text = rest
    if Path(text).exists() and scheme != "registry":
        path = Path(text)
        kind = sniff(path)
        if is_reference(text):
            raise UsageError(
                f"{text!r} is both a local path and an image reference; write "
                f"{kind}:{text} (or ./{text}) to scan the local {_WHAT[kind]}, or "
                f"registry:{text} for the image in a registry"
            )
        return PATH_SOURCES[kind](text, options, path, None)
    from scanner.sources.registry import RegistrySource

    return RegistrySource(text, options)

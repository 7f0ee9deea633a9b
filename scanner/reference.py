"""Image references: parsing and docker-style normalisation.

``[HOST[:PORT]/]PATH[:TAG][@DIGEST]``, with the grammar of the distribution
project's ``reference`` package: the first component is a registry host when it
holds a ``.`` or a ``:`` or is ``localhost``; otherwise the image is on Docker Hub,
where a one-component name lives under ``library/`` (``nginx`` ->
``registry-1.docker.io/library/nginx:latest``, the host docker itself talks to).
Without a tag or digest the tag is ``latest``; with a digest the digest is what is
pulled (a tag next to it is kept for display only).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from scanner.errors import UsageError

DOCKER_HUB = "docker.io"
DOCKER_HUB_REGISTRY = "registry-1.docker.io"  # the API host behind docker.io
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DEFAULT_TAG = "latest"
FLY_REGISTRY = "registry.fly.io"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$")
MAX_NAME = 255


@dataclass(frozen=True)
class Reference:
    """A parsed, normalised image reference."""

    registry: str  # the API host (with port), e.g. "registry-1.docker.io", "127.0.0.1:5000"
    repository: str  # e.g. "library/nginx", "my-app"
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def host(self) -> str:
        """The registry host name without its port (``[::1]`` -> ``::1``)."""
        return host_without_port(self.registry)

    @property
    def is_docker_hub(self) -> bool:
        return self.registry == DOCKER_HUB_REGISTRY

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> Reference:
    """Parse and normalise ``text``; UsageError (naming what is wrong) when it is not one."""
    original = text
    text = text.strip()
    if not text:
        raise UsageError("an empty image reference")
    if "://" in text:
        raise UsageError(
            f"{original!r}: an image reference has no scheme; write HOST/REPOSITORY[:TAG] "
            "(plain HTTP is used for localhost and 127.0.0.0/8, or with --insecure)"
        )
    remainder, digest = text, None
    if "@" in remainder:
        remainder, _, digest = remainder.partition("@")
        if not _DIGEST.match(digest):
            raise UsageError(
                f"{original!r}: {digest!r} is not a digest (expected sha256: and 64 hex digits)"
            )
    tag = None
    last = remainder.rsplit("/", 1)[-1]
    if ":" in last:
        remainder, _, tag = remainder.rpartition(":")
        if not _TAG.match(tag):
            raise UsageError(f"{original!r}: {tag!r} is not a valid tag")
    host, path = split_host(remainder)
    if not path:
        raise UsageError(f"{original!r}: no repository name")
    if host is None or host in DOCKER_HUB_ALIASES:
        host = DOCKER_HUB_REGISTRY
        if "/" not in path:
            path = f"library/{path}"
    elif not _HOST.match(host):
        raise UsageError(f"{original!r}: {host!r} is not a valid registry host")
    for component in path.split("/"):
        if not _COMPONENT.match(component):
            hint = " (repository names are lowercase)" if component.lower() != component else ""
            raise UsageError(
                f"{original!r}: {component!r} is not a valid repository name component{hint}"
            )
    if len(path) > MAX_NAME:
        raise UsageError(f"{original!r}: repository name longer than {MAX_NAME} characters")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry=host, repository=path, tag=tag, digest=digest)


def split_host(name: str) -> tuple[str | None, str]:
    """``HOST/PATH`` -> (HOST, PATH) when the first component is a host, else (None, name)."""
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        return first, rest
    return None, name


def host_without_port(registry: str) -> str:
    if registry.startswith("["):
        return registry[1:].split("]", 1)[0]
    return registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry


def is_local_host(registry: str) -> bool:
    """localhost, 127.0.0.0/8 and ::1: registries reached over plain HTTP without asking.

    Only the name ``localhost`` itself and loopback addresses: ``*.localhost`` names are
    not trusted by name (a resolver may send them anywhere); use --insecure for them."""
    host = host_without_port(registry).lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def registry_aliases(registry: str) -> list[str]:
    """Keys a Docker config may use for this registry, most specific first."""
    keys = [registry, f"https://{registry}", f"http://{registry}"]
    if registry == DOCKER_HUB_REGISTRY:
        keys = [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "registry-1.docker.io",
            "https://index.docker.io/v1",
            "https://registry-1.docker.io",
        ]
    return keys

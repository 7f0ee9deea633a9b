"""Image reference parsing and docker-style normalisation."""

from __future__ import annotations

import pytest

from scanner.errors import UsageError
from scanner.reference import (
    Reference,
    is_local_host,
    parse_reference,
    registry_aliases,
)

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "registry-1.docker.io", "library/nginx", "latest", None),
        ("nginx:1.27", "registry-1.docker.io", "library/nginx", "1.27", None),
        ("bitnami/redis", "registry-1.docker.io", "bitnami/redis", "latest", None),
        ("docker.io/nginx", "registry-1.docker.io", "library/nginx", "latest", None),
        ("index.docker.io/library/nginx:x", "registry-1.docker.io", "library/nginx", "x", None),
        (
            "registry.fly.io/my-app:deployment-01JD4Z8Q0W",
            "registry.fly.io",
            "my-app",
            "deployment-01JD4Z8Q0W",
            None,
        ),
        (f"registry.fly.io/my-app@{DIGEST}", "registry.fly.io", "my-app", None, DIGEST),
        (f"ghcr.io/o/a/b:v1@{DIGEST}", "ghcr.io", "o/a/b", "v1", DIGEST),
        ("127.0.0.1:5000/app/x:1", "127.0.0.1:5000", "app/x", "1", None),
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/app", "localhost:5000", "app", "latest", None),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
        ("quay.io/my.org/app_x__y", "quay.io", "my.org/app_x__y", "latest", None),
    ],
)
def test_parse(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert ref == Reference(registry, repository, tag, digest)


def test_short_name_normalised_like_docker() -> None:
    assert str(parse_reference("nginx")) == "registry-1.docker.io/library/nginx:latest"


def test_digest_is_what_is_pulled() -> None:
    ref = parse_reference(f"ghcr.io/o/a:v1@{DIGEST}")
    assert ref.reference == DIGEST
    assert str(ref) == f"ghcr.io/o/a:v1@{DIGEST}"
    assert parse_reference("ghcr.io/o/a:v1").reference == "v1"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("Nginx", "lowercase"),
        ("host.io/App", "lowercase"),
        ("nginx@sha256:abc", "not a digest"),
        ("nginx:bad tag", "not a valid tag"),
        ("https://registry.fly.io/app", "no scheme"),
        ("host.io/", "no repository"),
        ("host.io/a//b", "not a valid repository name component"),
        ("bad_host.io/a", "not a valid registry host"),
    ],
)
def test_invalid(text: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        parse_reference(text)


@pytest.mark.parametrize(
    ("registry", "local"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.3.4.5", True),
        ("[::1]:5000", True),
        ("registry.fly.io", False),
        ("10.0.0.1:5000", False),
        ("128.0.0.1", False),
    ],
)
def test_local_hosts(registry: str, local: bool) -> None:
    assert is_local_host(registry) is local


def test_docker_hub_config_keys() -> None:
    assert registry_aliases("registry-1.docker.io")[0] == "https://index.docker.io/v1/"
    assert registry_aliases("registry.fly.io")[0] == "registry.fly.io"

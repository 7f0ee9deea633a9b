"""Helpers shared by the registry client and registry/daemon source tests."""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import bcrypt

from fixtures.catalog import build
from fixtures.imagebuilder import Entry, ImageSpec, LayerSpec, write_oci_layout
from scanner.results import ImageResult
from tests.infra.plugin import unique_repo
from tests.infra.registry import Registry

# A Fly.io-looking token whose URL-safe base64 (as flyctl writes it) holds "-" and "_".
FLY_LIKE_TOKEN = "FlyV1 fm2_lJPECAAAAAAAAv??>>lkj,fm2_lJPE??>>zz~~"


def push_fixture(registry: Registry, name: str, work: Path, tag: str = "v1") -> tuple[str, Path]:
    """Write catalog fixture ``name`` under ``work``, push it to a new repository.

    Returns (reference, layout path)."""
    path = build(name, work / f"fixtures-{uuid.uuid4().hex[:8]}")
    repo = unique_repo("app")
    registry.push_oci_layout(path, repo, tag)
    return f"{registry.url}/{repo}:{tag}", path


def unique_spec(spec: ImageSpec) -> ImageSpec:
    """``spec`` with a marker file in every layer, so that no other test shares its blobs
    (blobs are stored once per registry: corrupting one must not break other tests)."""
    marker = uuid.uuid4().hex
    steps: list[Any] = []
    for step in spec.steps:
        if isinstance(step, LayerSpec):
            entries = [*step.entries, Entry(f"marker-{marker}", content=marker.encode())]
            step = dataclasses.replace(step, entries=entries)
        steps.append(step)
    return dataclasses.replace(spec, steps=steps)


def push_spec(
    registry: Registry, spec: ImageSpec, work: Path, tag: str = "v1"
) -> tuple[str, Path, str]:
    """Write ``spec`` as an OCI layout and push it; returns (reference, layout, repository)."""
    path = write_oci_layout(work / f"image-{uuid.uuid4().hex[:8]}", [spec])
    repo = unique_repo("app")
    registry.push_oci_layout(path, repo, tag)
    return f"{registry.url}/{repo}:{tag}", path, repo


def flyctl_auth(user: str, password: str) -> str:
    """``auths.<host>.auth`` as `fly auth docker` writes it: URL-safe base64."""
    return base64.urlsafe_b64encode(f"{user}:{password}".encode()).decode()


def write_docker_config(directory: Path, auths: dict[str, dict[str, str]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"auths": auths}, indent=1))
    return directory


def add_basic_user(registry: Registry, user: str, password: str) -> None:
    """Add a user to the htpasswd file of a registry in basic mode (2.8 re-reads it)."""
    assert registry.mode == "basic"
    path = registry.work_dir / "etc" / "htpasswd"
    lines = [line for line in path.read_text().splitlines() if not line.startswith(f"{user}:")]
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    lines.append(f"{user}:{hashed}")
    path.write_text("\n".join(lines) + "\n")
    registry.users[user] = password


def findings_view(result: ImageResult) -> list[tuple[Any, ...]]:
    """What must be identical whatever the source: each finding's identity and place."""
    return sorted(
        (
            f.platform,
            f.rule_id,
            f.fingerprint,
            f.status.state.value,
            f.status.changed_in_layer,
            f.location.layer_index,
            f.location.layer_digest,
            f.location.diff_id,
            f.location.path,
            f.location.created_by,
        )
        for f in result.findings
    )


def layers_view(result: ImageResult, *, with_digests: bool = True) -> list[tuple[Any, ...]]:
    return sorted(
        (
            p.platform,
            layer.index,
            layer.digest if with_digests else None,
            layer.diff_id,
            layer.entries,
            layer.created_by,
            layer.error,
        )
        for p in result.platforms
        for layer in p.layers
    )

"""The engine on its own: ``Scanner(options).scan(source)`` -> ImageResult (no CLI)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import fixtures.catalog as catalog
from fixtures import fakesecrets as fs
from fixtures.imagebuilder import write_oci_layout
from scanner.deadline import Deadline
from scanner.findings import FileState, LocationKind
from scanner.scan import Scanner, ScanOptions
from scanner.signatures import SignatureSet
from scanner.sources.interface import SourceOptions


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_oci_layout(
        tmp_path_factory.mktemp("engine") / "deleted", [catalog.deleted_secret_image()]
    )


def options(**kw: object) -> ScanOptions:
    base: dict[str, object] = {"use_cache": False, "jobs": 1}
    base.update(kw)
    return ScanOptions(**base)  # type: ignore[arg-type]


def test_findings_are_placed_per_layer_with_their_status(layout: Path) -> None:
    with Scanner(options()) as scanner:
        result = scanner.scan(f"oci:{layout}")
    assert result.problems == []
    assert result.source_kind == "oci"
    [platform] = result.platforms
    assert [layer.index for layer in platform.layers] == [0, 1, 2, 3]
    files = {
        (f.location.path, f.location.layer_index, f.category.value): f
        for f in result.findings
        if f.location.kind is LocationKind.FILE
    }
    key = files[("app/secrets/id_rsa", 1, "secret")]
    env = files[("app/deploy.env", 1, "secret")]
    assert key.location.layer_index == 1 and key.status.state is FileState.DELETED
    assert key.status.changed_in_layer == 2
    assert env.status.state is FileState.OVERWRITTEN and env.status.changed_in_layer == 3
    assert all(f.image == result.name and f.platform == "linux/amd64" for f in result.findings)
    assert result.rules_digest == SignatureSet.load(()).digest
    counted = sum(layer.findings for layer in platform.layers)
    assert counted == sum(1 for f in result.findings if f.location.kind is LocationKind.FILE)


def test_secrets_only_with_reveal(layout: Path) -> None:
    token = fs.github_pat()
    with Scanner(options()) as scanner:
        hidden = scanner.scan(f"oci:{layout}")
    with Scanner(options(reveal=True)) as scanner:
        shown = scanner.scan(f"oci:{layout}")
    assert all(f.secret is None for f in hidden.findings)
    assert token not in repr(hidden)
    assert any(f.secret == token for f in shown.findings)
    fingerprints = sorted(f.fingerprint for f in hidden.findings)
    assert fingerprints == sorted(f.fingerprint for f in shown.findings)


def test_a_source_that_cannot_be_read_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    with Scanner(options()) as scanner:
        report = scanner.scan_all([f"oci:{tmp_path / 'missing'}", f"oci:{tmp_path}"])
    assert len(report.images) == 2 and not report.complete
    assert all(image.problems and not image.findings for image in report.images)


def test_an_expired_deadline_scans_nothing_and_says_so(layout: Path) -> None:
    past = Deadline(time.time() - 1, 1.0)
    with Scanner(options(source=SourceOptions(deadline=past))) as scanner:
        result = scanner.scan(f"oci:{layout}")
    assert result.findings == [] and result.problems
    assert "not scanned" in result.problems[0].message


def test_the_layer_cache_serves_a_second_scan(layout: Path, tmp_path: Path) -> None:
    opts = options(use_cache=True, cache_dir=tmp_path / "cache")
    with Scanner(opts) as scanner:
        first = scanner.scan(f"oci:{layout}")
    with Scanner(opts) as scanner:
        second = scanner.scan(f"oci:{layout}")
    assert not any(layer.cached for layer in first.platforms[0].layers)
    assert all(layer.cached for layer in second.platforms[0].layers)
    assert sorted(f.fingerprint for f in first.findings) == sorted(
        f.fingerprint for f in second.findings
    )

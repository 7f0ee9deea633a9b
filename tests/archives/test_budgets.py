"""Archive budgets per layer and per image, end to end through the scanner and CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fixtures import fakesecrets as fs
from fixtures.imagebuilder import Entry, ImageSpec, LayerSpec, write_oci_layout
from scanner.archives import ArchiveLimits
from scanner.gate import EXIT_INCOMPLETE
from tests.e2e.helpers import scan

MB = 1 << 20
KEY = fs.aws_access_key_id("budget")


def bombs_layer(count: int, size: int, secret_last: bool, prefix: str = "srv") -> LayerSpec:
    """``count`` small gzip bombs; the last ends with an AWS key (Huffman-coded: not
    visible in the compressed bytes)."""
    entries = [Entry(prefix, "dir")]
    for i in range(count):
        body = bytes(size)
        if secret_last and i == count - 1:
            body += f"\naws_access_key_id = {KEY}\n".encode()
        entries.append(Entry(f"{prefix}/b{i:03d}.log.gz", content=gzip.compress(body, mtime=0)))
    return LayerSpec(entries, created_by=f"COPY {prefix}/ /{prefix}/")


def image(tmp_path: Path, *layers: LayerSpec) -> Path:
    return write_oci_layout(tmp_path / "img", [ImageSpec(list(layers))])


def test_many_small_bombs_in_a_layer_end_incomplete_not_silent(tmp_path: Path) -> None:
    path = image(tmp_path, bombs_layer(40, 256 << 10, secret_last=True))
    limits = ArchiveLimits(layer_budget=4 * MB)
    result = scan(f"oci:{path}", archive_limits=limits, jobs=1)
    assert not [f for f in result.findings if f.rule_id == "aws-access-key-id"]
    assert result.problems, "the 40th bomb was not opened: the scan must be incomplete"
    messages = [p.message for p in result.problems]
    assert any("archive byte budget of 4 MB per layer" in m for m in messages)
    assert all(p.layer_index == 0 for p in result.problems)
    assert not [f for f in result.findings if f.rule_id == "archive-not-fully-scanned"]


def test_with_default_budgets_the_last_bomb_is_opened_and_the_key_found(tmp_path: Path) -> None:
    path = image(tmp_path, bombs_layer(40, 256 << 10, secret_last=True))
    result = scan(f"oci:{path}", jobs=1)
    assert result.problems == []
    (found,) = [f for f in result.findings if f.rule_id == "aws-access-key-id"]
    assert found.location.path == "srv/b039.log.gz" and found.location.inner_path == "b039.log"


@pytest.mark.parametrize("jobs", [1, 2])
def test_image_budget_is_shared_by_layers_and_worker_processes(tmp_path: Path, jobs: int) -> None:
    path = image(
        tmp_path,
        bombs_layer(6, 512 << 10, secret_last=False, prefix="a"),
        bombs_layer(6, 512 << 10, secret_last=False, prefix="b"),
        bombs_layer(6, 512 << 10, secret_last=False, prefix="c"),
    )
    limits = ArchiveLimits(image_budget=5 * MB)
    result = scan(f"oci:{path}", archive_limits=limits, jobs=jobs)
    messages = [p.message for p in result.problems]
    assert messages and all("per image" in m for m in messages), messages
    # each layer alone fits: with only a layer budget, nothing is cut
    assert scan(f"oci:{path}", archive_limits=ArchiveLimits(layer_budget=4 * MB)).problems == []


def test_cli_archive_limit_exits_3_and_names_the_file(tmp_path: Path) -> None:
    from scanner.cli import main

    path = image(tmp_path, bombs_layer(10, 256 << 10, secret_last=True))
    args = ["scan", f"oci:{path}", "--format", "json", "--no-cache", "-q"]
    result = CliRunner().invoke(main, [*args, "--archive-limit", "layer-budget=1M"])
    assert result.exit_code == EXIT_INCOMPLETE, result.output
    doc = json.loads(result.stdout)
    problems = [p["message"] for image in doc["images"] for p in image["problems"]]
    assert any("/srv/b" in m and "per layer" in m for m in problems)
    bad = CliRunner().invoke(main, [*args, "--archive-limit", "layer-bugdet=1M"])
    assert bad.exit_code == 2 and "unknown archive limit" in bad.output

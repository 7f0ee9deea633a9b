"""One image full of hostile archives, scanned through the CLI: a report, exit 3, every
limit named, what could be opened still found, what nobody can open an info finding."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

from click.testing import CliRunner

from fixtures import fakesecrets as fs
from fixtures.imagebuilder import Entry, ImageSpec, LayerSpec, write_oci_layout
from scanner.cli import main
from scanner.gate import EXIT_INCOMPLETE
from tests.archives.helpers import COMPRESS, seven_zip_bytes, tar_bytes, zip_bytes
from tests.archives.test_hostile import stored_zip

TOKEN = fs.github_pat("hostile-image")


def hostile_layer() -> LayerSpec:
    encrypted = bytearray(zip_bytes({"s.txt": b"x"}, zipfile.ZIP_STORED))
    encrypted[6] |= 1
    encrypted[encrypted.find(b"PK\x01\x02") + 8] |= 1
    files = {
        "srv/bomb.xz": COMPRESS["xz"](bytes(8 << 20)),
        "srv/bomb.7z": seven_zip_bytes({"zeros": bytes(8 << 20)}),
        "srv/many.zip": stored_zip(5000, b"x"),
        "srv/locked.zip": bytes(encrypted),
        "srv/tail.tar": tar_bytes({"a": b"1"}) + f"GITHUB_TOKEN={TOKEN}\n".encode(),
    }
    entries = [Entry("srv", "dir")] + [Entry(p, content=c) for p, c in files.items()]
    return LayerSpec(entries, created_by="COPY srv/ /srv/")


def test_hostile_archives_end_in_a_report_with_exit_3(tmp_path: Path) -> None:
    path = write_oci_layout(tmp_path / "img", [ImageSpec([hostile_layer()])])
    args = ["scan", f"oci:{path}", "--format", "json", "--no-cache", "-q", "-j", "1"]
    limits = ["member-cap=1M", "max-members=1000"]
    started = time.monotonic()
    result = CliRunner().invoke(main, [*args, *[f"--archive-limit={x}" for x in limits]])
    assert time.monotonic() - started < 20
    assert result.exit_code == EXIT_INCOMPLETE, result.output
    assert "Traceback" not in result.output
    doc = json.loads(result.stdout)
    problems = [p["message"] for image in doc["images"] for p in image["problems"]]
    assert any("/srv/bomb.xz!bomb: decompresses to more than" in m for m in problems)
    assert any("/srv/bomb.7z!zeros: larger than the per-member cap" in m for m in problems)
    assert any("/srv/many.zip: zip with 5000 entries" in m for m in problems)
    findings = doc["images"][0]["findings"]
    info = [f for f in findings if f["rule_id"] == "archive-not-fully-scanned"]
    assert [f["location"]["inner_path"] for f in info] == ["s.txt"]
    tail = [f for f in findings if f["rule_id"] == "github-personal-access-token"]
    assert [f["location"]["path"] for f in tail] == ["srv/tail.tar"]
    assert TOKEN not in result.stdout  # redacted

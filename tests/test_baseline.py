"""Baselines: write the fingerprints of a scan, report only new findings later."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from scanner.baseline import BASELINE_REASON, apply, load, write
from scanner.cli import main
from scanner.errors import ConfigError
from scanner.results import ImageResult, Report
from tests.test_ignore import FINDINGS


def test_roundtrip_and_apply(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    assert write(path, FINDINGS[:2], ["img"]) == 2
    doc = json.loads(path.read_text())
    assert doc["layerleak_baseline"] == 1 and doc["sources"] == ["img"]
    assert "sha256" not in path.read_text()  # fingerprints only, no secret hashes
    rep = Report([ImageResult("img", "oci", findings=list(FINDINGS))])
    assert apply(rep, load(path)) == 2
    assert rep.findings == FINDINGS[2:]
    assert rep.suppressed == {BASELINE_REASON: 2}


def test_a_json_report_is_accepted_as_baseline(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"images": [{"findings": [f.to_dict() for f in FINDINGS[:1]]}]}))
    assert load(path).fingerprints == {FINDINGS[0].fingerprint}


@pytest.mark.parametrize(
    "text", ["[]", "{}", "not json", '{"layerleak_baseline": 1, "findings": [{}]}']
)
def test_bad_baselines_are_config_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "b.json"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load(path)


def test_cli_baseline_then_scan_reports_only_new(images: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "baseline.json"
    demo = str(images["demo"])
    res = runner.invoke(main, ["baseline", "--no-cache", demo, "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["findings"]
    res = runner.invoke(
        main, ["scan", "--no-cache", "--format", "json", "-q", "--baseline", str(out), demo]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["summary"]["total"] == 0
    assert doc["suppressed"][BASELINE_REASON] > 0
    # a different image's findings are new
    res = runner.invoke(
        main,
        ["scan", "--no-cache", "--format", "json", "-q", "--baseline", str(out),
         str(images["deleted_secret"])],
    )  # fmt: skip
    assert res.exit_code == 1
    assert json.loads(res.stdout)["summary"]["total"] > 0


def test_cli_ignore_file_and_expiry_warning(images: dict[str, Path], tmp_path: Path) -> None:
    ignore = tmp_path / "ignore.toml"
    ignore.write_text(
        '[[ignore]]\npath = "/app/.env"\nreason = "rotated 2024-05"\n'
        '[[ignore]]\nrule = "openssh-private-key"\nreason = "old"\nexpires = 2000-01-01\n'
    )
    res = CliRunner().invoke(
        main,
        ["scan", "--no-cache", "--format", "json", "--ignore-file", str(ignore),
         str(images["demo"])],
    )  # fmt: skip
    doc = json.loads(res.stdout)
    assert doc["suppressed"]["rotated 2024-05"] >= 3
    paths = {f["location"]["path"] for i in doc["images"] for f in i["findings"]}
    assert "app/.env" not in paths and "app/config/id_ed25519" in paths
    assert "expired on 2000-01-01" in res.stderr

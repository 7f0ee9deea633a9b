"""The command line: formats, exit codes, --output, --reveal, --dockerfile."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from fixtures.catalog import PLANTS
from scanner.cli import main


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_demo_exits_1_with_findings_as_json(images: dict[str, Path]) -> None:
    code, out, err = run("scan", "--format", "json", str(images["demo"]))
    assert code == 1
    doc = json.loads(out)
    assert doc["schema_version"] == 1 and doc["complete"] is True
    image = doc["images"][0]
    assert image["platforms"][0]["layers"][1]["created_by"]
    finding = next(f for f in image["findings"] if f["location"]["path"] == "app/.env")
    assert finding["status"]["state"] == "deleted"
    assert finding["status"]["changed_in_layer"] == 2
    assert "secret" not in finding
    assert len(finding["fingerprint"]) == 32
    assert "layerleak: 1 image(s)" in err


def test_secrets_never_printed_without_reveal(images: dict[str, Path]) -> None:
    for fmt in ("json", "table"):
        _, out, err = run("scan", "--format", fmt, str(images["demo"]))
        for plant in PLANTS["demo"]:
            token = plant.value.splitlines()[0] if "PRIVATE KEY" not in plant.value else None
            if token and len(token) > 16:
                assert token not in out + err, (fmt, plant.kind)


def test_reveal_prints_secrets(images: dict[str, Path]) -> None:
    _, out, _ = run("scan", "--format", "json", "--reveal", str(images["demo"]))
    assert any(f.get("secret") for f in json.loads(out)["images"][0]["findings"])


def test_table_groups_by_layer(images: dict[str, Path]) -> None:
    code, out, _ = run("scan", "--format", "table", str(images["deleted_secret"]))
    assert code == 1
    assert "Layer 1" in out and "/app/secrets/id_rsa" in out
    assert "deleted in layer 2; recoverable from layer 1" in out


def test_clean_image_exits_0(images: dict[str, Path]) -> None:
    code, _, _ = run("scan", "--format", "json", str(images["clean"]))
    assert code == 0


def test_fail_on(images: dict[str, Path], tmp_path: Path) -> None:
    # The clean image has no finding at all, not even an informational one.
    assert run("scan", "--format", "json", "--fail-on", "info", str(images["clean"]))[0] == 0
    # An unpinned FROM with no tag is medium: below high, at medium.
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM debian\n")
    args = ["scan", "--format", "json", "--dockerfile", str(dockerfile), str(images["clean"])]
    assert run(*args[:1], "--fail-on", "high", *args[1:])[0] == 0
    assert run(*args[:1], "--fail-on", "medium", *args[1:])[0] == 1
    # The deleted RSA key is critical.
    assert (
        run("scan", "--format", "json", "--fail-on", "critical", str(images["deleted_secret"]))[0]
        == 1
    )


def test_incomplete_scan_exits_3(images: dict[str, Path]) -> None:
    # --no-cache: the truncated blob keeps the digest of a layer other tests cached.
    code, out, err = run(
        "scan", "--format", "json", "--no-cache", str(images["broken_layer_truncated"])
    )
    assert code == 3
    assert json.loads(out)["complete"] is False
    assert "layer 1" in err and "Traceback" not in err


def test_missing_source_exits_3(tmp_path: Path) -> None:
    code, _, err = run("scan", "--format", "json", f"oci:{tmp_path / 'nope'}")
    assert code == 3 and "no such file" in err


def test_usage_errors_exit_2(images: dict[str, Path]) -> None:
    assert run("scan")[0] == 2
    assert run("scan", "--fail-on", "urgent", str(images["clean"]))[0] == 2
    assert run("scan", "--platform", "linux", str(images["clean"]))[0] == 2


def test_output_file(images: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    code, out, _ = run("scan", "-o", str(target), str(images["deleted_secret"]))
    assert code == 1 and out == ""
    assert json.loads(target.read_text())["images"][0]["findings"]


def test_dockerfile_pins(images: dict[str, Path], tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM golang:1.22 AS build\nFROM debian\nCOPY --from=build /x /x\n")
    _, out, _ = run(
        "scan", "--format", "json", "--dockerfile", str(dockerfile), str(images["clean"])
    )
    pins = [
        f
        for f in json.loads(out)["images"][0]["findings"]
        if f["rule_id"] == "unpinned-base-image" and f["location"]["kind"] == "dockerfile"
    ]
    assert sorted(f["location"]["line"] for f in pins) == [1, 2]
    assert any("no tag" in f["title"] for f in pins)


def test_oci_tag_selection(images: dict[str, Path]) -> None:
    code, _, err = run("scan", "--format", "json", f"oci:{images['demo']}:nope")
    assert code == 3 and "no manifest tagged 'nope'" in err
    assert run("scan", "--format", "json", f"oci:{images['demo']}:latest")[0] == 1

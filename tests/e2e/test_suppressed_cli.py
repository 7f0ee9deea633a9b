"""``--show-suppressed`` end to end: noise found in an image is in JSON, counted in the
table's summary, listed only on request, and never fails the gate."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from fixtures import fakesecrets as fs
from fixtures.imagebuilder import Entry, ImageSpec, LayerSpec, write_oci_layout
from scanner.cli import main


def noisy_image(tmp_path: Path) -> Path:
    real = fs.github_pat("suppressed-cli")
    wrong = real[:-1] + ("A" if real[-1] != "A" else "B")  # checksum no longer matches
    content = (
        f"GITHUB_TOKEN={wrong}\n"
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
        "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4\n"
        "<<< pasted from chat, cut here >>>\n-----END RSA PRIVATE KEY-----\n"
    ).encode()
    spec = ImageSpec(
        steps=[LayerSpec([Entry("app/notes.txt", content=content)], created_by="COPY . /app")],
        user="app",
        healthcheck=("CMD", "true"),
    )
    return write_oci_layout(tmp_path / "noisy", [spec])


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["scan", "--no-cache", *args])
    return result.exit_code, result.stdout


def test_noise_is_kept_counted_and_listed_on_request(tmp_path: Path) -> None:
    image = str(noisy_image(tmp_path))
    code, out = run("--format", "json", "--fail-on", "info", image)
    doc = json.loads(out)
    by_rule = {f["rule_id"]: f for f in doc["images"][0]["findings"]}
    assert by_rule["github-personal-access-token"]["suppressed"] == "noise: checksum mismatch"
    assert by_rule["github-personal-access-token"]["severity"] == "info"
    assert by_rule["aws-access-key-id"]["suppressed"] == "noise: documented example"
    unparseable = by_rule["private-key-block-unparseable"]
    assert (unparseable["severity"], unparseable["suppressed"]) == ("medium", None)
    assert doc["suppressed"]["noise: checksum mismatch"] == 1
    # the only finding that gates is the unparseable key block, even at --fail-on info
    assert code == 1

    _, table = run("--format", "table", image)
    assert "github-personal-access-token" not in table
    assert "noise: checksum mismatch" in table.splitlines()[-1]
    _, shown = run("--format", "table", "--show-suppressed", image)
    assert "github-personal-access-token" in shown
    assert "(noise: checksum mismatch)" in shown

    code, _ = run("--format", "json", "--fail-on", "high", image)
    assert code == 0

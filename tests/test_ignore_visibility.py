"""What the current directory holds is visible: ignore files read by default are named
with their counts, an entry that hides everything is refused, and a name that is both
a local path and an image reference is not silently read from the disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from scanner.cli import main
from scanner.errors import ConfigError
from scanner.ignore import load


def _scan(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["scan", "--no-cache", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    "entry",
    [
        'rule = "*"',
        'rule = "**"',
        'path = "**"',
        'path = "/**"',
        'path = "*"',
        'rule = "*"\npath = "/*"',
        'rule = "?*"',
        'rule = "*"\npath = "**"',
    ],
)
def test_an_entry_that_suppresses_everything_is_refused(tmp_path: Path, entry: str) -> None:
    path = tmp_path / ".layerleakignore"
    path.write_text(f'[[ignore]]\n{entry}\nreason = "too noisy"\n')
    with pytest.raises(ConfigError, match="every finding of every rule everywhere"):
        load([path])


@pytest.mark.parametrize(
    "entry",
    [
        'rule = "generic-*"',
        'path = "/app/tests/**"',
        'rule = "*"\npath = "/app/tests/**"',
        'fingerprint = "0123456789abcdef0123456789abcdef"\nrule = "*"',
    ],
)
def test_narrower_entries_are_accepted(tmp_path: Path, entry: str) -> None:
    path = tmp_path / ".layerleakignore"
    path.write_text(f'[[ignore]]\n{entry}\nreason = "accepted"\n')
    assert len(load([path]).entries) == 1


def test_refused_default_ignore_file_is_a_usage_error(
    tmp_path: Path, images: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path(".layerleakignore").write_text('[[ignore]]\npath = "**"\nreason = "x"\n')
    code, _out, err = _scan("--format", "json", str(images["deleted_secret"]))
    assert code == 2
    assert ".layerleakignore entry 1" in err


def test_summary_names_every_ignore_file_and_its_count(
    tmp_path: Path, images: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = str(images["deleted_secret"])
    _, out, _ = _scan("--format", "json", source)
    rules = sorted({f["rule_id"] for f in json.loads(out)["images"][0]["findings"]})
    hidden = rules[0]
    monkeypatch.chdir(tmp_path)
    Path(".layerleakignore").write_text(f'[[ignore]]\nrule = "{hidden}"\nreason = "reviewed"\n')
    Path("layerleak.toml").write_text('[[ignore]]\nrule = "no-such-rule"\nreason = "x"\n')
    _code, out, err = _scan("--format", "json", source)
    doc = json.loads(out)
    n = doc["suppressed"]["reviewed"]
    assert n >= 1
    ignore_file = str(tmp_path / ".layerleakignore")
    config_file = str(tmp_path / "layerleak.toml")
    assert doc["summary"]["ignore_files"] == {ignore_file: n, config_file: 0}
    summary = err.strip().splitlines()[-1]
    assert f"ignore files: {ignore_file} ({n} suppressed), {config_file} (0 suppressed)" in summary


def test_no_ignore_file_no_note(
    images: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _, _, err = _scan("--format", "json", str(images["deleted_secret"]))
    assert "ignore files" not in err


def test_name_that_is_a_path_and_a_reference_is_refused(
    tmp_path: Path, images: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(images["deleted_secret"], tmp_path / "myapp")
    code, out, _err = _scan("--format", "json", "myapp")
    assert code == 3
    doc = json.loads(out)
    assert not doc["images"][0]["findings"]  # the local directory was not scanned
    message = doc["images"][0]["problems"][0]["message"]
    assert "both a local path and an image reference" in message
    assert "oci:myapp" in message and "registry:myapp" in message
    for spelled in ("oci:myapp", "./myapp"):
        code, out, _ = _scan("--format", "json", spelled)
        assert json.loads(out)["images"][0]["findings"], spelled


def test_path_that_is_no_reference_is_read_as_before(images: dict[str, Path]) -> None:
    # absolute paths (and names with capitals, "./"...) are not references
    _, out, _ = _scan("--format", "json", str(images["deleted_secret"]))
    assert json.loads(out)["images"][0]["findings"]

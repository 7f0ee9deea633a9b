"""The ignore file: entries by fingerprint, rule or path glob, reasons, expiry."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from scanner.errors import ConfigError
from scanner.findings import Category, Finding, Location, LocationKind, Severity
from scanner.ignore import apply, default_files, load
from scanner.results import ImageResult, Report

TODAY = dt.date(2025, 6, 1)


def finding(rule: str, path: str | None, inner: str | None = None, h: str = "x") -> Finding:
    kind = LocationKind.FILE if path is not None else LocationKind.CONFIG
    return Finding(
        rule_id=rule,
        title=rule,
        severity=Severity.HIGH,
        category=Category.SECRET,
        location=Location(kind, layer_index=0, path=path, inner_path=inner, field="config.Env[0]"),
        secret_hash=f"sha256:{h}",
    )


FINDINGS = [
    finding("aws-access-key-id", "app/.env"),
    finding("generic-password", "app/tests/fixtures/db.py"),
    finding("postgres-connection-url", "opt/app/app.jar", "BOOT-INF/classes/a.properties"),
    finding("github-personal-access-token", None),
]


def report() -> Report:
    return Report([ImageResult("img", "oci", findings=list(FINDINGS))])


def write(tmp_path: Path, text: str, name: str = ".layerleakignore") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_entries_by_fingerprint_rule_and_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[[ignore]]
fingerprint = "{FINDINGS[0].fingerprint}"
reason = "rotated"

[[ignore]]
rule = "generic-*"
path = "/app/tests/**"
reason = "test fixtures"

[[ignore]]
path = "opt/app/app.jar!BOOT-INF/*"
reason = "local dev database"
""",
    )
    rep = report()
    assert apply(rep, load([path]), TODAY) == []
    assert [f.rule_id for f in rep.findings] == ["github-personal-access-token"]
    assert rep.suppressed == {"rotated": 1, "test fixtures": 1, "local dev database": 1}


def test_all_fields_of_an_entry_must_match(tmp_path: Path) -> None:
    path = write(tmp_path, '[[ignore]]\nrule = "aws-*"\npath = "/srv/*"\nreason = "r"\n')
    rep = report()
    apply(rep, load([path]), TODAY)
    assert len(rep.findings) == 4 and not rep.suppressed


def test_expired_entry_stops_applying_and_warns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[ignore]]\nrule = "aws-access-key-id"\nreason = "until rotation"\nexpires = 2025-05-31\n'
        '[[ignore]]\nrule = "generic-password"\nreason = "later"\nexpires = "2025-06-01"\n',
    )
    rep = report()
    warnings = apply(rep, load([path]), TODAY)
    assert len(warnings) == 1 and "2025-05-31" in warnings[0] and "until rotation" in warnings[0]
    assert "aws-access-key-id" in {f.rule_id for f in rep.findings}
    assert rep.suppressed == {"later": 1}  # valid through its expiry day


def test_layerleak_toml_ignore_tables(tmp_path: Path) -> None:
    write(tmp_path, '[tool]\nx = 1\n[[ignore]]\nrule = "jwt"\nreason = "r"\n', "layerleak.toml")
    files = default_files(tmp_path)
    assert [p.name for p in files] == ["layerleak.toml"]
    assert load(files).entries[0].rule == "jwt"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[ignore]]\nrule = "x"\n', "'reason' is required"),
        ('[[ignore]]\nreason = "r"\n', "at least one of"),
        ('[[ignore]]\nrule = "x"\nreason = "r"\nsevrity = "low"\n', "unknown key"),
        ('[[ignore]]\nrule = "x"\nreason = "r"\nexpires = "soon"\n', "'expires' must be a date"),
        ("ignore = 3\n", "array of tables"),
        ("[[ignore]\n", "not valid TOML"),
    ],
)
def test_malformed_files_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load([write(tmp_path, text)])

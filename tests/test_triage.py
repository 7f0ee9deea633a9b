"""Triage order: ignore file, then baseline, then verification (scanner.triage)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from scanner.baseline import BASELINE_REASON
from scanner.errors import LayerleakError
from scanner.results import Report
from scanner.triage import Triage
from tests.report import config_finding, file_finding, image_result, report

IGNORED = file_finding("app/tests/fixture.env", secret="ghp_" + "T" * 36, reveal=True)
BASELINED = file_finding("app/old.env", secret="ghp_" + "B" * 36, reveal=True)
FRESH = file_finding("app/new.env", reveal=True)


def make_report() -> Report:
    return report(image_result(findings=[IGNORED, BASELINED, FRESH, config_finding()]))


def write_ignore(tmp: Path, body: str, name: str = ".layerleakignore") -> Path:
    path = tmp / name
    path.write_text(body)
    return path


def write_baseline(tmp: Path, *fingerprints: str) -> Path:
    path = tmp / "baseline.json"
    path.write_text(
        json.dumps(
            {"layerleak_baseline": 1, "findings": [{"fingerprint": f} for f in fingerprints]}
        )
    )
    return path


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Records what verification saw, instead of calling providers."""
    calls: list[dict[str, Any]] = []

    def fake(rep: Report, *, keep_secrets: bool = False, **_: Any) -> Counter[str]:
        calls.append(
            {"paths": [f.location.path for f in rep.findings], "keep_secrets": keep_secrets}
        )
        return Counter()

    monkeypatch.setattr("scanner.verify.verify_report", fake)  # imported by apply()
    return calls


def test_ignore_then_baseline_then_verify(tmp_path: Path, verified: list[dict[str, Any]]) -> None:
    ignore = write_ignore(
        tmp_path, '[[ignore]]\npath = "/app/tests/**"\nreason = "test fixtures"\n'
    )
    # the baseline also holds the ignored finding: the ignore file wins (it comes first)
    baseline = write_baseline(tmp_path, IGNORED.fingerprint, BASELINED.fingerprint)
    triage = Triage.load([ignore], baseline, verify=True)
    rep = make_report()
    assert triage.apply(rep, reveal=False) == []
    assert rep.suppressed == Counter({"test fixtures": 1, BASELINE_REASON: 1})
    assert [f.location.path for f in rep.findings] == ["app/new.env", None]
    assert verified == [{"paths": ["app/new.env", None], "keep_secrets": False}]
    assert rep.reveal is False


def test_verify_keeps_secrets_only_with_reveal(verified: list[dict[str, Any]]) -> None:
    triage = Triage.load([], None, verify=True)
    assert triage.scan_reveal(False) is True  # --verify needs the raw secrets
    rep = make_report()
    triage.apply(rep, reveal=True)
    assert verified[-1]["keep_secrets"] is True and rep.reveal is True


def test_without_verify_nothing_is_called(
    tmp_path: Path, verified: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ignore file here
    triage = Triage.load()
    assert triage.scan_reveal(False) is False and triage.scan_reveal(True) is True
    rep = make_report()
    triage.apply(rep, reveal=False)
    assert verified == [] and len(rep.findings) == 4 and not rep.suppressed


def test_default_ignore_file_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_ignore(tmp_path, f'[[ignore]]\nfingerprint = "{FRESH.fingerprint}"\nreason = "rotated"\n')
    monkeypatch.chdir(tmp_path)
    rep = make_report()
    Triage.load().apply(rep, reveal=False)
    assert rep.suppressed == Counter({"rotated": 1})


def test_expired_entry_warns_and_does_not_apply(tmp_path: Path) -> None:
    ignore = write_ignore(
        tmp_path, '[[ignore]]\nrule = "github-pat"\nreason = "old"\nexpires = 2001-01-01\n'
    )
    rep = make_report()
    warnings = Triage.load([ignore]).apply(rep, reveal=False)
    assert len(warnings) == 1 and "expired on 2001-01-01" in warnings[0]
    assert len(rep.findings) == 4


@pytest.mark.parametrize(
    "body", ["[[ignore]]\nrule = 'x'\n", "not toml [[", "[[ignore]]\nreason = 'no selector'\n"]
)
def test_bad_ignore_file_is_an_error(tmp_path: Path, body: str) -> None:
    with pytest.raises(LayerleakError):
        Triage.load([write_ignore(tmp_path, body, "bad.toml")])


def test_bad_baseline_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text("[1, 2")
    with pytest.raises(LayerleakError):
        Triage.load([], path)

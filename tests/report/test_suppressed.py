"""Noise kept, not dropped: suppressed ``info`` findings in every format, the summary
and the gate (issue: nothing found is silently dropped)."""

from __future__ import annotations

import json
from dataclasses import replace

from scanner.detection import Detection
from scanner.findings import Finding, Location, LocationKind, Severity
from scanner.gate import Gate
from scanner.report.json_format import JsonFormatter
from scanner.report.markdown import MarkdownFormatter
from scanner.report.sarif import SarifFormatter
from scanner.report.table import TableFormatter
from scanner.signatures import SignatureSet
from tests.report import file_finding, image_result, report

DETECTION = Detection(SignatureSet.builtin())
# a classic GitHub token whose checksum does not match: kept as noise
BAD_CHECKSUM = "GITHUB_TOKEN=ghp_sKJfLXy8M8P8Oce2QlvGzv5po6uo5q2RQmWy"


def placed(text: str) -> list[Finding]:
    location = Location(kind=LocationKind.FILE, layer_index=1, path="app/.env", line=1)
    return [
        DETECTION.finding(m, location).placed("registry.example/app:1", "linux/amd64")
        for m in DETECTION.scan_text(text)
    ]


def noisy_report() -> tuple[Finding, Finding]:
    [noise] = placed(BAD_CHECKSUM)
    real = file_finding(severity=Severity.CRITICAL)
    return noise, real


def test_noise_becomes_a_suppressed_info_finding() -> None:
    [finding] = placed(BAD_CHECKSUM)
    assert finding.severity is Severity.INFO
    assert finding.suppressed == "noise: checksum mismatch"
    assert finding.noise == "checksum mismatch"
    [placeholder] = placed("DATABASE_URL=postgres://app:password@localhost/app")
    assert placeholder.suppressed == "noise: placeholder"
    [example] = placed("aws_access_key_id = AKIAIOSFODNN7EXAMPLE")
    assert example.suppressed == "noise: documented example"


def test_real_findings_are_not_suppressed() -> None:
    [finding] = placed("GITHUB_TOKEN=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")
    assert finding.suppressed is None
    assert finding.severity is Severity.CRITICAL


def test_suppressed_findings_never_gate() -> None:
    noise, real = noisy_report()
    gate = Gate(Severity.INFO)
    assert gate.failing([noise, real]) == [real]
    assert Gate(Severity.INFO).exit_code([noise], complete=True) == 0


def test_table_hides_them_but_counts_them_unless_shown() -> None:
    noise, real = noisy_report()
    rep = report(image_result(findings=[noise, real]))
    text = TableFormatter().render(rep)
    assert "checksum mismatch" in text.splitlines()[-1]
    assert "1 suppressed (1 noise: checksum mismatch)" in text
    assert "--show-suppressed" in text
    assert "1 findings (1 critical)" in text
    assert sum(1 for line in text.splitlines() if "github-personal-access-token" in line) == 0
    rep.show_suppressed = True
    shown = TableFormatter().render(rep)
    assert "github-personal-access-token" in shown
    assert "(noise: checksum mismatch)" in shown


def test_markdown_hides_them_unless_shown() -> None:
    noise, real = noisy_report()
    rep = report(image_result(findings=[noise, real]))
    text = MarkdownFormatter().render(rep)
    assert "github-personal-access-token" not in text
    assert "noise: checksum mismatch: 1" in text
    rep.show_suppressed = True
    assert "github-personal-access-token" in MarkdownFormatter().render(rep)


def test_json_always_has_them() -> None:
    noise, real = noisy_report()
    doc = json.loads(JsonFormatter().render(report(image_result(findings=[noise, real]))))
    findings = doc["images"][0]["findings"]
    assert [f["suppressed"] for f in findings] == ["noise: checksum mismatch", None]
    assert doc["summary"]["total"] == 1
    assert doc["summary"]["suppressed"] == 1
    assert doc["suppressed"] == {"noise: checksum mismatch": 1}
    assert doc["summary"]["findings"]["info"] == 0


def test_sarif_marks_them_suppressed() -> None:
    noise, real = noisy_report()
    doc = json.loads(SarifFormatter().render(report(image_result(findings=[noise, real]))))
    results = doc["runs"][0]["results"]
    suppressions = [r.get("suppressions") for r in results]
    assert suppressions == [
        [{"kind": "external", "justification": "noise: checksum mismatch"}],
        None,
    ]


def test_round_trip_keeps_the_reason() -> None:
    noise, _ = noisy_report()
    again = Finding.from_dict(noise.to_dict())
    assert again == replace(noise)
    assert again.suppressed == "noise: checksum mismatch"


def test_ignore_file_and_noise_counts_add_up() -> None:
    noise, real = noisy_report()
    rep = report(image_result(findings=[noise, real]), suppressed={"in baseline": 2})
    assert rep.suppressed_reasons() == {"in baseline": 2, "noise: checksum mismatch": 1}
    assert rep.failing() == [real]
    assert rep.counts()["info"] == 0


def test_html_hides_them_unless_shown() -> None:
    from scanner.report.html import HtmlFormatter

    noise, real = noisy_report()
    rep = report(image_result(findings=[noise, real]))
    page = HtmlFormatter().render(rep)
    assert "checksum mismatch" in page  # counted among the suppressed reasons
    assert "github-personal-access-token" not in page
    rep.show_suppressed = True
    assert "github-personal-access-token" in HtmlFormatter().render(rep)

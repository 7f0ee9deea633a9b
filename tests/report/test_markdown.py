"""Markdown output: counts, findings by layer, recoverable call-out, suppressed, errors,
escaping, and no raw secret without --reveal."""

from __future__ import annotations

import re
from dataclasses import replace

from scanner.findings import Severity
from scanner.report.markdown import MAX_ROWS, MarkdownFormatter, code, escape
from scanner.results import ScanProblem
from tests.report import (
    RAW_SECRET,
    config_finding,
    demo_scan,
    file_finding,
    image_result,
    report,
    sample_report,
)


def render(rep: object) -> str:
    return MarkdownFormatter().render(rep)  # type: ignore[arg-type]


def test_counts_by_severity_and_category() -> None:
    text = render(sample_report())
    assert "| Category |" in text
    assert "| secret | 2 | 1 | 0 | 0 | 0 | 3 |" in text
    assert "| misconfig | 0 | 0 | 1 | 0 | 0 | 1 |" in text
    assert "| **total** | **2** | **1** | **1** | **0** | **0** | **4** |" in text
    assert "❌ **3 finding(s) at or above high**" in text


def test_grouped_by_layer_with_config_section() -> None:
    text = render(sample_report())
    assert "**Layer 1**" in text
    assert "No findings in layer(s) 0, 2, 3." in text
    assert "**Config, history and build**" in text
    layer_pos = text.index("**Layer 1**")
    config_pos = text.index("**Config, history and build**")
    assert text.index("`/app/secrets/id_rsa`", layer_pos) < config_pos


def test_recoverable_called_out() -> None:
    text = render(sample_report())
    assert "> [!WARNING]" in text
    assert "deleted or overwritten in a later layer" in text
    assert "added in layer 1, deleted in layer 2" in text
    assert "**deleted in layer 2**, recoverable from layer 1" in text


def test_suppressed_and_errors_shown() -> None:
    rep = sample_report()
    rep.images[0].problems.append(ScanProblem("img", "linux/amd64", 3, "truncated | gzip"))
    text = render(rep)
    assert "**Suppressed:** 3 (placeholder: 2, test: 1)" in text
    assert "Errors: the scan is incomplete (1)" in text
    assert "layer 3: truncated \\| gzip" in text
    assert "⚠️ **scan incomplete**" in text


def test_clean_report() -> None:
    text = render(report(image_result(findings=[])))
    assert "✅ nothing at or above high" in text
    assert "| Category |" not in text


def test_no_raw_secret_unless_reveal() -> None:
    assert RAW_SECRET not in render(sample_report(reveal=False))
    leaky = replace(file_finding(), secret=RAW_SECRET)
    assert RAW_SECRET not in render(report(image_result(findings=[leaky])))
    assert RAW_SECRET in render(sample_report(reveal=True))


def test_hostile_text_is_escaped() -> None:
    evil = config_finding(match="`x` | <script>alert(1)</script>", field="config.Labels[a|b]")
    text = render(report(image_result(findings=[evil])))
    # the only HTML is inside a code span, where Markdown shows it as text
    outside = re.sub(r"(`+).*?\1", "", text)
    assert "<script>" not in outside and "<script>" in text
    row = next(line for line in text.splitlines() if "root-user" in line and line.startswith("|"))
    # every pipe inside a cell is escaped, so the row keeps its six cells
    assert row.replace("\\|", "").count("|") == 7


def test_code_and_escape() -> None:
    assert code("a`b") == "`` a`b ``"
    assert code("a|b") == "`a\\|b`"
    assert code("a|b", table=False) == "`a|b`"
    assert escape("*x* [y](z)") == "\\*x\\* \\[y\\]\\(z\\)"


def test_long_reports_are_truncated() -> None:
    findings = [
        file_finding(f"app/f{i}.env", secret=f"ghp_{i:036d}", severity=Severity.LOW)
        for i in range(MAX_ROWS + 5)
    ]
    text = render(report(image_result(findings=findings)))
    assert "… and 5 more not listed" in text
    assert sum(line.startswith("| 🔵 low |") for line in text.splitlines()) == MAX_ROWS


def test_real_scan_of_the_demo_image() -> None:
    rep, planted = demo_scan()
    text = render(rep)
    for value in planted:
        assert value not in text
    assert "> [!WARNING]" in text  # the demo deletes app/.env in layer 2
    assert "/app/.env" in text

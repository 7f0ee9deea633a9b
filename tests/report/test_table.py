from collections import Counter
from dataclasses import replace

from scanner.findings import (
    Category,
    FileState,
    Finding,
    Location,
    LocationKind,
    Severity,
    Status,
)
from scanner.report.table import TableFormatter
from scanner.results import ImageResult, LayerSummary, PlatformResult, Report


def report() -> Report:
    finding = Finding(
        rule_id="github-pat",
        title="GitHub token",
        severity=Severity.CRITICAL,
        category=Category.SECRET,
        location=Location(
            LocationKind.FILE,
            layer_index=1,
            layer_digest="sha256:" + "a" * 64,
            path="app/.env",
            line=3,
        ),
        match="ghp_********",
        platform="linux/amd64",
        status=Status(FileState.DELETED, 2),
        verification="verified",
    )
    layers = [
        LayerSummary(
            i,
            "sha256:" + str(i) * 64,
            None,
            "",
            f"step {i}",
            i,
            "gzip",
            1,
            1,
            1,
            1 if i == 1 else 0,
            False,
            None,
        )
        for i in range(3)
    ]
    image = ImageResult(
        "oci:x",
        "oci",
        platforms=[PlatformResult("linux/amd64", None, None, layers)],
        findings=[finding, replace(finding, verification=None, secret="x")],
    )
    return Report([image], suppressed=Counter({"in baseline": 2, "rotated": 1}))


def test_table_shows_status_verification_and_suppressed_reasons() -> None:
    text = TableFormatter().render(report())
    assert "Layer 1" in text and "/app/.env:3" in text
    assert "[deleted in layer 2; recoverable from layer 1]" in text
    assert "[verified]" in text
    assert "3 suppressed (2 in baseline, 1 rotated)" in text
    assert "Layer 0" in text and "no findings" in text


def test_table_never_prints_the_secret_unless_revealed() -> None:
    rep = report()
    assert "ghp_********" in TableFormatter().render(rep)
    assert "  x  " not in TableFormatter().render(rep)
    rep.reveal = True
    assert " x  [deleted" in TableFormatter().render(rep)

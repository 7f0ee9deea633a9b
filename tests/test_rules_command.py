"""``layerleak rules``: the listing and ``--coverage`` (providers and their rules)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from click.testing import CliRunner

from scanner.cli import main
from scanner.signatures import SignatureSet

BUILTIN = SignatureSet.builtin()


def test_coverage_lists_every_provider_with_its_rules() -> None:
    result = CliRunner().invoke(main, ["rules", "--coverage"])
    assert result.exit_code == 0, result.output
    providers = {r.provider for r in BUILTIN.rules}
    last = result.output.strip().splitlines()[-1]
    assert last == f"{len(providers)} providers, {len(BUILTIN.rules)} content rules"
    rows = {line.split("  ")[0].strip(): line for line in result.output.splitlines()[:-2]}
    for name in ("GitHub", "Fly.io", "Slack", "Adafruit", "Alibaba Cloud", "Dynatrace"):
        assert name in rows, name
    assert "github-personal-access-token" in rows["GitHub"]


def test_coverage_json() -> None:
    result = CliRunner().invoke(main, ["rules", "--coverage", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["rules"] == len(BUILTIN.rules)
    assert doc["providers"] == len(doc["coverage"]) >= 300
    assert sum(item["rules"] for item in doc["coverage"]) == len(BUILTIN.rules)
    slack = next(item for item in doc["coverage"] if item["provider"] == "Slack")
    assert "slack-bot-token" in slack["ids"]


def test_coverage_counts_user_rules(tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            rules:
              - id: acme-token
                detector: Acme
                provider: Acme Corp
                title: Acme token
                severity: high
                keywords: [acme_]
                regex: 'acme_[a-z0-9]{10}'
                description: test rule
                examples:
                  match: ['acme_k3j9x0q2lm', 'X=acme_p9z8y7x6w5']
                  no_match: ['acme_short', 'nothing here']
            """
        )
    )
    result = CliRunner().invoke(main, ["rules", "--coverage", "--rules", str(path)])
    assert result.exit_code == 0, result.output
    assert any(line.startswith("Acme Corp ") for line in result.output.splitlines())


def test_listing_json_has_the_provider() -> None:
    result = CliRunner().invoke(main, ["rules", "--format", "json"])
    doc = json.loads(result.output)
    row = next(r for r in doc["rules"] if r["id"] == "flyio-org-token")
    assert row["provider"] == "Fly.io"

"""The ``fly_tokens`` image: an organisation token and app tokens told apart in every
format, with their expiry, from the layer cache as from a cold scan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from fixtures import catalog
from scanner.cli import main

SECRETS = [
    part[4:40]
    for token in (catalog.FLY_ORG_TOKEN, catalog.FLY_APP_TOKEN, catalog.FLY_OLD_TOKEN)
    for part in token.removeprefix("FlyV1 ").split(",")
]


def scan(image: Path, fmt: str, *extra: str) -> str:
    res = CliRunner().invoke(main, ["scan", "--format", fmt, *extra, str(image)])
    assert res.exit_code == 1, res.output
    for secret in SECRETS:
        assert secret not in res.output
    return res.stdout


def fly_findings(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f["location"]["path"]: f
        for f in doc["images"][0]["findings"]
        if f["rule_id"].startswith("flyio-")
    }


def test_json_tells_org_and_app_tokens_apart_with_expiry(
    images: dict[str, Path], tmp_path: Path
) -> None:
    for run in ("cold", "cached"):  # the second run reads the layer cache
        doc = json.loads(scan(images["fly_tokens"], "json", "--cache-dir", str(tmp_path)))
        found = fly_findings(doc)
        org = found["app/.env"]
        assert org["severity"] == "critical", run
        assert org["blast_radius"]["details"]["kind"] == "org-deploy"
        assert org["blast_radius"]["details"]["organization_ids"] == [str(catalog.FLY_ORG_ID)]
        assert org["blast_radius"]["details"]["expires_at"].startswith("2125-11-07")
        app = found["app/bin/deploy.sh"]
        assert app["severity"] == "high"
        assert app["blast_radius"]["details"]["kind"] == "app-deploy"
        assert app["blast_radius"]["details"]["app_ids"] == [str(catalog.FLY_APP_ID)]
        assert app["blast_radius"]["details"]["expires_at"].startswith("2139-12-30")
        old = found["root/.fly/config.yml"]
        assert old["severity"] == "medium" and old["status"]["state"] == "deleted"
        assert old["blast_radius"]["details"]["expired"] is True
        assert "expired on 2025-02-04" in old["blast_radius"]["summary"]


def test_table_markdown_and_sarif_show_the_radius(images: dict[str, Path]) -> None:
    lines = scan(images["fly_tokens"], "table", "--no-cache").splitlines()
    org = next(i for i, line in enumerate(lines) if "flyio-api-token" in line)
    assert "CRITICAL" in lines[org]
    assert "organisation-wide deploy token for organisation 4242" in lines[org + 1]
    assert "expires 2125-11-07" in lines[org + 1]
    app = next(i for i, line in enumerate(lines) if "/app/bin/deploy.sh:3" in line)
    assert "HIGH" in lines[app]
    assert "app-scoped deploy token" in lines[app + 1] and "31337" in lines[app + 1]
    assert "expires 2139-12-30" in lines[app + 1]
    old = next(i for i, line in enumerate(lines) if "/root/.fly/config.yml:1" in line)
    assert "MEDIUM" in lines[old] and "expired on 2025-02-04" in lines[old + 1]

    markdown = scan(images["fly_tokens"], "markdown", "--no-cache")
    assert "opens: Fly.io organisation-wide deploy token for organisation 4242" in markdown
    assert "app id\\(s\\) 31337 only" in markdown

    sarif = json.loads(scan(images["fly_tokens"], "sarif", "--no-cache"))
    results = sarif["runs"][0]["results"]
    kinds = {
        r["properties"]["path"]: r["properties"]["blastRadius"]["details"]["kind"]
        for r in results
        if "blastRadius" in r["properties"]
    }
    assert kinds == {
        "/app/.env": "org-deploy",
        "/app/bin/deploy.sh": "app-deploy",
        "/root/.fly/config.yml": "app-deploy",
    }

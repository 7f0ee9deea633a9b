"""``layerleak rules``: list the signature set (built-in plus ``--rules`` files)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from scanner.commands import fail
from scanner.errors import LayerleakError
from scanner.gate import EXIT_USAGE
from scanner.signatures import SignatureSet


@click.command("rules")
@click.option(
    "--rules",
    "rule_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Extra signature file(s) to validate and list with the built-in ones.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def rules_command(rule_files: tuple[Path, ...], fmt: str) -> None:
    """List the detection rules: content signatures and sensitive-path rules."""
    try:
        signatures = SignatureSet.load(rule_files)
    except LayerleakError as exc:
        fail(str(exc), EXIT_USAGE)
    rows = [
        {
            "id": r.id,
            "kind": "content",
            "detector": r.detector,
            "severity": r.severity.label,
            "title": r.title,
            "keywords": list(r.keywords),
            "source": r.source,
        }
        for r in signatures.rules
    ] + [
        {
            "id": r.id,
            "kind": "path",
            "detector": "",
            "severity": r.severity.label,
            "title": r.title,
            "keywords": list(r.globs),
            "source": "",
        }
        for r in signatures.path_rules
    ]
    if fmt == "json":
        click.echo(json.dumps({"digest": signatures.digest, "rules": rows}, indent=2))
        return
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        click.echo(
            f"{r['id']:<{width}}  {r['kind']:<7} {r['severity']:<8} "
            f"{r['detector'] or '-':<16} {r['title']}"
        )
    content = sum(1 for r in rows if r["kind"] == "content")
    click.echo(
        f"\n{content} content rules, {len(rows) - content} path rules; "
        f"signature set {signatures.digest[:19]}"
    )

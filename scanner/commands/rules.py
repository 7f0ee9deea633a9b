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
@click.option(
    "--coverage",
    is_flag=True,
    help="Print the providers the content rules cover, with the number of rules each.",
)
def rules_command(rule_files: tuple[Path, ...], fmt: str, coverage: bool) -> None:
    """List the detection rules: content signatures and sensitive-path rules."""
    try:
        signatures = SignatureSet.load(rule_files)
    except LayerleakError as exc:
        fail(str(exc), EXIT_USAGE)
    if coverage:
        click.echo(coverage_text(signatures, fmt), nl=False)
        return
    rows = [
        {
            "id": r.id,
            "kind": "content",
            "detector": r.detector,
            "provider": r.provider,
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


def coverage(signatures: SignatureSet) -> dict[str, list[str]]:
    """Provider -> the ids of its content rules, providers sorted case-insensitively."""
    by_provider: dict[str, list[str]] = {}
    for rule in signatures.rules:
        by_provider.setdefault(rule.provider, []).append(rule.id)
    return dict(sorted(by_provider.items(), key=lambda item: item[0].lower()))


def coverage_text(signatures: SignatureSet, fmt: str) -> str:
    """``rules --coverage`` in the chosen format."""
    providers = coverage(signatures)
    if fmt == "json":
        doc = {
            "providers": len(providers),
            "rules": len(signatures.rules),
            "coverage": [
                {"provider": name, "rules": len(ids), "ids": ids} for name, ids in providers.items()
            ],
        }
        return json.dumps(doc, indent=2) + "\n"
    width = max((len(name) for name in providers), default=8)
    lines = [f"{name:<{width}}  {len(ids):>3}  {', '.join(ids)}" for name, ids in providers.items()]
    lines.append(f"\n{len(providers)} providers, {len(signatures.rules)} content rules")
    return "\n".join(lines) + "\n"

"""``layerleak timeline REPOSITORY``: each finding's first and last release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from scanner.commands import (
    deliver,
    exit_on_error,
    fail,
    finish_and_warn,
    gate_options,
    make_gate,
    make_scanner,
    options_from_cli,
    output_options,
    say,
    scan_options,
    triage_and_options,
    triage_options,
    warn_notes,
)
from scanner.gate import EXIT_INCOMPLETE, EXIT_USAGE
from scanner.image import Image
from scanner.reference import parse_reference
from scanner.registry.client import Endpoint, RegistryClient
from scanner.registry.credentials import resolve_credential
from scanner.report.registry import formats
from scanner.results import ImageResult, Report, ScanProblem
from scanner.sources.registry import RegistrySource
from scanner.timeline import build_timeline, list_tags, repository_name

EPILOG = """\b
Exit codes: 0 the newest release has nothing at or above --fail-on (older releases
are history: see the report); 1 the newest release has a finding that reaches it;
2 usage error; 3 the tags could not be listed or a release could not be fully scanned.
"""


@click.command("timeline", epilog=EPILOG)
@click.argument("repository")
@click.option(
    "--match",
    "patterns",
    multiple=True,
    metavar="GLOB",
    help="Only tags matching this shell glob, e.g. 'deployment-*' (repeatable). "
    "Default: every tag.",
)
@click.option(
    "--last",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Scan only the N newest matching releases.",
)
@scan_options
@triage_options
@gate_options
@output_options(formats("timeline"))
def timeline_command(
    repository: str,
    patterns: tuple[str, ...],
    last: int | None,
    fail_on: str,
    fail_on_category: tuple[str, ...],
    exit_zero: bool,
    fmt: str | None,
    output: Path | None,
    quiet: bool,
    **scan_args: Any,
) -> None:
    """Exposure window of every finding across a repository's releases.

    Lists REPOSITORY's tags in its registry (e.g. registry.fly.io/APP), orders the
    releases by image creation time, scans each (shared layers once), and reports for
    every finding the first and the last release that contained it and whether the
    newest still does: what to rotate, and since when it was exposed.
    """
    gate = make_gate(fail_on, fail_on_category, exit_zero)
    options = options_from_cli(scan_args, gate.fail_on)
    with exit_on_error(EXIT_INCOMPLETE):
        name = repository_name(repository)
        ref = parse_reference(name)
        credential = resolve_credential(
            ref.registry, username=options.source.username, password=options.source.password
        )
        endpoint = Endpoint.for_registry(
            ref.registry,
            insecure=options.source.insecure,
            timeout=options.source.timeout,
            deadline=options.source.deadline,
        )
    list_problems: list[str] = []
    client = RegistryClient(endpoint, credential)
    try:
        with exit_on_error(EXIT_INCOMPLETE, prefix=f"cannot list the tags of {name}: "):
            tags = list_tags(client, ref.repository, problems=list_problems)
    finally:
        client.close()
    if not tags:
        fail(f"{name} has no tags: check the repository name", EXIT_INCOMPLETE)

    def load(text: str) -> Image:
        with RegistrySource(text, options.source) as source:
            return source.load()

    triage, options, reveal = triage_and_options(scan_args, options)
    warned: set[str] = set()
    ignored: dict[str, int] = {}  # ignore-file counts summed over the releases

    def scan_releases(refs: list[str]) -> list[ImageResult]:
        """Releases (their layers fanned out together), each with the ignore file,
        baseline and --verify applied."""
        out = []
        for result in scanner.scan_many(refs):
            report = Report([result], fail_on=gate.fail_on, reveal=reveal)
            finish_and_warn(report, triage, reveal, warned)
            for file, n in report.ignore_files.items():
                ignored[file] = ignored.get(file, 0) + n
            out.append(report.images[0])
        return out

    with make_scanner(options) as scanner:
        timeline = build_timeline(
            name,
            tags,
            patterns,
            load,
            lambda ref: scan_releases([ref])[0],
            reveal=reveal,
            last=last,
            notify=None if quiet else say,
            scan_many=scan_releases,
        )
    warn_notes(scanner)
    timeline.list_problems[:0] = [ScanProblem(name, None, None, m) for m in list_problems]
    if not timeline.releases and not timeline.list_problems:
        fail(
            f"no tag of {name} matches {', '.join(patterns)} ({len(tags)} tag(s), e.g. "
            f"{', '.join(tags[:3])})",
            EXIT_USAGE,
        )
    timeline.ignore_files = ignored
    deliver(timeline, gate, fmt, output, quiet)

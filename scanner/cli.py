"""The command line. Parses options, builds ScanOptions, renders; no scanning logic.

Exit codes: 0 nothing at or above --fail-on; 1 something was; 2 usage error;
3 some part of an image could not be scanned (takes precedence over 1: an
incomplete scan never looks clean).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from scanner import __version__
from scanner.errors import LayerleakError
from scanner.findings import Severity
from scanner.image import Platform
from scanner.progress import ProgressBar
from scanner.report.formats import FORMATTERS
from scanner.report.interface import summary
from scanner.results import Report
from scanner.scan import Scanner, ScanOptions
from scanner.sources.interface import SourceOptions

EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
SEVERITIES = [s.label for s in Severity]


def _platforms(values: tuple[str, ...]) -> tuple[Platform, ...]:
    result = []
    for value in values:
        for part in value.split(","):
            if part.strip():
                try:
                    result.append(Platform.parse(part))
                except ValueError as exc:
                    raise click.BadParameter(str(exc), param_hint="--platform") from None
    return tuple(result)


def exit_code(report: Report) -> int:
    if not report.complete:
        return EXIT_INCOMPLETE
    return EXIT_FINDINGS if report.failing() else EXIT_CLEAN


def one_line_summary(report: Report) -> str:
    s = summary(report)
    counts = " ".join(f"{sev}={n}" for sev, n in s["findings"].items())
    state = "complete" if s["complete"] else "INCOMPLETE"
    return (
        f"layerleak: {s['images']} image(s), {s['platforms']} platform(s), {s['layers']} "
        f"layer(s); findings {counts}; suppressed={s['suppressed']}; "
        f"errors={s['problems']} ({state})"
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="layerleak")
def main() -> None:
    """layerleak: forensic scanner for container images, per layer."""


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--platform",
    "platform_values",
    multiple=True,
    metavar="OS/ARCH[/VARIANT]",
    help="Scan only these platforms of an index (repeatable or comma-separated). "
    "Default: every platform.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(FORMATTERS)),
    default=None,
    help="Output format. Default: table on a terminal, json otherwise.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file instead of standard output.",
)
@click.option(
    "--reveal", is_flag=True, help="Show secrets in full (forensic use). Default: redacted."
)
@click.option(
    "--dockerfile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The Dockerfile the image was built from, to check each FROM is pinned.",
)
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES, case_sensitive=False),
    default="high",
    show_default=True,
    help="Exit 1 when a finding has at least this severity.",
)
@click.option(
    "--rules",
    "rule_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Extra signature file(s) in the built-in schema (repeatable).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Worker processes scanning layers in parallel (0: one per core).",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the layer cache.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="LAYERLEAK_CACHE_DIR",
    help="Layer cache directory (default: the user cache directory; env LAYERLEAK_CACHE_DIR).",
)
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress bar and no summary line on standard error."
)
def scan(
    sources: tuple[str, ...],
    platform_values: tuple[str, ...],
    fmt: str | None,
    output: Path | None,
    reveal: bool,
    dockerfile: Path | None,
    fail_on: str,
    rule_files: tuple[Path, ...],
    jobs: int,
    no_cache: bool,
    cache_dir: Path | None,
    quiet: bool,
) -> None:
    """Scan images: oci:PATH[:TAG], docker-archive:PATH[:TAG], or a bare path."""
    options = ScanOptions(
        source=SourceOptions(platforms=_platforms(platform_values)),
        reveal=reveal,
        fail_on=Severity.parse(fail_on),
        dockerfile=dockerfile,
        rules=rule_files,
        jobs=jobs,
        use_cache=not no_cache,
        cache_dir=cache_dir,
    )
    progress = ProgressBar() if not quiet and sys.stderr.isatty() else None
    try:
        scanner = Scanner(options, progress=progress)
    except LayerleakError as exc:
        click.echo(f"layerleak: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    report = scanner.scan_all(sources)
    if progress is not None:
        progress.clear()
    to_terminal = output is None and sys.stdout.isatty()
    name = fmt or ("table" if to_terminal else "json")
    text = FORMATTERS[name](color=to_terminal).render(report)
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            click.echo(f"layerleak: error: cannot write {output}: {exc.strerror}", err=True)
            sys.exit(EXIT_INCOMPLETE)
    else:
        click.echo(text, nl=False)
    for problem in report.problems:
        click.echo(f"layerleak: error: {problem.message}", err=True)
    if not quiet:
        click.echo(one_line_summary(report), err=True)
    sys.exit(exit_code(report))


if __name__ == "__main__":  # pragma: no cover
    main()

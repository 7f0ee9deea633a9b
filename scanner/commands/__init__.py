"""Click commands beyond ``scan``: ``diff``, ``fly``, ``timeline`` (one module each).

``scanner.cli`` registers them (``main.add_command(...)``). This module holds the
options they share, declared once so every command spells them the same way; the
small helpers that turn option values into :class:`ScanOptions`, a :class:`Gate`
and a :class:`Triage`; the one place errors become messages and exit codes
(:func:`fail`, :func:`exit_on_error`); and :func:`deliver`, which renders any
:class:`Outcome` through :mod:`scanner.report.registry` and exits with its code.
Nothing here imports :mod:`scanner.cli` (it imports these modules).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from scanner.archives import DEFAULT_LIMITS, ArchiveLimits
from scanner.deadline import DEFAULT_DEADLINE, Deadline, parse_duration
from scanner.errors import LayerleakError, UsageError
from scanner.findings import Category, Severity
from scanner.gate import EXIT_INCOMPLETE, EXIT_USAGE, Gate
from scanner.image import Platform
from scanner.keys import load_key
from scanner.outcome import Outcome
from scanner.report.registry import render
from scanner.report.terminal import safe
from scanner.results import Report
from scanner.runners import ClusterOptions
from scanner.scan import Scanner, ScanOptions
from scanner.sources.interface import SourceOptions
from scanner.triage import Triage

F = TypeVar("F", bound=Callable[..., Any])

SEVERITIES = [s.label for s in Severity]
CATEGORIES = [c.value for c in Category]


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(f: F) -> F:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def gate_options(f: F) -> F:
    """``--fail-on``, ``--fail-on-category``, ``--exit-zero`` (for every command)."""
    return _stack(
        click.option(
            "--fail-on",
            type=click.Choice(SEVERITIES, case_sensitive=False),
            default="high",
            show_default=True,
            help="Exit 1 when a finding has at least this severity.",
        ),
        click.option(
            "--fail-on-category",
            "fail_on_category",
            multiple=True,
            metavar="CATEGORY[,CATEGORY...]",
            help="Only findings in these categories fail the run "
            f"({', '.join(CATEGORIES)}; repeatable or comma-separated). Default: all.",
        ),
        click.option(
            "--exit-zero",
            is_flag=True,
            help="Exit 0 even when findings reach --fail-on (an incomplete scan still exits 3).",
        ),
    )(f)


def scan_options(f: F) -> F:
    """What changes how images are read and scanned (same meaning as for ``scan``)."""
    return _stack(
        click.option(
            "--platform",
            "platform_values",
            multiple=True,
            metavar="OS/ARCH[/VARIANT]",
            help="Scan only these platforms of an index (repeatable or comma-separated). "
            "Default: every platform.",
        ),
        click.option(
            "--reveal", is_flag=True, help="Show secrets in full (forensic use). Default: redacted."
        ),
        click.option(
            "--rules",
            "rule_files",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Extra signature file(s) in the built-in schema (repeatable).",
        ),
        click.option(
            "--insecure",
            is_flag=True,
            help="Reach the registries named on the command line over plain HTTP (always "
            "done for localhost and loopback addresses; never for registry.fly.io).",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0.1),
            default=30.0,
            show_default=True,
            help="Registry timeout in seconds, per request and for retries in all.",
        ),
        click.option(
            "--deadline",
            default=DEFAULT_DEADLINE,
            show_default=True,
            metavar="DURATION",
            callback=_deadline_seconds,
            help="Stop the whole run after this long (30m, 90s, 1h30m; 0 for none): what "
            "was not finished is reported as incomplete (exit 3), with what was found.",
        ),
        click.option(
            "--username",
            metavar="USER",
            help="Registry user name (with --password-stdin). Default: Docker config, "
            "FLY_API_TOKEN for registry.fly.io.",
        ),
        click.option(
            "--password-stdin",
            is_flag=True,
            help="Read the registry password or token from standard input.",
        ),
        click.option(
            "-j",
            "--jobs",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Worker processes for layers (0: one more than the cores).",
        ),
        click.option(
            "--no-cache",
            "no_cache",
            is_flag=True,
            help="Do not read or write the layer cache.",
        ),
        click.option(
            "--cache-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            envvar="LAYERLEAK_CACHE_DIR",
            help="Layer cache directory (env LAYERLEAK_CACHE_DIR). "
            "Default: the user cache directory.",
        ),
        click.option(
            "--fingerprint-key-file",
            "fingerprint_key_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            envvar="LAYERLEAK_FINGERPRINT_KEY_FILE",
            help="Key of secret hashes and fingerprints, shared by a team so baselines and "
            "ignore files match (env LAYERLEAK_FINGERPRINT_KEY_FILE, or the key itself in "
            "LAYERLEAK_FINGERPRINT_KEY). Default: one per user, created on first use.",
        ),
        click.option(
            "--archive-limit",
            "archive_limit_values",
            multiple=True,
            metavar="NAME=SIZE",
            help="Change a nested-archive budget, e.g. layer-budget=4G, image-members=5000000 "
            "(repeatable; names and defaults in the README's Security model).",
        ),
        cluster_options,
    )(f)


def cluster_options(f: F) -> F:
    """``--cluster`` and its TLS options, ``--cache-backend``, ``--cache-expiry``."""
    return _stack(
        click.option(
            "--cluster",
            metavar="ADDRESS",
            envvar="LAYERLEAK_CLUSTER",
            default=None,
            help="Scan layers on a Dask cluster (env LAYERLEAK_CLUSTER): tcp://HOST:8786 or "
            "tls://HOST:8786 (a running scheduler), or local:N (N local worker processes). "
            "Needs `pip install 'layerleak[cluster]'`. Registry layers are pulled by the "
            "workers, with the registry credential sent along with each task.",
        ),
        click.option(
            "--allow-insecure-cluster",
            is_flag=True,
            help="Send tasks carrying registry credentials (or revealed secrets) to a "
            "scheduler over plain tcp on another host. Default: refused.",
        ),
        click.option(
            "--shared-path",
            is_flag=True,
            help="The cluster's workers see the same paths as this machine: they also scan "
            "layers of OCI layouts, archives and daemon exports. Default: the client does.",
        ),
        click.option(
            "--cluster-tls-ca",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="CA certificate for a tls:// scheduler (else Dask's configuration).",
        ),
        click.option(
            "--cluster-tls-cert",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Client certificate for a tls:// scheduler.",
        ),
        click.option(
            "--cluster-tls-key",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Client private key for a tls:// scheduler.",
        ),
        click.option(
            "--cache-backend",
            metavar="URL",
            envvar="LAYERLEAK_CACHE_BACKEND",
            default=None,
            help="Layer cache (env LAYERLEAK_CACHE_BACKEND): redis://[:PASSWORD@]HOST:6379/0, "
            "rediss://... (TLS; password also from LAYERLEAK_REDIS_PASSWORD), file://PATH. "
            "Default: the cache directory.",
        ),
        click.option(
            "--cache-expiry",
            type=click.IntRange(min=0),
            default=30 * 24 * 3600,
            show_default=True,
            metavar="SECONDS",
            help="Forget cache entries older than this (0: never).",
        ),
    )(f)


def output_options(formats: Sequence[str]) -> Callable[[F], F]:
    """``--format``, ``-o/--output``, ``-q/--quiet``."""
    return _stack(
        click.option(
            "--format",
            "fmt",
            type=click.Choice(list(formats)),
            default=None,
            help="Output format. Default: table on a terminal, json otherwise.",
        ),
        click.option(
            "-o",
            "--output",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write the report to this file instead of standard output.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No summary line on standard error."),
    )


def _deadline_seconds(ctx: click.Context, param: click.Parameter, value: Any) -> float | None:
    if value is None or isinstance(value, float):
        return value
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def parse_platforms(values: Sequence[str]) -> tuple[Platform, ...]:
    result = []
    for value in values:
        for part in value.split(","):
            if part.strip():
                try:
                    result.append(Platform.parse(part))
                except ValueError as exc:
                    raise click.BadParameter(str(exc), param_hint="--platform") from None
    return tuple(result)


def make_gate(fail_on: str, fail_on_category: Sequence[str], exit_zero: bool) -> Gate:
    try:
        return Gate.from_cli(fail_on, fail_on_category, exit_zero)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fail-on-category") from None


def read_password(password_stdin: bool, username: str | None) -> str | None:
    if not password_stdin:
        if username is not None:
            raise click.BadParameter(
                "--username needs --password-stdin (the password is read from standard input)",
                param_hint="--username",
            )
        return None
    if username is None:
        raise click.BadParameter("--password-stdin needs --username", param_hint="--username")
    password = sys.stdin.read().strip()
    if not password:
        raise click.BadParameter("nothing on standard input", param_hint="--password-stdin")
    return password


def build_scan_options(
    *,
    platform_values: Sequence[str] = (),
    reveal: bool = False,
    rule_files: Sequence[Path] = (),
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
    fail_on: Severity = Severity.HIGH,
    dockerfile: Path | None = None,
    jobs: int = 0,
    no_cache: bool = False,
    cache_dir: Path | None = None,
    fingerprint_key_file: Path | None = None,
    cache_backend: str | None = None,
    cache_expiry: float = 30 * 24 * 3600,
    cluster: ClusterOptions | None = None,
    deadline: float | None = None,
    timeout: float = 30.0,
    archive_limit_values: Sequence[str] = (),
) -> ScanOptions:
    key = None
    if fingerprint_key_file is not None:
        try:
            key = load_key(fingerprint_key_file)
        except LayerleakError as exc:
            raise click.BadParameter(str(exc), param_hint="--fingerprint-key-file") from None
    return ScanOptions(
        source=SourceOptions(
            platforms=parse_platforms(platform_values),
            insecure=insecure,
            username=username,
            password=password,
            deadline=Deadline.after(deadline),
            timeout=timeout,
        ),
        reveal=reveal,
        fail_on=fail_on,
        dockerfile=dockerfile,
        rules=tuple(rule_files),
        jobs=jobs,
        use_cache=not no_cache,
        cache_dir=cache_dir,
        fingerprint_key=key,
        archive_limits=parse_archive_limits(archive_limit_values),
        cache_backend=cache_backend,
        cache_expiry=cache_expiry,
        cluster=cluster,
    )


def parse_archive_limits(values: Sequence[str]) -> ArchiveLimits:
    settings: dict[str, str] = {}
    for value in values:
        name, sep, size = value.partition("=")
        if not sep:
            raise click.BadParameter(f"{value!r} is not NAME=SIZE", param_hint="--archive-limit")
        settings[name] = size
    try:
        return DEFAULT_LIMITS.with_settings(settings)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--archive-limit") from None


SCAN_ARGS = (
    "platform_values",
    "reveal",
    "rule_files",
    "insecure",
    "username",
    "password_stdin",
    "jobs",
    "no_cache",
    "cache_dir",
    "fingerprint_key_file",
    "deadline",
    "timeout",
    "archive_limit_values",
    "cluster",
    "allow_insecure_cluster",
    "shared_path",
    "cluster_tls_ca",
    "cluster_tls_cert",
    "cluster_tls_key",
    "cache_backend",
    "cache_expiry",
)


def options_from_cli(args: Mapping[str, Any], fail_on: Severity) -> ScanOptions:
    """ScanOptions from the values of :func:`scan_options` (reads --password-stdin)."""
    username = args.get("username")
    return build_scan_options(
        platform_values=args.get("platform_values", ()),
        reveal=bool(args.get("reveal")),
        rule_files=args.get("rule_files", ()),
        insecure=bool(args.get("insecure")),
        username=username,
        password=read_password(bool(args.get("password_stdin")), username),
        fail_on=fail_on,
        jobs=int(args.get("jobs") or 0),
        no_cache=bool(args.get("no_cache")),
        cache_dir=args.get("cache_dir"),
        fingerprint_key_file=args.get("fingerprint_key_file"),
        deadline=args.get("deadline"),
        timeout=float(args.get("timeout") or 30.0),
        archive_limit_values=args.get("archive_limit_values", ()),
        cache_backend=args.get("cache_backend") or None,
        cache_expiry=float(args.get("cache_expiry", 30 * 24 * 3600)),
        cluster=cluster_from_cli(args),
    )


def cluster_from_cli(args: Mapping[str, Any]) -> ClusterOptions | None:
    """The --cluster options of a command line (None without --cluster)."""
    address = str(args.get("cluster") or "").strip()
    if not address:
        for flag in ("allow_insecure_cluster", "shared_path"):
            if args.get(flag):
                raise click.UsageError(f"--{flag.replace('_', '-')} needs --cluster")
        return None
    return ClusterOptions(
        address=address,
        allow_insecure=bool(args.get("allow_insecure_cluster")),
        shared_path=bool(args.get("shared_path")),
        tls_ca=args.get("cluster_tls_ca"),
        tls_cert=args.get("cluster_tls_cert"),
        tls_key=args.get("cluster_tls_key"),
    )


def make_scanner(options: ScanOptions, **kwargs: Any) -> Scanner:
    """A Scanner, or exit 2 with the reason (bad rule file, unreadable Dockerfile)."""
    with exit_on_error(EXIT_USAGE):
        return Scanner(options, **kwargs)


# -- errors: the one place they become messages and exit codes ------------------------


def warn_notes(scanner: Scanner) -> None:
    """What the scanner wants the user to know (a cache it stopped using...), on stderr."""
    for note in scanner.notes:
        click.echo(f"layerleak: warning: {note}", err=True)


def fail(message: str, code: int) -> NoReturn:
    say(f"layerleak: error: {message}")
    sys.exit(code)


def say(message: str) -> None:
    """One line on standard error, control characters from image or registry text
    shown as escapes."""
    click.echo(safe(message), err=True)


def error_exit_code(exc: LayerleakError, default: int) -> int:
    """2 for a usage error (whatever the step), else ``default`` for that step."""
    return EXIT_USAGE if isinstance(exc, UsageError) else default


@contextmanager
def exit_on_error(default: int = EXIT_INCOMPLETE, prefix: str = "") -> Iterator[None]:
    """Turn a :class:`LayerleakError` raised inside into its message and exit code.

    A :class:`UsageError` exits 2; any other exits ``default``: 2 where the error
    is in what the user gave (a rule file, a Dockerfile, a list of references), 3
    where it is in what was read (a registry, the Fly API). ``prefix`` says what was
    being done (``cannot list the tags of X: ``).
    """
    try:
        yield
    except LayerleakError as exc:
        fail(f"{prefix}{exc}", error_exit_code(exc, default))


# -- output: every command's outcome, rendered and exited the same way -----------------


def deliver(
    outcome: Outcome, gate: Gate, fmt: str | None, output: Path | None, quiet: bool
) -> NoReturn:
    """Render ``outcome`` (``--format``, ``-o``), print its problems and summary line
    on standard error (the line unless ``--quiet``) and exit with its code."""
    name, color = pick_format(fmt, output)
    # a report holding revealed secrets is written readable by its owner only
    private = any(f.secret for image in outcome.images for f in image.findings)
    emit(render(outcome, name, gate, color), output, private)
    for line in outcome.problem_lines():
        say(line)
    if not quiet:
        say(outcome.summary_line(gate))
    sys.exit(outcome.exit_code(gate))


def pick_format(fmt: str | None, output: Path | None) -> tuple[str, bool]:
    """(format, color): table with color on a terminal, json otherwise."""
    to_terminal = output is None and sys.stdout.isatty()
    return fmt or ("table" if to_terminal else "json"), to_terminal


def emit(text: str, output: Path | None, private: bool = False) -> None:
    """The report on standard output or in ``output``; a ``private`` report (one with
    revealed secrets) is written readable by its owner only (0600)."""
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        write_report(output, text, private)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}", EXIT_INCOMPLETE)


def write_report(path: Path, text: str, private: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        if private and stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, 0o600)  # an existing file keeps its mode unless told otherwise
        f.write(text)


# -- triage: ignore file, baseline, live verification (policy in scanner.triage) -------


def ignore_file_option(f: F) -> F:
    """``--ignore-file`` (every command that triages, ``baseline`` included)."""
    return click.option(
        "--ignore-file",
        "ignore_files",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Ignore file(s) with [[ignore]] entries by fingerprint, rule or path glob, "
        "each with a reason and an optional expiry (repeatable). Default: "
        ".layerleakignore and layerleak.toml in the current directory, when present.",
    )(f)


def triage_options(f: F) -> F:
    """``--ignore-file``, ``--baseline``, ``--verify``."""
    return _stack(
        ignore_file_option,
        click.option(
            "--baseline",
            "baseline_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Report only findings not in this baseline (from `layerleak baseline`); "
            "the others are counted as suppressed.",
        ),
        click.option(
            "--verify",
            is_flag=True,
            help="Ask the provider whether found GitHub, Stripe, Slack and Fly.io secrets "
            "are live (read-only calls; base URLs from LAYERLEAK_VERIFY_<NAME>_URL). "
            "Off by default.",
        ),
    )(f)


def triage_from_cli(args: Mapping[str, Any]) -> Triage:
    """The ignore list, baseline and --verify of a command line (exit 2 on a bad file)."""
    with exit_on_error(EXIT_USAGE):
        return Triage.load(
            list(args.get("ignore_files") or ()),
            args.get("baseline_file"),
            bool(args.get("verify")),
        )


def finish_report(report: Report, triage: Triage, reveal: bool) -> list[str]:
    """:meth:`Triage.apply`: ignore file, baseline, then verification; the warnings."""
    return triage.apply(report, reveal)


def triage_and_options(
    args: Mapping[str, Any], options: ScanOptions
) -> tuple[Triage, ScanOptions, bool]:
    """The triage of a command line, the scan options it needs, and the user's --reveal."""
    triage = triage_from_cli(args)
    reveal = options.reveal
    options = replace(options, reveal=triage.scan_reveal(reveal))
    return triage, options, reveal


def finish_and_warn(
    report: Report, triage: Triage, reveal: bool, seen: set[str] | None = None
) -> None:
    """:meth:`Triage.apply`, its warnings on standard error (once each, given ``seen``)."""
    for warning in triage.apply(report, reveal):
        if seen is None or warning not in seen:
            if seen is not None:
                seen.add(warning)
            say(f"layerleak: warning: {warning}")

"""``layerleak fly APP``: scan every image an app's Fly Machines run, once each."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from scanner.commands import (
    deliver,
    exit_on_error,
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
from scanner.fly import is_fly_registry, scan_app
from scanner.fly.machines import (
    API_URL_ENV,
    DEFAULT_API_URL,
    TOKEN_ENV,
    DeployedImage,
    MachinesClient,
)
from scanner.fly.org import scan_org
from scanner.gate import EXIT_INCOMPLETE, EXIT_USAGE
from scanner.report.registry import formats
from scanner.results import ImageResult
from scanner.scan import Scanner

FLY_REGISTRY_USER = "x"

EPILOG = """\b
Exit codes: 0 nothing at or above --fail-on; 1 a deployed image has a finding that
reaches it; 2 usage error (no token, bad --api-url); 3 incomplete: the Machines API
refused or failed (401/403, unknown app, no Machines, rate limited) or an image could
not be fully scanned.
"""


@click.command("fly", epilog=EPILOG)
@click.argument("app", required=False)
@click.option(
    "--org",
    metavar="SLUG",
    help="Scan every app of this Fly.io organization instead of one APP: apps from "
    "GET /v1/apps?org_slug=SLUG, images deduplicated across apps, one section per app.",
)
@click.option(
    "--token",
    envvar=list(TOKEN_ENV),
    metavar="TOKEN",
    help="Fly API token (default: $FLY_API_TOKEN). One printed by `fly tokens create` "
    "(`FlyV1 ...`) is sent as it is. Also used to pull from registry.fly.io, never "
    "sent to other registries. Prefer --token-stdin: a command line is visible to "
    "other users of the machine.",
)
@click.option(
    "--token-stdin",
    is_flag=True,
    help="Read the Fly API token from standard input (instead of --token).",
)
@click.option(
    "--api-url",
    envvar=list(API_URL_ENV),
    default=DEFAULT_API_URL,
    show_default=True,
    metavar="URL",
    help="Machines API base URL (env: LAYERLEAK_FLY_API_URL or FLY_API_URL).",
)
@scan_options
@triage_options
@gate_options
@output_options(formats("fly"))
def fly_command(
    app: str | None,
    org: str | None,
    token: str | None,
    token_stdin: bool,
    api_url: str,
    fail_on: str,
    fail_on_category: tuple[str, ...],
    exit_zero: bool,
    fmt: str | None,
    output: Path | None,
    quiet: bool,
    **scan_args: Any,
) -> None:
    """Scan what the Fly.io app APP runs now, from the Machines API.

    Each Machine's image comes from its `image_ref` (or `config.image`); images are
    deduplicated by digest and each is scanned once from its registry. The report
    says, per image, which Machines, process groups and regions run it.
    """
    if (app is None) == (org is None):
        raise click.UsageError("give an APP or --org SLUG (not both)")
    gate = make_gate(fail_on, fail_on_category, exit_zero)
    if token_stdin:
        if scan_args.get("password_stdin"):
            raise click.UsageError("--token-stdin and --password-stdin both read standard input")
        token = sys.stdin.read().strip()
        if not token:
            raise click.BadParameter("nothing on standard input", param_hint="--token-stdin")
    options = options_from_cli(scan_args, gate.fail_on)
    if options.source.insecure and not quiet:
        click.echo(
            "layerleak fly: note: --insecure is not applied to registry.fly.io (the Fly token "
            "would travel in clear); it applies to the other registries the Machines name",
            err=True,
        )
    triage, options, reveal = triage_and_options(scan_args, options)
    with exit_on_error(EXIT_USAGE):
        client = MachinesClient(token, api_url, notify=None if quiet else say)
    scanners: dict[str, Scanner] = {}  # made on first use: not at all when the API fails

    def scanner_for(image: DeployedImage) -> Scanner:
        fly = bool(token) and options.source.username is None and is_fly_registry(image)
        key = "fly" if fly else "default"
        if key not in scanners:
            if "default" not in scanners:
                scanners["default"] = make_scanner(options)
            if fly and token:
                # registry.fly.io takes user "x" and the Fly token; no other registry sees it.
                source = replace(
                    options.source,
                    username=FLY_REGISTRY_USER,
                    password=token.strip(),
                    insecure=False,
                )
                scanners["fly"] = scanners["default"].sibling(source)
        return scanners[key]

    def scan_images(images: list[DeployedImage]) -> dict[str, ImageResult]:
        """Every distinct image of a sweep, fanned out together per credential."""
        groups: dict[int, tuple[Scanner, list[DeployedImage]]] = {}
        for image in images:
            scanner = scanner_for(image)
            groups.setdefault(id(scanner), (scanner, []))[1].append(image)
        results: dict[str, ImageResult] = {}
        for scanner, group in groups.values():
            if not quiet:
                click.echo(f"layerleak fly: scanning {len(group)} image(s)", err=True)
            for image, result in zip(group, scanner.scan_many([i.ref for i in group]), strict=True):
                results[image.ref] = result
        return results

    if org is not None:
        try:
            with exit_on_error(EXIT_INCOMPLETE):
                swept = scan_org(org, client, scan_images, fail_on=gate.fail_on, reveal=reveal)
        finally:
            client.close()
            for scanner in scanners.values():
                scanner.close()
        if "default" in scanners:
            warn_notes(scanners["default"])
        finish_and_warn(swept.report, triage, reveal)
        deliver(swept, gate, fmt, output, quiet)
    assert app is not None

    def scan_one(image: DeployedImage) -> ImageResult:
        if not quiet:
            say(f"layerleak fly: scanning {image.display}")
        return scanner_for(image).scan(image.ref)

    try:
        with exit_on_error(EXIT_INCOMPLETE):
            result = scan_app(
                app,
                client,
                scan_one,
                fail_on=gate.fail_on,
                reveal=reveal,
                scan_images=scan_images,
            )
    finally:
        client.close()
        for scanner in scanners.values():
            scanner.close()
    if "default" in scanners:
        warn_notes(scanners["default"])
    finish_and_warn(result.report, triage, reveal)
    deliver(result, gate, fmt, output, quiet)

"""``layerleak timeline``: tags, ordering by creation time, exposure windows per
fingerprint; unit tests on built results and an end-to-end run against the real test
registry holding several releases of fixture images."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from scanner.errors import SourceError
from scanner.findings import Severity
from scanner.gate import EXIT_CLEAN, EXIT_FINDINGS, EXIT_INCOMPLETE, Gate
from scanner.image import Image, Platform, PlatformImage
from scanner.report.registry import render
from scanner.results import ImageResult, ScanProblem
from scanner.timeline import (
    Release,
    build_timeline,
    match_tags,
    merge_aliases,
    next_link,
    order_releases,
    parse_time,
)
from tests.report import RAW_SECRET, config_finding, file_finding, image_result

# --- pieces -------------------------------------------------------------------------------


def test_next_link() -> None:
    current = "http://127.0.0.1:5000/v2/app/tags/list?n=2"
    header = '</v2/app/tags/list?last=b&n=2>; rel="next"'
    assert next_link(header, current) == "http://127.0.0.1:5000/v2/app/tags/list?last=b&n=2"
    assert next_link(None, current) is None
    assert next_link('<https://x/y>; rel="prev", <https://x/z>; rel=next', current) == (
        "https://x/z"
    )


def test_match_tags() -> None:
    tags = ["deployment-01A", "deployment-01B", "latest", "Deployment-x", "cache"]
    assert match_tags(tags, ["deployment-*"]) == (
        ["deployment-01A", "deployment-01B"],
        ["latest", "Deployment-x", "cache"],
    )
    assert match_tags(tags, [])[0] == tags
    assert match_tags(tags, ["latest", "cach?"])[0] == ["latest", "cache"]


def test_order_by_creation_time_then_tag() -> None:
    releases = [
        Release("b", "r:b", "sha256:b", "2024-03-01T00:00:00Z"),
        Release("a", "r:a", "sha256:a", "2024-03-01T00:00:00.5+00:00"),
        Release("z", "r:z", "sha256:z", "2024-01-01T12:00:00.123456789Z"),
        Release("c", "r:c", "sha256:c", None),
    ]
    assert [r.tag for r in order_releases(releases)] == ["c", "z", "b", "a"]
    assert parse_time("2024-01-01T12:00:00.123456789Z") is not None
    assert parse_time("yesterday") is None


def test_merge_aliases() -> None:
    releases = [
        Release("latest", "r:latest@sha256:1", "sha256:1", "2024-01-01T00:00:00Z"),
        Release("deployment-1", "r:deployment-1@sha256:1", "sha256:1", "2024-01-01T00:00:00Z"),
        Release("deployment-0", "r:deployment-0@sha256:0", "sha256:0", "2023-01-01T00:00:00Z"),
    ]
    merged = merge_aliases(releases)
    assert [(r.tag, r.aliases) for r in merged] == [
        ("deployment-1", ("latest",)),
        ("deployment-0", ()),
    ]


# --- the exposure windows, on built results ------------------------------------------------


def _image(name: str, created: str | None, digest: str) -> Image:
    config: dict[str, Any] = {"created": created} if created else {}
    platform = PlatformImage(Platform.parse("linux/amd64"), digest, {}, None, config, [], [])
    return Image(name, "registry", [platform])


SECRET = file_finding("app/.env", secret=RAW_SECRET)
KEY = file_finding(
    "app/id_rsa",
    rule_id="private-key",
    severity=Severity.CRITICAL,
    secret="-----BEGIN FAKE KEY-----",
)
ROOT = config_finding()

# tag -> (created, findings); tag names deliberately out of creation order
RELEASES: dict[str, tuple[str, list[Any]]] = {
    "deployment-d": ("2024-01-01T00:00:00Z", [ROOT]),
    "deployment-b": ("2024-02-01T00:00:00Z", [ROOT, SECRET, KEY]),
    "deployment-a": ("2024-03-01T00:00:00Z", [ROOT, SECRET]),
    "deployment-c": ("2024-04-01T00:00:00Z", [ROOT]),
    "deployment-e": ("2024-05-01T00:00:00Z", [ROOT, SECRET]),
}


def _run(tags: list[str], patterns: list[str], broken: set[str] = frozenset()) -> Any:  # type: ignore[assignment]
    def load(ref: str) -> Image:
        tag = ref.rsplit(":", 1)[1]
        if tag in broken:
            raise SourceError(f"{ref}: manifest unknown")
        return _image(ref, RELEASES[tag][0], "sha256:" + tag[-1] * 64)

    def scan(ref: str) -> ImageResult:
        tag = ref.split("@")[0].rsplit(":", 1)[1]
        return image_result(ref, findings=list(RELEASES[tag][1]))

    return build_timeline("reg.example/app", tags, patterns, load, scan)


def test_first_and_last_release_per_fingerprint() -> None:
    timeline = _run([*RELEASES, "latest"], ["deployment-*"])
    assert [r.release.tag for r in timeline.releases] == [
        "deployment-d",
        "deployment-b",
        "deployment-a",
        "deployment-c",
        "deployment-e",
    ]
    assert timeline.skipped == ["latest"]
    by_rule = {e.finding.rule_id: e for e in timeline.exposures}
    key = by_rule["private-key"]
    assert timeline.releases[key.first].release.tag == "deployment-b"
    assert timeline.releases[key.last].release.tag == "deployment-b"
    assert not timeline.in_newest(key)
    assert timeline.removed_in(key).release.tag == "deployment-a"
    secret = by_rule["github-pat"]
    assert [timeline.releases[i].release.tag for i in secret.releases] == [
        "deployment-b",
        "deployment-a",
        "deployment-e",
    ]
    assert timeline.in_newest(secret) and not secret.continuous
    root = by_rule["root-user"]
    assert root.first == 0 and timeline.in_newest(root) and root.continuous
    # most severe first
    assert timeline.exposures[0].finding.rule_id == "private-key"
    assert timeline.complete


def test_gate_on_the_newest_release_only() -> None:
    timeline = _run(list(RELEASES), [])
    assert timeline.exit_code(Gate.from_cli("high")) == EXIT_FINDINGS  # the PAT is back
    assert timeline.exit_code(Gate.from_cli("critical")) == EXIT_CLEAN  # the key is history
    older = _run(["deployment-d", "deployment-b", "deployment-a", "deployment-c"], [])
    assert older.exit_code(Gate.from_cli("high")) == EXIT_CLEAN


def test_a_release_that_cannot_be_read_makes_it_incomplete() -> None:
    timeline = _run(list(RELEASES), [], broken={"deployment-a"})
    assert len(timeline.releases) == 4
    assert not timeline.complete
    assert timeline.exit_code(Gate.from_cli("critical")) == EXIT_INCOMPLETE
    assert "manifest unknown" in timeline.problems[0].message


def test_uncertain_next_to_an_incomplete_scan() -> None:
    timeline = _run(list(RELEASES), [])
    timeline.releases[2].result.problems.append(ScanProblem("x", None, 1, "layer 1: truncated"))
    key = next(e for e in timeline.exposures if e.finding.rule_id == "private-key")
    assert timeline.uncertain(key)


@pytest.mark.parametrize("fmt", ["table", "json", "markdown"])
def test_renderings(fmt: str) -> None:
    timeline = _run(list(RELEASES), ["deployment-*"])
    text = render(timeline, fmt, Gate.from_cli("high"))
    assert RAW_SECRET not in text
    assert "deployment-b" in text and "app/id_rsa" in text
    if fmt == "json":
        doc = json.loads(text)
        key = next(e for e in doc["exposures"] if e["rule_id"] == "private-key")
        assert key["first_release"] == "deployment-b"
        assert key["first_created"] == "2024-02-01T00:00:00Z"
        assert key["last_release"] == "deployment-b"
        assert key["in_newest"] is False and key["removed_in"] == "deployment-a"
        assert doc["newest"] == "deployment-e"


# --- end to end against the real registry -------------------------------------------------


def _timeline_command() -> Any:
    from scanner.commands.timeline import timeline_command

    return timeline_command


def _push_releases(registry: Any, tmp_path: Path) -> tuple[str, str]:
    import fixtures.catalog as catalog
    from fixtures.imagebuilder import write_oci_layout
    from tests.infra.plugin import unique_repo

    repo = unique_repo("timeline")
    leaky = catalog.deleted_secret_image()
    clean = catalog.clean_image()
    plan = [  # tag, spec, created: tag order differs from creation order on purpose
        ("deployment-c", clean, "2024-01-01T00:00:00Z"),
        ("deployment-a", leaky, "2024-02-01T00:00:00Z"),
        ("deployment-b", leaky, "2024-03-01T00:00:00.123456789Z"),
        ("deployment-d", clean, "2024-04-01T00:00:00Z"),
    ]
    for tag, spec, created in plan:
        layout = write_oci_layout(tmp_path / tag, [replace(spec, created=created)], tag=tag)
        registry.push_oci_layout(layout, repo, tag)
        if tag == "deployment-d":
            registry.push_oci_layout(layout, repo, "latest")
    other = write_oci_layout(tmp_path / "other", [leaky], tag="scratch")
    registry.push_oci_layout(other, repo, "scratch")
    host = registry.url.split("://", 1)[-1].rstrip("/")
    return host, repo


def test_timeline_command_end_to_end(registry_anonymous: Any, tmp_path: Path) -> None:
    command = _timeline_command()
    host, repo = _push_releases(registry_anonymous, tmp_path)
    result = CliRunner().invoke(
        command,
        [
            f"{host}/{repo}",
            "--match",
            "deployment-*",
            "--format",
            "json",
            "--cache-dir",
            str(tmp_path / "c"),
        ],
    )
    assert result.exit_code == EXIT_CLEAN, result.output  # the newest release is clean
    doc = json.loads(result.stdout)
    assert doc["complete"] is True
    assert [r["tag"] for r in doc["releases"]] == [
        "deployment-c",
        "deployment-a",
        "deployment-b",
        "deployment-d",
    ]
    assert set(doc["skipped_tags"]) == {"latest", "scratch"}
    assert doc["newest"] == "deployment-d"
    assert doc["exposures"], "the leaky releases have findings (setuid su, root user at least)"
    for exposure in doc["exposures"]:
        assert exposure["first_release"] == "deployment-a"
        assert exposure["first_created"] == "2024-02-01T00:00:00Z"
        assert exposure["last_release"] == "deployment-b"
        assert exposure["in_newest"] is False
        assert exposure["removed_in"] == "deployment-d"
    assert "layerleak timeline" in result.stderr
    secrets = {e["where"] for e in doc["exposures"] if e["category"] == "secret"}
    assert {"/app/secrets/id_rsa", "/app/deploy.env"} <= {w.split(":")[0] for w in secrets}


def test_timeline_aliases_and_pagination(registry_anonymous: Any, tmp_path: Path) -> None:
    from scanner.registry.client import Endpoint, RegistryClient
    from scanner.registry.credentials import Credential
    from scanner.timeline import list_tags

    host, repo = _push_releases(registry_anonymous, tmp_path)
    client = RegistryClient(
        Endpoint.for_registry(host, insecure=False, timeout=10), Credential(None)
    )
    try:
        tags = list_tags(client, repo, page_size=2)
    finally:
        client.close()
    assert sorted(tags) == sorted(
        ["deployment-a", "deployment-b", "deployment-c", "deployment-d", "latest", "scratch"]
    )
    command = _timeline_command()
    result = CliRunner().invoke(
        command,
        [
            f"{host}/{repo}",
            "--format",
            "json",
            "--last",
            "2",
            "-q",
            "--cache-dir",
            str(tmp_path / "c"),
        ],
    )
    doc = json.loads(result.stdout)
    # latest and deployment-d are one image: one release with an alias
    newest = doc["releases"][-1]
    assert newest["tag"] == "deployment-d" and newest["aliases"] == ["latest"]
    assert len(doc["releases"]) == 2
    assert result.stderr == ""


def test_timeline_unknown_repository(registry_anonymous: Any) -> None:
    command = _timeline_command()
    host = registry_anonymous.url.split("://", 1)[-1].rstrip("/")
    result = CliRunner().invoke(command, [f"{host}/no/such-repo", "-q"])
    assert result.exit_code == EXIT_INCOMPLETE
    assert "no/such-repo" in result.stderr


def test_timeline_no_match_is_a_usage_error(registry_anonymous: Any, tmp_path: Path) -> None:
    command = _timeline_command()
    host, repo = _push_releases(registry_anonymous, tmp_path)
    result = CliRunner().invoke(command, [f"{host}/{repo}", "--match", "release-*", "-q"])
    assert result.exit_code == 2
    assert "no tag" in result.stderr and "release-*" in result.stderr


def test_timeline_honours_the_ignore_file(registry_anonymous: Any, tmp_path: Path) -> None:
    host, repo = _push_releases(registry_anonymous, tmp_path)
    ignore = tmp_path / "ignore.toml"
    ignore.write_text('[[ignore]]\npath = "/app/**"\nreason = "rotated on 2024-03-01"\n')
    args = [f"{host}/{repo}", "--match", "deployment-*", "--format", "json", "--no-cache", "-q"]
    plain = json.loads(CliRunner().invoke(_timeline_command(), args).stdout)
    assert any(e["where"].startswith("/app/") for e in plain["exposures"])
    result = CliRunner().invoke(_timeline_command(), [*args, "--ignore-file", str(ignore)])
    doc = json.loads(result.stdout)
    assert doc["exposures"] and not any(e["where"].startswith("/app/") for e in doc["exposures"])

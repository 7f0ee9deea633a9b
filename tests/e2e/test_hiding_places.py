"""Every hiding place of a secret, end to end: rule, layer, path, inner path, status."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.catalog import Hidden, hiding_places_hidden
from scanner.findings import Category, FileState, Finding, Severity, hash_secret
from scanner.results import ImageResult
from tests.conftest import TEST_FINGERPRINT_KEY
from tests.e2e.helpers import scan

HIDDEN = hiding_places_hidden()
# the secret is a part: the URL's password, the base64 auth, the key's PEM body
WHOLE_VALUE_IS_NOT_THE_SECRET = {"postgres_url", "docker_config_json", "openssh_private_key"}


@pytest.fixture(scope="module")
def result(images: dict[str, Path]) -> ImageResult:
    return scan(images["hiding_places"])


def found(result: ImageResult, hidden: Hidden) -> list[Finding]:
    return [
        f
        for f in result.findings
        if f.rule_id == hidden.rule
        and f.platform == hidden.platform
        and f.location.path == hidden.path
        and f.location.inner_path == hidden.inner_path
    ]


def test_scan_is_complete(result: ImageResult) -> None:
    assert result.problems == []
    assert {p.platform for p in result.platforms} == {"linux/amd64", "linux/arm64/v8"}


@pytest.mark.parametrize("hidden", HIDDEN, ids=[h.place for h in HIDDEN])
def test_secret_is_found_where_it_hides(result: ImageResult, hidden: Hidden) -> None:
    hits = found(result, hidden)
    assert len(hits) == 1, f"{hidden.place}: {[f.location for f in hits]}"
    finding = hits[0]
    assert finding.location.layer_index == hidden.layer
    assert finding.severity > Severity.LOW and finding.noise is None
    assert finding.category is Category.SECRET
    if hidden.kind not in WHOLE_VALUE_IS_NOT_THE_SECRET:
        assert finding.secret_hash == hash_secret(hidden.value, TEST_FINGERPRINT_KEY)
    if hidden.status == "deleted":
        assert finding.status.state is FileState.DELETED
        assert finding.status.changed_in_layer == hidden.layer + 1
    else:
        assert finding.status.state is FileState.PRESENT


def test_inner_paths_display_with_bang(result: ImageResult) -> None:
    shown = {f.location.display_path() for f in result.findings if f.location.inner_path}
    assert "/opt/app/app.jar!BOOT-INF/classes/application.properties" in shown
    assert "/app/dist/bundle.zip!inner/config.zip!secrets.env" in shown
    assert "/srv/backup.tar!site.tar.gz!home/deploy/.aws/credentials" in shown
    assert "/opt/pkgs/app_1.0_all.deb!data.tar.xz!opt/app/bundle.zip!.env" in shown
    assert "/srv/backup.7z!deploy/fly.env" in shown
    assert "/srv/dump.sql.xz!dump.sql" in shown and "/srv/log/old.log.bz2!old.log" in shown


def test_structured_config_findings_name_the_key(result: ImageResult) -> None:
    titles = {
        f.location.display_path(): f.title
        for f in result.findings
        if f.rule_id in ("flytoml-env-secret", "compose-env-secret")
    }
    assert titles == {
        "/app/fly.toml": "fly.toml [env] DATABASE_PASSWORD holds a secret in clear",
        "/srv/docker-compose.yml": "Compose service db: environment POSTGRES_PASSWORD "
        "holds a secret in clear",
        "/srv/compose.override.yaml": "Compose service app: environment SESSION_SECRET "
        "holds a secret in clear",
    }


def test_data_hidden_after_an_archive_is_found_in_the_file_itself(result: ImageResult) -> None:
    tails = {"zip-appended", "gzip-appended", "tar-after-end"}
    for hidden in (h for h in HIDDEN if h.place in tails):
        (finding,) = found(result, hidden)
        assert finding.location.inner_path is None
        assert finding.location.display_path() == "/" + hidden.path


def test_secret_across_the_window_boundary_has_its_line(result: ImageResult) -> None:
    (hidden,) = [h for h in HIDDEN if h.place == "large-file"]
    (finding,) = found(result, hidden)
    assert finding.location.line is not None and finding.location.line > 80_000


def test_files_inside_archives_match_path_rules(result: ImageResult) -> None:
    where = {
        (f.rule_id, f.location.display_path())
        for f in result.findings
        if f.category is Category.SENSITIVE_FILE
    }
    assert ("aws-credentials", "/srv/backup.tar!site.tar.gz!home/deploy/.aws/credentials") in where
    assert ("env-file", "/app/dist/bundle.zip!inner/config.zip!secrets.env") in where


def test_links_are_reported_once_at_their_target(result: ImageResult) -> None:
    stripe = [f for f in result.findings if f.rule_id == "stripe-live-secret-key"]
    paths = sorted(f.location.display_path() for f in stripe)
    assert paths == ["/app/config/settings.ini", "/srv/dump.sql.zst!dump.sql"]
    assert not [f for f in result.findings if "settings.ini.bak" in (f.location.path or "")]
    assert not [f for f in result.findings if f.location.path == "app/config/current"]


def test_nothing_left_unscanned(result: ImageResult) -> None:
    assert [f for f in result.findings if f.rule_id == "archive-not-fully-scanned"] == []

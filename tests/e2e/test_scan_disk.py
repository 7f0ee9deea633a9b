"""End to end on images from disk: exact findings, layers, statuses and problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.catalog import BROKEN, PLANTS
from scanner.findings import Category, FileState, LocationKind, Severity
from scanner.image import Platform
from tests.e2e.helpers import rules, scan, secrets_at, state

DELETED_FORMS = [
    "deleted_secret",
    "deleted_secret_oci_tar",
    "deleted_secret_docker_legacy",
    "deleted_secret_docker25",
]


@pytest.mark.parametrize("name", DELETED_FORMS)
def test_secret_added_in_layer_1_is_reported_deleted_in_layer_2(
    images: dict[str, Path], name: str
) -> None:
    result = scan(images[name])
    assert result.problems == []
    rsa = secrets_at(result, "app/secrets/id_rsa", layer=1)
    assert rsa, f"no secret finding for the deleted RSA key in {name}"
    assert {state(f) for f in rsa} == {(FileState.DELETED, 2)}
    assert all(f.location.created_by for f in rsa)
    assert all(f.location.diff_id and f.location.layer_digest for f in rsa)
    pat = secrets_at(result, "app/deploy.env", layer=1)
    assert pat and {state(f) for f in pat} == {(FileState.OVERWRITTEN, 3)}


def test_every_layout_gives_the_same_findings(images: dict[str, Path]) -> None:
    def key(name: str) -> set[tuple[str, str, int | None, str]]:
        return {
            (f.fingerprint, f.status.describe(), f.location.layer_index, f.location.diff_id or "")
            for f in scan(images[name]).findings
        }

    first = key(DELETED_FORMS[0])
    for other in DELETED_FORMS[1:]:
        assert key(other) == first, other


def test_opaque_directory_deletes_even_when_written_last(images: dict[str, Path]) -> None:
    result = scan(images["deleted_secret_opaque"])
    rsa = secrets_at(result, "app/secrets/id_rsa", layer=1)
    assert rsa and {state(f) for f in rsa} == {(FileState.DELETED, 2)}


def test_demo_image(images: dict[str, Path]) -> None:
    result = scan(images["demo"])
    assert result.problems == []
    env = secrets_at(result, "app/.env", layer=1)
    assert len({f.rule_id for f in env}) >= 3  # AWS key id, AWS secret, postgres URL
    assert {state(f) for f in env} == {(FileState.DELETED, 2)}
    key = secrets_at(result, "app/config/id_ed25519", layer=1)
    assert key and {state(f) for f in key} == {(FileState.PRESENT, None)}
    found = rules(result)
    assert {
        "root-user",
        "sensitive-port-exposed",
        "no-healthcheck",
        "unpinned-base-image",
        "add-from-url",
        "pipe-to-shell",
        "setuid-file",
        "world-writable-system-path",
    } <= found
    # The Fly token passed as a build arg, against its history step and layer 2.
    history = [
        f
        for f in result.findings
        if f.location.kind is LocationKind.HISTORY
        and f.category is Category.SECRET
        and f.location.layer_index == 2
    ]
    assert history, "build-arg secret in history not found"
    assert all(f.severity >= Severity.HIGH for f in history)
    # ENV step and label steps have no layer.
    no_layer = [
        f
        for f in result.findings
        if f.location.kind is LocationKind.HISTORY
        and f.category is Category.SECRET
        and f.location.layer_index is None
    ]
    assert len({f.location.history_index for f in no_layer}) >= 2
    env_findings = [f for f in result.findings if (f.location.field or "").startswith("config.Env")]
    label_findings = [
        f
        for f in result.findings
        if (f.location.field or "").startswith("config.Labels[com.example")
    ]
    assert env_findings and label_findings
    ports = {f.match for f in result.findings if f.rule_id == "sensitive-port-exposed"}
    assert ports == {"22/tcp", "5432/tcp"}
    sensitive = {f.location.path for f in result.findings if f.category is Category.SENSITIVE_FILE}
    assert {"app/.env", "app/config/id_ed25519"} <= sensitive


def test_no_finding_or_build_step_carries_a_raw_secret(images: dict[str, Path]) -> None:
    result = scan(images["demo"])
    text = repr(result.findings) + repr(result.platforms)
    for plant in PLANTS["demo"]:
        for line in plant.value.splitlines():
            if len(line) > 16 and "PRIVATE KEY" not in line:
                assert line not in text, f"{plant.kind} leaked into the findings"


def test_reveal_keeps_the_secret(images: dict[str, Path]) -> None:
    result = scan(images["demo"], reveal=True)
    secrets = {f.secret for f in result.findings if f.secret}
    assert any(s and "fm2_" in s for s in secrets)


def test_multiplatform_scans_every_platform(images: dict[str, Path]) -> None:
    result = scan(images["multiplatform"])
    assert result.problems == []
    assert sorted(p.platform for p in result.platforms) == ["linux/amd64", "linux/arm64/v8"]
    npm = secrets_at(result, "srv/.npmrc")
    assert npm and {f.platform for f in npm} == {"linux/arm64/v8"}


def test_platform_selection(images: dict[str, Path]) -> None:
    result = scan(
        images["multiplatform"], source_options={"platforms": (Platform.parse("linux/amd64"),)}
    )
    assert [p.platform for p in result.platforms] == ["linux/amd64"]
    assert not secrets_at(result, "srv/.npmrc")
    missing = scan(
        images["multiplatform"], source_options={"platforms": (Platform.parse("linux/s390x"),)}
    )
    assert missing.problems and "linux/s390x" in missing.problems[0].message
    assert "linux/amd64" in missing.problems[0].message


def test_provenance_base_feeds_the_pin_check(images: dict[str, Path]) -> None:
    result = scan(images["multiplatform"])
    unpinned = [f for f in result.findings if f.rule_id == "unpinned-base-image"]
    assert unpinned and all("provenance" in (f.location.field or "") for f in unpinned)


def test_zstd_and_uncompressed_layers(images: dict[str, Path]) -> None:
    result = scan(images["zstd"])
    assert result.problems == []
    assert secrets_at(result, "etc/app/service.jwt", layer=1)
    assert secrets_at(result, "root/.pypirc", layer=2)
    compressions = [layer.compression for layer in result.platforms[0].layers]
    assert "zstd" in compressions and "none" in compressions


def test_clean_image_has_nothing_above_low(images: dict[str, Path]) -> None:
    result = scan(images["clean"])
    assert result.problems == []
    assert [f for f in result.findings if f.severity > Severity.LOW] == []


def test_hostile_names_are_scanned_and_reported(images: dict[str, Path]) -> None:
    result = scan(images["hostile"])
    paths = {f.location.path for f in result.findings if f.category is Category.SECRET}
    for expected in (
        "etc/evil",
        "abs/path",
        "etc/shadow",
        "outside",
        "app/loop-a/token.txt",
        "app/escape/cron.d/backdoor",
    ):
        assert expected in paths, expected
    messages = " ".join(p.message for p in result.problems)
    assert "'../../etc/evil'" in messages and "'/abs/path'" in messages
    assert all(p.layer_index == 1 for p in result.problems)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_images_report_a_problem_and_keep_the_rest(
    images: dict[str, Path], name: str
) -> None:
    result = scan(images[name])
    assert result.problems, f"{name} scanned as if it were fine"
    for problem in result.problems:
        assert "\n" not in problem.message
        assert "Traceback" not in problem.message
    layer_faults = {
        "broken_layer_truncated",
        "broken_blob_digest",
        "broken_diff_id",
        "broken_layer_not_tar",
        "broken_layer_not_gzip",
        "broken_missing_blob",
    }
    if name in layer_faults:
        assert any(p.layer_index == 1 and "layer 1" in p.message for p in result.problems), (
            result.problems
        )
        # The config and history are still checked.
        assert "root-user" in rules(result) or "no-healthcheck" in rules(result)


def test_secret_overwritten_within_its_own_layer(tmp_path: Path) -> None:
    from fixtures import fakesecrets
    from fixtures.catalog import base_layer
    from fixtures.imagebuilder import Entry, ImageSpec, LayerSpec, write_oci_layout

    token = fakesecrets.github_pat("same-layer")
    spec = ImageSpec(
        steps=[
            base_layer(),
            LayerSpec(
                [
                    Entry("app/deploy.env", content=f"GH_TOKEN={token}\n".encode()),
                    Entry("app/main.py", content=b"print('hi')\n"),
                    Entry("app/deploy.env", content=b"GH_TOKEN=\n"),
                ],
                created_by="COPY . /app # buildkit",
            ),
        ]
    )
    result = scan(write_oci_layout(tmp_path / "img", [spec]))
    found = secrets_at(result, "app/deploy.env", layer=1)
    assert found and {state(f) for f in found} == {(FileState.OVERWRITTEN, 1)}
    assert {f.location.occurrence for f in found} == {None}  # the first copy

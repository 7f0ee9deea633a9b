"""Report-format tests, and small builders of findings and reports used by them and by
the diff, gate, fly and timeline tests (results built directly, no image needed)."""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from scanner.findings import (
    Category,
    FileState,
    Finding,
    Location,
    LocationKind,
    Severity,
    Status,
    hash_secret,
    redact,
)
from scanner.results import ImageResult, LayerSummary, PlatformResult, Report, ScanProblem
from tests.conftest import TEST_FINGERPRINT_KEY

RAW_SECRET = "ghp_FAKEfakeFAKEfakeFAKEfakeFAKEfake0123"  # not a real token
LAYER_DIGESTS = [f"sha256:{str(i) * 64}" for i in range(4)]


def file_finding(
    path: str = "app/deploy.env",
    *,
    rule_id: str = "github-pat",
    title: str = "GitHub personal access token",
    severity: Severity = Severity.HIGH,
    category: Category = Category.SECRET,
    layer: int = 1,
    secret: str = RAW_SECRET,
    state: FileState = FileState.PRESENT,
    changed_in: int | None = None,
    image: str = "registry.example/app:1",
    platform: str = "linux/amd64",
    reveal: bool = False,
    line: int | None = 1,
    created_by: str | None = "COPY app/ /app/ # buildkit",
) -> Finding:
    return Finding(
        rule_id=rule_id,
        title=title,
        severity=severity,
        category=category,
        location=Location(
            kind=LocationKind.FILE,
            layer_index=layer,
            layer_digest=LAYER_DIGESTS[layer % len(LAYER_DIGESTS)],
            diff_id=f"sha256:{'d' * 63}{layer}",
            path=path,
            line=line,
            history_index=layer + 1,
            created_by=created_by,
        ),
        match=redact(secret),
        secret_hash=hash_secret(secret, TEST_FINGERPRINT_KEY),
        detector="Github",
        description="A GitHub token lets anyone act as its owner.",
        image=image,
        platform=platform,
        status=Status(state, changed_in),
        secret=secret if reveal else None,
    )


def config_finding(
    *,
    rule_id: str = "root-user",
    title: str = "Runs as root",
    severity: Severity = Severity.MEDIUM,
    category: Category = Category.MISCONFIG,
    field: str = "config.User",
    match: str = "User root",
    image: str = "registry.example/app:1",
    platform: str = "linux/amd64",
) -> Finding:
    return Finding(
        rule_id=rule_id,
        title=title,
        severity=severity,
        category=category,
        location=Location(kind=LocationKind.CONFIG, field=field),
        match=match,
        description="Add a USER instruction.",
        image=image,
        platform=platform,
        status=Status(FileState.NOT_A_FILE),
    )


def history_finding(
    *, secret: str = "fm2_FAKEfakeFAKEfake", image: str = "registry.example/app:1"
) -> Finding:
    return Finding(
        rule_id="fly-token",
        title="Fly.io token in a build argument",
        severity=Severity.CRITICAL,
        category=Category.SECRET,
        location=Location(
            kind=LocationKind.HISTORY,
            layer_index=2,
            layer_digest=LAYER_DIGESTS[2],
            history_index=9,
            created_by="RUN |1 FLY_API_TOKEN=fm2_******** /bin/sh -c fly deploy # buildkit",
            field="history[9].created_by",
        ),
        match=redact(secret),
        secret_hash=hash_secret(secret, TEST_FINGERPRINT_KEY),
        image=image,
        platform="linux/amd64",
        status=Status(FileState.NOT_A_FILE),
    )


def image_result(
    name: str = "registry.example/app:1",
    findings: list[Finding] | None = None,
    problems: list[ScanProblem] | None = None,
    layers: int = 4,
) -> ImageResult:
    platform = PlatformResult(
        "linux/amd64",
        "sha256:" + "a" * 64,
        "sha256:" + "c" * 64,
        [
            LayerSummary(
                index=i,
                digest=LAYER_DIGESTS[i % len(LAYER_DIGESTS)],
                diff_id=None,
                media_type="application/vnd.oci.image.layer.v1.tar+gzip",
                created_by=f"RUN step {i}",
                history_index=i,
                compression="gzip",
                entries=3,
                compressed_bytes=100,
                uncompressed_bytes=300,
                findings=0,
                cached=False,
                error=None,
            )
            for i in range(layers)
        ],
    )
    return ImageResult(
        name=name,
        source_kind="registry",
        platforms=[platform],
        findings=list(findings or []),
        problems=list(problems or []),
    )


def report(
    *images: ImageResult,
    fail_on: Severity = Severity.HIGH,
    reveal: bool = False,
    suppressed: dict[str, int] | None = None,
) -> Report:
    return Report(
        images=list(images),
        fail_on=fail_on,
        reveal=reveal,
        suppressed=Counter(suppressed or {}),
    )


def sample_report(reveal: bool = False) -> Report:
    """One image: a present and a deleted secret file, a history secret, a config finding."""
    findings = [
        file_finding(reveal=reveal),
        file_finding(
            "app/secrets/id_rsa",
            rule_id="private-key",
            title="Private key",
            severity=Severity.CRITICAL,
            secret="-----BEGIN RSA PRIVATE KEY-----FAKE",
            state=FileState.DELETED,
            changed_in=2,
            reveal=reveal,
            line=None,
        ),
        history_finding(),
        config_finding(),
    ]
    return report(
        image_result(findings=findings), reveal=reveal, suppressed={"placeholder": 2, "test": 1}
    )


@functools.lru_cache(maxsize=1)
def demo_scan() -> tuple[Report, tuple[str, ...]]:
    """The fixture demo image, scanned once per test session, and its planted secrets."""
    import fixtures.catalog as catalog
    from fixtures.imagebuilder import write_oci_layout
    from scanner.scan import Scanner, ScanOptions

    out = Path(tempfile.mkdtemp(prefix="llt-demo-"))
    try:
        layout = write_oci_layout(out / "demo", [catalog.demo_image()])
        with Scanner(ScanOptions(use_cache=False, jobs=1)) as scanner:
            rep = scanner.scan_all([f"oci:{layout}"])
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return rep, tuple(p.value for p in catalog.PLANTS["demo"])

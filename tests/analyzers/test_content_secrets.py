"""The content analyzer: nested archives, glued tokens in binaries, provenance noise."""

from __future__ import annotations

import gzip
import io
import zipfile
from typing import BinaryIO

import pytest

from fixtures import fakesecrets as fs
from scanner.analyzers.content_secrets import (
    ARCHIVE_RULE_ID,
    MAX_ARCHIVE_PROBLEMS,
    NOISE_DISTRO,
    NOISE_THIRD_PARTY,
    NOISE_THIRD_PARTY_TESTS,
    ContentSecretsAnalyzer,
    distinctive,
    noise_for,
)
from scanner.analyzers.interface import LayerContext
from scanner.analyzers.sensitive_paths import SensitivePathsAnalyzer
from scanner.archives import ArchiveBudget, ArchiveLimits
from scanner.detection import Detection
from scanner.findings import Finding, Severity
from scanner.layers import EntryKind, FileInfo
from scanner.signatures import SignatureSet

SIGNATURES = SignatureSet.load(())
DETECTION = Detection(SIGNATURES)
LAYER = LayerContext(1, "sha256:" + "a" * 64, None, None, None)
GHP = fs.github_pat("unit")
PEM = fs.rsa_private_key("unit")
GENERIC = 'db_password = "Zq8vT3mW9xK2pL7rN4sB"\n'


def analyze(
    path: str, data: bytes, analyzer: ContentSecretsAnalyzer | None = None
) -> list[Finding]:
    analyzer = analyzer or ContentSecretsAnalyzer(DETECTION)
    info = FileInfo(path, EntryKind.FILE, 0o644, len(data), 0, 0)
    return list(analyzer.analyze(info, io.BytesIO(data), LAYER))


def rule(rule_id: str):  # type: ignore[no-untyped-def]
    found = SIGNATURES.get(rule_id)
    assert found is not None
    return found


@pytest.mark.parametrize(
    "rule_id",
    [
        "github-personal-access-token",
        "stripe-live-secret-key",
        "flyio-macaroon",
        "npm-access-token",
    ],
)
def test_vendor_token_formats_are_distinctive(rule_id: str) -> None:
    assert distinctive(rule(rule_id))


@pytest.mark.parametrize(
    "rule_id",
    [
        "rsa-private-key",
        "pkcs8-private-key",
        "aws-access-key-id",
        "jwt",
        "generic-password",
        "postgres-connection-url",
        "twilio-auth-token",
        "gcp-service-account-key",
    ],
)
def test_rules_that_occur_in_benign_content_are_not(rule_id: str) -> None:
    assert not distinctive(rule(rule_id))


@pytest.mark.parametrize(
    ("path", "rule_id", "reason"),
    [
        ("usr/lib/x86_64-linux-gnu/libgnutls.so.30", "rsa-private-key", NOISE_DISTRO),
        ("usr/lib/python3/dist-packages/x/y.py", "generic-password", NOISE_THIRD_PARTY),
        ("usr/local/lib/python3.12/site-packages/moto/proxy/ca.key", "rsa-private-key",
         NOISE_THIRD_PARTY),
        ("app/node_modules/aws-sdk/README.md", "aws-access-key-id", NOISE_THIRD_PARTY),
        ("usr/local/lib/python3.12/site-packages/x/tests/k.py", "github-personal-access-token",
         NOISE_THIRD_PARTY_TESTS),
        ("usr/share/doc/libfoo/examples/key.pem", "rsa-private-key", NOISE_THIRD_PARTY_TESTS),
        ("usr/local/lib/python3.12/site-packages/transformers/testing_utils.py",
         "huggingface-token", NOISE_THIRD_PARTY_TESTS),
        ("usr/local/lib/python3.12/urllib/request.py", "generic-password", NOISE_THIRD_PARTY),
        ("root/.cache/pip/http-v2/a/b/c.body", "generic-password", NOISE_THIRD_PARTY),
        ("usr/local/go/src/crypto/tls/testdata/key.pem", "github-personal-access-token",
         NOISE_THIRD_PARTY_TESTS),
        ("app/config.py", "generic-password", None),
        ("opt/app/key.pem", "rsa-private-key", None),
        ("usr/local/bin/server", "rsa-private-key", None),
        ("usr/share/nginx/html/main.js", "generic-api-key", None),
        ("etc/app/secret.pem", "rsa-private-key", None),
        ("usr/lib/python3/dist-packages/x/y.py", "github-personal-access-token", None),
        ("usr/bin/tool", "stripe-live-secret-key", None),
    ],
)  # fmt: skip
def test_noise_policy(path: str, rule_id: str, reason: str | None) -> None:
    assert noise_for(path, rule(rule_id)) == reason


def test_private_key_in_a_distribution_library_is_low_in_an_app_critical() -> None:
    blob = b"\x7fELF\x02\x01\x01\x00" + bytes(64) + PEM.encode() + bytes(64)
    (lib,) = [f for f in analyze("usr/lib/x86_64-linux-gnu/libx.so.1", blob)]
    assert lib.severity is Severity.LOW and lib.noise == NOISE_DISTRO
    (app,) = [f for f in analyze("app/bin/server", blob)]
    assert app.severity is Severity.CRITICAL and app.noise is None
    assert app.fingerprint != lib.fingerprint


def test_distinctive_token_keeps_its_severity_in_site_packages() -> None:
    (f,) = analyze("usr/local/lib/python3.12/site-packages/pkg/conf.py", f'T = "{GHP}"\n'.encode())
    assert f.severity is Severity.CRITICAL and f.noise is None


def test_generic_secret_in_site_packages_is_lowered_not_dropped() -> None:
    (f,) = analyze("usr/local/lib/python3.12/site-packages/pkg/conf.py", GENERIC.encode())
    assert f.severity is Severity.LOW and f.noise == NOISE_THIRD_PARTY
    (g,) = analyze("app/conf.py", GENERIC.encode())
    assert g.severity is Severity.MEDIUM and g.noise is None


def test_token_glued_to_a_printable_byte_in_a_binary_is_found() -> None:
    token = fs.slack_bot_token("glued")
    data = b"\xca\xfe\xba\xbe\x00\x00\x01\x00" + bytes([len(token)]) + token.encode() + b"\x00"
    assert chr(len(token)).isalnum()  # the length byte reads as a character
    (f,) = analyze("app/classes/Config.class", data)
    assert f.rule_id == "slack-bot-token" and f.severity is Severity.HIGH


def test_glued_token_in_text_is_still_not_a_token() -> None:
    assert analyze("app/notes.txt", f"prefix{GHP}\n".encode()) == []


def test_secret_inside_nested_archive_has_inner_path() -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("conf/app.env", f"TOKEN={GHP}\n")
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("lib/inner.jar", inner.getvalue())
    found = analyze("opt/app/app.jar", outer.getvalue())
    secret = [f for f in found if f.rule_id == "github-personal-access-token"]
    assert [f.location.display_path() for f in secret] == [
        "/opt/app/app.jar!lib/inner.jar!conf/app.env"
    ]
    assert secret[0].location.line == 1
    env = [f for f in found if f.rule_id == "env-file"]
    assert env and env[0].location.inner_path == "lib/inner.jar!conf/app.env"


def layer_with(**limits: int) -> LayerContext:
    budget = ArchiveBudget(ArchiveLimits(**limits))
    return LayerContext(1, "sha256:" + "a" * 64, None, None, None, budget)


def analyze_in(path: str, data: bytes, layer: LayerContext) -> list[Finding]:
    info = FileInfo(path, EntryKind.FILE, 0o644, len(data), 0, 0)
    return list(ContentSecretsAnalyzer(DETECTION).analyze(info, io.BytesIO(data), layer))


def test_a_limit_that_stops_scanning_is_a_layer_problem_not_an_info_finding() -> None:
    layer = layer_with(member_cap=1 << 16)
    data = gzip.compress(b"x" * (1 << 18) + f"\nTOKEN={GHP}\n".encode())
    assert analyze_in("srv/log.gz", data, layer) == []
    (problem,) = layer.problems
    assert problem.startswith("layer 1 (sha256:aaaaaaaaaaaa): /srv/log.gz!log: ")
    assert "per-member cap of 64 KB" in problem


def test_what_no_scanner_can_open_stays_an_info_finding() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("secret.txt", "x")
    data = bytearray(buf.getvalue())
    data[6] |= 1
    data[data.find(b"PK\x01\x02") + 8] |= 1  # encrypted, in both headers
    layer = layer_with()
    (info,) = analyze_in("app/x.zip", bytes(data), layer)
    assert info.rule_id == ARCHIVE_RULE_ID and info.severity is Severity.INFO
    assert info.location.inner_path == "secret.txt" and "encrypted" in info.match
    assert layer.problems == []


def test_archive_problems_per_layer_are_capped_and_counted() -> None:
    layer = layer_with(member_cap=1 << 10)
    bomb = gzip.compress(bytes(1 << 12))
    for i in range(MAX_ARCHIVE_PROBLEMS + 5):
        analyze_in(f"srv/b{i}.gz", bomb, layer)
    assert len(layer.problems) == MAX_ARCHIVE_PROBLEMS + 1
    assert "5 more part(s) of archives not fully scanned" in layer.problems[-1]


def test_hardlink_is_reported_at_its_path_pointing_at_its_target() -> None:
    analyzer = SensitivePathsAnalyzer(DETECTION)
    link = FileInfo("app/.env", EntryKind.HARDLINK, 0o644, 0, 0, 0, linkname="srv/config")
    (f,) = analyzer.analyze(link, None, LAYER)
    assert f.rule_id == "env-file" and f.match == "hardlink to /srv/config"
    content = ContentSecretsAnalyzer(DETECTION)
    assert not content.required(link)


def test_compressed_docs_are_not_opened_app_archives_are() -> None:
    data = gzip.compress(f"TOKEN={GHP}\n".encode())
    assert analyze("usr/share/man/man1/tool.1.gz", data) == []
    (f,) = analyze("app/logs/old.log.gz", data)
    assert f.location.inner_path == "old.log" and f.severity is Severity.CRITICAL


def test_debs_apt_downloaded_are_not_opened_a_deb_elsewhere_is() -> None:
    from tests.archives.helpers import COMPRESS, deb_bytes, tar_bytes

    deb = deb_bytes(COMPRESS["xz"](tar_bytes({"./opt/app/.env": f"TOKEN={GHP}\n".encode()})))
    assert analyze("var/cache/apt/archives/app_1.0_all.deb", deb) == []
    found = analyze("opt/pkgs/app_1.0_all.deb", deb)
    secret = [f for f in found if f.rule_id == "github-personal-access-token"]
    assert [f.location.inner_path for f in secret] == ["data.tar.xz!opt/app/.env"]


def test_a_binary_over_the_whole_file_limit_still_gets_the_glued_token_pass() -> None:
    # read into one buffer (scanner.streams.read_buffer), not through the small-file path
    from scanner.analyzers.content_secrets import GLUED_LIMIT, WHOLE_FILE_LIMIT

    filler = b"\x00\x01\x02ELF" * ((WHOLE_FILE_LIMIT + (1 << 20)) // 6)
    data = filler + b"\x008" + GHP.encode() + b"\x00" * 64
    assert WHOLE_FILE_LIMIT < len(data) <= GLUED_LIMIT
    found = [
        f for f in analyze("app/bin/server", data) if f.rule_id == "github-personal-access-token"
    ]
    assert [f.location.line for f in found] == [1]
    assert found[0].severity is not Severity.LOW


def test_the_literal_guards_of_the_provenance_patterns_never_change_a_verdict() -> None:
    # every alternative of each pattern needs one of its guard's substrings
    import random

    from scanner.analyzers import content_secrets as cs

    rng = random.Random(3)
    parts = [
        "usr",
        "local",
        "lib",
        "python3.11",
        "site-packages",
        "dist-packages",
        "pkg",
        "tests",
        "test_x.py",
        "conftest.py",
        "node_modules",
        "@scope",
        "spec",
        "vendor",
        "bundle",
        "gems",
        "ruby",
        "go",
        "pkg",
        "mod",
        "testdata",
        ".m2",
        "repository",
        ".cargo",
        "registry",
        ".cache",
        "pip",
        ".npm",
        "_cacache",
        ".yarn",
        "cache",
        ".gradle",
        "caches",
        "opt",
        "java",
        "conda",
        "pkgs",
        ".pyenv",
        "versions",
        "share",
        "doc",
        "man",
        "app",
        "srv",
        "data0",
        "rustup",
        "openjdk-17",
        "fixtures",
    ]
    paths = ["/".join(rng.choice(parts) for _ in range(rng.randrange(1, 8))) for _ in range(20000)]
    hits = {"noise": 0, "package": 0}
    for path in paths:
        cs.third_party_noise.cache_clear()
        cs.provenance_noise.cache_clear()
        raw_noise = cs.THIRD_PARTY_NOISE.search(path) is not None
        raw_package = cs.THIRD_PARTY_PACKAGE.search(path) is not None
        assert (cs.third_party_noise(path) is not None) == raw_noise, path
        assert (cs.provenance_noise(path) == cs.NOISE_THIRD_PARTY) == raw_package, path
        hits["noise"] += raw_noise
        hits["package"] += raw_package
    assert hits["noise"] > 200 and hits["package"] > 2000


def test_a_binary_known_too_large_for_the_glued_pass_is_not_read_whole_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A layer member knows its size (MemberReader.left): one larger than GLUED_LIMIT is
    # scanned as a stream at once, instead of being read up to the limit to find out.
    # Same findings as reading first; only the buffered read goes away.
    from scanner.analyzers import content_secrets
    from scanner.image import Layer
    from scanner.layer_scan import scan_layer
    from tests.test_hostile_layers import Bytes
    from tests.test_layers import make_tar, sha

    monkeypatch.setattr(content_secrets, "WHOLE_FILE_LIMIT", 16 << 10)
    monkeypatch.setattr(content_secrets, "GLUED_LIMIT", 64 << 10)
    glued = b"\x00\x07" + GHP.encode() + b"\x00"
    text = b"\nGITHUB_TOKEN=" + fs.github_pat("big-binary").encode() + b"\n"
    filler = b"\x00\x01\x02ELF\x00" * 4000
    tar = make_tar(
        [
            ("app", None, 0o755),
            ("app/big", filler * 8 + glued + text + filler, 0o755),  # over GLUED_LIMIT
            ("app/mid", filler + glued + text, 0o755),  # between the two limits
            ("app/edge", (filler * 3)[: (64 << 10) - len(glued)] + glued, 0o755),  # at it
        ]
    )
    layer = Layer(0, sha(tar), sha(tar), "", len(tar), Bytes(tar))

    def scan(shortcut: bool) -> tuple[list[tuple[str, str, int | None, str]], int]:
        reads: list[int] = []
        read_buffer = content_secrets.read_buffer

        def counted(stream: BinaryIO, size: int) -> bytearray:
            reads.append(size)
            return read_buffer(stream, size)

        monkeypatch.setattr(content_secrets, "read_buffer", counted)
        if not shortcut:
            monkeypatch.setattr(content_secrets, "known_left", lambda stream: None)
        result = scan_layer(layer, DETECTION)
        monkeypatch.undo()
        monkeypatch.setattr(content_secrets, "WHOLE_FILE_LIMIT", 16 << 10)
        monkeypatch.setattr(content_secrets, "GLUED_LIMIT", 64 << 10)
        assert result.error is None
        found = sorted(
            (f.location.path or "", f.rule_id, f.location.line, f.match) for f in result.findings
        )
        return found, len(reads)

    (with_shortcut, reads_with), (without, reads_without) = scan(True), scan(False)
    assert with_shortcut == without
    assert {path for path, *_ in with_shortcut} == {"app/big", "app/mid", "app/edge"}
    assert (reads_with, reads_without) == (2, 3)  # app/big is no longer read whole

"""AWS keys through sts:GetCallerIdentity, against a local STS stand-in that checks the
Signature Version 4 signature for real (its own check, written from the AWS docs)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from click.testing import CliRunner

from fixtures import fakesecrets as fs
from scanner.cli import main
from scanner.findings import Category, Finding, Location, LocationKind, Severity, hash_secret
from scanner.results import ImageResult, Report
from scanner.verify import Verdict, verifiers, verify_report
from scanner.verify.sigv4 import canonical_request, signing_key, string_to_sign
from tests.conftest import TEST_FINGERPRINT_KEY

ACCOUNT = "123456789012"
KEY_ID, SECRET_KEY = fs.aws_access_key_id(), fs.aws_secret_access_key()
TEMP_ID, TEMP_SECRET, TEMP_TOKEN = (
    "ASIA" + "Q" * 16,
    fs.aws_secret_access_key("t"),
    "FwoGZX" + "a" * 80,
)
KEYS = {KEY_ID: SECRET_KEY, TEMP_ID: TEMP_SECRET}
CALLS: list[str] = []  # access key ids seen
AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<id>[A-Z0-9]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<sig>[0-9a-f]{64})$"
)


def _error(code: str) -> bytes:
    return (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
        f"<Type>Sender</Type><Code>{code}</Code><Message>no</Message></Error>"
        "<RequestId>0</RequestId></ErrorResponse>"
    ).encode()


class Sts(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        m = AUTH.match(self.headers.get("Authorization", ""))
        if m is None:
            self._send(403, _error("MissingAuthenticationToken"))
            return
        CALLS.append(m["id"])
        if parse_qs(body.decode()) != {"Action": ["GetCallerIdentity"], "Version": ["2011-06-15"]}:
            self._send(400, _error("InvalidAction"))
            return
        if m["id"] not in KEYS:
            self._send(403, _error("InvalidClientTokenId"))
            return
        signed = m["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            self._send(403, _error("SignatureDoesNotMatch"))
            return
        if m["id"].startswith("ASIA") and self.headers.get("X-Amz-Security-Token") != TEMP_TOKEN:
            self._send(403, _error("InvalidClientTokenId"))
            return
        # the server's own canonical request, from what arrived on the wire
        lines = "".join(f"{h}:{' '.join(self.headers[h].split())}\n" for h in signed)
        request = "\n".join(["POST", "/", "", lines, m["signed"], hashlib.sha256(body).hexdigest()])
        scope = f"{m['date']}/{m['region']}/{m['service']}/aws4_request"
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                self.headers["X-Amz-Date"],
                scope,
                hashlib.sha256(request.encode()).hexdigest(),
            ]
        )
        key = f"AWS4{KEYS[m['id']]}".encode()
        for part in (m["date"], m["region"], m["service"], "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        skew = abs(
            time.mktime(time.strptime(self.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
            - time.mktime(time.gmtime())
        )
        if not hmac.compare_digest(expected, m["sig"]) or m["service"] != "sts" or skew > 900:
            self._send(403, _error("SignatureDoesNotMatch"))
            return
        user = "user/deploy" if m["id"].startswith("AKIA") else "assumed-role/ci/session"
        arn = f"arn:aws:{'iam' if 'user' in user else 'sts'}::{ACCOUNT}:{user}"
        self._send(
            200,
            (
                '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                f"<GetCallerIdentityResult><Arn>{arn}</Arn><UserId>AIDAEXAMPLEUSERID</UserId>"
                f"<Account>{ACCOUNT}</Account></GetCallerIdentityResult>"
                "<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>"
                "</GetCallerIdentityResponse>"
            ).encode(),
        )


@pytest.fixture(scope="module")
def sts() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Sts)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_signing_matches_the_documented_example() -> None:
    """The worked GET Object example of the S3 Signature Version 4 documentation."""
    request, signed = canonical_request(
        "GET",
        "/test.txt",
        "",
        {
            "Host": "examplebucket.s3.amazonaws.com",
            "Range": "bytes=0-9",
            "x-amz-content-sha256": hashlib.sha256(b"").hexdigest(),
            "x-amz-date": "20130524T000000Z",
        },
        b"",
    )
    assert signed == "host;range;x-amz-content-sha256;x-amz-date"
    digest = hashlib.sha256(request.encode()).hexdigest()
    assert digest == "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    to_sign = string_to_sign("20130524T000000Z", "20130524/us-east-1/s3/aws4_request", request)
    key = signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    assert signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


def env(base: str) -> dict[str, str]:
    return {"LAYERLEAK_VERIFY_AWS_URL": base}


def test_a_key_pair_is_verified_and_the_caller_identity_recorded(sts: str) -> None:
    verifier = verifiers(env(sts))["aws-access-key-id"]
    outcome = verifier.check(KEY_ID, {"aws-secret-access-key": SECRET_KEY})
    assert outcome.verdict is Verdict.VERIFIED
    assert outcome.identity == {
        "arn": f"arn:aws:iam::{ACCOUNT}:user/deploy",
        "account": ACCOUNT,
        "userid": "AIDAEXAMPLEUSERID",
    }


def test_wrong_secret_unknown_key_and_missing_parts(sts: str) -> None:
    verifier = verifiers(env(sts))["aws-access-key-id"]
    wrong = verifier.check(KEY_ID, {"aws-secret-access-key": fs.aws_secret_access_key("x")})
    assert wrong.verdict is Verdict.INVALID
    unknown_id = verifier.check(fs.aws_access_key_id("x"), {"aws-secret-access-key": SECRET_KEY})
    assert unknown_id.verdict is Verdict.INVALID
    CALLS.clear()
    assert verifier.check(KEY_ID, {}).verdict is Verdict.UNKNOWN  # no secret key: no call
    temp = verifiers(env(sts))["aws-temporary-access-key-id"]
    assert temp.check(TEMP_ID, {"aws-secret-access-key": TEMP_SECRET}).verdict is Verdict.UNKNOWN
    assert CALLS == []
    both = {"aws-secret-access-key": TEMP_SECRET, "aws-session-token": TEMP_TOKEN}
    outcome = temp.check(TEMP_ID, both)
    assert outcome.verdict is Verdict.VERIFIED
    assert outcome.identity and outcome.identity["arn"].endswith("assumed-role/ci/session")
    down = verifiers(env("http://127.0.0.1:9"), timeout=2)["aws-access-key-id"]
    assert down.check(KEY_ID, {"aws-secret-access-key": SECRET_KEY}).verdict is Verdict.UNKNOWN


def _finding(rule_id: str, secret: str, path: str, line: int) -> Finding:
    return Finding(
        rule_id=rule_id,
        title=rule_id,
        severity=Severity.HIGH,
        category=Category.SECRET,
        location=Location(LocationKind.FILE, layer_index=1, path=path, line=line),
        match="****",
        secret_hash=hash_secret(secret, TEST_FINGERPRINT_KEY),
        secret=secret,
        image="img",
        platform="linux/amd64",
    )


def test_report_pairs_each_key_id_with_the_secret_key_next_to_it(sts: str) -> None:
    other_secret = fs.aws_secret_access_key("other")
    findings = [
        # two pairs in one file: each id takes the secret on the nearest line
        _finding("aws-access-key-id", fs.aws_access_key_id("x"), "app/.env", 1),
        _finding("aws-secret-access-key", other_secret, "app/.env", 2),
        _finding("aws-access-key-id", KEY_ID, "app/.env", 10),
        _finding("aws-secret-access-key", SECRET_KEY, "app/.env", 11),
        # the right secret, but in another file: never paired
        _finding("aws-access-key-id", KEY_ID, "srv/other.env", 3),
        _finding("aws-secret-access-key", SECRET_KEY, "app/elsewhere.env", 3),
    ]
    report = Report([ImageResult("img", "oci", findings=findings)])
    counts = verify_report(report, env=env(sts))
    got = [(f.location.path, f.location.line, f.verification) for f in report.findings]
    assert got == [
        ("app/.env", 1, "invalid"),
        ("app/.env", 2, None),  # a refused pair: which half is wrong is unknown
        ("app/.env", 10, "verified"),
        ("app/.env", 11, "verified"),  # the secret half of an accepted pair
        ("srv/other.env", 3, "unknown"),
        ("app/elsewhere.env", 3, None),
    ]
    assert counts == {"verified": 1, "invalid": 1, "unknown": 1}
    live = report.findings[2]
    assert live.blast_radius and live.blast_radius.verified_identity
    assert live.blast_radius.verified_identity["account"] == ACCOUNT
    secret_half = report.findings[3]
    assert secret_half.blast_radius and secret_half.blast_radius.verified_identity
    assert secret_half.blast_radius.verified_identity["arn"].endswith(":user/deploy")
    assert all(f.secret is None for f in report.findings)


def test_cli_verify_aws_pair_in_the_demo_image(
    sts: str, images: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAYERLEAK_VERIFY_AWS_URL", sts)
    for name in ("GITHUB", "STRIPE", "SLACK", "FLY"):
        monkeypatch.setenv(f"LAYERLEAK_VERIFY_{name}_URL", "http://127.0.0.1:9")
    res = CliRunner().invoke(
        main, ["scan", "--no-cache", "--verify", "--format", "json", str(images["demo"])]
    )
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    aws = [f for f in doc["images"][0]["findings"] if f["rule_id"] == "aws-access-key-id"]
    assert aws and {f["verification"] for f in aws} == {"verified"}
    identity = aws[0]["blast_radius"]["verified_identity"]
    assert identity["arn"] == f"arn:aws:iam::{ACCOUNT}:user/deploy"
    assert SECRET_KEY not in res.output and KEY_ID not in res.output

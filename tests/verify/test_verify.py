"""Live verification against a local HTTP server standing in for each provider."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from fixtures import fakesecrets as fs
from scanner.cli import main
from scanner.findings import Category, Finding, Location, LocationKind, Severity, hash_secret
from scanner.results import ImageResult, Report
from scanner.verify import Verdict, verifiers, verify_report
from scanner.verify.fly import authorization
from tests.conftest import TEST_FINGERPRINT_KEY

LIVE = {
    fs.github_pat(),
    fs.stripe_live_key("live"),
    fs.slack_bot_token("live"),
    fs.fly_token("live"),
}
SEEN: list[tuple[str, str, str]] = []  # (method, path, authorization)


class Provider(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _token(self) -> str:
        auth = self.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ").removeprefix("FlyV1 ")

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        SEEN.append(("GET", self.path, self.headers.get("Authorization", "")))
        token = self._token()
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.2:9/steal")
            self.end_headers()
            return
        if self.path == "/boom/user":
            self._answer(500, {})
            return
        live = token in LIVE or f"FlyV1 {token}" in LIVE
        if live and self.path == "/user":  # GitHub's shape
            self._answer(200, {"login": "octo-deploy", "id": 4711, "type": "User"})
            return
        self._answer(200 if live else 401, {"ok": live})

    def do_POST(self) -> None:
        SEEN.append(("POST", self.path, self.headers.get("Authorization", "")))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path == "/graphql":  # Fly.io's GraphQL API
            self._graphql(body)
        elif self._token() in LIVE:
            self._answer(
                200, {"ok": True, "team": "acme", "team_id": "T0ACME", "user": "deploybot"}
            )
        else:
            self._answer(200, {"ok": False, "error": "invalid_auth"})

    def _graphql(self, body: bytes) -> None:
        query = json.loads(body).get("query", "")
        auth = self.headers.get("Authorization", "")
        if "viewer" not in query or not auth.startswith(("FlyV1 ", "Bearer ")):
            self._answer(400, {"errors": [{"message": "bad request"}]})
        elif auth in LIVE:
            self._answer(200, {"data": {"viewer": {"id": "U1x2y3", "email": "ops@example.com"}}})
        elif auth.endswith("forbidden"):
            self._answer(401, {"errors": [{"message": "unauthorized"}]})
        else:
            self._answer(
                200,
                {
                    "data": {"viewer": None},
                    "errors": [
                        {
                            "message": "You must be authenticated to view this.",
                            "path": ["viewer"],
                            "extensions": {"code": "UNAUTHORIZED"},
                        }
                    ],
                },
            )


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def env_for(base: str) -> dict[str, str]:
    return {f"LAYERLEAK_VERIFY_{n}_URL": base for n in ("GITHUB", "STRIPE", "SLACK", "FLY")}


def finding(rule_id: str, secret: str) -> Finding:
    return Finding(
        rule_id=rule_id,
        title=rule_id,
        severity=Severity.CRITICAL,
        category=Category.SECRET,
        location=Location(LocationKind.FILE, layer_index=0, path="app/.env"),
        match="****",
        secret_hash=hash_secret(secret, TEST_FINGERPRINT_KEY),
        secret=secret,
    )


@pytest.mark.parametrize(
    ("rule_id", "live", "dead"),
    [
        ("github-personal-access-token", fs.github_pat(), fs.github_pat("dead")),
        ("stripe-live-secret-key", fs.stripe_live_key("live"), fs.stripe_live_key("dead")),
        ("slack-bot-token", fs.slack_bot_token("live"), fs.slack_bot_token("dead")),
        ("flyio-api-token", fs.fly_token("live"), fs.fly_token("dead")),
    ],
)
def test_each_provider_says_verified_or_invalid(
    server: str, rule_id: str, live: str, dead: str
) -> None:
    verifier = verifiers(env_for(server))[rule_id]
    assert verifier.verify(live) is Verdict.VERIFIED
    assert verifier.verify(dead) is Verdict.INVALID


def test_unreachable_or_odd_answers_are_unknown(server: str) -> None:
    down = verifiers(env_for("http://127.0.0.1:9"), timeout=2)["github-personal-access-token"]
    assert down.verify(fs.github_pat()) is Verdict.UNKNOWN
    boom = verifiers(env_for(server + "/boom"))["github-personal-access-token"]
    assert boom.verify(fs.github_pat()) is Verdict.UNKNOWN


def test_redirects_are_not_followed_with_the_token(server: str) -> None:
    SEEN.clear()
    v = verifiers(env_for(server + "/redirect"))["stripe-live-secret-key"]
    assert v.verify(fs.stripe_live_key("live")) is Verdict.UNKNOWN
    assert len(SEEN) == 1


def test_verify_report_sets_verdicts_once_per_secret_and_drops_secrets(server: str) -> None:
    SEEN.clear()
    live, dead = fs.github_pat(), fs.github_pat("dead")
    findings = [
        finding("github-personal-access-token", live),
        replace(
            finding("github-personal-access-token", live),
            location=Location(LocationKind.FILE, path="b"),
        ),
        finding("github-personal-access-token", dead),
        finding("npm-access-token", "npm_" + "Q" * 36),
    ]
    report = Report([ImageResult("img", "oci", findings=findings)])
    counts = verify_report(report, env=env_for(server))
    assert counts == {"verified": 2, "invalid": 1}
    assert [f.verification for f in report.findings] == ["verified", "verified", "invalid", None]
    assert all(f.secret is None for f in report.findings)
    assert len(SEEN) == 2  # one call per distinct secret


def test_cli_verify_reports_verdict_without_printing_the_secret(
    server: str, images: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env_for(server).items():
        monkeypatch.setenv(key, value)
    res = CliRunner().invoke(
        main, ["scan", "--no-cache", "--verify", "--format", "json", str(images["deleted_secret"])]
    )
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    gh = [f for f in doc["images"][0]["findings"] if f["rule_id"] == "github-personal-access-token"]
    assert gh and {f["verification"] for f in gh} == {"verified"}
    assert fs.github_pat() not in res.output
    assert all("secret" not in f for f in doc["images"][0]["findings"])


def test_fly_viewer_query_records_the_identity(server: str) -> None:
    SEEN.clear()
    live, dead = fs.fly_token("live"), fs.fly_token("dead")
    report = Report(
        [
            ImageResult(
                "img",
                "oci",
                findings=[finding("flyio-api-token", live), finding("flyio-api-token", dead)],
            )
        ]
    )
    assert verify_report(report, env=env_for(server)) == {"verified": 1, "invalid": 1}
    ok, bad = report.findings
    assert ok.verification == "verified"
    assert ok.blast_radius and ok.blast_radius.verified_identity == {
        "id": "U1x2y3",
        "email": "ops@example.com",
    }
    assert bad.verification == "invalid"
    assert bad.blast_radius is None or bad.blast_radius.verified_identity is None
    assert ("POST", "/graphql", live) in SEEN  # the token as found, to /graphql


def test_fly_token_schemes_and_refusals(server: str) -> None:
    verifier = verifiers(env_for(server))["flyio-macaroon"]
    bare = fs.fly_token("live").removeprefix("FlyV1 ")
    assert verifier.verify(bare) is Verdict.VERIFIED  # sent as "FlyV1 <bare>"
    assert authorization("fo1_abcdef") == "Bearer fo1_abcdef"
    assert authorization("FlyV1 fm2_x,fm2_y") == "FlyV1 fm2_x,fm2_y"
    assert verifier.verify("fm2_forbidden") is Verdict.INVALID  # a 401
    boom = verifiers(env_for(server + "/boom"))["flyio-macaroon"]
    assert boom.verify(bare) is Verdict.UNKNOWN


def test_github_and_slack_identities_are_recorded(server: str) -> None:
    findings = [
        finding("github-personal-access-token", fs.github_pat()),
        finding("slack-bot-token", fs.slack_bot_token("live")),
        finding("stripe-live-secret-key", fs.stripe_live_key("live")),
    ]
    report = Report([ImageResult("img", "oci", findings=findings)])
    assert verify_report(report, env=env_for(server)) == {"verified": 3}
    gh, slack, stripe = report.findings
    assert gh.blast_radius and gh.blast_radius.verified_identity == {
        "login": "octo-deploy",
        "id": "4711",
    }
    assert "octo-deploy" in gh.blast_radius.summary  # no offline radius: one is made
    assert slack.blast_radius and slack.blast_radius.verified_identity == {
        "team": "acme",
        "team_id": "T0ACME",
        "user": "deploybot",
    }
    assert "acme" in slack.blast_radius.summary
    assert stripe.blast_radius is None  # Stripe reports no identity: nothing added

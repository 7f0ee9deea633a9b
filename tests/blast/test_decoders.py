"""The other offline decoders, on credentials built here from their documented formats."""

from __future__ import annotations

import base64
import json

import pytest

from fixtures import fakesecrets as fs
from fixtures import flytokens as ft
from scanner.blast import DECODERS, Clue, Radius, decoder_for, radius
from scanner.blast.aws import account_id
from scanner.detection import Detection
from scanner.findings import Finding, Location, LocationKind, Severity
from scanner.signatures import SignatureSet

NOW = 1_800_000_000
DETECTION = Detection(SignatureSet.builtin())


def decoded(rule_id: str, detector: str | None, secret: str, context: str = "") -> Radius:
    found = radius(Clue(rule_id, detector, secret, context or secret, now=NOW))
    assert found is not None, (rule_id, secret)
    assert secret not in json.dumps(found.details) + found.summary
    return found


# --- AWS ------------------------------------------------------------------------------------


def test_aws_account_id_from_the_key_id() -> None:
    # the worked example of the published key-id analysis: this id belongs to 609629065308
    assert account_id("ASIAY34FZKBOKMUTVV7A") == "609629065308"
    # build one: generation bit, then the account in the next 40 bits, then anything
    value = (1 << 47) | (123456789012 << 7) | 0x55
    key = "AKIA" + base64.b32encode(value.to_bytes(6, "big") + b"\x01\x02\x03\x04").decode()
    assert account_id(key) == "123456789012"
    r = decoded("aws-access-key-id", "AWS", key)
    assert r.details == {
        "provider": "AWS",
        "key_type": "AKIA",
        "description": "long-term access key of an IAM user",
        "account_id": "123456789012",
    }
    assert "account 123456789012" in r.summary


def test_aws_old_generation_keys_do_not_carry_the_account() -> None:
    old = "AKIA" + "I" * 16  # I = 8: the generation bit is clear
    assert account_id(old) is None
    r = decoded("aws-access-key-id", "AWS", old)
    assert "account_id" not in r.details and "older key format" in r.summary
    assert radius(Clue("aws-secret-access-key", "AWS", fs.aws_secret_access_key())) is None


# --- PyPI -----------------------------------------------------------------------------------


def _field(kind: int, value: bytes) -> bytes:
    assert len(value) < 128 * 128
    size = (
        bytes([len(value)])
        if len(value) < 128
        else bytes([len(value) & 0x7F | 0x80, len(value) >> 7])
    )
    return bytes([kind]) + size + value


def pypi_token(caveats: list[object], location: str = "pypi.org") -> str:
    """A v2 binary macaroon: header section, one section per caveat, signature."""
    raw = b"\x02" + _field(1, location.encode()) + _field(2, b"b9e1f7c4-token-id") + b"\x00"
    for caveat in caveats:
        raw += _field(2, json.dumps(caveat).encode()) + b"\x00"
    raw += b"\x00" + _field(6, bytes(range(32)))
    return "pypi-" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_pypi_user_wide_token() -> None:
    token = pypi_token([{"version": 1, "permissions": "user"}])
    assert token.startswith("pypi-AgEIcHlwaS5vcmc")  # what the rule keys on
    r = decoded("pypi-upload-token", "PyPI", token)
    assert r.details["user_wide"] is True and r.details["token_id"] == "b9e1f7c4-token-id"
    assert r.severity is Severity.CRITICAL and "every project" in r.summary


def test_pypi_project_scoped_and_expiring_tokens() -> None:
    token = pypi_token([[1, ["sampleproject", "other"]], [0, NOW + 3600, NOW - 60], [3, "u-1"]])
    r = decoded("pypi-upload-token", "PyPI", token)
    assert r.details["projects"] == ["sampleproject", "other"]
    assert r.details["user_wide"] is False and r.details["expired"] is False
    assert r.severity is Severity.HIGH and "sampleproject" in r.summary
    legacy = pypi_token([{"version": 1, "permissions": {"projects": ["legacyproj"]}}])
    assert decoded("pypi-upload-token", "PyPI", legacy).details["projects"] == ["legacyproj"]
    expired = decoded("pypi-upload-token", "PyPI", pypi_token([[0, NOW - 10, NOW - 99]]))
    assert expired.applied_to(Severity.CRITICAL) is Severity.MEDIUM
    test = decoded("testpypi-upload-token", "PyPI", pypi_token([], location="test.pypi.org"))
    assert test.severity is Severity.MEDIUM and test.details["index"] == "test.pypi.org"


def test_pypi_found_in_text_gets_its_radius() -> None:
    token = pypi_token([[2, ["6a1d-44"]]])
    [match] = DETECTION.scan_text(f"password = {token}\n")
    finding = DETECTION.finding(match, Location(LocationKind.FILE, path="root/.pypirc"))
    assert finding.blast_radius and finding.blast_radius.details["project_ids"] == ["6a1d-44"]
    assert finding.severity is Severity.HIGH


# --- JWT ------------------------------------------------------------------------------------


def jwt(claims: dict[str, object]) -> str:
    def seg(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg(claims)}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"


def test_jwt_claims_and_expiry() -> None:
    token = jwt(
        {
            "iss": "https://auth.example.com",
            "sub": "svc-7",
            "aud": ["api", "admin"],
            "exp": NOW + 60,
        }
    )
    r = decoded("jwt", "JWT", token)
    assert r.details["iss"] == "https://auth.example.com" and r.details["aud"] == ["api", "admin"]
    assert r.details["expired"] is False and r.at_most is None
    assert "issued by https://auth.example.com" in r.summary and "svc-7" in r.summary
    old = decoded("jwt", "JWT", jwt({"sub": "x", "exp": NOW - 60}))
    assert old.details["expired"] is True and old.at_most is Severity.MEDIUM
    forever = decoded("jwt", "JWT", fs.jwt_hs256())
    assert "no expiry" in forever.summary


# --- Slack, Stripe --------------------------------------------------------------------------


def test_slack_ids_where_the_token_carries_them() -> None:
    bot = decoded("slack-bot-token", "Slack", fs.slack_bot_token())
    assert bot.details["workspace_segment"] == fs.slack_bot_token().split("-")[1]
    hook = fs.slack_webhook_url()
    team = hook.split("/")[4]
    r = decoded("slack-webhook-url", "SlackWebhook", hook)
    assert r.details["team_id"] == team and team in r.summary
    app = decoded("slack-app-token", "Slack", "xapp-1-A0123ABCDEF-4567890123-" + "ab" * 32)
    assert app.details["app_id"] == "A0123ABCDEF"


@pytest.mark.parametrize(
    ("secret", "mode", "kind", "severity"),
    [
        ("sk_live_" + "a1" * 12, "live", "secret", Severity.CRITICAL),
        ("rk_live_" + "b2" * 12, "live", "restricted", Severity.HIGH),
        ("sk_test_" + "c3" * 12, "test", "secret", Severity.LOW),
    ],
)
def test_stripe_modes(secret: str, mode: str, kind: str, severity: Severity) -> None:
    r = decoded("stripe-live-secret-key", "Stripe", secret)
    assert (r.details["mode"], r.details["key_kind"], r.severity) == (mode, kind, severity)


# --- Docker config, connection URLs ---------------------------------------------------------


def _finding_for(text: str, rule_id: str) -> Finding:
    matches = [m for m in DETECTION.scan_text(text) if m.rule.id == rule_id]
    assert matches, text
    return DETECTION.finding(matches[0], Location(LocationKind.FILE, path="x"))


def test_docker_config_user_and_registry() -> None:
    f = _finding_for(fs.docker_config_json(registry="ghcr.io", user="ci-bot"), "docker-config-auth")
    assert f.blast_radius and f.blast_radius.details["user"] == "ci-bot"
    assert f.blast_radius.details["registry"] == "ghcr.io"
    assert fs.docker_config_password() not in json.dumps(f.blast_radius.to_dict())


def test_fly_registry_auth_is_read_as_the_fly_token_inside() -> None:
    token = ft.org_token(99, 1_700_000_000, 4_900_000_000)
    auth = base64.urlsafe_b64encode(f"x:{token}".encode()).decode()
    text = json.dumps({"auths": {"registry.fly.io": {"auth": auth}}}, indent="\t")
    f = _finding_for(text, "flyio-registry-auth")
    assert f.blast_radius and f.blast_radius.details["registry"] == "registry.fly.io"
    assert f.blast_radius.details["fly"]["kind"] == "org-deploy"
    assert f.severity is Severity.CRITICAL


@pytest.mark.parametrize(
    ("text", "rule_id", "expected"),
    [
        (
            fs.postgres_url(),
            "postgres-connection-url",
            ("app", "db.prod.example.com", "5432", "app"),
        ),
        (
            "mysql://root:Zq8pLm2Xv9@10.0.0.5/shop",
            "mysql-connection-url",
            ("root", "10.0.0.5", None, "shop"),
        ),
        (
            "redis://default:Xk29dkfj3Lq0@cache.internal:6380/2",
            "redis-connection-url",
            ("default", "cache.internal", "6380", "2"),
        ),
        (
            "amqp://guestx:Pw9s8d7f6g@[fd00::5]:5672/vhost",
            "amqp-connection-url",
            ("guestx", "fd00::5", "5672", "vhost"),
        ),
        (
            "mongodb://admin:S3cr3tPassw0rd99@h1.example:27017,h2.example:27017/prod",
            "mongodb-connection-url",
            ("admin", "h1.example", "27017", "prod"),
        ),
    ],
)
def test_connection_urls(text: str, rule_id: str, expected: tuple[str, ...]) -> None:
    f = _finding_for(f"DATABASE_URL={text}\n", rule_id)
    assert f.blast_radius, text
    d = f.blast_radius.details
    assert (d["user"], d["host"], d.get("port"), d.get("database")) == expected
    assert f.secret is None and text.split(":")[2].split("@")[0] not in json.dumps(d)


# --- the seam -------------------------------------------------------------------------------


def test_one_decoder_per_rule_and_detector() -> None:
    assert decoder_for("flyio-registry-auth", "FlyIO").name == "docker-auth"  # type: ignore[union-attr]
    assert decoder_for("flyio-macaroon", "FlyIO").name == "fly"  # type: ignore[union-attr]
    assert decoder_for("some-new-stripe-rule", "Stripe").name == "stripe"  # type: ignore[union-attr]
    assert decoder_for("github-personal-access-token", "Github") is None
    names = [d.name for d in DECODERS]
    assert len(names) == len(set(names))


def test_every_claimed_rule_id_exists() -> None:
    ids = {r.id for r in SignatureSet.builtin().rules}
    for decoder in DECODERS:
        assert decoder.rule_ids <= ids, decoder.name

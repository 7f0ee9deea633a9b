"""The built-in verifiers: GitHub, Stripe, Slack, Fly.io, AWS (one read-only call each).

GitHub, Stripe and Slack are here (GitHub's login and Slack's team and user are recorded
as the identity); Fly.io and AWS have modules of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from scanner.verify.aws import AwsVerifier
from scanner.verify.fly import FlyVerifier
from scanner.verify.interface import Outcome, Verdict, Verifier, by_status


def _identity(body: Any, keys: tuple[str, ...]) -> dict[str, str] | None:
    if not isinstance(body, dict):
        return None
    found = {k: str(body[k])[:200] for k in keys if isinstance(body.get(k), str | int)}
    return found or None


class GitHubVerifier(Verifier):
    """``GET /user``: 200 live, 401 rejected."""

    name = "github"
    rule_ids: ClassVar[frozenset[str]] = frozenset(
        {
            "github-personal-access-token",
            "github-fine-grained-pat",
            "github-oauth-token",
            "github-user-to-server-token",
            "github-app-installation-token",
        }
    )
    default_url = "https://api.github.com"
    url_env = "LAYERLEAK_VERIFY_GITHUB_URL"

    def verify(self, secret: str) -> Verdict:
        return self.check(secret, {}).verdict

    def check(self, secret: str, companions: Mapping[str, str]) -> Outcome:
        response = self.request(
            "/user",
            {"Authorization": f"Bearer {secret}", "X-GitHub-Api-Version": "2022-11-28"},
        )
        # an installation token cannot read /user but is accepted (403, not 401)
        verdict = by_status(response, frozenset({200, 403}), frozenset({401}))
        identity = _identity(response.json(), ("login", "id")) if response.status == 200 else None
        return Outcome(verdict, identity)


class StripeVerifier(Verifier):
    """``GET /v1/balance``: 200 live, 403 live but restricted, 401 rejected."""

    name = "stripe"
    rule_ids: ClassVar[frozenset[str]] = frozenset(
        {"stripe-live-secret-key", "stripe-live-restricted-key", "stripe-test-secret-key"}
    )
    default_url = "https://api.stripe.com"
    url_env = "LAYERLEAK_VERIFY_STRIPE_URL"

    def verify(self, secret: str) -> Verdict:
        response = self.request("/v1/balance", {"Authorization": f"Bearer {secret}"})
        return by_status(response, frozenset({200, 403}), frozenset({401}))


class SlackVerifier(Verifier):
    """``POST /api/auth.test``: ``ok: true`` live; auth errors rejected."""

    name = "slack"
    rule_ids: ClassVar[frozenset[str]] = frozenset(
        {"slack-bot-token", "slack-user-token", "slack-legacy-token"}
    )
    default_url = "https://slack.com"
    url_env = "LAYERLEAK_VERIFY_SLACK_URL"
    INVALID_ERRORS: ClassVar[frozenset[str]] = frozenset(
        {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
    )

    def verify(self, secret: str) -> Verdict:
        return self.check(secret, {}).verdict

    def check(self, secret: str, companions: Mapping[str, str]) -> Outcome:
        response = self.request(
            "/api/auth.test",
            {
                "Authorization": f"Bearer {secret}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            method="POST",
            data=b"",
        )
        body = response.json()
        if response.status != 200 or not isinstance(body, dict):
            return Outcome(Verdict.UNKNOWN)
        if body.get("ok") is True:
            return Outcome(
                Verdict.VERIFIED, _identity(body, ("team", "team_id", "user", "user_id"))
            )
        if body.get("error") in self.INVALID_ERRORS:
            return Outcome(Verdict.INVALID)
        return Outcome(Verdict.UNKNOWN)


VERIFIERS: tuple[type[Verifier], ...] = (
    GitHubVerifier,
    StripeVerifier,
    SlackVerifier,
    FlyVerifier,
    AwsVerifier,
)

"""The verifier interface: one read-only API call says whether a secret is live.

A :class:`Verifier` names the rule ids it handles, the environment variable that
overrides its base URL (tests point it at a local server; nothing in the test
suite reaches the internet) and how to read the answer. Verifiers never log,
raise or return the secret: errors become ``unknown`` with a reason that holds
only the status code or the error class.

Some credentials come in parts: an AWS access key id is useless without its secret
access key. A verifier lists the rule ids of the parts it needs in ``companions``;
:mod:`scanner.verify.pairing` finds them next to the finding and :meth:`Verifier.check`
receives them. A verifier whose provider says *who* the credential is (Fly.io's
``viewer``, AWS's caller identity) returns it in :class:`Outcome` ``identity``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

USER_AGENT = "layerleak-verify"


class Verdict(StrEnum):
    VERIFIED = "verified"  # the provider accepted the secret: it is live
    INVALID = "invalid"  # the provider rejected it: revoked, expired or never valid
    UNKNOWN = "unknown"  # no answer either way (network, rate limit, unexpected reply)


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    identity: dict[str, str] | None = None  # who the provider says the credential is


@dataclass(frozen=True)
class Response:
    status: int  # 0 when no HTTP answer came
    body: bytes = b""
    error: str | None = None

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


class Verifier(ABC):
    name: ClassVar[str]
    rule_ids: ClassVar[frozenset[str]]
    default_url: ClassVar[str]
    url_env: ClassVar[str]
    companions: ClassVar[frozenset[str]] = frozenset()  # rule ids of the other parts

    def __init__(self, env: Mapping[str, str], timeout: float = 10.0) -> None:
        self.base_url = (env.get(self.url_env) or self.default_url).rstrip("/")
        self.timeout = timeout

    @abstractmethod
    def verify(self, secret: str) -> Verdict:
        """Verdict on one secret, from one read-only call."""

    def check(self, secret: str, companions: Mapping[str, str]) -> Outcome:
        """Verdict (and identity, where the provider reports one) for a secret and the
        parts found next to it (rule id -> secret, for the ``companions`` rule ids)."""
        return Outcome(self.verify(secret))

    def request(
        self,
        path: str,
        headers: Mapping[str, str],
        method: str = "GET",
        data: bytes | None = None,
    ) -> Response:
        req = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **headers},
        )
        try:
            with _opener(self.base_url).open(req, timeout=self.timeout) as resp:
                return Response(resp.status, resp.read(1 << 20))
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read(1 << 20)
            except OSError:
                body = b""
            return Response(exc.code, body)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return Response(0, error=type(exc).__name__)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: they would carry the Authorization header along."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener(base_url: str) -> urllib.request.OpenerDirector:
    host = urllib.parse.urlsplit(base_url).hostname or ""
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if host in ("localhost", "::1") or host.startswith("127."):
        handlers.append(urllib.request.ProxyHandler({}))  # a local server, never a proxy
    return urllib.request.build_opener(*handlers)


def by_status(response: Response, verified: frozenset[int], invalid: frozenset[int]) -> Verdict:
    if response.status in verified:
        return Verdict.VERIFIED
    if response.status in invalid:
        return Verdict.INVALID
    return Verdict.UNKNOWN

"""AWS keys: ``sts:GetCallerIdentity``, the one call any valid key may make.

``POST /`` with ``Action=GetCallerIdentity&Version=2011-06-15``, signed with
Signature Version 4 (:mod:`scanner.verify.sigv4`) for region ``us-east-1`` and
service ``sts``. It needs no permission and changes nothing. 200 gives the account,
ARN and user id (recorded as the identity); 403 with ``InvalidClientTokenId``,
``SignatureDoesNotMatch`` or ``ExpiredToken`` means the key does not work; anything
else is unknown. The key id needs its secret access key (and an ``ASIA`` key its
session token) found next to it: see :mod:`scanner.verify.pairing`.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Mapping
from typing import ClassVar

from scanner.verify.interface import Outcome, Verdict, Verifier
from scanner.verify.sigv4 import Credentials, sign

SECRET_KEY_RULE = "aws-secret-access-key"
SESSION_TOKEN_RULE = "aws-session-token"
BODY = b"Action=GetCallerIdentity&Version=2011-06-15"
CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
INVALID_CODES = frozenset(
    {"InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidAccessKeyId"}
)
_FIELD = {
    name: re.compile(rf"<{name}>([^<]{{1,256}})</{name}>") for name in ("Arn", "Account", "UserId")
}
_CODE = re.compile(r"<Code>([A-Za-z.]{1,64})</Code>")


class AwsVerifier(Verifier):
    name = "aws"
    rule_ids: ClassVar[frozenset[str]] = frozenset(
        {"aws-access-key-id", "aws-temporary-access-key-id"}
    )
    default_url = "https://sts.amazonaws.com"
    url_env = "LAYERLEAK_VERIFY_AWS_URL"
    companions: ClassVar[frozenset[str]] = frozenset({SECRET_KEY_RULE, SESSION_TOKEN_RULE})
    region = "us-east-1"

    def verify(self, secret: str) -> Verdict:
        return self.check(secret, {}).verdict

    def check(self, secret: str, companions: Mapping[str, str]) -> Outcome:
        secret_key = companions.get(SECRET_KEY_RULE)
        token = companions.get(SESSION_TOKEN_RULE)
        key_id = secret.strip()
        if not secret_key or (key_id.startswith("ASIA") and not token):
            return Outcome(Verdict.UNKNOWN)  # the other half of the key was not found
        credentials = Credentials(key_id, secret_key, token)
        host = urllib.parse.urlsplit(self.base_url).netloc
        headers = sign(
            credentials,
            method="POST",
            host=host,
            path="/",
            headers={"Content-Type": CONTENT_TYPE},
            payload=BODY,
            region=self.region,
            service="sts",
            amz_date=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        )
        headers.pop("Host")  # urllib sends the same value itself
        response = self.request(
            "/", {**headers, "Accept": "application/xml"}, method="POST", data=BODY
        )
        text = response.body.decode("utf-8", "replace")
        if response.status == 200:
            identity = {}
            for name, pattern in _FIELD.items():
                m = pattern.search(text)
                if m:
                    identity[name.lower()] = m.group(1)
            return Outcome(Verdict.VERIFIED, identity or None)
        code = _CODE.search(text)
        if response.status in (400, 403) and code and code.group(1) in INVALID_CODES:
            return Outcome(Verdict.INVALID)
        return Outcome(Verdict.UNKNOWN)

"""AWS Signature Version 4, for the one request ``--verify`` makes to AWS.

The canonical request is the method, the URI path, the query string, the signed
headers (lower-case names, trimmed values, sorted, each ``name:value\\n``), the list
of their names and the hex SHA-256 of the payload; the string to sign is the
algorithm, the timestamp, the credential scope (``date/region/service/aws4_request``)
and the hex SHA-256 of the canonical request; the key is derived from ``"AWS4" +
secret`` by HMAC-SHA256 over the date, region, service and ``aws4_request``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def canonical_request(
    method: str, path: str, query: str, headers: Mapping[str, str], payload: bytes
) -> tuple[str, str]:
    """(canonical request, signed header names joined by ``;``)."""
    canonical = {k.lower().strip(): " ".join(v.split()) for k, v in headers.items()}
    names = sorted(canonical)
    lines = "".join(f"{n}:{canonical[n]}\n" for n in names)
    signed = ";".join(names)
    digest = hashlib.sha256(payload).hexdigest()
    return f"{method}\n{path}\n{query}\n{lines}\n{signed}\n{digest}", signed


def string_to_sign(amz_date: str, scope: str, request: str) -> str:
    digest = hashlib.sha256(request.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def sign(
    credentials: Credentials,
    *,
    method: str,
    host: str,
    path: str,
    headers: Mapping[str, str],
    payload: bytes,
    region: str,
    service: str,
    amz_date: str,
    query: str = "",
) -> dict[str, str]:
    """``headers`` plus ``Host``, ``X-Amz-Date``, the session token (when any) and the
    ``Authorization`` header for this request."""
    out = {**headers, "Host": host, "X-Amz-Date": amz_date}
    if credentials.session_token:
        out["X-Amz-Security-Token"] = credentials.session_token
    request, signed = canonical_request(method, path, query, out, payload)
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    key = signing_key(credentials.secret_access_key, amz_date[:8], region, service)
    signature = hmac.new(
        key, string_to_sign(amz_date, scope, request).encode(), hashlib.sha256
    ).hexdigest()
    out["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return out

"""Placeholder, template and documented-example heuristics."""

from __future__ import annotations

import random
import string

import pytest

from scanner.secrets.noise import (
    DROP_ID,
    DROP_INDIRECT,
    DROP_TEMPLATED,
    DROP_VARIABLE,
    NOISE_EXAMPLE,
    NOISE_PLACEHOLDER,
    NOISE_SEQUENTIAL,
    NOISE_UUID,
    Verdict,
    assess,
    is_documented_example,
    is_placeholder,
    is_templated,
    placeholder_reason,
    shannon_entropy,
)
from scanner.secrets.validators import credentials_password, is_base64_credentials, is_jwt


def test_shannon_entropy() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abab") == pytest.approx(1.0)
    assert shannon_entropy(b"abcd") == pytest.approx(2.0)
    assert shannon_entropy(string.ascii_letters + string.digits) > 5.9


@pytest.mark.parametrize(
    "value",
    [
        "${DB_PASSWORD}",
        "${DB_PASSWORD:-x}",
        "{{ .Values.token }}",
        "{{token}}",
        "{% raw %}",
        "%(password)s",
        "$(cat /run/secrets/db)",
        "#{db.password}",
        "$DB_PASSWORD",
        "%API_KEY%",
        "@DB_PASS@",
        "__SECRET__",
        "<your-key>",
        "{password}",
        "[YOUR_TOKEN]",
        "prefix-${SUFFIX}",
    ],
)
def test_templates(value: str) -> None:
    assert is_templated(value)
    assert placeholder_reason(value) == DROP_TEMPLATED
    assert assess(value, value, generic=False) == Verdict(True, DROP_TEMPLATED)


@pytest.mark.parametrize(
    "value",
    [
        "changeme",
        "password",
        "secret",
        "example",
        "xxxxxxxxxxxx",
        "XXXXXXXXXXXXXXXXXXXX",
        "********",
        "your_api_key_here",
        "YOUR-TOKEN",
        "my_secret_key",
        "insert_token_here",
        "replace-me",
        "aaaaaaaaaaaaaaaa",
        "abcabcabcabc",
        "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "sk_live_000000000000000000000000",
        "dummy-token-123",
        "REDACTED",
    ],
)
def test_placeholders(value: str) -> None:
    assert is_placeholder(value)
    assert placeholder_reason(value) in (NOISE_PLACEHOLDER, NOISE_EXAMPLE)


@pytest.mark.parametrize(
    "value",
    [
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "AKIAXYZEXAMPLE234567",
    ],
)
def test_documented_examples(value: str) -> None:
    assert is_documented_example(value)
    assert placeholder_reason(value) == NOISE_EXAMPLE
    assert assess(value, value, generic=False) == Verdict(False, NOISE_EXAMPLE)
    assert assess(value, value, generic=True) == Verdict(False, NOISE_EXAMPLE)


def test_sequential_strings() -> None:
    assert placeholder_reason("HIJKLMNOPQRS") == NOISE_SEQUENTIAL
    assert assess("3456789012", "", generic=False) == Verdict(False, NOISE_SEQUENTIAL)


def test_real_looking_values_pass() -> None:
    for value in ("hunter2!x9", "Tr0ub4dor&3", "sk_live_4Jq8Zr2Lx0Pm7Vb3Nc6Tw1Yd", "kZ3r-Qp9_vL"):
        assert placeholder_reason(value) is None, value
        assert assess(value, f"password = '{value}'", generic=True) is None


def test_random_tokens_are_not_noise() -> None:
    rng = random.Random(7)
    alphabets = [
        string.ascii_letters + string.digits,
        string.hexdigits.lower()[:16],
        string.ascii_letters + string.digits + "+/",
        string.ascii_letters + string.digits + "-_",
    ]
    for _ in range(2000):
        alphabet = rng.choice(alphabets)
        token = "".join(rng.choice(alphabet) for _ in range(rng.randrange(20, 120)))
        assert assess(token, token, generic=False) is None, token


def test_long_tokens_with_zero_runs_are_not_placeholders() -> None:
    macaroon = "fm2_lJPECAAAAAAAA" + "Qx7vLk2P9mZ" * 20
    assert not is_placeholder(macaroon)


def test_generic_rules_keep_values_as_noise_and_drop_references() -> None:
    assert assess("changeme", "password=changeme", generic=False) == Verdict(
        False, NOISE_PLACEHOLDER
    )
    assert assess("changeme", "password=changeme", generic=True) == Verdict(
        False, NOISE_PLACEHOLDER
    )
    assert assess("$DB_PASS", "password=$DB_PASS", generic=True) == Verdict(True, DROP_TEMPLATED)
    assert assess("$2b$12$abc", "password=$2b$12$abc", generic=True) == Verdict(True, DROP_VARIABLE)
    assert assess("get_pw(x)", "password = get_pw(x)", generic=True) == Verdict(True, DROP_INDIRECT)
    assert assess("k3J9xQ2m", "secret_id = k3J9xQ2m", generic=True) == Verdict(True, DROP_ID)
    assert assess("!!!!!!", "password=!!!!!!", generic=True) == Verdict(False, NOISE_PLACEHOLDER)


def test_uuid_values() -> None:
    uuid = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
    assert assess(uuid, f"token={uuid}", generic=True) == Verdict(False, NOISE_UUID)
    assert assess(uuid, f"token={uuid}", generic=True, uuid_expected=True) is None
    assert assess(uuid, f"HEROKU_API_KEY={uuid}", generic=False) is None


def test_jwt_validator() -> None:
    header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"  # {"alg":"HS256","typ":"JWT"}
    payload = "eyJzdWIiOiJhIn0"  # {"sub":"a"}
    assert is_jwt(f"{header}.{payload}.c2lnbmF0dXJl".encode())
    assert not is_jwt(f"{header}.{payload}".encode())
    assert not is_jwt(b"eyJub3QiOiJqd3QifQ.eyJzdWIiOiJhIn0.c2ln")  # no alg
    assert not is_jwt(b"eyJ!!!.eyJ.sig")


def test_base64_credentials_validator() -> None:
    assert credentials_password(b"dXNlcjpodW50ZXIy") == "hunter2"  # user:hunter2
    assert is_base64_credentials(b"eDpGbHlWMSBmbTJfYWJj")  # x:FlyV1 fm2_abc
    assert not is_base64_credentials(b"bm90IGNyZWRlbnRpYWxz")  # not credentials
    assert not is_base64_credentials(b"%%%%")
    assert credentials_password(b"dXNlcjo=") is None  # "user:" has no password

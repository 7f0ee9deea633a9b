"""Credential resolution: options, FLY_API_TOKEN, Docker config (both base64 alphabets),
credential helpers, anonymous; and credentials never shown."""

from __future__ import annotations

import base64
import json
import pickle
import stat
from pathlib import Path

import pytest

from scanner.errors import AuthError
from scanner.registry.credentials import (
    Credential,
    decode_auth,
    docker_config_path,
    resolve_credential,
)

# "?" and ">" make the URL-safe alphabet's "_" and "-" appear in the encoding.
FLY_TOKEN = "FlyV1 fm2_lJPECAAAAAAAAv??>>x,fm2_lJPE??>>zz"
FLY = "registry.fly.io"


def flyctl_auth(user: str, password: str) -> str:
    """What `fly auth docker` writes: URL-safe base64 of user:password."""
    return base64.urlsafe_b64encode(f"{user}:{password}".encode()).decode()


def write_config(directory: Path, config: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {"HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    env.update(extra)
    return env


def test_flyctl_urlsafe_auth_is_decoded(tmp_path: Path) -> None:
    encoded = flyctl_auth("x", FLY_TOKEN)
    assert "-" in encoded or "_" in encoded
    # The pitfall: the standard decoder silently drops "-" and "_" and returns garbage.
    assert base64.b64decode(encoded + "==") != f"x:{FLY_TOKEN}".encode()
    write_config(tmp_path / "dc", {"auths": {FLY: {"auth": encoded}}})
    cred = resolve_credential(FLY, env=env_for(tmp_path, DOCKER_CONFIG=str(tmp_path / "dc")))
    assert (cred.username, cred.password) == ("x", FLY_TOKEN)
    assert str(tmp_path / "dc" / "config.json") in cred.source


def test_standard_base64_and_missing_padding() -> None:
    encoded = base64.b64encode(b"user:p+ss/w?rd>>").decode()
    assert "+" in encoded or "/" in encoded
    assert decode_auth(encoded) == ("user", "p+ss/w?rd>>")
    assert decode_auth(encoded.rstrip("=")) == ("user", "p+ss/w?rd>>")
    assert decode_auth(flyctl_auth("x", FLY_TOKEN).rstrip("=")) == ("x", FLY_TOKEN)


@pytest.mark.parametrize("bad", ["!!!notbase64", "YWJj", "a-b+c"])
def test_bad_auth_value(bad: str) -> None:
    with pytest.raises(AuthError) as info:
        decode_auth(bad, "Docker config x", FLY)
    assert bad not in str(info.value)
    assert FLY in str(info.value)


def test_home_docker_config_when_no_docker_config_env(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(home / ".docker", {"auths": {"127.0.0.1:5000": {"auth": flyctl_auth("u", "p")}}})
    env = env_for(tmp_path)
    assert docker_config_path(env) == home / ".docker" / "config.json"
    cred = resolve_credential("127.0.0.1:5000", env=env)
    assert (cred.username, cred.password) == ("u", "p")


def test_order_options_then_fly_token_then_config(tmp_path: Path) -> None:
    write_config(tmp_path / "dc", {"auths": {FLY: {"auth": flyctl_auth("x", "from-config")}}})
    env = env_for(tmp_path, DOCKER_CONFIG=str(tmp_path / "dc"), FLY_API_TOKEN=FLY_TOKEN)
    explicit = resolve_credential(FLY, username="me", password="pw", env=env)
    assert (explicit.username, explicit.password) == ("me", "pw")
    assert explicit.source == "--username/--password-stdin"
    fly = resolve_credential(FLY, env=env)
    assert (fly.username, fly.password, fly.source) == ("x", FLY_TOKEN, "FLY_API_TOKEN")
    # FLY_API_TOKEN is for registry.fly.io only.
    other = resolve_credential("ghcr.io", env=env)
    assert other.anonymous
    assert "nothing for ghcr.io" in other.source


def test_username_without_password(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="go together"):
        resolve_credential(FLY, username="me", env=env_for(tmp_path))


def test_anonymous_names_where_it_looked(tmp_path: Path) -> None:
    cred = resolve_credential("ghcr.io", env=env_for(tmp_path))
    assert cred.anonymous
    assert "no Docker config at" in cred.source
    assert str(tmp_path / "home" / ".docker" / "config.json") in cred.source


def test_docker_hub_legacy_key(tmp_path: Path) -> None:
    write_config(
        tmp_path / "dc",
        {"auths": {"https://index.docker.io/v1/": {"auth": flyctl_auth("hub", "tok")}}},
    )
    cred = resolve_credential(
        "registry-1.docker.io", env=env_for(tmp_path, DOCKER_CONFIG=str(tmp_path / "dc"))
    )
    assert (cred.username, cred.password) == ("hub", "tok")


def test_malformed_config_is_an_error_without_contents(tmp_path: Path) -> None:
    (tmp_path / "dc").mkdir()
    (tmp_path / "dc" / "config.json").write_text('{"auths": {"h": {"auth": "c2VjcmV0"')
    with pytest.raises(AuthError, match="not valid JSON") as info:
        resolve_credential("h.io", env=env_for(tmp_path, DOCKER_CONFIG=str(tmp_path / "dc")))
    assert "c2VjcmV0" not in str(info.value)


def fake_helper(bin_dir: Path, name: str, answers: dict[str, dict[str, str]]) -> None:
    """docker-credential-<name>: answers `get` from `answers`, else 'not found' (exit 1)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"answers = {json.dumps(answers)!r}\n"
        "answers = json.loads(answers)\n"
        "assert sys.argv[1:] == ['get']\n"
        "host = sys.stdin.read().strip()\n"
        "if host in answers:\n"
        "    print(json.dumps(answers[host]))\n"
        "else:\n"
        "    print('credentials not found in native keychain')\n"
        "    sys.exit(1)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def test_cred_helpers_then_creds_store(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_helper(bin_dir, "special", {"a.io": {"Username": "ua", "Secret": "sa"}})
    fake_helper(
        bin_dir,
        "store",
        {
            "b.io": {"Username": "ub", "Secret": "sb"},
            "c.io": {"Username": "<token>", "Secret": "refresh"},
        },
    )
    write_config(
        tmp_path / "dc",
        {
            "auths": {"b.io": {}},  # what docker writes next to a credsStore
            "credHelpers": {"a.io": "special"},
            "credsStore": "store",
        },
    )
    env = env_for(tmp_path, DOCKER_CONFIG=str(tmp_path / "dc"), PATH=f"{bin_dir}:/usr/bin:/bin")
    a = resolve_credential("a.io", env=env)
    assert (a.username, a.password) == ("ua", "sa")
    assert "docker-credential-special" in a.source
    b = resolve_credential("b.io", env=env)
    assert (b.username, b.password) == ("ub", "sb")
    assert "docker-credential-store" in b.source
    c = resolve_credential("c.io", env=env)
    assert c.identity_token == "refresh" and c.password is None and not c.anonymous
    d = resolve_credential("d.io", env=env)
    assert d.anonymous


def test_missing_helper_is_named(tmp_path: Path) -> None:
    write_config(tmp_path / "dc", {"credsStore": "nonexistent-xyz"})
    with pytest.raises(AuthError, match="docker-credential-nonexistent-xyz"):
        resolve_credential("a.io", env=env_for(tmp_path, DOCKER_CONFIG=str(tmp_path / "dc")))


def test_credential_never_shows_its_secret() -> None:
    cred = Credential("x", FLY_TOKEN, "FLY_API_TOKEN")
    for text in (repr(cred), str(cred)):
        assert FLY_TOKEN not in text
        assert "fm2_" not in text
    assert "FLY_API_TOKEN" in str(cred)
    assert cred.scrub(f"echo {FLY_TOKEN} back") == "echo <redacted> back"
    # Picklable, for layer openers sent to worker processes.
    assert pickle.loads(pickle.dumps(cred)) == cred

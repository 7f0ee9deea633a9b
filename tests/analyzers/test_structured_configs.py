"""fly.toml [env] and Compose environment analyzers, and their bounded parsing."""

from __future__ import annotations

import io

import pytest

from fixtures import fakesecrets as fs
from scanner.analyzers.compose import ComposeAnalyzer
from scanner.analyzers.config_files import MAX_CONFIG_BYTES, ConfigTooLarge, parse_yaml
from scanner.analyzers.fly_toml import FlyTomlAnalyzer
from scanner.analyzers.interface import FileAnalyzer, LayerContext
from scanner.detection import Detection
from scanner.findings import Finding, Severity
from scanner.layers import EntryKind, FileInfo
from scanner.signatures import SignatureSet

DETECTION = Detection(SignatureSet.load(()))
PASSWORD = "pQ7-vLx2Rk9mZt"


def run(cls: type[FileAnalyzer], path: str, text: str) -> tuple[list[Finding], LayerContext]:
    layer = LayerContext(2, "sha256:" + "b" * 64, None, None, None)
    data = text.encode()
    info = FileInfo(path, EntryKind.FILE, 0o644, len(data), 0, 0)
    analyzer = cls(DETECTION)
    assert analyzer.required(info)
    return list(analyzer.analyze(info, io.BytesIO(data), layer)), layer


FLY_TOML = f"""
app = "shop"
primary_region = "ams"

[env]
  PORT = "8080"
  LOG_LEVEL = "info"
  DATABASE_PASSWORD = "{PASSWORD}"
  API_TOKEN = "${{API_TOKEN}}"
  SESSION_SECRET = "changeme"
  SECRET_KEY_PATH = "/run/secrets/key"

[http_service]
  internal_port = 8080
"""


def test_fly_toml_env_secret_is_reported_with_key_and_file() -> None:
    found, layer = run(FlyTomlAnalyzer, "app/fly.toml", FLY_TOML)
    by_key = {f.match.split("=")[0]: f for f in found}
    assert set(by_key) == {"DATABASE_PASSWORD", "SESSION_SECRET"}
    secret = by_key["DATABASE_PASSWORD"]
    assert secret.rule_id == "flytoml-env-secret" and secret.severity is Severity.HIGH
    assert "DATABASE_PASSWORD" in secret.title and secret.location.path == "app/fly.toml"
    assert secret.location.line == 8
    assert PASSWORD not in secret.match  # redacted
    placeholder = by_key["SESSION_SECRET"]
    assert placeholder.severity is Severity.LOW and placeholder.noise == "placeholder"
    assert layer.problems == []


def test_fly_toml_names_and_vendor_tokens() -> None:
    analyzer = FlyTomlAnalyzer(DETECTION)
    for name, wanted in [("fly.toml", True), ("fly.staging.toml", True), ("flyio.toml", False)]:
        info = FileInfo(f"app/{name}", EntryKind.FILE, 0o644, 10, 0, 0)
        assert analyzer.required(info) is wanted
    # a vendor token is the content analyzer's (reported once, with its own rule)
    found, _ = run(FlyTomlAnalyzer, "fly.toml", f'[env]\nGITHUB_TOKEN = "{fs.github_pat(1)}"\n')
    assert found == []


COMPOSE_MAP = f"""
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_USER: shop
      POSTGRES_PASSWORD: {PASSWORD}
      PGDATA: /var/lib/postgresql/data
  app:
    image: shop:latest
    environment:
      - DATABASE_URL_FILE=/run/secrets/db
      - STRIPE_SECRET=${{STRIPE_SECRET}}
      - SMTP_PASSWORD=$SMTP_PASSWORD
      - REDIS_PASSWORD
      - JWT_SECRET=Xk29-vbq8Lm3Pz
      - ADMIN_PASSWORD=<your password>
"""


def test_compose_map_and_list_forms() -> None:
    found, layer = run(ComposeAnalyzer, "srv/docker-compose.yml", COMPOSE_MAP)
    got = {(f.title.removesuffix(" holds a secret in clear"), f.severity) for f in found}
    assert got == {
        ("Compose service db: environment POSTGRES_PASSWORD", Severity.HIGH),
        ("Compose service app: environment JWT_SECRET", Severity.HIGH),
        ("Compose service app: environment ADMIN_PASSWORD", Severity.LOW),
    }
    lines = {f.match.split("=")[0]: f.location.line for f in found}
    assert lines["POSTGRES_PASSWORD"] == 7 and lines["JWT_SECRET"] == 16
    assert all(f.rule_id == "compose-env-secret" for f in found)
    assert layer.problems == []


@pytest.mark.parametrize(
    ("name", "wanted"),
    [
        ("docker-compose.yml", True),
        ("docker-compose.yaml", True),
        ("compose.yaml", True),
        ("docker-compose.prod.yml", True),
        ("compose.override.yml", True),
        ("my-compose.yml", False),
        ("docker-compose.yml.bak", False),
    ],
)
def test_compose_file_names(name: str, wanted: bool) -> None:
    info = FileInfo(f"srv/{name}", EntryKind.FILE, 0o644, 10, 0, 0)
    assert ComposeAnalyzer(DETECTION).required(info) is wanted


def test_compose_version_1_services_at_the_top_level() -> None:
    text = f"db:\n  image: postgres\n  environment:\n    - POSTGRES_PASSWORD={PASSWORD}\n"
    (found,) = run(ComposeAnalyzer, "docker-compose.yml", text)[0]
    assert "service db: environment POSTGRES_PASSWORD" in found.title


def test_compose_anchor_shared_by_services_is_reported_once() -> None:
    text = f"""
x-env: &env
  DB_PASSWORD: {PASSWORD}
services:
  a: {{image: x, environment: *env}}
  b: {{image: x, environment: *env}}
"""
    found, _ = run(ComposeAnalyzer, "compose.yml", text)
    assert len(found) == 1


def test_yaml_alias_bomb_is_refused_as_a_layer_problem() -> None:
    levels = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 9))
    text = "l0: &l0 [x]\n" + levels + "services:\n  a:\n    environment: {A_PASSWORD: *l8}\n"
    found, layer = run(ComposeAnalyzer, "compose.yml", text)
    assert found == []
    (problem,) = layer.problems
    assert "/compose.yml" in problem and "expand to more than" in problem


def test_yaml_merge_key_doubling_is_refused() -> None:
    chain = "".join(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: v}}\n" for i in range(1, 40))
    with pytest.raises(ConfigTooLarge):
        parse_yaml(("m0: &m0 {k: v}\n" + chain).encode())


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigTooLarge):
        parse_yaml(b"a: &a [*a]\n")


def test_unsafe_tags_and_garbage_are_not_executed_or_fatal() -> None:
    assert parse_yaml(b"!!python/object/apply:os.system ['true']\n") is None
    assert parse_yaml(b"a: [" * 5000) is None
    found, layer = run(ComposeAnalyzer, "compose.yml", "\x00\x01 not yaml: [")
    assert found == [] and layer.problems == []


def test_oversized_config_is_a_problem_not_silence() -> None:
    text = "[env]\n" + "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1)
    found, layer = run(FlyTomlAnalyzer, "fly.toml", text)
    assert found == []
    assert layer.problems and "larger than 1 MB" in layer.problems[0]

"""Where credentials go: only to the registry's own origin (scheme, host, port) and to its
token service; never to another origin a ``Link`` header or a redirect names, never to a
token service on plain http when the registry is https, never in clear to registry.fly.io.
Servers record every request, so each test can say who received an ``Authorization``."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scanner.errors import AuthError, RegistryError, UsageError
from scanner.reference import FLY_REGISTRY
from scanner.registry.client import Endpoint, RegistryClient, scrub_server_text
from scanner.registry.credentials import Credential
from scanner.results import ImageResult
from scanner.scan import Scanner, ScanOptions
from scanner.sources.interface import SourceOptions
from scanner.timeline import list_tags
from tests.fly import MachinesApi, machine, machines_api
from tests.hostile_images import build_image, secret_layer
from tests.registry.loopback import LoopbackHandler, LoopbackRegistry

USER, PASSWORD = "reader", "s3cret-passw0rd"
CRED = Credential(USER, PASSWORD, "test")
FLY_TOKEN = "FlyV1 fm2_lJPECAAAAAAAAFAKEfakeFAKEfake"  # not a real token


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FLY_API_TOKEN", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))


def client_for(server: LoopbackRegistry, credential: Credential = CRED) -> RegistryClient:
    scheme = "https" if server.tls else "http"
    return RegistryClient(Endpoint(server.host, scheme, 5.0), credential)


# --- TLS on loopback ----------------------------------------------------------------------


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context with a fresh certificate for 127.0.0.1, trusted by requests."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = tmp_path / "cert.pem"
    key_file = tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


# --- Link headers -------------------------------------------------------------------------


def test_tag_list_link_to_another_port_gets_no_credentials() -> None:
    """Before: timeline followed the Link and sent the registry password there."""
    with LoopbackRegistry(basic=(USER, PASSWORD)) as registry, LoopbackRegistry() as other:
        other.tags = ["stolen"]
        registry.tags = ["v1", "v2"]
        registry.tag_link = f'<{other.url}/v2/r/t/tags/list?n=100&last=v2>; rel="next"'
        client = client_for(registry)
        problems: list[str] = []
        tags = list_tags(client, "r/t", problems=problems)
        client.close()
    assert registry.saw_authorization(), "the registry itself gets the credential"
    assert other.requests == [], "another origin is not even asked"
    assert tags == ["v1", "v2"]
    assert any("another origin" in p and f"127.0.0.1:{other.port}" in p for p in problems)


def test_link_to_the_same_origin_is_followed_with_credentials() -> None:
    with LoopbackRegistry(basic=(USER, PASSWORD)) as registry:
        registry.tags = ["v1"]
        calls = {"n": 0}

        def second_page(handler: LoopbackHandler) -> bool:
            if "last=v1" not in handler.path:
                return False
            calls["n"] += 1
            handler.send_bytes(200, b'{"tags":["v2"]}', "application/json")
            return True

        registry.route(r"/tags/list", second_page)
        registry.tag_link = '</v2/r/t/tags/list?n=100&last=v1>; rel="next"'
        client = client_for(registry)
        tags = list_tags(client, "r/t", problems=[])
        client.close()
    assert tags == ["v1", "v2"] and calls["n"] == 1


# --- redirects ----------------------------------------------------------------------------


def test_blob_redirect_to_another_origin_gets_no_credentials() -> None:
    built = build_image([secret_layer("app/.env", "redirect")])
    layer = built.layer_digests[0]
    with (
        LoopbackRegistry(built) as storage,
        LoopbackRegistry(built, basic=(USER, PASSWORD)) as registry,
    ):
        registry.behave(layer, "redirect", target=f"{storage.url}/v2/r/x/blobs/{layer}")
        source = SourceOptions(username=USER, password=PASSWORD, timeout=5.0)
        with Scanner(ScanOptions(source=source, use_cache=False, jobs=1)) as scanner:
            result = scanner.scan(f"{registry.host}/r/x@{built.manifest_digest}")
    assert result.problems == []
    assert any(f.location.path == "app/.env" for f in result.findings)
    assert any(layer in r.path for r in storage.requests)
    assert not storage.saw_authorization()
    assert PASSWORD not in str(storage.requests)


def test_https_registry_redirect_to_plain_http_is_refused(tls: ssl.SSLContext) -> None:
    built = build_image([secret_layer("app/.env", "downgrade")])
    layer = built.layer_digests[0]
    with (
        LoopbackRegistry(built) as plain,
        LoopbackRegistry(built, basic=(USER, PASSWORD), tls=tls) as registry,
    ):
        registry.behave(layer, "redirect", target=f"{plain.url}/v2/r/x/blobs/{layer}")
        client = client_for(registry)
        assert client.get_manifest("r/x", built.manifest_digest).digest == built.manifest_digest
        with pytest.raises(RegistryError, match="from https to plain http"):
            client.open_blob("r/x", layer).read()
        client.close()
    assert registry.saw_authorization()
    assert plain.requests == []


# --- token realms -------------------------------------------------------------------------


def test_plain_http_realm_of_an_https_registry_is_refused(tls: ssl.SSLContext) -> None:
    """Before: the password went in clear to the http:// realm of a TLS registry."""
    realm = LoopbackRegistry()
    with realm, LoopbackRegistry(bearer_realm=f"{realm.url}/token", tls=tls) as registry:
        client = client_for(registry)
        with pytest.raises(AuthError, match="token service on plain http"):
            client.get_manifest("r/x", "latest")
        client.close()
    assert realm.requests == []


def test_plain_http_realm_of_a_plain_http_registry_is_used() -> None:
    with LoopbackRegistry() as realm:

        def token(handler: LoopbackHandler) -> bool:
            handler.send_bytes(200, b'{"token":"tok-123456789"}', "application/json")
            return True

        realm.route(r"^/token", token)
        built = build_image([secret_layer("app/.env", "realm")])
        with LoopbackRegistry(built, bearer_realm=f"{realm.url}/token") as registry:
            client = client_for(registry)
            doc = client.get_manifest("r/x", built.manifest_digest)
            client.close()
    assert doc.digest == built.manifest_digest
    assert realm.authorizations() and realm.authorizations()[0].startswith("Basic ")
    assert registry.authorizations()[-1] == "Bearer tok-123456789"


# --- --insecure and names ------------------------------------------------------------------


def test_insecure_never_applies_to_registry_fly_io() -> None:
    with pytest.raises(UsageError, match="Fly token over plain HTTP"):
        Endpoint.for_registry(FLY_REGISTRY, insecure=True, timeout=5)
    assert Endpoint.for_registry(FLY_REGISTRY, insecure=False, timeout=5).scheme == "https"
    assert Endpoint.for_registry("my.registry:5000", insecure=True, timeout=5).scheme == "http"


def test_dot_localhost_names_are_not_trusted_by_name() -> None:
    assert Endpoint.for_registry("evil.localhost:5000", insecure=False, timeout=5).scheme == (
        "https"
    )
    assert Endpoint.for_registry("localhost:5000", insecure=False, timeout=5).scheme == "http"
    assert Endpoint.for_registry("127.0.0.5:5000", insecure=False, timeout=5).scheme == "http"


def _fly_command() -> Any:
    from scanner.commands.fly import fly_command

    return fly_command


def test_fly_insecure_is_not_applied_to_registry_fly_io(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.report import image_result

    seen: dict[str, bool] = {}

    def fake_scan(self: Scanner, ref: str) -> ImageResult:
        seen[ref] = self.options.source.insecure
        return image_result(ref)

    monkeypatch.setattr(Scanner, "scan", fake_scan)
    monkeypatch.setattr(
        Scanner, "scan_many", lambda self, refs, every=False: [fake_scan(self, r) for r in refs]
    )
    digest_a, digest_b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    api = MachinesApi(
        apps={
            "my-app": [
                machine("m1", digest=digest_a),
                machine("m2", registry="reg.internal:5000", repository="side", digest=digest_b),
            ]
        }
    )
    with machines_api(api):
        result = CliRunner().invoke(
            _fly_command(),
            ["my-app", "--insecure", "--format", "json", "--no-cache"],
            env={"FLY_API_TOKEN": FLY_TOKEN, "LAYERLEAK_FLY_API_URL": api.url},
        )
    assert result.exit_code == 0, result.output
    assert seen == {
        f"registry.fly.io/my-app@{digest_a}": False,
        f"reg.internal:5000/side@{digest_b}": True,
    }
    assert "--insecure is not applied to registry.fly.io" in result.stderr


def test_fly_token_on_standard_input() -> None:
    api = MachinesApi(apps={}, tokens={FLY_TOKEN})
    with machines_api(api):
        result = CliRunner().invoke(
            _fly_command(),
            ["ghost", "--token-stdin", "--api-url", api.url],
            input=FLY_TOKEN + "\n",
            env={"FLY_API_TOKEN": None, "FLY_ACCESS_TOKEN": None},
        )
    assert result.exit_code == 3, result.output  # the API says: no such app
    assert api.requests and api.requests[0][1]["Authorization"] == FLY_TOKEN
    assert "fm2_" not in result.output


def test_fly_token_stdin_needs_something() -> None:
    result = CliRunner().invoke(
        _fly_command(), ["app", "--token-stdin"], input="", env={"FLY_API_TOKEN": None}
    )
    assert result.exit_code == 2 and "nothing on standard input" in result.stderr


# --- server text echoed in errors ------------------------------------------------------------


def test_credentials_echoed_by_the_server_are_scrubbed() -> None:
    echoed = (
        '{"errors":[{"code":"DENIED","message":"denied: Authorization: Basic '
        'cmVhZGVyOnMzY3JldC1wYXNzdzByZA== and Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig"}]}'
    )
    with LoopbackRegistry() as registry:

        def deny(handler: LoopbackHandler) -> bool:
            handler.send_bytes(403, echoed.encode(), "application/json")
            return True

        registry.route(r"/manifests/", deny)
        client = client_for(registry)
        with pytest.raises(AuthError) as info:
            client.get_manifest("r/x", "latest")
        client.close()
    message = str(info.value)
    assert "DENIED" in message
    assert "cmVhZGVyOnMzY3JldC1wYXNzdzByZA" not in message
    assert "eyJhbGciOiJSUzI1NiJ9" not in message and "eyJzdWIiOiJ4In0" not in message


def test_scrub_server_text_table() -> None:
    cases = {
        "Basic dXNlcjpwYXNzd29yZA==": "dXNlcjpwYXNzd29yZA",
        "bearer abcdefgh12345678": "abcdefgh12345678",
        "token=abcdefghijklmnop": "abcdefghijklmnop",
        "FlyV1 fm2_lJPECAAAAAAAAFAKE,fm2_other": "fm2_lJPECAAAAAAAAFAKE",
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJhIjoxfQ.c2ln here": "eyJhbGciOiJIUzI1NiJ9",
    }
    for text, secret in cases.items():
        assert secret not in scrub_server_text(text), text
    for plain in (
        "MANIFEST_UNKNOWN: manifest unknown",
        "basic authentication required",
        "the token provided is invalid",
        "Bearer realm",
    ):
        assert scrub_server_text(plain) == plain
    assert "p4ss-word" not in scrub_server_text("x p4ss-word y", Credential("u", "p4ss-word"))

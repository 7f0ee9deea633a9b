"""The Fly Machines API client against a local stand-in, and ``layerleak fly`` end to end
against the stand-in and the real test registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from scanner.fly.machines import (
    DEFAULT_API_URL,
    FlyAppNotFound,
    FlyAuthError,
    FlyError,
    FlyRateLimited,
    FlyUsageError,
    MachinesClient,
    NoMachines,
    api_base,
    authorization,
    deployed_images,
    machine_from_json,
)
from tests.fly import MachinesApi, machine, machines_api

TOKEN = "FlyV1 fm2_lJPECAAAAAAAAFAKEfakeFAKEfake,fm2_lJPEfakeFAKEfake"  # not a real token
BARE = "fm2_lJPECAAAAAAAAFAKEfakeFAKE"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


class Sleeper:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def client(api: MachinesApi, token: str = TOKEN, **kw: Any) -> MachinesClient:
    kw.setdefault("sleep", Sleeper())
    return MachinesClient(token, api.url, **kw)


# --- tokens and URLs ----------------------------------------------------------------------


def test_flyv1_token_sent_as_is_and_bare_token_as_bearer() -> None:
    api = MachinesApi(apps={"my-app": [machine("m1")]})
    with machines_api(api):
        client(api, TOKEN).list_machines("my-app")
        client(api, BARE).list_machines("my-app")
        client(api, f"  {BARE}\n").list_machines("my-app")
    sent = [headers["Authorization"] for _, headers in api.requests]
    assert sent == [TOKEN, f"Bearer {BARE}", f"Bearer {BARE}"]
    assert all(path == "/v1/apps/my-app/machines" for path, _ in api.requests)


def test_authorization_and_api_base() -> None:
    assert authorization(TOKEN) == TOKEN
    assert authorization(BARE) == f"Bearer {BARE}"
    assert authorization("Bearer abc") == "Bearer abc"
    assert api_base(None) == DEFAULT_API_URL
    assert api_base("http://127.0.0.1:4280/") == "http://127.0.0.1:4280"
    assert api_base("https://api.machines.dev/v1") == DEFAULT_API_URL
    with pytest.raises(FlyUsageError, match="full URL"):
        api_base("api.machines.dev")
    with pytest.raises(FlyUsageError, match="FLY_API_TOKEN"):
        MachinesClient(None)
    with pytest.raises(FlyUsageError, match="FLY_API_TOKEN"):
        MachinesClient("   ")


def test_token_never_in_repr() -> None:
    c = MachinesClient(TOKEN, "http://127.0.0.1:9")
    assert "fm2_" not in repr(c) and "fm2_" not in str(vars(c).get("base_url"))


# --- machines -> images -------------------------------------------------------------------


def test_images_deduplicated_by_digest_with_machines_groups_regions() -> None:
    api = MachinesApi(
        apps={
            "my-app": [
                machine("m1", region="ams", group="app", digest=DIGEST_A),
                machine("m2", region="iad", group="app", digest=DIGEST_A),
                machine("m3", region="ams", group="worker", digest=DIGEST_A),
                machine("m4", region="syd", group="app", digest=DIGEST_B, tag="deployment-NEW"),
                machine("m5", state="destroyed", digest="sha256:" + "c" * 64),
                # no image_ref: config.image names the same image by tag and digest
                machine(
                    "m6",
                    region="fra",
                    group="cron",
                    image_ref=False,
                    config_image=f"registry.fly.io/my-app:deployment-NEW@{DIGEST_B}",
                ),
            ]
        }
    )
    with machines_api(api):
        machines = client(api).machines("my-app")
    images = deployed_images(machines)
    assert [i.digest for i in images] == [DIGEST_A, DIGEST_B]
    a, b = images
    assert a.ref == f"registry.fly.io/my-app@{DIGEST_A}"
    assert a.display == f"registry.fly.io/my-app:deployment-01HZX5M3Q4G6B6Y7Z8A9B0C1D2@{DIGEST_A}"
    assert [m.id for m in a.machines] == ["m1", "m2", "m3"]
    assert a.process_groups == ["app", "worker"]
    assert a.regions == ["ams", "iad"]
    assert [m.id for m in b.machines] == ["m4", "m6"]
    assert b.process_groups == ["app", "cron"]
    assert b.tags == ["deployment-NEW"]
    assert a.to_dict()["machines"][0] == {
        "id": "m1",
        "name": "name-m1",
        "state": "started",
        "region": "ams",
        "process_group": "app",
    }


def test_machine_without_digest_uses_tag() -> None:
    m = machine_from_json(machine("m1", digest=None, tag="v3"))
    assert m is not None
    assert m.image == "registry.fly.io/my-app:v3" and m.digest is None
    untagged = machine_from_json(machine("m2", digest=None, tag=None, image_ref=False))
    assert untagged is not None and untagged.image == "registry.fly.io/my-app:latest"
    incomplete = machine("m3")
    incomplete["incomplete_config"] = incomplete.pop("config")
    parsed = machine_from_json(incomplete)
    assert parsed is not None and parsed.process_group == "app"
    assert machine_from_json({"id": "m4", "config": {}}) is None
    mirrored = machine_from_json(
        machine("m5", registry="docker-hub-mirror.fly.io", repository="library/nginx", tag="1.27")
    )
    assert mirrored is not None
    assert mirrored.image == "docker.io/library/nginx@sha256:" + "1" * 64


# --- errors ------------------------------------------------------------------------------


def _error(api: MachinesApi, app: str = "my-app", token: str = TOKEN) -> FlyError:
    with machines_api(api), pytest.raises(FlyError) as info:
        client(api, token).machines(app)
    message = str(info.value)
    assert "fm2_" not in message and token not in message
    return info.value


def test_401_says_to_create_a_token() -> None:
    err = _error(MachinesApi(apps={"my-app": [machine("m1")]}, tokens={"FlyV1 other"}))
    assert isinstance(err, FlyAuthError)
    assert "401" in str(err) and "fly tokens create" in str(err) and "FLY_API_TOKEN" in str(err)


def test_403_says_which_token_to_use() -> None:
    err = _error(MachinesApi(apps={"my-app": [machine("m1")]}, forbidden={"my-app"}))
    assert isinstance(err, FlyAuthError)
    assert "403" in str(err) and "organization" in str(err)


def test_unknown_app() -> None:
    err = _error(MachinesApi(apps={}), app="no-such-app")
    assert isinstance(err, FlyAppNotFound)
    assert "no-such-app" in str(err) and "fly apps list" in str(err)


def test_app_without_machines() -> None:
    err = _error(MachinesApi(apps={"empty-app": []}), app="empty-app")
    assert isinstance(err, NoMachines)
    assert "fly deploy" in str(err)
    only_destroyed = MachinesApi(apps={"gone": [machine("m1", state="destroyed")]})
    assert isinstance(_error(only_destroyed, app="gone"), NoMachines)


def test_error_body_echoing_the_token_is_not_repeated() -> None:
    api = MachinesApi(scripted={"my-app": [(401, {"error": f"bad token {TOKEN}"}, {})]})
    err = _error(api)
    assert isinstance(err, FlyAuthError)


def test_429_retry_after_then_success() -> None:
    api = MachinesApi(
        apps={"my-app": [machine("m1")]},
        scripted={
            "my-app": [
                (429, {"error": "rate limited"}, {"Retry-After": "2"}),
                (429, {"error": "rate limited"}, {"Retry-After": "1"}),
                (200, [machine("m1")], {}),
            ]
        },
    )
    sleeper = Sleeper()
    notes: list[str] = []
    with machines_api(api):
        found = client(api, sleep=sleeper, notify=notes.append).machines("my-app")
    assert [m.id for m in found] == ["m1"]
    assert sleeper.waits == [2.0, 1.0]
    assert len(api.requests) == 3
    assert "429" in notes[0]


def test_429_gives_up_after_bounded_retries() -> None:
    api = MachinesApi(scripted={"my-app": [(429, {"error": "slow down"}, {"Retry-After": "1"})]})
    sleeper = Sleeper()
    with machines_api(api), pytest.raises(FlyRateLimited) as info:
        client(api, sleep=sleeper, max_retries=2).machines("my-app")
    assert sleeper.waits == [1.0, 1.0]
    assert len(api.requests) == 3
    assert "wait" in str(info.value) and "429" in str(info.value)


def test_429_with_a_long_retry_after_is_not_waited_for() -> None:
    api = MachinesApi(scripted={"my-app": [(429, {}, {"Retry-After": "3600"})]})
    sleeper = Sleeper()
    with machines_api(api), pytest.raises(FlyRateLimited, match="3600"):
        client(api, sleep=sleeper).machines("my-app")
    assert sleeper.waits == []


def test_unreachable_api() -> None:
    c = MachinesClient(TOKEN, "http://127.0.0.1:9", timeout=2)
    with pytest.raises(FlyError, match="cannot reach the Fly Machines API"):
        c.machines("my-app")


# --- the command -------------------------------------------------------------------------


def _fly_command() -> Any:
    from scanner.commands.fly import fly_command

    return fly_command


@pytest.mark.parametrize(
    ("api", "app", "code", "text"),
    [
        (MachinesApi(tokens={"FlyV1 nope"}), "my-app", 3, "401"),
        (MachinesApi(), "ghost", 3, "no Fly app named 'ghost'"),
        (MachinesApi(apps={"idle": []}), "idle", 3, "has no Machines"),
    ],
)
def test_command_errors(api: MachinesApi, app: str, code: int, text: str) -> None:
    command = _fly_command()
    with machines_api(api):
        result = CliRunner().invoke(
            command, [app], env={"FLY_API_TOKEN": TOKEN, "LAYERLEAK_FLY_API_URL": api.url}
        )
    assert result.exit_code == code, result.output
    assert text in result.stderr
    assert "fm2_" not in result.output


def test_command_without_token_is_a_usage_error() -> None:
    command = _fly_command()
    result = CliRunner().invoke(
        command, ["my-app"], env={"FLY_API_TOKEN": None, "FLY_ACCESS_TOKEN": None}
    )
    assert result.exit_code == 2
    assert "FLY_API_TOKEN" in result.stderr


def test_api_url_option_beats_env() -> None:
    command = _fly_command()
    api = MachinesApi(apps={})
    with machines_api(api):
        result = CliRunner().invoke(
            command,
            ["ghost", "--api-url", api.url, "--token", BARE],
            env={"FLY_API_URL": "http://127.0.0.1:9"},
        )
    assert result.exit_code == 3
    assert api.requests and api.requests[0][1]["Authorization"] == f"Bearer {BARE}"


# --- end to end: Machines API stand-in + the real test registry ---------------------------


def _push_fixture_images(registry: Any, tmp_path: Path) -> tuple[str, str, str, str]:
    import fixtures.catalog as catalog
    from fixtures.imagebuilder import write_oci_layout
    from tests.infra.plugin import unique_repo

    repo = unique_repo("fly")
    web = write_oci_layout(tmp_path / "web", [catalog.deleted_secret_image()], tag="web")
    old = write_oci_layout(tmp_path / "old", [catalog.clean_image()], tag="old")
    digest_web = registry.push_oci_layout(web, repo, "deployment-01HZX00000000000000000000B")
    digest_old = registry.push_oci_layout(old, repo, "deployment-01HZX00000000000000000000A")
    return repo, digest_web, digest_old, registry.url


def test_fly_command_end_to_end(registry_anonymous: Any, tmp_path: Path) -> None:
    command = _fly_command()
    repo, digest_web, digest_old, host = _push_fixture_images(registry_anonymous, tmp_path)
    host = host.split("://", 1)[-1].rstrip("/")
    tag_web = "deployment-01HZX00000000000000000000B"
    machines = [
        machine(
            "web1",
            region="ams",
            group="app",
            registry=host,
            repository=repo,
            tag=tag_web,
            digest=digest_web,
        ),
        machine(
            "web2",
            region="iad",
            group="app",
            registry=host,
            repository=repo,
            tag=tag_web,
            digest=digest_web,
        ),
        machine(
            "wrk1",
            region="ams",
            group="worker",
            registry=host,
            repository=repo,
            tag=tag_web,
            digest=digest_web,
        ),
        machine(
            "old1",
            region="syd",
            group="app",
            registry=host,
            repository=repo,
            tag="deployment-01HZX00000000000000000000A",
            digest=digest_old,
        ),
        machine("gone", state="destroyed", registry=host, repository=repo, digest=digest_old),
    ]
    api = MachinesApi(apps={"my-app": machines})
    cache = ["--cache-dir", str(tmp_path / "cache")]
    with machines_api(api):
        result = CliRunner().invoke(
            command,
            ["my-app", "--format", "json", "--fail-on", "critical", *cache],
            env={"FLY_API_TOKEN": TOKEN, "LAYERLEAK_FLY_API_URL": api.url},
        )
    assert result.exit_code in (0, 1), result.output
    doc = json.loads(result.stdout)
    fly = doc["fly"]
    assert fly["app"] == "my-app" and fly["machines"] == 4
    assert [i["digest"] for i in fly["images"]] == [digest_web, digest_old]
    web, old = fly["images"]
    assert [m["id"] for m in web["machines"]] == ["web1", "web2", "wrk1"]
    assert web["process_groups"] == ["app", "worker"] and web["regions"] == ["ams", "iad"]
    assert [m["id"] for m in old["machines"]] == ["old1"]
    assert web["complete"] is True and old["complete"] is True
    # each image scanned once
    assert [i["name"] for i in doc["images"]] == [web["ref"], old["ref"]]
    assert doc["complete"] is True
    assert "layerleak fly my-app: 4 machine(s), 2 image(s)" in result.stderr
    # the Fly token was not sent to this registry (only registry.fly.io gets it)
    assert "fm2_" not in result.output
    web_findings = doc["images"][0]["findings"]
    if any(f["category"] == "secret" for f in web_findings):
        paths = {f["location"]["path"] for f in web_findings}
        assert "app/secrets/id_rsa" in paths
        assert result.exit_code == 1

    # SARIF of the same run carries the deployment per result
    with machines_api(api):
        sarif = CliRunner().invoke(
            command,
            ["my-app", "--format", "sarif", "-q", *cache],
            env={"FLY_API_TOKEN": TOKEN, "LAYERLEAK_FLY_API_URL": api.url},
        )
    log = json.loads(sarif.stdout)
    run = log["runs"][0]
    assert run["properties"]["fly"]["app"] == "my-app"
    for res in run["results"]:
        assert res["properties"]["flyApp"] == "my-app"
        assert res["properties"]["flyProcessGroups"]


def test_fly_token_goes_to_registry_fly_io_only(monkeypatch: pytest.MonkeyPatch) -> None:
    command = _fly_command()
    from scanner.scan import Scanner
    from tests.report import image_result

    seen: dict[str, tuple[str | None, str | None]] = {}

    def fake_scan(self: Scanner, ref: str) -> Any:
        seen[ref] = (self.options.source.username, self.options.source.password)
        return image_result(ref)

    monkeypatch.setattr(Scanner, "scan", fake_scan)
    monkeypatch.setattr(Scanner, "scan_many", lambda self, refs: [fake_scan(self, r) for r in refs])
    api = MachinesApi(
        apps={
            "my-app": [
                machine("m1", digest=DIGEST_A),
                machine("m2", registry="ghcr.io", repository="acme/sidecar", digest=DIGEST_B),
            ]
        }
    )
    with machines_api(api):
        result = CliRunner().invoke(
            command,
            ["my-app", "--format", "json", "-q", "--no-cache"],
            env={"FLY_API_TOKEN": TOKEN, "LAYERLEAK_FLY_API_URL": api.url},
        )
    assert result.exit_code == 0, result.output
    assert seen == {
        f"registry.fly.io/my-app@{DIGEST_A}": ("x", TOKEN),
        f"ghcr.io/acme/sidecar@{DIGEST_B}": (None, None),
    }

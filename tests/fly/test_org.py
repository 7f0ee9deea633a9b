"""``layerleak fly --org``: the organisation's apps from the Machines API stand-in (pages,
an app without Machines, an app the token may not read), images from the real registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from scanner.commands.fly import fly_command
from scanner.fly.machines import FlyAuthError, FlyError, MachinesClient
from tests.fly import MachinesApi, Reply, machine, machines_api

TOKEN = "FlyV1 fm2_lJPECAAAAAAAAFAKEfakeFAKEfake"  # not a real token


def test_apps_of_an_org_come_in_pages() -> None:
    names = [f"app-{i}" for i in range(5)]
    api = MachinesApi(orgs={"acme": names}, page_size=2)
    with machines_api(api):
        client = MachinesClient(TOKEN, api.url)
        apps = client.list_apps("acme")
    assert [a["name"] for a in apps] == names
    assert apps[0] == {"id": "id-app-0", "name": "app-0", "machine_count": 0, "network": "default"}
    paths = [path for path, _ in api.requests]
    assert paths == [
        "/v1/apps?org_slug=acme",
        "/v1/apps?org_slug=acme&cursor=2",
        "/v1/apps?org_slug=acme&cursor=4",
    ]
    assert all(h["Authorization"] == TOKEN for _, h in api.requests)


class LoopingApi(MachinesApi):
    def list_apps(self, query: str) -> Reply:
        return 200, {"total_apps": 9, "apps": [{"name": "a"}], "next_cursor": "same"}, {}


def test_a_cursor_that_repeats_ends_the_listing() -> None:
    api = LoopingApi(orgs={"acme": []})
    with machines_api(api):
        apps = MachinesClient(TOKEN, api.url).list_apps("acme")
    assert [a["name"] for a in apps] == ["a"] and len(api.requests) == 2


def test_org_errors() -> None:
    api = MachinesApi(orgs={"acme": ["a"]}, tokens={"FlyV1 other"})
    with machines_api(api):
        with pytest.raises(FlyAuthError, match="401"):
            MachinesClient(TOKEN, api.url).list_apps("acme")
        with pytest.raises(FlyError, match="404"):
            MachinesClient("FlyV1 other", api.url).list_apps("nope")
        with pytest.raises(FlyError, match="slug"):
            MachinesClient(TOKEN, api.url).list_apps("a&b")


def test_app_or_org_not_both() -> None:
    for args in ([], ["app", "--org", "acme"]):
        out = CliRunner().invoke(fly_command, args, env={"FLY_API_TOKEN": TOKEN})
        assert out.exit_code == 2 and "--org" in out.output


def _push(registry: Any, tmp_path: Path) -> tuple[str, str, str, str]:
    import fixtures.catalog as catalog
    from fixtures.imagebuilder import write_oci_layout
    from tests.infra.plugin import unique_repo

    repo = unique_repo("org")
    leaky = write_oci_layout(tmp_path / "leaky", [catalog.deleted_secret_image()], tag="a")
    clean = write_oci_layout(tmp_path / "clean", [catalog.clean_image()], tag="b")
    digest_a = registry.push_oci_layout(leaky, repo, "deployment-A")
    digest_b = registry.push_oci_layout(clean, repo, "deployment-B")
    return repo, digest_a, digest_b, registry.url.split("://", 1)[-1].rstrip("/")


def test_org_sweep_end_to_end(registry_anonymous: Any, tmp_path: Path) -> None:
    repo, digest_a, digest_b, host = _push(registry_anonymous, tmp_path)

    def m(id: str, digest: str, group: str = "app") -> dict[str, Any]:
        return machine(id, group=group, registry=host, repository=repo, digest=digest, tag=None)

    api = MachinesApi(
        apps={
            "web": [m("w1", digest_a), m("w2", digest_a)],
            "worker": [m("k1", digest_a, "worker")],  # the same image as web
            "api": [m("a1", digest_b)],
            "idle": [],
            "secret-app": [m("s1", digest_b)],
        },
        orgs={"acme": ["web", "worker", "api", "idle", "secret-app"]},
        forbidden={"secret-app"},
        page_size=2,
    )
    base = ["--org", "acme", "--no-cache", "--fail-on", "high"]
    with machines_api(api):
        env = {"FLY_API_TOKEN": TOKEN, "LAYERLEAK_FLY_API_URL": api.url}
        out = CliRunner().invoke(fly_command, [*base, "--format", "json"], env=env)
        sarif = CliRunner().invoke(fly_command, [*base, "--format", "sarif", "-q"], env=env)
        table = CliRunner().invoke(fly_command, [*base, "--format", "table", "-q"], env=env)
        md = CliRunner().invoke(fly_command, [*base, "--format", "markdown", "-q"], env=env)
        api.forbidden.clear()
        ok = CliRunner().invoke(fly_command, [*base, "--format", "json", "-q"], env=env)
    assert out.exit_code == 3, out.output  # one app could not be read
    assert ok.exit_code == 1, ok.output  # the leaky image fails the gate
    doc = json.loads(out.stdout)
    fly = doc["fly"]
    assert fly["org"] == "acme" and fly["distinct_images"] == 2 and fly["machines"] == 4
    apps = {a["app"]: a for a in fly["apps"]}
    assert list(apps) == ["web", "worker", "api", "idle", "secret-app"]
    assert [i["digest"] for i in apps["web"]["images"]] == [digest_a]
    assert [m["id"] for m in apps["web"]["images"][0]["machines"]] == ["w1", "w2"]
    assert [m["id"] for m in apps["worker"]["images"][0]["machines"]] == ["k1"]
    assert apps["idle"]["machines"] == 0 and apps["idle"]["images"] == []
    assert apps["secret-app"]["error"] and "403" in apps["secret-app"]["error"]
    assert fly["errors"] and doc["complete"] is False
    # each distinct image scanned once, whichever apps run it
    assert sorted(i["name"] for i in doc["images"]) == sorted(
        [f"{host}/{repo}@{digest_a}", f"{host}/{repo}@{digest_b}"]
    )
    assert (
        apps["web"]["images"][0]["findings"]["critical"]
        + apps["web"]["images"][0]["findings"]["high"]
        > 0
    )
    assert "layerleak fly --org acme: 5 app(s), 4 machine(s), 2 distinct image(s)" in out.stderr
    assert "fm2_" not in out.output
    results = json.loads(sarif.stdout)["runs"][0]["results"]
    leaky = [r for r in results if r["properties"]["image"].endswith(digest_a)]
    assert leaky and all(r["properties"]["flyApps"] == ["web", "worker"] for r in leaky)
    assert "app idle: no machines" in table.stdout and "app secret-app: error" in table.stdout
    assert "### idle" in md.stdout and "No Machines." in md.stdout
    assert json.loads(ok.stdout)["complete"] is True

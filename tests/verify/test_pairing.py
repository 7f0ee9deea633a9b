"""Which findings are a credential's other parts: same image, platform and place."""

from __future__ import annotations

from dataclasses import replace

from scanner.findings import Category, Finding, Location, LocationKind, Severity
from scanner.verify.pairing import companions

WANTED = ("aws-secret-access-key", "aws-session-token")


def f(rule_id: str, secret: str, location: Location, **kw: str) -> Finding:
    base = Finding(
        rule_id=rule_id,
        title=rule_id,
        severity=Severity.HIGH,
        category=Category.SECRET,
        location=location,
        secret=secret,
        image="img",
        platform="linux/amd64",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_config_env_entries_pair_across_fields() -> None:
    key = f("aws-access-key-id", "AKIA", Location(LocationKind.CONFIG, field="config.Env[1]"))
    secret = f("aws-secret-access-key", "S", Location(LocationKind.CONFIG, field="config.Env[2]"))
    token = f("aws-session-token", "T", Location(LocationKind.CONFIG, field="config.Env[3]"))
    found = companions(key, [key, secret, token], WANTED)
    assert {r: x.secret for r, x in found.items()} == {
        "aws-secret-access-key": "S",
        "aws-session-token": "T",
    }


def test_history_steps_pair_only_within_one_step() -> None:
    def step(i: int) -> Location:
        return Location(LocationKind.HISTORY, history_index=i, field=f"history[{i}] command")

    key = f("aws-access-key-id", "AKIA", step(4))
    same = f("aws-secret-access-key", "S4", step(4))
    other = f("aws-secret-access-key", "S5", step(5))
    assert companions(key, [other, same], WANTED)["aws-secret-access-key"].secret == "S4"
    assert companions(key, [other], WANTED) == {}


def test_other_platform_image_layer_or_archive_member_never_pair() -> None:
    here = Location(LocationKind.FILE, layer_index=1, path="app/.env", line=1)
    key = f("aws-access-key-id", "AKIA", here)
    elsewhere = [
        f("aws-secret-access-key", "A", here, platform="linux/arm64"),
        f("aws-secret-access-key", "B", here, image="other"),
        f("aws-secret-access-key", "C", replace(here, layer_index=2)),
        f("aws-secret-access-key", "D", replace(here, inner_path="x.zip!a")),
        f("aws-secret-access-key", "", replace(here, line=2)),  # no raw secret (no --verify)
    ]
    assert companions(key, elsewhere, WANTED) == {}


def test_nearest_line_wins_and_ties_go_to_the_line_after() -> None:
    at = Location(LocationKind.FILE, layer_index=1, path="root/.aws/credentials", line=5)
    key = f("aws-access-key-id", "AKIA", at)
    before = f("aws-secret-access-key", "before", replace(at, line=4))
    after = f("aws-secret-access-key", "after", replace(at, line=6))
    far = f("aws-secret-access-key", "far", replace(at, line=40))
    assert companions(key, [far, before, after], WANTED)["aws-secret-access-key"].secret == "after"
    assert companions(key, [far, before], WANTED)["aws-secret-access-key"].secret == "before"

"""The Fly.io decoder on tokens built in the tests from the format description."""

from __future__ import annotations

import json
import time

import pytest

from fixtures import flytokens as ft
from scanner.blast import Clue, Radius, radius, refreshed
from scanner.blast.fly import decode_bundle, split_bundle
from scanner.detection import Detection
from scanner.findings import Location, LocationKind, Severity
from scanner.signatures import SignatureSet

NOW = 1_800_000_000  # 2027-01-15
START, LATER, PAST = 1_700_000_000, 4_900_000_000, 1_700_600_000
ORG, APP = 4_294_967_301, 98_765  # an org id above 2**32 survives as text


def fly(token: str, rule_id: str = "flyio-api-token") -> Radius:
    found = radius(Clue(rule_id, "FlyIO", token, now=NOW))
    assert found is not None
    return found


def test_org_token_is_organisation_wide_and_critical() -> None:
    r = fly(ft.org_token(ORG, START, LATER))
    assert r.details["kind"] == "org-deploy"
    assert r.details["organization_ids"] == [str(ORG)]
    assert r.details["permissions"] == "all"
    assert r.details["expires_at"] == "2125-04-10T23:06:40Z" and r.details["expired"] is False
    assert r.details["third_party_locations"] == ["https://auth.fly.io"]
    assert r.details["user_ids"] == ["77"]  # who made it, from the discharge token
    assert r.severity is Severity.CRITICAL and r.at_most is None
    assert "every app in the organisation" in r.summary and "expires 2125-04-10" in r.summary


def test_app_token_names_its_app_and_is_not_organisation_wide() -> None:
    r = fly(ft.app_token(ORG, APP, START, LATER))
    assert r.details["kind"] == "app-deploy"
    assert r.details["app_ids"] == [str(APP)]
    assert r.details["features"] == ["builder", "wg"]
    assert r.details["otherwise_permissions"] == "read"
    assert r.severity is Severity.HIGH
    assert str(APP) in r.summary and "every app" not in r.summary


def test_expired_token_is_still_reported_at_medium_with_its_date() -> None:
    r = fly(ft.org_token(ORG, START, PAST))
    assert r.details["expired"] is True and r.details["expires_at"].startswith("2023-11-21")
    assert "expired on 2023-11-21" in r.summary
    assert r.applied_to(Severity.CRITICAL) is Severity.MEDIUM


def test_smallest_not_after_anywhere_wins_ifpresent_included() -> None:
    window = (ft.VALIDITY_WINDOW, [START, PAST])
    ifs = [ft.APPS, [{APP: ft.ALL}], *window]
    perm = ft.macaroon([(ft.ORGANIZATION, [ORG, ft.ALL]), (ft.IF_PRESENT, [ifs, ft.READ])])
    token = f"FlyV1 {ft.encode(perm)},{ft.discharge(START, LATER, 1)}"
    assert fly(token).details["expired"] is True


@pytest.mark.parametrize(
    ("token", "kind", "severity"),
    [
        (ft.readonly_token(ORG, START, LATER), "read-only", Severity.MEDIUM),
        (ft.ssh_token(ORG, START, LATER), "ssh", Severity.HIGH),
        (ft.exec_token(ORG, ["/app/bin/migrate"], START, LATER), "machine-exec", Severity.HIGH),
        ("fo1_" + "A" * 43, "user-session", Severity.CRITICAL),
        (f"FlyV1 fm2_x,fo1_{'B' * 43}", "user-session", Severity.CRITICAL),
    ],
)
def test_each_token_shape(token: str, kind: str, severity: Severity) -> None:
    r = fly(token)
    assert r.details["kind"] == kind
    assert r.severity is severity


def test_action_read_alone_is_read_only() -> None:
    perm = ft.macaroon([(ft.ORGANIZATION, [ORG, ft.ALL]), (ft.ACTION, ft.READ)])
    assert fly(ft.encode(perm), "flyio-macaroon").details["kind"] == "read-only"


def test_text_forms_labels_and_lost_padding() -> None:
    token = ft.org_token(ORG, START, LATER)
    bare = token.removeprefix("FlyV1 ")
    for text in (bare, f"Bearer FlyV1 {bare}", f"flyv1   {bare}", bare.replace("=", "")):
        assert fly(text).details["kind"] == "org-deploy", text
    legacy = ft.encode(ft.macaroon([(ft.ORGANIZATION, [ORG, ft.ALL])]), label="fm1r")
    assert fly(legacy, "flyio-legacy-token").details["kind"] == "org-deploy"
    assert split_bundle("FlyV1 fm2_a, fm2_b") == [("fm2", "a"), ("fm2", "b")]


def test_unknown_and_registrable_caveat_types_are_reported_not_fatal() -> None:
    perm = ft.macaroon([(ft.ORGANIZATION, [ORG, ft.ALL]), (2**32 + 5, {"x": [1, 2]}), (40, "x")])
    r = fly(ft.encode(perm))
    assert r.details["kind"] == "org-deploy"
    assert r.details["unknown_caveat_types"] == ["40", str(2**32 + 5)]


def test_discharge_token_alone() -> None:
    r = fly(ft.discharge(START, LATER, 5))
    assert r.details["kind"] == "discharge-only" and r.details["expired"] is False


def test_the_radius_never_holds_the_token() -> None:
    for token in (ft.org_token(ORG, START, LATER), ft.app_token(ORG, APP, START, LATER)):
        r = fly(token)
        text = json.dumps(r.details) + r.summary
        for part in token.removeprefix("FlyV1 ").split(","):
            assert part[4:24] not in text


def test_detection_sets_radius_and_severity_on_findings() -> None:
    detection = Detection(SignatureSet.builtin())
    text = (
        f'FLY_API_TOKEN="{ft.org_token(ORG, START, LATER)}"\n'
        f"DEPLOY={ft.app_token(ORG, APP, START, PAST).removeprefix('FlyV1 ')}\n"
    )
    findings = [
        detection.finding(m, Location(LocationKind.FILE, path="app/.env", line=m.line))
        for m in detection.scan_text(text)
    ]
    by_rule = {f.rule_id: f for f in findings}
    org, app = by_rule["flyio-api-token"], by_rule["flyio-macaroon"]
    assert org.severity is Severity.CRITICAL and org.blast_radius
    assert org.blast_radius.details["kind"] == "org-deploy"
    assert app.severity is Severity.MEDIUM  # app-scoped (high), expired: medium
    assert app.blast_radius and app.blast_radius.details["expired"] is True


def test_direct_decode_of_nothing_fly() -> None:
    assert decode_bundle("", NOW) is None
    assert decode_bundle("FlyV1 ", NOW) is None


def test_a_cached_finding_whose_token_expired_since_is_lowered() -> None:
    detection = Detection(SignatureSet.builtin())
    ends = int(time.time()) + 1_000_000
    [match] = detection.scan_text(f"T={ft.org_token(ORG, START, ends)}\n")
    finding = detection.finding(match, Location(LocationKind.FILE, path="app/.env"))
    assert finding.severity is Severity.CRITICAL  # valid when scanned (the clock is now)
    assert refreshed(finding, now=ends - 5) == finding
    later = refreshed(finding, now=ends + 5)
    assert later.severity is Severity.MEDIUM and later.blast_radius
    assert later.blast_radius.details["expired"] is True
    assert "; expired on " in later.blast_radius.summary
    assert hash(later) != hash(finding)  # findings with a radius stay hashable

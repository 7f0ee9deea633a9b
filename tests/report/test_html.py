"""``--format html`` without a browser: structure, policy, escaping, redaction, bounds.

The page is parsed with the standard library's HTML parser: exactly one script (ours,
allowed by its hash in the Content-Security-Policy), no element or attribute an image
could have smuggled in, every image string present only as text.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from scanner.diff import diff_reports
from scanner.findings import FileState, Severity
from scanner.fly import FlyScan
from scanner.fly.machines import DeployedImage, Machine
from scanner.fly.org import AppSection, OrgScan
from scanner.gate import Gate
from scanner.outcome import Outcome, ScanOutcome
from scanner.report import html_view
from scanner.report.html import render
from scanner.report.registry import KINDS, RENDERERS, formats
from scanner.results import Report, ScanProblem
from scanner.timeline import Release, ReleaseScan, Timeline, exposures
from scanner.timelines import TimelineSet
from tests.report import (
    RAW_SECRET,
    config_finding,
    file_finding,
    history_finding,
    image_result,
    report,
    sample_report,
)

GATE = Gate.from_cli("high")
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SCRIPT_PAYLOAD = "<script>window.__pwned=1</script>"
ATTR_PAYLOAD = '"><img src=x onerror="window.__pwned=1">'
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "header", "div", "h1", "h2",
    "h3", "h4", "p", "span", "b", "a", "br", "code", "dl", "dt", "dd", "section", "form",
    "fieldset", "legend", "label", "input", "button", "table", "thead", "tbody", "tr", "th",
    "td", "ul", "ol", "li", "details", "summary", "footer", "script", "svg", "g", "text",
    "rect", "line", "circle", "polygon",
}  # fmt: skip


@dataclass
class Page(HTMLParser):
    tags: Counter[str] = field(default_factory=Counter)
    attrs: list[tuple[str, str, str]] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    csp: str = ""
    _in_script: bool = False

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        for name, value in attrs:
            self.attrs.append((tag, name, value or ""))
        if tag == "meta" and ("http-equiv", "Content-Security-Policy") in attrs:
            self.csp = dict(attrs)["content"] or ""
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)
        else:
            self.text.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def hostile_report(reveal: bool = False) -> ScanOutcome:
    findings = [
        file_finding(f"app/{SCRIPT_PAYLOAD}.env", reveal=reveal, created_by=SCRIPT_PAYLOAD),
        file_finding(
            f"app/{ATTR_PAYLOAD}/id_rsa",
            rule_id="private-key",
            severity=Severity.CRITICAL,
            state=FileState.DELETED,
            changed_in=2,
            reveal=reveal,
        ),
        config_finding(field=f"config.Labels[{ATTR_PAYLOAD}]", match=SCRIPT_PAYLOAD),
        history_finding(),
    ]
    image = image_result(name=f"registry.example/{SCRIPT_PAYLOAD}:1", findings=findings)
    image.platforms[0].layers[1].created_by = f"COPY {ATTR_PAYLOAD} {SCRIPT_PAYLOAD} /app"
    image.tags = [f"app:{ATTR_PAYLOAD}"]
    image.problems.append(ScanProblem(image.name, None, 3, f"layer 3: {SCRIPT_PAYLOAD}"))
    return ScanOutcome(report(image, reveal=reveal))


def sample_outcomes() -> dict[str, Outcome]:
    old = report(image_result(findings=[file_finding("app/old.env", secret="ghp_" + "O" * 36)]))
    new = sample_report()
    diff = diff_reports(old, new)
    scans = [
        ReleaseScan(Release("v1", "r:v1", "sha256:" + "1" * 64, "2025-01-01T00:00:00Z"), i)
        for i in (image_result(findings=[file_finding()]),)
    ] + [
        ReleaseScan(
            Release("v2", "r:v2", "sha256:" + "2" * 64, "2025-02-01T00:00:00Z"),
            image_result(findings=[config_finding()]),
        )
    ]
    timeline = Timeline("registry.example/app", ("v*",), scans, exposures(scans))
    machine = Machine(
        "m1abc", "web-1", "started", "ams", "app", "registry.example/app:1", "app:1", None, "1"
    )
    deployed = DeployedImage("registry.example/app:1", "registry.example/app:1", None, ["1"])
    deployed.machines.append(machine)
    fly_report = sample_report()
    fly = FlyScan(
        "my-app",
        "https://api.machines.dev",
        [machine],
        [deployed],
        fly_report,
        {"registry.example/app:1": fly_report.images[0]},
    )
    other = Timeline("registry.example/<other>", (), scans[:1], exposures(scans[:1]))
    timelines = TimelineSet([timeline, other])
    idle = FlyScan("<idle-app>", "https://api.machines.dev", [], [], Report([]), {})
    broken = FlyScan("broken-app", "https://api.machines.dev", [], [], Report([]), {})
    org = OrgScan(
        "my-org",
        "https://api.machines.dev",
        [AppSection(fly), AppSection(idle), AppSection(broken, error="HTTP 500 <b>oops</b>")],
        [deployed],
        fly_report,
    )
    return {
        "scan": ScanOutcome(sample_report()),
        "diff": diff,
        "timeline": timeline,
        "timelines": timelines,
        "fly": fly,
        "fly-org": org,
    }


# --- every kind ----------------------------------------------------------------------------


def test_every_command_has_an_html_renderer() -> None:
    for kind in KINDS:
        assert "html" in formats(kind)
        assert (kind, "html") in RENDERERS


@pytest.mark.parametrize("kind", KINDS)
def test_self_contained_with_one_script_allowed_by_hash(kind: str) -> None:
    text = render(sample_outcomes()[kind], GATE, NOW)
    page = parse(text)
    assert page.tags["script"] == 1 and len(page.scripts) == 1
    digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page.csp
    assert "default-src 'none'" in page.csp and "unsafe-inline" not in page.csp
    assert text.index("Content-Security-Policy") < text.index("<style>")
    assert set(page.tags) <= ALLOWED_TAGS, set(page.tags) - ALLOWED_TAGS
    for tag, name, value in page.attrs:
        assert not name.startswith("on"), (tag, name)
        assert name not in {"src", "style"}, (tag, name)
        if name == "href":
            assert value.startswith("#"), value  # only links within the page
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg|api\.machines\.dev)", text)
    assert "2026-01-02 03:04:05 UTC" in text


def test_header_counts_and_rule_set() -> None:
    outcome = sample_outcomes()["scan"]
    outcome.images[0].rules_digest = "sha256:" + "9" * 64
    text = render(outcome, GATE, NOW)
    assert "sha256:" + "9" * 64 in text
    for label, n in {"critical": 2, "high": 1, "medium": 1, "low": 0, "info": 0}.items():
        assert re.search(rf'data-count="{label}">.*?<b>{n}</b>', text)
    assert 'id="complete">yes' in text


# --- hostile strings -----------------------------------------------------------------------


def test_image_strings_are_text_never_markup() -> None:
    text = render(hostile_report(), GATE, NOW)
    page = parse(text)
    assert page.tags["script"] == 1 and "img" not in page.tags
    assert not any(name.startswith("on") for _, name, _ in page.attrs)
    body = "".join(page.text)
    assert SCRIPT_PAYLOAD in body and ATTR_PAYLOAD in body  # shown, as text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
    assert "<dt>tags</dt><dd><code>app:&#34;&gt;&lt;img" in text
    assert 'onerror="window' not in text and "onerror=&#34;window" in text
    assert 'id="complete">NO: some parts could not be scanned' in text
    assert 'id="problems"' in text and "layer 3: &lt;script&gt;" in text


def test_control_and_bidi_characters_are_shown_escaped() -> None:
    outcome = ScanOutcome(
        report(image_result(findings=[file_finding("app/\x1b[31mred\u202etxt.env")]))
    )
    text = render(outcome, GATE, NOW)
    assert "\x1b" not in text and "\u202e" not in text
    assert "\\u001b[31mred\\u202etxt.env" in text


def test_secrets_redacted_unless_reveal() -> None:
    assert RAW_SECRET not in render(hostile_report(), GATE, NOW)
    assert RAW_SECRET[:4] + "********" in render(hostile_report(), GATE, NOW)
    assert RAW_SECRET in render(hostile_report(reveal=True), GATE, NOW)
    for kind, outcome in sample_outcomes().items():
        assert RAW_SECRET not in render(outcome, GATE, NOW), kind


# --- what each page shows ------------------------------------------------------------------


def test_spans_from_the_adding_layer_to_the_deleting_one_or_the_top() -> None:
    text = render(sample_outcomes()["scan"], GATE, NOW)
    spans = re.findall(r'data-span-from="(\d+)" data-span-to="(\w+)"', text)
    assert sorted(spans) == [("1", "2"), ("1", "top")]
    assert len(re.findall(r'<g class="layer" data-layer="\d+"', text)) == 4


def test_band_height_grows_with_bytes() -> None:
    image = image_result()
    image.platforms[0].layers[0].uncompressed_bytes = 100 << 20
    stack = html_view.stack(image.platforms[0].layers, [])
    heights = {b.index: b.height for b in stack.bands}
    assert heights[0] == html_view.MIN_BAND + html_view.EXTRA_BAND
    assert heights[1] == heights[2] < heights[0]
    assert [b.index for b in stack.bands] == [3, 2, 1, 0]  # layer 0 at the bottom
    assert stack.bands[0].y < stack.bands[-1].y


def test_diff_side_by_side() -> None:
    text = render(sample_outcomes()["diff"], GATE, NOW)
    columns = dict(re.findall(r'data-column="(\w+)">\s*<h3>[^<]*\((\d+)\)', text))
    assert columns == {"new": "4", "fixed": "1", "unchanged": "0"}
    assert text.count('data-change="fixed"') == 1


def test_timeline_grid_marks_first_and_last_release() -> None:
    text = render(sample_outcomes()["timeline"], GATE, NOW)
    assert re.findall(r'data-release="([^"]+)"', text) == ["v1", "v2"]
    cells = re.findall(r'data-cell="(\w*)"', text)
    assert sorted(cells) == sorted(["", "only", "only", ""])
    assert "STILL IN NEWEST" in text and "removed in v2" in text


def test_timelines_page_has_a_grid_per_repository() -> None:
    many = sample_outcomes()["timelines"]
    assert isinstance(many, TimelineSet)
    problem = ScanProblem("registry.example/<other>", None, None, "tags: 1 left")
    many.timelines[1].list_problems.append(problem)
    text = render(many, GATE, NOW)
    assert re.findall(r'data-release="([^"]+)"', text) == ["v1", "v2", "v1"]
    assert text.count('class="timeline"') == 2 and text.count('id="timeline"') == 1
    assert "<code>registry.example/&lt;other&gt;</code>" in text and "<other>" not in text
    assert "INCOMPLETE" in text and "tags: 1 left" in text


def test_fly_lists_machines_regions_and_process_groups() -> None:
    text = render(sample_outcomes()["fly"], GATE, NOW)
    row = re.search(r'<tr data-deployment="registry.example/app:1">.*?</tr>', text, re.S)
    assert row is not None
    assert "m1abc" in row.group() and "ams" in row.group() and ">app<" in row.group()
    assert 'href="#img-0"' in row.group()


def test_bounded_rows_say_what_was_left_out() -> None:
    findings = [file_finding(f"app/f{i}.env", secret=f"ghp_{i:036d}") for i in range(2100)]
    text = render(ScanOutcome(report(image_result(findings=findings))), GATE, NOW)
    assert text.count('<tr class="finding') == html_view.MAX_ROWS
    assert "100 finding(s) not listed" in text
    assert text.count('data-finding="span"') == html_view.MAX_SPANS


def test_a_very_tall_stack_is_drawn_bounded() -> None:
    image = image_result(layers=1000)
    deep = file_finding(
        "app/deep.env", layer=10, state=FileState.DELETED, changed_in=990, secret="ghp_" + "D" * 36
    )
    middle = file_finding("app/mid.env", layer=500, secret="ghp_" + "M" * 36)
    image.findings += [deep, middle]
    text = render(ScanOutcome(report(image)), GATE, NOW)
    assert text.count('<g class="layer"') == html_view.MAX_BANDS
    assert "800 layer(s) in the middle of the stack are not drawn" in text
    assert re.findall(r'data-span-from="(\d+)" data-span-to="(\w+)"', text) == [("10", "990")]
    assert "1 more not drawn (see the table)" in text  # the one in a hidden layer
    assert text.count('<tr class="finding') == 2  # but both are listed


def test_many_images_problems_and_releases_are_bounded() -> None:
    images = [image_result(name=f"img{i}", findings=[file_finding()]) for i in range(80)]
    images[0].problems += [ScanProblem("img0", None, i, f"layer {i}: bad") for i in range(500)]
    text = render(ScanOutcome(report(*images)), GATE, NOW)
    assert text.count('<section class="image"') == html_view.MAX_IMAGES
    assert "30 more image(s) not drawn here" in text
    assert "Incomplete: 500 problem(s)" in text and "… and 300 more" in text
    scans = [
        ReleaseScan(Release(f"r{i:03d}", f"r:{i}", None, None), image_result(findings=[]))
        for i in range(100)
    ]
    scans[0].result.findings.append(file_finding())
    timeline = Timeline("registry.example/app", (), scans, exposures(scans))
    text = render(timeline, GATE, NOW)
    assert len(re.findall(r'data-release="', text)) == html_view.MAX_GRID_RELEASES
    assert "40 older release(s) not drawn in the grid" in text


def test_names_from_registries_and_the_fly_api_are_text_too() -> None:
    outcomes = sample_outcomes()
    fly = outcomes["fly"]
    assert isinstance(fly, FlyScan)
    fly.app = SCRIPT_PAYLOAD
    fly.machines[0] = Machine(
        ATTR_PAYLOAD, SCRIPT_PAYLOAD, ATTR_PAYLOAD, SCRIPT_PAYLOAD, "started", "x", "x", None, None
    )
    fly.deployed[0].machines[:] = fly.machines
    fly.deployed[0].tags[:] = [ATTR_PAYLOAD]
    timeline = outcomes["timeline"]
    assert isinstance(timeline, Timeline)
    timeline.repository = SCRIPT_PAYLOAD
    old = timeline.releases[0]
    timeline.releases[0] = ReleaseScan(
        Release(ATTR_PAYLOAD, "r", None, SCRIPT_PAYLOAD, (SCRIPT_PAYLOAD,)), old.result
    )
    for outcome in (fly, timeline):
        text = render(outcome, GATE, NOW)
        page = parse(text)
        assert page.tags["script"] == 1 and "img" not in page.tags
        assert not any(name.startswith("on") for _, name, _ in page.attrs)
        assert SCRIPT_PAYLOAD in "".join(page.text)


def test_fly_org_page_has_a_section_per_app_with_its_state() -> None:
    text = render(sample_outcomes()["fly-org"], GATE, NOW)
    assert text.count('class="fly"') == 3
    assert 'id="fly"' in text and 'id="fly-2"' in text and 'id="fly-3"' in text
    assert "Machine(s) of my-app" in text
    assert "&lt;idle-app&gt;" in text and "<idle-app>" not in text
    assert "no Machines" in text
    assert "error: HTTP 500 &lt;b&gt;oops&lt;/b&gt;" in text
    assert "<b>oops</b>" not in text
    assert 'data-deployment="registry.example/app:1"' in text

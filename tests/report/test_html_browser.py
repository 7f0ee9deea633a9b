"""The HTML report in a real browser: Debian's headless Chromium, over the DevTools pipe.

Reports of fixture images are made with the CLI and opened in Chromium: the DOM holds
every finding and every layer, the demo's deleted ``.env`` is drawn as a span from
layer 1 to layer 2, real mouse clicks on the filters change what is shown, and an
image whose file names, build steps and labels carry script and markup injections
runs nothing (checked in the DOM and in the console). Skips, saying why, only when
no Chromium can be started.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import fixtures.catalog as catalog
from fixtures import fakesecrets as fs
from fixtures.imagebuilder import Entry, HistoryOnly, ImageSpec, LayerSpec, write_oci_layout
from scanner.cli import main
from scanner.gate import Gate
from scanner.report.html import render
from tests.infra.browser import Browser, BrowserUnavailable, Page, find_chromium
from tests.report.test_html import sample_outcomes

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '"><img src=x onerror="window.__pwned=2">'
SVG = "<svg onload=window.__pwned=3>"
CLOSE = "</script><script>window.__pwned=4</script>"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        find_chromium()
    except BrowserUnavailable as exc:
        pytest.skip(str(exc))
    with Browser() as b:  # a chromium that is there but fails to start is a failure
        yield b


def scan(source: Path, out: Path, fmt: str, *extra: str) -> int:
    result = CliRunner().invoke(
        main,
        ["scan", "--no-cache", "-j", "1", "-q", "--format", fmt, "-o", str(out), *extra,
         f"oci:{source}"],
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    return result.exit_code


def open_report(browser: Browser, path: Path) -> Page:
    page = browser.new_page()
    page.goto(path)
    assert page.evaluate("document.documentElement.getAttribute('data-filters')") == "ready"
    return page


def shown_rows(page: Page) -> list[dict[str, str]]:
    return page.evaluate(
        "Array.from(document.querySelectorAll('tr[data-finding]'))"
        ".filter(r => r.offsetParent !== null)"
        ".map(r => ({severity: r.dataset.severity, status: r.dataset.status,"
        " category: r.dataset.category, where: r.querySelector('td.where').textContent}))"
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    tmp = tmp_path_factory.mktemp("demo-html")
    layout = write_oci_layout(tmp / "demo", [catalog.demo_image()])
    html, js = tmp / "demo.html", tmp / "demo.json"
    scan(layout, html, "html")
    scan(layout, js, "json")
    return html, json.loads(js.read_text())


def test_demo_report_holds_every_finding_and_layer(
    browser: Browser, demo: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    html, doc = demo
    page = open_report(browser, html)
    images = doc["images"]
    assert isinstance(images, list)
    findings = images[0]["findings"]
    layers = images[0]["platforms"][0]["layers"]
    rows = shown_rows(page)
    assert len(rows) == len(findings) > 10
    expected = Counter(f["severity"] for f in findings)
    assert Counter(r["severity"] for r in rows) == expected
    fingerprints = page.evaluate(
        "Array.from(document.querySelectorAll('tr[data-finding]')).map(r => r.dataset.finding)"
    )
    assert sorted(fingerprints) == sorted(f["fingerprint"] for f in findings)
    drawn = page.evaluate(
        "Array.from(document.querySelectorAll('svg g.layer')).map(g => g.dataset.layer)"
    )
    assert sorted(drawn) == sorted(str(layer["index"]) for layer in layers)
    # the deleted .env: a span from layer 1 (added) to layer 2 (deleted), drawn upwards
    spans = page.evaluate(
        "Array.from(document.querySelectorAll('g.span')).map(g => {"
        " const l = g.querySelector('line.span-line').getBoundingClientRect();"
        " return {from: g.dataset.spanFrom, to: g.dataset.spanTo,"
        " title: g.querySelector('title').textContent, height: l.height}; })"
    )
    env = [s for s in spans if "/app/.env" in s["title"]]
    assert env and all(s["from"] == "1" and s["to"] == "2" for s in env)
    assert all(s["height"] > 10 for s in env)
    assert any(s["to"] == "top" and "id_ed25519" in s["title"] for s in spans)
    assert "deleted in layer 2" in env[0]["title"]
    assert page.evaluate("document.getElementById('complete').textContent") == "yes"
    shot = page.screenshot(tmp_path / "demo-report.png")
    assert shot.stat().st_size > 10_000
    assert not [m for m in page.messages() if _is_error(m)]


def test_filters_change_what_is_shown(
    browser: Browser, demo: tuple[Path, dict[str, object]]
) -> None:
    html, _ = demo
    page = open_report(browser, html)
    everything = shown_rows(page)
    critical = sum(1 for r in everything if r["severity"] == "critical")
    assert critical
    page.click("input[data-filter=severity][value=critical]")
    rows = shown_rows(page)
    assert len(rows) == len(everything) - critical
    assert all(r["severity"] != "critical" for r in rows)
    assert page.evaluate("document.getElementById('shown-count').textContent") == str(len(rows))
    page.click("input[data-filter=status][value=deleted]")
    rows = shown_rows(page)
    assert rows and all(r["status"] != "deleted" for r in rows)
    hidden_spans = page.evaluate(
        "Array.from(document.querySelectorAll('g.span')).filter(g =>"
        " getComputedStyle(g).display === 'none').map(g => g.dataset.spanTo)"
    )
    assert "2" in hidden_spans  # the deleted .env's span went with its rows
    page.click("button[data-all=category]")  # none
    assert shown_rows(page) == []
    page.click("button[data-all=category]")  # all again
    page.click("input[data-filter=severity][value=critical]")
    page.click("input[data-filter=status][value=deleted]")
    assert len(shown_rows(page)) == len(everything)


def injection_image() -> ImageSpec:
    token = fs.github_pat("inject")
    return ImageSpec(
        steps=[
            catalog.base_layer(),
            HistoryOnly(f"LABEL x={SCRIPT}"),
            LayerSpec(
                [
                    Entry("app", "dir"),
                    Entry(f"app/{SCRIPT}.env", content=f"GITHUB_TOKEN={token}\n".encode()),
                    Entry(f"app/{IMG}", "dir"),
                    Entry(f"app/{IMG}/.env", content=f"GH_TOKEN={token}\n".encode()),
                    Entry(f"app/{SVG}.txt", content=f"token: {token}\n".encode()),
                ],
                created_by=f"COPY {IMG} {SVG} {CLOSE} /app # buildkit",
            ),
            LayerSpec(
                [Entry("app", "dir"), Entry(f"app/{SCRIPT}.env", "whiteout")],
                created_by=f"RUN /bin/sh -c rm '/app/{SCRIPT}.env' {CLOSE} # buildkit",
            ),
        ],
        labels={SCRIPT: IMG, "com.example.note": CLOSE, "com.example.svg": SVG},
        env=(f"NOTE={CLOSE}", f"TOKEN={token}"),
    )


def test_injected_markup_runs_nothing(browser: Browser, tmp_path: Path) -> None:
    layout = write_oci_layout(tmp_path / "inject", [injection_image()])
    html = tmp_path / "inject.html"
    scan(layout, html, "html")
    page = open_report(browser, html)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.scripts.length") == 1
    assert page.evaluate("document.querySelectorAll('img, iframe, object, embed').length") == 0
    handlers = page.evaluate(
        "Array.from(document.querySelectorAll('*')).flatMap(e =>"
        " Array.from(e.attributes).filter(a => a.name.startsWith('on')).map(a => a.name))"
    )
    assert handlers == []
    text = page.evaluate("document.body.innerText")
    for payload in (SCRIPT, IMG, SVG):
        assert payload in text  # shown as text
    wheres = [r["where"] for r in shown_rows(page)]
    assert any(SCRIPT in w for w in wheres) and any(IMG in w for w in wheres)
    assert not [m for m in page.messages() if _is_error(m)]


def test_csp_blocks_a_script_that_slipped_through(browser: Browser, tmp_path: Path) -> None:
    """The policy is the second line: a script escaping missed would still not run."""
    layout = write_oci_layout(tmp_path / "demo", [catalog.demo_image()])
    html = tmp_path / "demo.html"
    scan(layout, html, "html")
    text = html.read_text()
    tampered = tmp_path / "tampered.html"
    tampered.write_text(
        text.replace("<main>", f'<main>{SCRIPT}<img src=x onerror="window.__pwned=2">', 1)
    )
    page = open_report(browser, tampered)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    logged = json.dumps(page.messages())
    assert re.search(r"Content Security Policy", logged), logged[:2000]


def _is_error(message: dict[str, object]) -> bool:
    params = message.get("params")
    assert isinstance(params, dict)
    if message["method"] == "Runtime.exceptionThrown":
        return True
    if message["method"] == "Runtime.consoleAPICalled":
        return params.get("type") in ("error", "assert", "warning")
    entry = params.get("entry")
    return isinstance(entry, dict) and entry.get("level") in ("error", "warning")


@pytest.mark.parametrize("kind", ["diff", "timeline", "timelines", "fly"])
def test_every_page_runs_its_script_and_filters(
    browser: Browser, kind: str, tmp_path: Path
) -> None:
    outcome = sample_outcomes()[kind]
    path = tmp_path / f"{kind}.html"
    path.write_text(render(outcome, Gate.from_cli("high")))
    page = open_report(browser, path)
    visible = (
        "Array.from(document.querySelectorAll('[data-finding]'))"
        ".filter(e => e.getBoundingClientRect().height > 0 && e.dataset.severity === 'high')"
        ".length"
    )
    before = page.evaluate(visible)
    assert before > 0
    page.click("input[data-filter=severity][value=high]")
    assert page.evaluate(visible) == 0
    assert not [m for m in page.messages() if _is_error(m)]

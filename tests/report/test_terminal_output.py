"""Hostile input: escape sequences in paths, build steps, labels and error messages.

The image is built here with terminal control sequences (clear screen, set title,
cursor up + erase line to hide the line before, a bidi override) wherever the image
controls text. The table and standard error must show them as ``\\x1b`` text; JSON
keeps the raw value (JSON-escaped); Markdown escapes them too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fixtures.imagebuilder import Entry, HistoryOnly, ImageSpec, LayerSpec, write_oci_layout
from scanner.cli import main
from scanner.report.terminal import safe

CLEAR = "\x1b[2J"
TITLE = "\x1b]0;pwned\x07"
HIDE_LINE = "\x1b[1A\x1b[2K"
BIDI = "\u202e"
C1 = "\x9b"  # the one-byte CSI of 8-bit terminals
RAW = ("\x1b", "\x07", BIDI, C1)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    token = "ghp_" + "Zq8vPlm2XwRtYu3KdE5fGh7JkL9mNbVcXa1S"
    steps: list[LayerSpec | HistoryOnly] = [
        LayerSpec(
            [Entry(f"app/{CLEAR}x{HIDE_LINE}.env", content=f"GITHUB_TOKEN={token}\n".encode())],
            f"COPY . /app {TITLE}{C1}31m # buildkit",
        ),
        HistoryOnly(f"/bin/sh -c #(nop)  LABEL x=y{HIDE_LINE}"),
    ]
    spec = ImageSpec(
        steps=steps,
        labels={f"deploy.token{BIDI}{CLEAR}": "Zq8vPlm2XwRtYu3KdE5f"},
    )
    return write_oci_layout(tmp_path_factory.mktemp("term") / "img", [spec])


def _run(*args: str) -> tuple[str, str]:
    result = CliRunner().invoke(main, ["scan", "--no-cache", *args], catch_exceptions=False)
    return result.stdout, result.stderr


def test_safe_escapes_controls_and_reordering_characters() -> None:
    assert safe(f"a{CLEAR}b") == "a\\x1b[2Jb"
    assert safe(TITLE) == "\\x1b]0;pwned\\x07"
    assert safe(BIDI + C1) == "\\u202e\\x9b"
    assert safe("line\nnext\ttab") == "line\\x0anext\\x09tab"
    assert safe("caf\u00e9 \u4e2d") == "caf\u00e9 \u4e2d"  # printable text untouched
    assert safe("bad\udcff") == "bad\\udcff"  # a non-UTF-8 byte cannot crash the output


def test_table_shows_control_characters_as_text(hostile: Path) -> None:
    out, err = _run("--format", "table", str(hostile))
    for raw in RAW:
        assert raw not in out and raw not in err
    assert "\\x1b[2J" in out  # the path, visibly
    assert "\\x1b]0;pwned\\x07" in out  # the build step on the layer line
    assert "\\u202e" in out  # the label name


def test_markdown_shows_control_characters_as_text(hostile: Path) -> None:
    out, err = _run("--format", "markdown", str(hostile))
    for raw in RAW:
        assert raw not in out and raw not in err
    assert "x1b" in out


def test_json_keeps_the_raw_value_escaped(hostile: Path) -> None:
    out, _ = _run("--format", "json", str(hostile))
    assert "\x1b" not in out  # escaped by the JSON encoder...
    doc = json.loads(out)
    paths = [f["location"]["path"] for f in doc["images"][0]["findings"]]
    assert f"app/{CLEAR}x{HIDE_LINE}.env" in paths  # ...and the raw value is kept


def test_sarif_keeps_no_raw_control_characters(hostile: Path) -> None:
    out, _ = _run("--format", "sarif", str(hostile))
    assert "\x1b" not in out
    json.loads(out)


def test_problem_and_error_lines_on_stderr_are_escaped(tmp_path: Path) -> None:
    missing = tmp_path / f"gone{CLEAR}{TITLE}"
    out, err = _run("--format", "table", f"oci:{missing}")
    for raw in RAW:
        assert raw not in out and raw not in err
    assert "\\x1b[2J" in err

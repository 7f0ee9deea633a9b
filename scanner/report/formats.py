"""The one table of output formats, by ``--format`` name."""

from __future__ import annotations

from scanner.report.html import HtmlFormatter
from scanner.report.interface import Formatter
from scanner.report.json_format import JsonFormatter
from scanner.report.markdown import MarkdownFormatter
from scanner.report.sarif import SarifFormatter
from scanner.report.table import TableFormatter

_ALL: tuple[type[Formatter], ...] = (
    TableFormatter,
    JsonFormatter,
    SarifFormatter,
    MarkdownFormatter,
    HtmlFormatter,
)


def _table(classes: tuple[type[Formatter], ...]) -> dict[str, type[Formatter]]:
    table: dict[str, type[Formatter]] = {}
    for cls in classes:
        if cls.name in table:
            raise RuntimeError(f"duplicate output format {cls.name!r}")
        table[cls.name] = cls
    return table


FORMATTERS: dict[str, type[Formatter]] = _table(_ALL)

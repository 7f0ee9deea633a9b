"""``--format json``: the whole report, schema documented in the README."""

from __future__ import annotations

import json
from typing import Any

from scanner.report.interface import JSON_SCHEMA_VERSION, Formatter, summary, tool_info
from scanner.results import ImageResult, Report


class JsonFormatter(Formatter):
    name = "json"

    def render(self, report: Report) -> str:
        return json.dumps(document(report), indent=2, sort_keys=False) + "\n"


def document(report: Report) -> dict[str, Any]:
    """The JSON document of a report (other outcomes extend it)."""
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "tool": tool_info(),
        "fail_on": report.fail_on.label,
        "complete": report.complete,
        "summary": summary(report),
        "suppressed": dict(sorted(report.suppressed.items())),
        "images": [_image(i, report.reveal) for i in report.images],
    }


def _image(image: ImageResult, reveal: bool) -> dict[str, Any]:
    return {
        "name": image.name,
        "source_kind": image.source_kind,
        "index_digest": image.index_digest,
        "tags": image.tags,
        "platforms": [p.to_dict() for p in image.platforms],
        "findings": [f.to_dict(reveal=reveal) for f in image.findings],
        "problems": [p.to_dict() for p in image.problems],
    }

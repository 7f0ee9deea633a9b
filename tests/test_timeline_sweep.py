"""``timeline --from-file``: many repositories in one run, one shared scan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from scanner.commands.timeline import timeline_command
from tests.test_timeline import _push_releases


def test_timelines_of_several_repositories(registry_anonymous: Any, tmp_path: Path) -> None:
    host, one = _push_releases(registry_anonymous, tmp_path / "one")
    _, two = _push_releases(registry_anonymous, tmp_path / "two")
    listing = tmp_path / "repos.txt"
    listing.write_text(f"# fleet\n{host}/{one}\n{host}/{two}\n{host}/{one}\n")
    args = ["--match", "deployment-*", "--format", "json", "--cache-dir", str(tmp_path / "c")]
    both = CliRunner().invoke(timeline_command, ["--from-file", str(listing), *args])
    single = CliRunner().invoke(timeline_command, [f"{host}/{one}", *args])
    assert both.exit_code == single.exit_code == 0, both.output
    doc = json.loads(both.stdout)
    assert doc["complete"] is True
    assert [t["repository"] for t in doc["timelines"]] == [f"{host}/{one}", f"{host}/{two}"]
    alone = json.loads(single.stdout)
    first = doc["timelines"][0]
    assert [e["fingerprint"] for e in first["exposures"]] == [
        e["fingerprint"] for e in alone["exposures"]
    ]
    assert [r["tag"] for r in first["releases"]] == [r["tag"] for r in alone["releases"]]
    assert both.stderr.count("layerleak timeline ") >= 2

    # A repository that cannot be read is a problem of its own timeline (exit 3);
    # the others are still built.
    listing.write_text(f"{host}/{one}\n{host}/no/such-repo\n")
    partial = CliRunner().invoke(timeline_command, ["--from-file", str(listing), *args])
    assert partial.exit_code == 3, partial.output
    doc = json.loads(partial.stdout)
    assert doc["complete"] is False
    good, bad = doc["timelines"]
    assert good["complete"] is True and good["exposures"]
    assert bad["problems"] and bad["releases"] == []
    table = CliRunner().invoke(
        timeline_command, ["--from-file", str(listing), "--format", "table", "-q"]
    )
    assert table.exit_code == 3 and "no/such-repo" in table.output


def test_repository_or_from_file_needed() -> None:
    out = CliRunner().invoke(timeline_command, [])
    assert out.exit_code == 2 and "--from-file" in out.output

"""Triage: an ignore file that suppresses known findings, each for a stated reason.

Format (TOML), in ``.layerleakignore`` or in the ``[[ignore]]`` tables of
``layerleak.toml`` (both read from the current directory when present, or the
file given with ``--ignore-file``)::

    [[ignore]]
    fingerprint = "4b1d0c3e9f..."          # one finding, as printed in reports
    reason = "rotated 2024-05-02, see INC-123"

    [[ignore]]
    rule = "generic-password"              # a rule id (glob: "generic-*")
    path = "/app/tests/**"                 # a path glob
    reason = "test fixtures"
    expires = 2025-06-30                   # optional; a TOML date or "YYYY-MM-DD"

Each entry needs a ``reason`` and at least one of ``fingerprint``, ``rule``,
``path``; a finding is suppressed when it matches *every* field an entry gives.
``path`` globs (``fnmatch``: ``*`` also crosses ``/``) match the finding's
image path with or without the leading slash, and for files inside archives
also the full ``path!inner/path`` form. Findings not about a file (history,
config) have no path and only match entries without ``path``.

After its ``expires`` day an entry stops applying and a warning says so, so an
exception taken for a while cannot become permanent unnoticed. Suppressed
findings leave the report and are counted per reason in ``report.suppressed``,
which every format shows.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner.errors import ConfigError
from scanner.findings import Finding
from scanner.results import Report

IGNORE_FILE = ".layerleakignore"
CONFIG_FILE = "layerleak.toml"
_KEYS = frozenset({"fingerprint", "rule", "path", "reason", "expires"})


@dataclass(frozen=True)
class IgnoreEntry:
    reason: str
    source: str  # "FILE entry N", for messages
    file: str = ""  # the ignore file it came from
    fingerprint: str | None = None
    rule: str | None = None
    path: str | None = None
    expires: dt.date | None = None

    def expired(self, today: dt.date) -> bool:
        return self.expires is not None and today > self.expires

    def matches(self, finding: Finding) -> bool:
        if self.fingerprint is not None and finding.fingerprint != self.fingerprint:
            return False
        if self.rule is not None and not fnmatch.fnmatchcase(finding.rule_id, self.rule):
            return False
        if self.path is not None:
            loc = finding.location
            if loc.path is None:
                return False
            pattern = self.path.lstrip("/")
            candidates = [loc.path]
            if loc.inner_path:
                candidates.append(f"{loc.path}!{loc.inner_path}")
            if not any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
                return False
        return True


@dataclass(frozen=True)
class IgnoreList:
    entries: tuple[IgnoreEntry, ...] = ()
    files: tuple[Path, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.entries)


def default_files(cwd: Path | None = None) -> list[Path]:
    """The ignore files read when ``--ignore-file`` is not given."""
    base = cwd or Path.cwd()
    return [p for p in (base / IGNORE_FILE, base / CONFIG_FILE) if p.is_file()]


def load(paths: Sequence[Path]) -> IgnoreList:
    """Read ignore files (raises ConfigError naming the file and entry)."""
    entries: list[IgnoreEntry] = []
    for path in paths:
        entries.extend(_load_one(path))
    return IgnoreList(tuple(entries), tuple(paths))


def _load_one(path: Path) -> list[IgnoreEntry]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    raw = data.get("ignore", [])
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise ConfigError(f"{path}: 'ignore' must be an array of tables ([[ignore]])")
    return [_entry(item, f"{path} entry {i + 1}", str(path)) for i, item in enumerate(raw)]


def _entry(item: dict[str, Any], where: str, file: str = "") -> IgnoreEntry:
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    reason = item.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ConfigError(f"{where}: 'reason' is required (why is this finding accepted?)")
    fields: dict[str, str | None] = {}
    for key in ("fingerprint", "rule", "path"):
        value = item.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"{where}: '{key}' must be a non-empty string")
        fields[key] = value.strip() if isinstance(value, str) else None
    if not any(fields.values()):
        raise ConfigError(f"{where}: give at least one of 'fingerprint', 'rule', 'path'")
    if fields["fingerprint"] is None and all(
        _matches_anything(value, probes)
        for value, probes in ((fields["rule"], RULE_PROBES), (fields["path"], PATH_PROBES))
        if value is not None
    ):
        raise ConfigError(
            f"{where}: this entry would suppress every finding of every rule everywhere; "
            "name the rule(s), a path, or a fingerprint"
        )
    return IgnoreEntry(
        reason=reason.strip(),
        source=where,
        file=file,
        fingerprint=fields["fingerprint"],
        rule=fields["rule"],
        path=fields["path"],
        expires=_date(item.get("expires"), where),
    )


def _date(value: object, where: str) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{where}: 'expires' must be a date (YYYY-MM-DD), got {value!r}")


# Globs that match every one of these match any rule id or path: such an entry
# would hide everything, which no reason can justify (refused when loading).
RULE_PROBES = ("aws-access-key-id", "root-user", "x", "generic-password", "A_B.c")
PATH_PROBES = ("a", "app/.env", "usr/lib/x/y/z.so", ".hidden", "-", "a b/c!d/e")


def _matches_anything(pattern: str, probes: Sequence[str]) -> bool:
    return all(fnmatch.fnmatchcase(p, pattern.lstrip("/")) for p in probes)


def summary_note(counts: Report | dict[str, int]) -> str:
    """``; ignore files: F (N suppressed), ...`` for one-line summaries ('' if none);
    ``counts`` is a report's ``ignore_files`` (or the report)."""
    files_used = counts.ignore_files if isinstance(counts, Report) else counts
    if not files_used:
        return ""
    files = ", ".join(f"{name} ({n} suppressed)" for name, n in files_used.items())
    return f"; ignore files: {files}"


def apply(report: Report, ignores: IgnoreList, today: dt.date | None = None) -> list[str]:
    """Remove the findings ``ignores`` match from ``report``, counting them per reason
    and per ignore file (``report.ignore_files``, every file read, 0 included).

    Returns warnings (one per expired entry) for the caller to print.
    """
    for path in ignores.files:
        report.ignore_files.setdefault(str(path), 0)
    today = today or dt.date.today()
    active = [e for e in ignores.entries if not e.expired(today)]
    warnings = [
        f"ignore entry expired on {e.expires.isoformat()} and no longer applies "
        f"({e.source}: {e.reason})"
        for e in ignores.entries
        if e.expired(today) and e.expires is not None
    ]
    if not active:
        return warnings
    for image in report.images:
        kept: list[Finding] = []
        for finding in image.findings:
            entry = next((e for e in active if e.matches(finding)), None)
            if entry is None:
                kept.append(finding)
            else:
                report.suppressed[entry.reason] += 1
                report.ignore_files[entry.file] = report.ignore_files.get(entry.file, 0) + 1
        image.findings = kept
    return warnings

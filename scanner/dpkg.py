"""Debian's package database: which files under ``/etc`` are unmodified conffiles.

``/var/lib/dpkg/status`` lists, for every installed package, its configuration files
with the MD5 of the content the package shipped (``Conffiles:`` lines). A file whose
content still has that MD5 came from the distribution archive as it is: a key in it
(Debian's Chromium ships Google API keys in ``/etc/chromium.d/apikeys``) is public,
not the image owner's leak. Such findings are lowered, never dropped, and only for
paths under ``etc/`` (the image controls its own status file, so the claim is not
trusted for application paths).

Everything here reads image data: sizes are bounded and malformed lines are skipped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

STATUS_PATH = "var/lib/dpkg/status"
MAX_STATUS_BYTES = 32 << 20  # a full desktop install's status file is about 3 MB
MAX_CONFFILES = 100_000
MAX_CONFFILE_BYTES = 1 << 20  # configuration files are small; larger ones are not hashed
CONFFILE_ROOT = "etc/"
_MD5_LEN = 32
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Conffile:
    package: str
    md5: str


def may_be_conffile(path: str, size: int) -> bool:
    """True for files whose MD5 is worth keeping when they have findings."""
    return path.startswith(CONFFILE_ROOT) and 0 < size <= MAX_CONFFILE_BYTES


def md5_hex(data: bytes) -> str:
    # Compared with what dpkg recorded, not used as a security digest.
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def parse_status(data: bytes) -> dict[str, Conffile]:
    """``{path without leading slash: Conffile}`` of every package's unobsolete conffiles."""
    found: dict[str, Conffile] = {}
    package = ""
    in_conffiles = False
    for raw in data.decode("utf-8", errors="replace").splitlines():
        if not raw.strip():
            package, in_conffiles = "", False
            continue
        if raw[0] in " \t":
            if in_conffiles and package and len(found) < MAX_CONFFILES:
                _add_conffile(found, package, raw.split())
            continue
        field, _, value = raw.partition(":")
        in_conffiles = field == "Conffiles"
        if field == "Package":
            package = value.strip()[:200]
    return found


def _add_conffile(found: dict[str, Conffile], package: str, parts: list[str]) -> None:
    # " /etc/x d534...bf" or " /etc/x d534...bf obsolete" (also "remove-on-upgrade")
    if len(parts) < 2 or len(parts) > 3 or not parts[0].startswith("/"):
        return
    if len(parts) == 3:  # obsolete or remove-on-upgrade: no longer the package's content
        return
    md5 = parts[1].lower()
    if len(md5) != _MD5_LEN or not set(md5) <= _HEX:
        return  # "newconffile" and damaged lines
    path = parts[0].lstrip("/")
    if path.startswith(CONFFILE_ROOT):
        found[path] = Conffile(package, md5)


def shipped_unmodified(path: str, md5: str | None, conffiles: dict[str, Conffile]) -> str | None:
    """The noise reason when ``path`` holds exactly what its package shipped, or None."""
    entry = conffiles.get(path)
    if entry is None or md5 is None or md5 != entry.md5:
        return None
    return f"unmodified configuration file of Debian package {entry.package}"

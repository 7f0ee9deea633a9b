"""Which files in ``site-packages`` are the image owner's own code.

The noise policy (:mod:`scanner.analyzers.content_secrets`) lowers findings in
installed third-party packages: a package from an index ships test keys and
documentation examples. But an application is often installed into
``site-packages`` itself (``pip install .`` in the Dockerfile), and then its
secrets are as leaked as in ``/app``. pip records where each distribution came
from (PEP 610): ``NAME.dist-info/direct_url.json`` exists only for installs *not*
from an index, with a ``file://`` URL for a local directory or archive (the build
context) and ``dir_info.editable`` for editable installs. ``RECORD`` lists the
files of a distribution and ``top_level.txt`` its top-level packages.

A file under ``site-packages`` is **first-party** when

* the distribution that claims it was installed from a ``file://`` URL or as an
  editable install, or
* no distribution in the layer claims it at all (copied in by hand: nothing says
  it came from an index); compiled ``.pyc`` files excepted, since
  ``python -m compileall`` in a later layer writes them for every package.

Everything else (a ``dist-info`` without ``direct_url.json``: installed from an
index; a VCS or ``https://`` archive URL: downloaded from elsewhere) stays
third-party. Decided per layer: pip writes a distribution's files and its
metadata in the same layer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

SITE_DIR = re.compile(r"^(?P<site>(?:.*/)?(?:site|dist)-packages)/(?P<rel>.+)$")
METADATA = re.compile(
    r"^(?P<dist>[^/]+\.(?:dist-info|egg-info))/"
    r"(?P<name>direct_url\.json|RECORD|top_level\.txt|installed-files\.txt)$"
)
METADATA_LIMIT = 8 << 20  # a RECORD larger than this is not read (kept third-party)

FIRST_PARTY_LOCAL = "local"
FIRST_PARTY_EDITABLE = "editable"


@dataclass
class _Dist:
    origin: str = "index"  # index | local | editable | url | vcs
    tops: set[str] = field(default_factory=set)  # top-level names it installs
    files: set[str] = field(default_factory=set)  # RECORD paths, relative to site

    @property
    def first_party(self) -> bool:
        return self.origin in (FIRST_PARTY_LOCAL, FIRST_PARTY_EDITABLE)


def split_site(path: str) -> tuple[str, str] | None:
    """``usr/lib/python3/site-packages/a/b.py`` -> (site dir, ``a/b.py``), else None."""
    m = SITE_DIR.match(path)
    return (m.group("site"), m.group("rel")) if m else None


def is_metadata(path: str) -> bool:
    """True for the dist-info files this module reads (so callers keep their bytes)."""
    split = split_site(path)
    return split is not None and METADATA.match(split[1]) is not None


class PythonDists:
    """The distributions one layer installs, from their metadata files."""

    def __init__(self) -> None:
        self._dists: dict[tuple[str, str], _Dist] = {}

    def __bool__(self) -> bool:
        return bool(self._dists)

    def note(self, path: str, data: bytes) -> None:
        """Record one metadata file (``is_metadata(path)``) and its content."""
        split = split_site(path)
        if split is None or len(data) > METADATA_LIMIT:
            return
        site, rel = split
        m = METADATA.match(rel)
        if m is None:
            return
        dist_dir, name = m.group("dist"), m.group("name")
        dist = self._dists.setdefault((site, dist_dir), _Dist())
        dist.tops.add(dist_dir)
        text = data.decode("utf-8", "replace")
        if name == "direct_url.json":
            dist.origin = _origin(text)
        elif name == "top_level.txt":
            dist.tops.update(line.strip() for line in text.splitlines() if line.strip())
        else:  # RECORD (csv: path,hash,size) or installed-files.txt (relative to egg-info)
            for line in text.splitlines():
                entry = line.split(",", 1)[0].strip() if name == "RECORD" else line.strip()
                if name != "RECORD":
                    entry = _join(dist_dir, entry)
                if entry and not entry.startswith(".."):
                    dist.files.add(entry)
                    dist.tops.add(_top(entry))

    def first_party(self, path: str) -> bool:
        """True when ``path`` (in a site-packages dir) is the image owner's code."""
        split = split_site(path)
        if split is None:
            return False
        site, rel = split
        top = _top(rel)
        claimed = [
            d
            for (dsite, _), d in self._dists.items()
            if dsite == site and (rel in d.files or top in d.tops or _module(top) in d.tops)
        ]
        if claimed:
            return any(d.first_party for d in claimed)
        return not rel.endswith(".pyc") and top != "__pycache__"


def _origin(text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return "url"  # unreadable: not an index install, but no sign of the build context
    if not isinstance(doc, dict):
        return "url"
    url = doc.get("url")
    dir_info = doc.get("dir_info")
    if isinstance(dir_info, dict) and dir_info.get("editable") is True:
        return FIRST_PARTY_EDITABLE
    if isinstance(doc.get("vcs_info"), dict):
        return "vcs"
    if isinstance(url, str) and url.lower().startswith("file:"):
        return FIRST_PARTY_LOCAL
    return "url"


def _top(rel: str) -> str:
    return rel.split("/", 1)[0]


def _module(top: str) -> str:
    """``six.py`` -> ``six`` (top_level.txt names modules without their suffix)."""
    for suffix in (".py", ".pyc", ".pth"):
        if top.endswith(suffix):
            return top[: -len(suffix)]
    return top.split(".", 1)[0] if top.endswith(".so") else top


def _join(dist_dir: str, entry: str) -> str:
    """A path of installed-files.txt (relative to the egg-info dir) made site-relative."""
    parts: list[str] = []
    for part in f"{dist_dir}/{entry}".split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/".join(parts)

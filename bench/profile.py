"""Where a cold scan's time goes, by area, from a cProfile of one process.

``python -m bench.profile OUT.prof IMAGE [CODE_DIR]`` profiles a single-process
cold scan (``--jobs 1``, empty cache) of IMAGE into OUT.prof, timing CPU seconds
of the process (so the figures do not depend on the machine's load), with the
source tree in CODE_DIR (default: this checkout); ``python -m bench.profile
OUT.prof`` only prints the summary of an existing profile. Areas are assigned by
function (own time, so nothing is counted twice).
"""

from __future__ import annotations

import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

AREAS: list[tuple[str, tuple[str, ...]]] = [
    (
        "tar headers",
        ("tarfile.py", "tarheaders.py", "layers.py:_describe", "normalize_member", "posixpath"),
    ),
    (
        "keyword prefilter",
        ("find_matches_as_indexes", "'lower' of 'bytes'", "hyperscan", "prefilter/"),
    ),
    (
        "rule regexes",
        (
            "engine.py:find",
            "'search' of 're.Pattern'",
            "'fullmatch' of 're.Pattern'",
            "'finditer' of 're.Pattern'",
        ),
    ),
    (
        "decompress + read",
        ("BufferedReader", "igzip", "zstd", "isal", "zlib", "gzip.py", "layers.py", "streams.py"),
    ),
    ("sha256", ("'update' of '_hashlib.HASH'",)),
    ("engine regions + filters", ("engine.py", "noise.py", "validators.py", "detect_secrets")),
    ("analyzers + archives", ("analyzers/", "archives.py", "layer_scan.py", "signatures.py")),
]


def area_of(key: tuple[str, int, str]) -> str:
    filename, _line, func = key
    text = f"{filename}:{func}"
    for name, needles in AREAS:
        if any(n in text for n in needles):
            return name
    return "other"


def summary(path: Path) -> list[tuple[str, float]]:
    stats = pstats.Stats(str(path))
    totals: dict[str, float] = {}
    for key, (_cc, _nc, tottime, _ct, callers) in stats.stats.items():  # type: ignore[attr-defined]
        area = area_of(key)
        if area == "other" and key[0] == "~" and callers:
            # a builtin (len, bytes.find, ...): its time goes to the areas that called it
            for caller, (_c, _n, caller_tt, _t) in callers.items():
                totals[area_of(caller)] = totals.get(area_of(caller), 0.0) + caller_tt
            continue
        totals[area] = totals.get(area, 0.0) + tottime
    return sorted(totals.items(), key=lambda kv: -kv[1])


RUNNER = """
import cProfile, sys, time
from scanner.cli import main
profile = cProfile.Profile(time.process_time)
try:
    profile.runcall(main, sys.argv[2:], standalone_mode=False)
finally:
    profile.dump_stats(sys.argv[1])
"""


def main() -> None:
    out = Path(sys.argv[1]).resolve()
    if len(sys.argv) > 2:
        code = Path(sys.argv[3]).resolve() if len(sys.argv) > 3 else ROOT
        cache = tempfile.mkdtemp(prefix="ll-profile-cache-")
        args = ["scan", "--quiet", "--jobs", "1", "--format", "json", "-o", "/dev/null"]
        args += ["--cache-dir", cache, f"oci:{Path(sys.argv[2]).resolve()}"]
        subprocess.run([sys.executable, "-c", RUNNER, str(out), *args], check=False, cwd=code)
    rows = summary(out)
    total = sum(t for _, t in rows)
    for name, seconds in rows:
        print(f"{name:28}{seconds:8.1f} s{100 * seconds / total:6.0f} %")
    print(f"{'total CPU (under the profiler)':28}{total:8.1f} s")


if __name__ == "__main__":
    main()

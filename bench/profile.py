"""Where a cold scan's time goes, by area, from a cProfile of one process.

``python -m bench.profile OUT.prof IMAGE`` profiles a single-process cold scan
(``--jobs 1``, empty cache) of IMAGE into OUT.prof; ``python -m bench.profile
OUT.prof`` only prints the summary of an existing profile. Areas are assigned
by function (own time, so nothing is counted twice).
"""

from __future__ import annotations

import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

AREAS: list[tuple[str, tuple[str, ...]]] = [
    ("tar headers", ("tarfile.py", "tarheaders.py", "layers.py:_describe", "normalize_member")),
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
    ("decompress + read", ("BufferedReader", "igzip", "zstd", "isal")),
    ("sha256", ("'update' of '_hashlib.HASH'",)),
    ("engine regions + filters", ("engine.py", "noise.py", "validators.py", "detect_secrets")),
    ("analyzers + archives", ("analyzers/", "archives.py", "layer_scan.py")),
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
    for key, (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        area = area_of(key)
        totals[area] = totals.get(area, 0.0) + tottime
    return sorted(totals.items(), key=lambda kv: -kv[1])


def main() -> None:
    out = Path(sys.argv[1])
    if len(sys.argv) > 2:
        cache = tempfile.mkdtemp(prefix="ll-profile-cache-")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "cProfile",
                "-o",
                str(out),
                "-m",
                "scanner.cli",
                "scan",
                "--quiet",
                "--jobs",
                "1",
                "--format",
                "json",
                "-o",
                "/dev/null",
                "--cache-dir",
                cache,
                f"oci:{sys.argv[2]}",
            ],
            check=False,
            cwd=ROOT,
        )
    rows = summary(out)
    total = sum(t for _, t in rows)
    for name, seconds in rows:
        print(f"{name:28}{seconds:8.1f} s{100 * seconds / total:6.0f} %")
    print(f"{'total (under the profiler)':28}{total:8.1f} s")


if __name__ == "__main__":
    main()

"""``make screenshots``: the HTML report of the demo image, as the PNG the README shows.

Builds the demo fixture, renders ``layerleak scan --format html`` of it and takes a
screenshot with Debian's headless ``chromium`` (offline: the report loads nothing).
Usage: ``python scripts/screenshot_report.py OUT.png``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fixtures.catalog import build

WIDTH, HEIGHT = 1200, 1080


def main(out: Path) -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("screenshots: no chromium (scripts/system-deps.sh installs it)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="layerleak-shot-") as tmp:
        work = Path(tmp)
        demo = build("demo", work / "fixtures")
        page = work / "demo.html"
        scan = [sys.executable, "-m", "scanner.cli", "scan", "--no-cache", "-q"]
        result = subprocess.run(
            [*scan, "--format", "html", "-o", str(page), f"oci:{demo.relative_to(work)}"],
            cwd=work,
            env={**os.environ, "PYTHONPATH": str(Path.cwd())},
            check=False,
        )
        if result.returncode not in (0, 1):
            return result.returncode
        subprocess.run(
            [
                chromium,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={work / 'profile'}",
                f"--window-size={WIDTH},{HEIGHT}",
                f"--screenshot={out.resolve()}",
                page.as_uri(),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    print(f"screenshots: wrote {out} ({out.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/report.png")))

"""Building and installing layerleak the way a user does, away from the checkout.

A copy of the checkout's files (what a clone would hold: tracked files plus new ones not
ignored) is the source; ``python -m build`` makes the sdist and then the wheel from the
unpacked sdist; a fresh virtual environment in a temporary directory gets the wheel. The
commands run with an environment stripped of the test's own virtual environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from scanner.keys import KEY_ENV

CHECKOUT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 600.0
INSTALL_TIMEOUT = 900.0


def run(cmd: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; on failure, an error that shows what it printed."""
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        **kwargs,  # type: ignore[call-overload]
    )
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def outside_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a fresh shell: no virtual environment, no PYTHONPATH, no
    inputs of the test run; pip's own settings (``PIP_*``) kept."""
    own_bin = str(Path(sys.prefix) / "bin")
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p != own_bin]
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "FLY_API_TOKEN"}
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("INPUT_", "GITHUB_", "LAYERLEAK_", "PYTEST_"))
    }
    # The suite's fingerprint key, shared the way a team shares one, so fingerprints made
    # by the installed tool compare with the checkout's.
    if KEY_ENV in os.environ:
        env[KEY_ENV] = os.environ[KEY_ENV]
    env["PATH"] = os.pathsep.join(path)
    if home is not None:
        env["HOME"] = str(home)
    env.update(extra)
    return env


def source_files() -> list[Path]:
    """The files a clone of this checkout would have (plus new, not ignored ones)."""
    if (CHECKOUT / ".git").exists() and shutil.which("git"):
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=CHECKOUT,
            capture_output=True,
            check=True,
        ).stdout
        names = [n for n in out.decode().split("\0") if n]
        return [Path(n) for n in names if (CHECKOUT / n).is_file()]
    return [
        p.relative_to(CHECKOUT)
        for p in CHECKOUT.rglob("*")
        if p.is_file() and not any(part in {".git", ".venv", "__pycache__"} for part in p.parts)
    ]


def copy_source(dest: Path) -> Path:
    """A copy of the checkout as a clone would have it, at ``dest``."""
    for rel in source_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(CHECKOUT / rel, target)
    return dest


def build(source: Path, out: Path) -> tuple[Path, Path]:
    """``python -m build``: the sdist, then the wheel built from it. (sdist, wheel)."""
    run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        BUILD_TIMEOUT,
        env=outside_env(),
    )
    (sdist,) = out.glob("layerleak-*.tar.gz")
    (wheel,) = out.glob("layerleak-*.whl")
    return sdist, wheel


def fresh_venv(where: Path, *requirements: str) -> Path:
    """A new virtual environment with ``requirements`` installed; its bin directory."""
    python = shutil.which("python3", path=outside_env()["PATH"]) or sys.executable
    run([python, "-m", "venv", str(where)], INSTALL_TIMEOUT, env=outside_env())
    run(
        [str(where / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements],
        INSTALL_TIMEOUT,
        env=outside_env(),
    )
    return where / "bin"

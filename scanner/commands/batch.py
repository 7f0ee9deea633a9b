"""``layerleak scan --from-file refs.txt`` (or ``-`` for stdin): many images in one run.

One reference per line. Blank lines and comments are skipped: a line whose first
non-blank character is ``#``, and anything after `` #`` (whitespace then ``#``) on a
line. Surrounding whitespace is stripped and repeated references are scanned once,
in the order first given. The file is bounded (:data:`MAX_REFS_CHARS`): a larger one
is refused as a usage error before anything is scanned.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from scanner.errors import UsageError

MAX_REFS_CHARS = 8 * 1024 * 1024  # ~100k references: far beyond one run's worth


def parse_refs(text: str) -> list[str]:
    refs: list[str] = []
    seen: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        for marker in (" #", "\t#"):
            if marker in line:
                line = line.split(marker, 1)[0].rstrip()
        if line and line not in seen:
            seen.add(line)
            refs.append(line)
    return refs


def read_refs(
    path_or_dash: str | Path, stdin: TextIO | None = None, max_chars: int = MAX_REFS_CHARS
) -> list[str]:
    """The references listed in a file, or on standard input for ``-``.

    Raises :class:`UsageError` when the file cannot be read, is larger than
    ``max_chars`` characters, or lists nothing.
    """
    name = str(path_or_dash)
    if name == "-":
        stream = stdin if stdin is not None else sys.stdin
        text = stream.read(max_chars + 1)
        where = "standard input"
    else:
        try:
            with Path(name).open(encoding="utf-8") as f:
                text = f.read(max_chars + 1)
        except FileNotFoundError:
            raise UsageError(f"--from-file {name}: no such file") from None
        except UnicodeDecodeError:
            raise UsageError(f"--from-file {name}: not a UTF-8 text file") from None
        except OSError as exc:
            raise UsageError(f"--from-file {name}: {exc.strerror or exc}") from None
        where = name
    if len(text) > max_chars:
        raise UsageError(f"--from-file {where}: larger than {max_chars} characters")
    refs = parse_refs(text)
    if not refs:
        raise UsageError(
            f"--from-file {where}: no image references (one per line; # starts a comment)"
        )
    return refs

"""Text from an image, shown on a terminal: control characters made visible.

Paths, build steps, labels, image names and registry error messages come from
whoever built the image or runs the registry. Written raw to a terminal, an escape
sequence in them could move the cursor, rewrite earlier lines (hiding a finding),
change the window title or worse; a bidirectional override could make a path read
differently from what it is. :func:`safe` shows every such character as an escape
(``\\x1b``, ``\\u202e``) instead. JSON and SARIF need none of this (the JSON encoder
escapes control characters itself and keeps the raw value).
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and the Unicode format characters that reorder or
# hide text (bidi embeddings/overrides/isolates, zero-width marks, line separators),
# and lone surrogates (bytes of a non-UTF-8 name, which no terminal encoding can write).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb"
    "\ud800-\udfff]"
)


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group(0))
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(text: str | None) -> str:
    """``text`` with every control or reordering character shown as an escape."""
    if not text:
        return ""
    return _UNSAFE.sub(_escape, text)

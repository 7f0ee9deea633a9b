"""``fly.toml`` with secret-looking keys under ``[env]``.

Fly.io's guidance: ``[env]`` is for plain configuration, readable by anyone with the
app's source or image; secrets belong in ``fly secrets set``, which the Machines get
as environment variables without the value ever being in a file. A literal value
under a credential-like key (``DATABASE_PASSWORD``, ``STRIPE_SECRET_KEY``,
``API_TOKEN``...) is reported with the key name and the file (high; low with the
noise reason for a placeholder). Values a vendor rule recognises (``sk_live_``...)
are reported by the content analyzer with that rule. Matches ``fly.toml`` and
per-environment copies such as ``fly.staging.toml``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import BinaryIO

from scanner.analyzers.config_files import (
    MAX_CONFIG_BYTES,
    MAX_VALUES,
    ConfigTooLarge,
    line_of,
    literal_secret_finding,
    note_too_large,
    parse_toml,
    read_config,
)
from scanner.analyzers.content_secrets import lowered, noise_for
from scanner.analyzers.interface import FileAnalyzer, LayerContext
from scanner.findings import Finding
from scanner.layers import EntryKind, FileInfo

FLY_TOML = re.compile(r"^fly(\.[A-Za-z0-9_-]+)?\.toml$")
RULE_ID = "flytoml-env-secret"
DESCRIPTION = (
    "A credential is written in clear under [env] in fly.toml, so it is in the image and "
    "in the app's source. Rotate it, remove it from fly.toml and set it with "
    "`fly secrets set NAME=...` instead."
)


class FlyTomlAnalyzer(FileAnalyzer):
    id = "fly-toml"
    version = 1
    needs_content = True

    def required(self, info: FileInfo) -> bool:
        return (
            info.kind is EntryKind.FILE
            and info.size > 0
            and FLY_TOML.match(posixpath.basename(info.path)) is not None
        )

    def analyze(
        self, info: FileInfo, content: BinaryIO | None, layer: LayerContext
    ) -> Iterable[Finding]:
        if content is None or info.size > MAX_CONFIG_BYTES:
            too_large = ConfigTooLarge(f"larger than {MAX_CONFIG_BYTES >> 20} MB")
            note_too_large(layer, info.path, too_large, "its [env] section")
            return []
        data = read_config(content)
        try:
            doc = parse_toml(data)
        except ConfigTooLarge as exc:
            note_too_large(layer, info.path, exc, "its [env] section")
            return []
        env = doc.get("env") if doc is not None else None
        if not isinstance(env, dict):
            return []
        found = []
        if len(env) > MAX_VALUES:
            note_too_large(
                layer, info.path, ConfigTooLarge(f"more than {MAX_VALUES} [env] keys"), "[env]"
            )
            return []
        for key, value in env.items():
            finding = literal_secret_finding(
                self.detection,
                str(key),
                value,
                layer.location(info.path, line=line_of(data, str(key))()),
                rule_id=RULE_ID,
                title=f"fly.toml [env] {key} holds a secret in clear",
                description=DESCRIPTION,
            )
            if finding is not None:
                found.append(lowered(finding, noise_for(info.path, None)))
        return found

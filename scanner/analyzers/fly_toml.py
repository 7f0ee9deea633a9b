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

import re
from collections.abc import Iterator
from typing import Any

from scanner.analyzers.config_files import MAX_VALUES, ConfigTooLarge, parse_toml
from scanner.analyzers.environment_file import EnvironmentEntry, EnvironmentFileAnalyzer

FLY_TOML = re.compile(r"^fly(\.[A-Za-z0-9_-]+)?\.toml$")
RULE_ID = "flytoml-env-secret"
DESCRIPTION = (
    "A credential is written in clear under [env] in fly.toml, so it is in the image and "
    "in the app's source. Rotate it, remove it from fly.toml and set it with "
    "`fly secrets set NAME=...` instead."
)


class FlyTomlAnalyzer(EnvironmentFileAnalyzer):
    id = "fly-toml"
    version = 1
    file_name = FLY_TOML
    rule_id = RULE_ID
    description = DESCRIPTION
    what = "its [env] section"

    def parse(self, data: bytes) -> Any:
        return parse_toml(data)

    def entries(self, doc: Any) -> Iterator[EnvironmentEntry]:
        env = doc.get("env") if isinstance(doc, dict) else None
        if not isinstance(env, dict):
            return
        if len(env) > MAX_VALUES:
            raise ConfigTooLarge(f"more than {MAX_VALUES} [env] keys")
        for key, value in env.items():
            title = f"fly.toml [env] {key} holds a secret in clear"
            yield EnvironmentEntry(str(key), value, str(key), title)

"""Docker Compose files with literal secrets in a service's ``environment:``.

``docker-compose.yml``/``.yaml``, ``compose.yml``/``.yaml`` and override files
(``docker-compose.prod.yml``...). Both forms of ``environment:`` are read: the map
(``POSTGRES_PASSWORD: s3cret``) and the list (``- POSTGRES_PASSWORD=s3cret``). A
literal value under a credential-like key is reported with the service, the key
name and the file, as ``high``: a database password in a compose file is as
leaked as one in ``.env``. References (``${DB_PASSWORD}``, ``$DB_PASSWORD``),
pass-through entries (``- DB_PASSWORD`` / ``DB_PASSWORD:``) are not values;
placeholders (``changeme``, ``<password>``) are kept as ``low`` with the noise
reason. The version 1 format (services at the top level) is read too. Values a
vendor rule recognises are reported by the content analyzer with
that rule. Parsing is bounded (see :mod:`scanner.analyzers.config_files`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from scanner.analyzers.config_files import MAX_VALUES, ConfigTooLarge, parse_yaml
from scanner.analyzers.environment_file import EnvironmentEntry, EnvironmentFileAnalyzer

COMPOSE_FILE = re.compile(r"^(docker-)?compose(\.[A-Za-z0-9_-]+)?\.ya?ml$")
RULE_ID = "compose-env-secret"
DESCRIPTION = (
    "A credential is written in clear in a Compose file's environment, so it is in the "
    "image. Rotate it and pass it at runtime instead (a `${VAR}` reference with the value "
    "outside the image, Compose secrets, or `fly secrets set` on Fly.io)."
)


class ComposeAnalyzer(EnvironmentFileAnalyzer):
    id = "compose-environment"
    version = 1
    file_name = COMPOSE_FILE
    rule_id = RULE_ID
    description = DESCRIPTION
    what = "its services' environment"

    def parse(self, data: bytes) -> Any:
        return parse_yaml(data)

    def entries(self, doc: Any) -> Iterator[EnvironmentEntry]:
        for service, key, value, needle in _entries(doc):
            title = f"Compose service {service}: environment {key} holds a secret in clear"
            yield EnvironmentEntry(key, value, needle, title)


def _entries(doc: Any) -> Iterator[tuple[str, str, object, str]]:
    """``(service, key, value, text to find its line)`` for every environment entry."""
    if not isinstance(doc, dict):
        return
    services = doc.get("services")
    if services is None and "version" not in doc:
        # the version 1 format: services at the top level
        services = {k: v for k, v in doc.items() if isinstance(v, dict) and _is_service(v)}
    if not isinstance(services, dict):
        return
    count = 0
    for service, spec in services.items():
        env = spec.get("environment") if isinstance(spec, dict) else None
        if isinstance(env, dict):
            pairs = [(str(k), v, f"{k}:") for k, v in env.items()]
        elif isinstance(env, list):
            pairs = []
            for item in env:
                if isinstance(item, str) and "=" in item:
                    key, _, value = item.partition("=")
                    pairs.append((key.strip(), value, item))
        else:
            continue
        for key, value, needle in pairs:
            count += 1
            if count > MAX_VALUES:
                raise ConfigTooLarge(f"more than {MAX_VALUES} environment entries")
            yield str(service), key, value, needle


def _is_service(spec: dict[Any, Any]) -> bool:
    return "image" in spec or "build" in spec

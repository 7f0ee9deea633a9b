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

import posixpath
import re
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from scanner.analyzers.config_files import (
    MAX_CONFIG_BYTES,
    MAX_VALUES,
    ConfigTooLarge,
    line_of,
    literal_secret_finding,
    note_too_large,
    parse_yaml,
    read_config,
)
from scanner.analyzers.content_secrets import lowered, noise_for
from scanner.analyzers.interface import FileAnalyzer, LayerContext
from scanner.findings import Finding
from scanner.layers import EntryKind, FileInfo

COMPOSE_FILE = re.compile(r"^(docker-)?compose(\.[A-Za-z0-9_-]+)?\.ya?ml$")
RULE_ID = "compose-env-secret"
DESCRIPTION = (
    "A credential is written in clear in a Compose file's environment, so it is in the "
    "image. Rotate it and pass it at runtime instead (a `${VAR}` reference with the value "
    "outside the image, Compose secrets, or `fly secrets set` on Fly.io)."
)


class ComposeAnalyzer(FileAnalyzer):
    id = "compose-environment"
    version = 1
    needs_content = True

    def required(self, info: FileInfo) -> bool:
        return (
            info.kind is EntryKind.FILE
            and info.size > 0
            and COMPOSE_FILE.match(posixpath.basename(info.path)) is not None
        )

    def analyze(
        self, info: FileInfo, content: BinaryIO | None, layer: LayerContext
    ) -> Iterable[Finding]:
        if content is None or info.size > MAX_CONFIG_BYTES:
            too_large = ConfigTooLarge(f"larger than {MAX_CONFIG_BYTES >> 20} MB")
            note_too_large(layer, info.path, too_large, "its services' environment")
            return []
        data = read_config(content)
        try:
            doc = parse_yaml(data)
        except ConfigTooLarge as exc:
            note_too_large(layer, info.path, exc, "its services' environment")
            return []
        found: list[Finding] = []
        seen: set[tuple[str, str | None]] = set()
        try:
            entries = list(_entries(doc))
        except ConfigTooLarge as exc:
            note_too_large(layer, info.path, exc, "its services' environment")
            return []
        for service, key, value, needle in entries:
            finding = literal_secret_finding(
                self.detection,
                key,
                value,
                layer.location(info.path, line=line_of(data, needle)()),
                rule_id=RULE_ID,
                title=f"Compose service {service}: environment {key} holds a secret in clear",
                description=DESCRIPTION,
            )
            if finding is None or (key, finding.secret_hash) in seen:
                continue  # an anchor shared by several services: reported once
            seen.add((key, finding.secret_hash))
            found.append(lowered(finding, noise_for(info.path, None)))
        return found


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

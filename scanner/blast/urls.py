"""Connection URLs (``postgres://``, ``mysql://``, ``redis://``, ``amqp://``,
``mongodb://`` ...): which server, which user, which database.

The rules' secret is the password; the URL around it comes from the match text. The
password is never reported.
"""

from __future__ import annotations

import re
from typing import Any

from scanner.blast.interface import Clue, Decoder, Radius, clean

URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]{0,30})://(?P<user>[^\s:@/\"'<>?#]{0,128}):"
    r"(?P<password>[^\s@/\"'<>?#]{1,256})@(?P<hosts>[A-Za-z0-9._\[\]:,%-]{1,512})"
    r"(?P<path>/[^\s\"'<>?#;,]{0,256})?"
)
SERVICES = {
    "postgres": "PostgreSQL",
    "postgresql": "PostgreSQL",
    "mysql": "MySQL",
    "mariadb": "MariaDB",
    "redis": "Redis",
    "rediss": "Redis (TLS)",
    "amqp": "RabbitMQ/AMQP",
    "amqps": "RabbitMQ/AMQP (TLS)",
    "mongodb": "MongoDB",
    "mongodb+srv": "MongoDB (SRV)",
    "http": "HTTP",
    "https": "HTTPS",
    "ftp": "FTP",
    "ftps": "FTPS",
}


class ConnectionUrlDecoder(Decoder):
    name = "connection-url"
    detectors = frozenset({"Postgres", "JDBC", "MongoDB", "Redis", "RabbitMQ", "URI", "MySQL"})

    def decode(self, clue: Clue) -> Radius | None:
        for m in URL.finditer(clue.context):
            if m.group("password") != clue.secret:
                continue
            scheme = m.group("scheme").lower()
            base = scheme.split("+", 1)[0] if scheme not in SERVICES else scheme
            service = SERVICES.get(base, clean(scheme, 30))
            hosts = [h for h in m.group("hosts").split(",") if h][:10]
            host, port = _host_port(hosts[0]) if hosts else ("", None)
            details: dict[str, Any] = {
                "provider": service,
                "scheme": clean(scheme, 30),
                "user": clean(m.group("user"), 128),
                "host": clean(host, 200),
            }
            if port:
                details["port"] = port
            if len(hosts) > 1:
                details["hosts"] = [clean(h, 200) for h in hosts]
            database = (m.group("path") or "").strip("/").split("/", 1)[0]
            if database:
                details["database"] = clean(database, 128)
            where = details["host"] + (f":{port}" if port else "")
            summary = f"{service} login as user {details['user'] or '(none)'} on {where}"
            if database:
                summary += f", database {details['database']}"
            return Radius(summary, details)
        return None


def _host_port(text: str) -> tuple[str, str | None]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
        return host, port if port.isdigit() else None
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit():
        return host, port
    return text, None

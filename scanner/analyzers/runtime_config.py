"""How the container runs: root user, sensitive exposed ports, no HEALTHCHECK."""

from __future__ import annotations

from collections.abc import Iterable

from scanner.analyzers.interface import ImageAnalyzer, ImageContext
from scanner.findings import Category, Finding, Location, LocationKind, Severity
from scanner.image import Image, PlatformImage

SENSITIVE_PORTS: dict[int, tuple[str, Severity]] = {
    22: ("SSH", Severity.MEDIUM),
    23: ("Telnet", Severity.HIGH),
    2375: ("Docker API without TLS", Severity.HIGH),
    2376: ("Docker API", Severity.MEDIUM),
    2379: ("etcd", Severity.MEDIUM),
    3306: ("MySQL", Severity.MEDIUM),
    5432: ("PostgreSQL", Severity.MEDIUM),
    6379: ("Redis", Severity.MEDIUM),
    27017: ("MongoDB", Severity.MEDIUM),
    9200: ("Elasticsearch", Severity.MEDIUM),
    11211: ("Memcached", Severity.MEDIUM),
    1433: ("SQL Server", Severity.MEDIUM),
    1521: ("Oracle", Severity.MEDIUM),
    5984: ("CouchDB", Severity.MEDIUM),
    9042: ("Cassandra", Severity.MEDIUM),
    5672: ("AMQP", Severity.LOW),
    15672: ("RabbitMQ management", Severity.MEDIUM),
    10250: ("kubelet", Severity.HIGH),
}


def is_root_user(user: str) -> bool:
    user = user.strip()
    name = user.split(":", 1)[0]
    return name in ("", "root", "0")


class UserAnalyzer(ImageAnalyzer):
    id = "root-user"
    version = 1

    def analyze(
        self, image: Image, platform: PlatformImage, context: ImageContext
    ) -> Iterable[Finding]:
        user = str(platform.runtime.get("User") or "")
        if not is_root_user(user):
            return []
        shown = repr(user) if user else "not set (defaults to root)"
        return [
            Finding(
                rule_id="root-user",
                title="The container runs as root",
                severity=Severity.MEDIUM,
                category=Category.MISCONFIG,
                location=Location(kind=LocationKind.CONFIG, field="config.User"),
                match=f"User {shown}",
                description=(
                    "A process escaping the application gets root in the container. Add a "
                    "user (RUN useradd -r app) and a USER instruction."
                ),
            )
        ]


class PortsAnalyzer(ImageAnalyzer):
    id = "exposed-ports"
    version = 1

    def analyze(
        self, image: Image, platform: PlatformImage, context: ImageContext
    ) -> Iterable[Finding]:
        ports = platform.runtime.get("ExposedPorts")
        found = []
        for spec in sorted(ports) if isinstance(ports, dict) else []:
            number = str(spec).split("/", 1)[0]
            if not number.isdigit() or int(number) not in SENSITIVE_PORTS:
                continue
            service, severity = SENSITIVE_PORTS[int(number)]
            found.append(
                Finding(
                    rule_id="sensitive-port-exposed",
                    title=f"Exposes port {number} ({service})",
                    severity=severity,
                    category=Category.MISCONFIG,
                    location=Location(
                        kind=LocationKind.CONFIG, field=f"config.ExposedPorts[{spec}]"
                    ),
                    match=str(spec),
                    description=(
                        f"{service} should not be reachable from outside the private network. "
                        "Remove the EXPOSE, or keep the service on a private address (on Fly.io, "
                        "do not list it in [[services]])."
                    ),
                )
            )
        return found


class HealthcheckAnalyzer(ImageAnalyzer):
    id = "healthcheck"
    version = 1

    def analyze(
        self, image: Image, platform: PlatformImage, context: ImageContext
    ) -> Iterable[Finding]:
        check = platform.runtime.get("Healthcheck")
        test = check.get("Test") if isinstance(check, dict) else None
        if isinstance(test, list) and test and test[0] != "NONE":
            return []
        return [
            Finding(
                rule_id="no-healthcheck",
                title="No HEALTHCHECK",
                severity=Severity.LOW,
                category=Category.MISCONFIG,
                location=Location(kind=LocationKind.CONFIG, field="config.Healthcheck"),
                match="disabled" if test else "not set",
                description=(
                    "Nothing tells the platform when the process is alive but broken. Add a "
                    "HEALTHCHECK (or health checks in fly.toml)."
                ),
            )
        ]

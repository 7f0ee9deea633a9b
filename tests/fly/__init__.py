"""Tests of ``layerleak fly``: a local stand-in for the Fly Machines API, and scans of
images pushed to the real test registry."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, Any, dict[str, str]]  # status, JSON body, extra headers


@dataclass
class MachinesApi:
    """A stdlib HTTP server answering ``GET /v1/apps/{app}/machines``.

    ``apps`` maps an app name to its Machines (a list) or to a list of scripted replies
    served in order (the last one repeats). Unknown apps get the API's 404.
    ``tokens``: accepted Authorization values (empty: any). Requests are recorded.
    ``orgs`` maps an organisation slug to its app names, served by
    ``GET /v1/apps?org_slug=SLUG`` as ``{"total_apps", "apps": [{"id", "name",
    "machine_count", "network"}]}``; with ``page_size`` the list comes in pages, each
    but the last with a ``next_cursor`` to pass back as ``&cursor=``.
    """

    apps: dict[str, list[Any]] = field(default_factory=dict)
    scripted: dict[str, list[Reply]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    forbidden: set[str] = field(default_factory=set)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    orgs: dict[str, list[str]] = field(default_factory=dict)
    page_size: int = 0
    url: str = ""

    def list_apps(self, query: str) -> Reply:
        params = dict(urllib.parse.parse_qsl(query))
        org = params.get("org_slug", "")
        if org not in self.orgs:
            return 404, {"error": "organization not found"}, {}
        names = self.orgs[org]
        start = int(params.get("cursor") or 0)
        end = start + self.page_size if self.page_size else len(names)
        apps = [
            {
                "id": f"id-{name}",
                "name": name,
                "machine_count": len(self.apps.get(name, [])),
                "network": "default",
            }
            for name in names[start:end]
        ]
        body: dict[str, Any] = {"total_apps": len(names), "apps": apps}
        if end < len(names):
            body["next_cursor"] = str(end)
        return 200, body, {}

    def reply(self, path: str, headers: dict[str, str]) -> Reply:
        self.requests.append((path, headers))
        route, _, query = path.partition("?")
        if route.strip("/") == "v1/apps":
            auth = headers.get("Authorization", "")
            if self.tokens and auth not in self.tokens:
                return 401, {"error": "token validation error"}, {}
            return self.list_apps(query)
        parts = path.split("?")[0].strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["v1", "apps"] or parts[3] != "machines":
            return 404, {"error": "not found"}, {}
        app = parts[2]
        auth = headers.get("Authorization", "")
        if self.tokens and auth not in self.tokens:
            return 401, {"error": "token validation error"}, {}
        if app in self.forbidden:
            return 403, {"error": "unauthorized"}, {}
        if app in self.scripted:
            queue = self.scripted[app]
            return queue.pop(0) if len(queue) > 1 else queue[0]
        if app not in self.apps:
            return 404, {"error": "app not found"}, {}
        return 200, self.apps[app], {}


@contextmanager
def machines_api(api: MachinesApi) -> Iterator[MachinesApi]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body, extra = api.reply(self.path, dict(self.headers.items()))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def machine(
    id: str,
    *,
    region: str = "ams",
    group: str = "app",
    registry: str = "registry.fly.io",
    repository: str = "my-app",
    tag: str | None = "deployment-01HZX5M3Q4G6B6Y7Z8A9B0C1D2",
    digest: str | None = "sha256:" + "1" * 64,
    state: str = "started",
    image_ref: bool = True,
    config_image: str | None = None,
) -> dict[str, Any]:
    """A Machine as ``GET /v1/apps/{app}/machines`` documents it (trimmed)."""
    image = config_image
    if image is None:
        image = f"{registry}/{repository}" + (f":{tag}" if tag else "")
    data: dict[str, Any] = {
        "id": id,
        "name": f"name-{id}",
        "state": state,
        "region": region,
        "instance_id": "01HZX5M3Q4G6B6Y7Z8A9B0C1D3",
        "private_ip": "fdaa:0:1:a7b:1f2:3:4:2",
        "config": {
            "image": image,
            "init": {},
            "env": {"FLY_PROCESS_GROUP": group, "PRIMARY_REGION": "ams"},
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
            "metadata": {
                "fly_flyctl_version": "0.2.50",
                "fly_platform_version": "v2",
                "fly_process_group": group,
                "fly_release_id": "Jx1p3k",
                "fly_release_version": "7",
            },
            "restart": {"policy": "on-failure"},
            "services": [
                {
                    "internal_port": 8080,
                    "protocol": "tcp",
                    "ports": [{"port": 443, "handlers": ["tls", "http"]}],
                }
            ],
        },
        "created_at": "2024-05-01T10:00:00Z",
        "updated_at": "2024-05-01T10:00:05Z",
        "events": [
            {"type": "start", "status": "started", "source": "flyd", "timestamp": 1714557605000},
            {"type": "launch", "status": "created", "source": "user", "timestamp": 1714557600000},
        ],
        "host_status": "ok",
    }
    if image_ref:
        data["image_ref"] = {
            "registry": registry,
            "repository": repository,
            "tag": tag or "",
            "digest": digest or "",
            "labels": {"fly.version": "7"},
        }
    return data


Sleep = Callable[[float], None]

"""A small client for the Fly Machines API: which images an app's Machines run.

``GET /v1/apps/{app}/machines`` returns the app's Machines; each one names its image in
``image_ref`` (``registry``, ``repository``, ``tag``, ``digest``) and in
``config.image``. :func:`deployed_images` turns that into one entry per distinct image
(by digest when there is one) with the machines, process groups
(``config.metadata.fly_process_group``) and regions that run it.

The token is never logged, printed or put in an error message. A token that starts
with ``FlyV1 `` (what ``fly tokens create`` prints) is sent as it is; anything else
is sent as ``Bearer <token>``.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from scanner import __version__
from scanner.errors import LayerleakError, UsageError

if TYPE_CHECKING:
    import requests

DEFAULT_API_URL = "https://api.machines.dev"
API_URL_ENV = ("LAYERLEAK_FLY_API_URL", "FLY_API_URL")
TOKEN_ENV = ("FLY_API_TOKEN", "FLY_ACCESS_TOKEN")
FLY_REGISTRY = "registry.fly.io"
# Fly pulls Docker Hub images through its mirror and names the mirror in image_ref;
# the same image is read from Docker Hub itself.
REGISTRY_ALIASES = {"docker-hub-mirror.fly.io": "docker.io"}

MAX_RETRIES = 3  # extra attempts after a 429 or 5xx
MAX_WAIT = 60.0  # seconds: a longer Retry-After is not waited for
GONE_STATES = frozenset({"destroyed", "destroying"})
MAX_APP_PAGES = 1000  # pages of an organisation's app list


class FlyError(LayerleakError):
    """The Fly Machines API could not be used; the message says what to do."""


class FlyUsageError(FlyError, UsageError):
    """Missing token or bad API URL (exit 2)."""


class FlyAuthError(FlyError):
    """401/403: the token is missing, invalid, expired or lacks access."""


class FlyAppNotFound(FlyError):
    """404: no such app (for this token)."""


class FlyRateLimited(FlyError):
    """429 after the bounded retries (or a Retry-After too long to wait)."""


class NoMachines(FlyError):
    """The app exists but has no Machines: nothing is deployed."""


def authorization(token: str) -> str:
    """The Authorization header value for ``token`` (``FlyV1 ...`` as is, else Bearer)."""
    token = token.strip()
    if not token:
        raise FlyUsageError(_NO_TOKEN)
    if token.startswith("FlyV1 ") or token.lower().startswith("bearer "):
        return token
    return f"Bearer {token}"


def api_base(url: str | None) -> str:
    """Normalise ``--api-url``: scheme required, trailing ``/`` and ``/v1`` dropped."""
    base = (url or DEFAULT_API_URL).strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise FlyUsageError(
            f"--api-url {base!r}: give a full URL such as {DEFAULT_API_URL} "
            "(or http://127.0.0.1:4280 through `fly machine api-proxy`)"
        )
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base


_TOKEN_SHAPE = re.compile(r"(?:FlyV1\s+)?\b(?:fm1[ar]|fm2|fo1)_[A-Za-z0-9+/=_-]+")

_NO_TOKEN = (
    "no Fly API token: pass --token or set FLY_API_TOKEN (create a read-only one with "
    "`fly tokens create readonly`, or use `fly auth token` for your user token)"
)


@dataclass(frozen=True)
class Machine:
    id: str
    name: str
    state: str
    region: str
    process_group: str
    image: str  # the reference to scan (registry/repository@digest when known)
    display: str  # registry/repository:tag@digest, for people
    digest: str | None
    tag: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "region": self.region,
            "process_group": self.process_group,
        }


@dataclass
class DeployedImage:
    """One distinct image and everything that runs it."""

    ref: str  # what to scan
    display: str
    digest: str | None
    tags: list[str] = field(default_factory=list)
    machines: list[Machine] = field(default_factory=list)

    @property
    def registry(self) -> str:
        return registry_of(self.ref)

    @property
    def process_groups(self) -> list[str]:
        return sorted({m.process_group for m in self.machines if m.process_group})

    @property
    def regions(self) -> list[str]:
        return sorted({m.region for m in self.machines if m.region})

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.display,
            "ref": self.ref,
            "digest": self.digest,
            "tags": self.tags,
            "process_groups": self.process_groups,
            "regions": self.regions,
            "machines": [m.to_dict() for m in self.machines],
        }


def registry_of(ref: str) -> str:
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _split_image(image: str) -> tuple[str, str | None, str | None]:
    """``name[:tag][@digest]`` -> (name, tag, digest)."""
    name, _, digest = image.partition("@")
    tag: str | None = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest or None


def machine_from_json(data: Mapping[str, Any]) -> Machine | None:
    """A Machine from the API's JSON, or None when it names no image."""
    config = data.get("config") or data.get("incomplete_config") or {}
    metadata = config.get("metadata") or {}
    ref = data.get("image_ref") or {}
    registry = str(ref.get("registry") or "")
    repository = str(ref.get("repository") or "")
    tag = str(ref.get("tag") or "") or None
    digest = str(ref.get("digest") or "") or None
    registry = REGISTRY_ALIASES.get(registry, registry)
    name: str | None = None
    if repository:
        name = f"{registry}/{repository}" if registry else repository
    image_text = str(config.get("image") or "")
    if image_text:
        c_name, c_tag, c_digest = _split_image(image_text)
        c_host, _, c_rest = c_name.partition("/")
        if c_rest and c_host in REGISTRY_ALIASES:
            c_name = f"{REGISTRY_ALIASES[c_host]}/{c_rest}"
        name = name or c_name
        tag = tag or c_tag
        digest = digest or c_digest
    if not name:
        return None
    ref_text = f"{name}@{digest}" if digest else f"{name}:{tag or 'latest'}"
    display = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    return Machine(
        id=str(data.get("id") or ""),
        name=str(data.get("name") or ""),
        state=str(data.get("state") or ""),
        region=str(data.get("region") or ""),
        process_group=str(metadata.get("fly_process_group") or metadata.get("process_group") or ""),
        image=ref_text,
        display=display,
        digest=digest,
        tag=tag,
    )


def deployed_images(machines: Iterable[Machine]) -> list[DeployedImage]:
    """One entry per distinct image (by digest when known, else by reference)."""
    images: dict[str, DeployedImage] = {}
    for m in machines:
        key = m.digest or m.image
        image = images.get(key)
        if image is None:
            image = images[key] = DeployedImage(ref=m.image, display=m.display, digest=m.digest)
        if m.tag and m.tag not in image.tags:
            image.tags.append(m.tag)
        image.machines.append(m)
    for image in images.values():
        image.machines.sort(key=lambda m: (m.process_group, m.region, m.id))
    return list(images.values())


def _retry_after(value: str | None, default: float) -> float:
    if not value:
        return default
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


class MachinesClient:
    """``list_machines(app)`` against the Machines API, with bounded retries."""

    def __init__(
        self,
        token: str | None,
        api_url: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = MAX_RETRIES,
        max_wait: float = MAX_WAIT,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        if token is None or not token.strip():
            raise FlyUsageError(_NO_TOKEN)
        self._authorization = authorization(token)
        self.base_url = api_base(api_url)
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_wait = max_wait
        if session is None:
            import requests  # only the fly commands talk to the API: imported when they do

            session = requests.Session()
        self._session = session
        self._sleep = sleep
        self._notify = notify

    def __repr__(self) -> str:  # never the token
        return f"MachinesClient({self.base_url!r})"

    def close(self) -> None:
        self._session.close()

    def scrub(self, text: str) -> str:
        """``text`` (from the server) without the token or anything shaped like one."""
        raw = self._authorization.split(" ", 1)[-1]
        for secret in (self._authorization, raw, *raw.split(",")):
            if len(secret) >= 8:
                text = text.replace(secret, "<redacted>")
        return _TOKEN_SHAPE.sub("<redacted>", text)

    def _get(self, path: str, what: str) -> requests.Response:
        url = self.base_url + path
        headers = {
            "Authorization": self._authorization,
            "Accept": "application/json",
            "User-Agent": f"layerleak/{__version__}",
        }
        import requests

        attempt = 0
        while True:
            try:
                response = self._session.get(url, headers=headers, timeout=self.timeout)
            except requests.RequestException as exc:
                raise FlyError(
                    f"cannot reach the Fly Machines API at {self.base_url} ({type(exc).__name__})"
                    ": check your network, or --api-url / LAYERLEAK_FLY_API_URL / FLY_API_URL"
                ) from None
            status = response.status_code
            if status != 429 and status < 500:
                return response
            wait = _retry_after(response.headers.get("Retry-After"), 2.0**attempt)
            if attempt >= self.max_retries or wait > self.max_wait:
                response.close()
                if status == 429:
                    raise FlyRateLimited(
                        f"the Fly Machines API is rate-limiting requests for {what} (429"
                        + (f", Retry-After {wait:.0f}s" if wait else "")
                        + f") after {attempt + 1} attempt(s): wait "
                        + (f"{wait:.0f} seconds" if wait else "a minute")
                        + " and run again; in CI, avoid running many scans against one "
                        "org at the same moment"
                    )
                raise FlyError(
                    f"the Fly Machines API failed for {what} (HTTP {status}) after "
                    f"{attempt + 1} attempt(s): try again later (status: https://status.flyio.net)"
                )
            response.close()
            attempt += 1
            if self._notify:
                self._notify(
                    f"Fly Machines API answered {status} for {what}; retrying in {wait:.1f}s "
                    f"({attempt}/{self.max_retries})"
                )
            self._sleep(wait)

    def list_machines(self, app: str) -> list[dict[str, Any]]:
        """The raw Machine objects of ``app`` (raises FlyError subclasses with advice)."""
        if not app or "/" in app:
            raise FlyUsageError(f"{app!r} is not a Fly app name (see `fly apps list`)")
        what = f"app {app!r}"
        response = self._get(f"/v1/apps/{quote(app, safe='')}/machines", what)
        status = response.status_code
        detail = self.scrub(_error_detail(response))
        if status == 401:
            raise FlyAuthError(
                f"the Fly Machines API refused the token for {what} (401 Unauthorized"
                f"{detail}): it is invalid, expired or revoked. Create a new one with "
                "`fly tokens create readonly` (or `fly auth token`) and pass it with --token "
                "or FLY_API_TOKEN, exactly as printed (including any `FlyV1 ` prefix)"
            )
        if status == 403:
            raise FlyAuthError(
                f"the token may not read the Machines of {what} (403 Forbidden{detail}): "
                "use a token of the organization that owns the app "
                "(`fly tokens create readonly -o ORG`) or a deploy token for this app "
                "(`fly tokens create deploy -a APP`)"
            )
        if status == 404:
            raise FlyAppNotFound(
                f"no Fly app named {app!r} (404 Not Found{detail}): check the name with "
                "`fly apps list`; a deploy token only sees its own app"
            )
        if status >= 400:
            raise FlyError(f"the Fly Machines API answered HTTP {status} for {what}{detail}")
        try:
            data = response.json()
        except ValueError:
            raise FlyError(
                f"the Fly Machines API answered {what} with something that is not JSON: "
                "check --api-url"
            ) from None
        if isinstance(data, dict) and isinstance(data.get("machines"), list):
            data = data["machines"]
        if not isinstance(data, list):
            raise FlyError(
                f"unexpected answer from the Fly Machines API for {what}: expected a list "
                "of Machines; check --api-url"
            )
        return [m for m in data if isinstance(m, dict)]

    def list_apps(self, org: str) -> list[dict[str, Any]]:
        """The apps of organisation ``org`` (``GET /v1/apps?org_slug=ORG``), every page.

        The answer is ``{"total_apps": N, "apps": [{"id", "name", "machine_count",
        "network"}, ...]}``; when it also holds a ``next_cursor``, the next page is asked
        for with ``&cursor=...`` (bounded: :data:`MAX_APP_PAGES` pages, no cursor twice).
        """
        if not org or "/" in org or "?" in org or "&" in org:
            raise FlyUsageError(f"{org!r} is not a Fly organization slug (see `fly orgs list`)")
        what = f"organization {org!r}"
        apps: list[dict[str, Any]] = []
        names: set[str] = set()
        cursor: str | None = None
        seen_cursors: set[str] = set()
        for _ in range(MAX_APP_PAGES):
            query = f"org_slug={quote(org, safe='')}"
            if cursor:
                query += f"&cursor={quote(cursor, safe='')}"
            response = self._get(f"/v1/apps?{query}", what)
            data = self._json_or_raise(response, what, org)
            page = data.get("apps") if isinstance(data, dict) else None
            if not isinstance(page, list):
                raise FlyError(
                    f"unexpected answer from the Fly Machines API for {what}: expected "
                    "{'apps': [...]}; check --api-url"
                )
            for app in page:
                name = app.get("name") if isinstance(app, dict) else None
                if isinstance(name, str) and name and name not in names:
                    names.add(name)
                    apps.append(app)
            nxt = data.get("next_cursor") if isinstance(data, dict) else None
            if not isinstance(nxt, str) or not nxt or nxt in seen_cursors:
                return apps
            seen_cursors.add(nxt)
            cursor = nxt
        raise FlyError(f"the Fly Machines API gave more than {MAX_APP_PAGES} pages for {what}")

    def _json_or_raise(self, response: requests.Response, what: str, org: str) -> Any:
        status = response.status_code
        detail = self.scrub(_error_detail(response))
        if status == 401:
            raise FlyAuthError(
                f"the Fly Machines API refused the token for {what} (401 Unauthorized"
                f"{detail}): it is invalid, expired or revoked; create one with "
                f"`fly tokens create readonly -o {org}`"
            )
        if status == 403:
            raise FlyAuthError(
                f"the token may not list the apps of {what} (403 Forbidden{detail}): use a "
                f"token of that organization (`fly tokens create readonly -o {org}`)"
            )
        if status == 404:
            raise FlyError(
                f"no Fly {what} (404 Not Found{detail}): check the slug with `fly orgs list`"
            )
        if status >= 400:
            raise FlyError(f"the Fly Machines API answered HTTP {status} for {what}{detail}")
        try:
            return response.json()
        except ValueError:
            raise FlyError(
                f"the Fly Machines API answered {what} with something that is not JSON: "
                "check --api-url"
            ) from None

    def machines(self, app: str) -> list[Machine]:
        """The app's live Machines that name an image; NoMachines when there are none."""
        raw = self.list_machines(app)
        found = [
            m
            for m in (machine_from_json(d) for d in raw if d.get("state") not in GONE_STATES)
            if m is not None
        ]
        if not found:
            raise NoMachines(
                f"app {app!r} has no Machines"
                + (" with an image" if raw else "")
                + ": nothing is deployed. Deploy it first (`fly deploy`), or check the app "
                "name (`fly apps list`) and that the token belongs to its organization"
            )
        return found


def _error_detail(response: requests.Response) -> str:
    """``: <error>`` from a JSON error body, short and single-line, else empty."""
    if response.status_code < 400:
        return ""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("error") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message.strip():
        return ""
    message = " ".join(message.split())[:200]
    return f": {message}"

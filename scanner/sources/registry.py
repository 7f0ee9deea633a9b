"""Images in an OCI / Docker registry (``HOST/REPO:TAG``, ``HOST/REPO@sha256:...``, ``nginx``).

The root manifest is fetched by tag or digest (its bytes checked against the digest),
then :func:`scanner.sources.manifests.image_from_root` walks indexes, manifest lists
and attestations exactly as for an image on disk; every platform is kept unless
``--platform`` picks some. Layers are not downloaded here: each gets a
:class:`RegistryBlobOpener`, which streams the blob when the scanner reads it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from scanner.digests import parse_digest
from scanner.errors import RegistryError, UsageError
from scanner.image import INDEX_TYPES, MANIFEST_TYPES, BlobOpener, Image, load_json
from scanner.reference import Reference, parse_reference
from scanner.registry.client import Endpoint, RegistryClient
from scanner.registry.credentials import Credential, resolve_credential
from scanner.sources.interface import Source, SourceOptions
from scanner.sources.manifests import ManifestFetcher, image_from_root

KIND = "registry"


# --- clients shared by openers in one process ------------------------------------------

_CLIENTS: dict[tuple[Endpoint, Credential], RegistryClient] = {}
_CLIENTS_LOCK = threading.Lock()
# Clients a forked child inherited: never used there (their pooled sockets are the
# parent's; two processes writing to one connection corrupt both), never closed there
# either (kept referenced so that no finaliser touches the parent's connections).
_INHERITED: list[RegistryClient] = []


def _after_fork_in_child() -> None:
    global _CLIENTS_LOCK
    _INHERITED.extend(_CLIENTS.values())
    _CLIENTS.clear()
    _CLIENTS_LOCK = threading.Lock()  # it may have been held by another thread at the fork


os.register_at_fork(after_in_child=_after_fork_in_child)


def shared_client(endpoint: Endpoint, credential: Credential) -> RegistryClient:
    """The process's client for this endpoint and credential (made on first use).

    Openers are pickled into worker processes; there they find no client and make one,
    which then serves every layer that worker streams (one token per repository, one
    connection pool) instead of one client per layer.
    """
    key = (endpoint, credential)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = RegistryClient(endpoint, credential)
        return client


def release_client(client: RegistryClient) -> None:
    with _CLIENTS_LOCK:
        key = (client.endpoint, client.credential)
        if _CLIENTS.get(key) is client:
            del _CLIENTS[key]
    client.close()


@dataclass(frozen=True)
class RegistryBlobOpener(BlobOpener):
    """A blob in a registry; picklable, re-creates its client in another process.

    The credential travels with it (a worker needs it to authenticate) but is kept out
    of ``repr`` and ``describe()``; :class:`Credential` hides its password in its own
    ``repr`` too.
    """

    endpoint: Endpoint
    repository: str
    digest: str
    size: int | None = None
    credential: Credential = field(default_factory=lambda: Credential(None), repr=False)

    def open(self) -> BinaryIO:
        client = shared_client(self.endpoint, self.credential)
        return client.open_blob(self.repository, self.digest, size=self.size)

    def describe(self) -> str:
        return f"{self.endpoint.registry}/{self.repository}@{self.digest}"


class RegistryFetcher(ManifestFetcher):
    """Manifests and small blobs of one repository, for :func:`image_from_root`."""

    def __init__(self, client: RegistryClient, repository: str) -> None:
        self.client = client
        self.repository = repository

    def fetch(self, descriptor: Mapping[str, Any], what: str) -> bytes:
        """The blob, no longer than the descriptor's ``size`` (refused at the first
        excess byte, not after reading it all)."""
        digest = _digest(descriptor, what)
        raw_size = descriptor.get("size")
        size = raw_size if isinstance(raw_size, int) and raw_size >= 0 else None
        media_type = str(descriptor.get("mediaType") or "")
        if (
            media_type in MANIFEST_TYPES
            or media_type in INDEX_TYPES
            or _looks_like_manifest(media_type)
        ):
            return self.client.get_manifest(self.repository, digest, size).data
        try:
            return self.client.get_blob_bytes(self.repository, digest, what, size)
        except RegistryError:
            if media_type:
                raise
            # A descriptor without a media type may be a manifest: registries serve
            # those from /manifests/ only.
            return self.client.get_manifest(self.repository, digest, size).data

    def opener(self, descriptor: Mapping[str, Any]) -> BlobOpener:
        digest = _digest(descriptor, f"{self.repository} layer")
        size = descriptor.get("size")
        return RegistryBlobOpener(
            self.client.endpoint,
            self.repository,
            digest,
            size if isinstance(size, int) else None,
            self.client.credential,
        )


def _looks_like_manifest(media_type: str) -> bool:
    return "manifest" in media_type or "image.index" in media_type


def _digest(descriptor: Mapping[str, Any], what: str) -> str:
    digest = str(descriptor.get("digest", ""))
    parse_digest(digest, what)  # a registered algorithm, well formed: or UnsupportedDigest
    return digest


class RegistrySource(Source):
    kind = KIND

    def __init__(self, name: str, options: SourceOptions) -> None:
        super().__init__(name, options)
        self.client: RegistryClient | None = None

    def reference(self) -> Reference:
        try:
            return parse_reference(self.name)
        except UsageError as exc:
            raise UsageError(f"not an existing file or directory, and {exc}") from None

    def load(self) -> Image:
        ref = self.reference()
        credential = resolve_credential(
            ref.registry, username=self.options.username, password=self.options.password
        )
        endpoint = Endpoint.for_registry(
            ref.registry,
            insecure=self.options.insecure,
            timeout=self.options.timeout,
            deadline=self.options.deadline,
        )
        self.client = client = shared_client(endpoint, credential)
        root = client.get_manifest(ref.repository, ref.reference)
        doc = load_json(root.data, f"{ref}: manifest")
        if "mediaType" not in doc and root.media_type:
            doc = {**doc, "mediaType": root.media_type}
        fetcher = RegistryFetcher(client, ref.repository)
        return image_from_root(
            self.name, self.kind, fetcher, doc, root.digest, self.options.platforms
        )

    def close(self) -> None:
        if self.client is not None:
            release_client(self.client)
            self.client = None

"""The result model: what a finding is, where it was found and whether it is still there.

Findings are frozen. Analyzers produce them with the layer-level facts they know
(rule, path, layer, match); the engine then places them in an image (image name,
platform, forensic status) with :func:`dataclasses.replace`. A finding never holds
the raw secret unless the user asked for it (``--reveal``): it holds a redacted
match and a hash of the secret, which is what fingerprints are built from.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import asdict, dataclass, field, replace
from enum import IntEnum, StrEnum
from typing import Any

HISTORY_INDEX = re.compile(r"^history\[\d+\] ")


class Severity(IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, value: str) -> Severity:
        try:
            return cls[value.strip().upper()]
        except KeyError:
            choices = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {value!r} (choose from {choices})") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class Category(StrEnum):
    SECRET = "secret"
    SENSITIVE_FILE = "sensitive-file"
    MISCONFIG = "misconfig"
    SUPPLY_CHAIN = "supply-chain"

    @classmethod
    def parse(cls, value: str) -> Category:
        try:
            return cls(value.strip().lower())
        except ValueError:
            choices = ", ".join(c.value for c in cls)
            raise ValueError(f"unknown category {value!r} (choose from {choices})") from None


class FileState(StrEnum):
    """Forensic state of the file a finding points at, in the image's final filesystem."""

    PRESENT = "present"  # still in the final filesystem
    DELETED = "deleted"  # removed by a whiteout or opaque directory in a later layer
    OVERWRITTEN = "overwritten"  # replaced by a later layer; this layer's copy is recoverable
    NOT_A_FILE = "n/a"  # config, history, manifest and Dockerfile findings
    UNKNOWN = "unknown"  # not yet placed in an image


class LocationKind(StrEnum):
    FILE = "file"
    CONFIG = "config"
    HISTORY = "history"
    MANIFEST = "manifest"
    DOCKERFILE = "dockerfile"
    IMAGE = "image"


@dataclass(frozen=True)
class Status:
    state: FileState = FileState.UNKNOWN
    changed_in_layer: int | None = None  # the layer that deleted or overwrote the file

    def describe(self) -> str:
        if self.state is FileState.DELETED:
            return f"deleted in layer {self.changed_in_layer}"
        if self.state is FileState.OVERWRITTEN:
            return f"overwritten in layer {self.changed_in_layer}"
        return self.state.value

    @property
    def recoverable(self) -> bool:
        """True when the file is gone from the final filesystem but sits in a layer."""
        return self.state in (FileState.DELETED, FileState.OVERWRITTEN)


@dataclass(frozen=True)
class Location:
    kind: LocationKind
    layer_index: int | None = None  # 0-based index into the manifest's layers
    layer_digest: str | None = None  # compressed blob digest (manifest)
    diff_id: str | None = None  # uncompressed digest (config.rootfs.diff_ids)
    path: str | None = None  # path in the image filesystem, no leading slash
    inner_path: str | None = None  # path inside a nested archive ("a.jar!x/y.properties")
    line: int | None = None  # 1-based line of the match in the file, when known
    history_index: int | None = None  # index into config.history
    created_by: str | None = None  # the build step (history created_by), redacted
    field: str | None = None  # config field, e.g. "config.Env[2]" or "config.Labels[foo]"
    occurrence: int | None = None  # n-th copy of a path written several times in one layer

    def display_path(self) -> str:
        if self.path is None:
            return self.field or ""
        text = "/" + self.path
        if self.inner_path:
            text += "!" + self.inner_path
        return text


@dataclass(frozen=True)
class BlastRadius:
    """What a leaked credential opens, as far as the credential itself says (offline).

    ``summary`` is one sentence for people; ``details`` holds the decoded facts for
    machines (JSON-safe values: strings, numbers, booleans, lists of those). Built by
    :mod:`scanner.blast`; never holds the secret itself (shown without ``--reveal``).
    ``verified_identity`` is what a provider reported with ``--verify`` (who the
    credential authenticates as), when it did.
    """

    summary: str
    details: dict[str, Any] = field(default_factory=dict, hash=False)
    verified_identity: dict[str, str] | None = field(default=None, hash=False)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"summary": self.summary, "details": dict(self.details)}
        if self.verified_identity is not None:
            data["verified_identity"] = dict(self.verified_identity)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlastRadius:
        identity = data.get("verified_identity")
        return cls(
            summary=str(data.get("summary", "")),
            details=dict(data.get("details") or {}),
            verified_identity=dict(identity) if isinstance(identity, dict) else None,
        )


@dataclass(frozen=True)
class Finding:
    rule_id: str
    title: str
    severity: Severity
    category: Category
    location: Location
    match: str = ""  # redacted evidence, safe to print
    secret_hash: str | None = None  # keyed hash of the raw secret (fingerprints, baselines)
    detector: str | None = None  # trufflehog-compatible detector name for secret rules
    description: str = ""
    image: str = ""
    platform: str = ""
    status: Status = field(default_factory=Status)
    secret: str | None = None  # the raw secret: only set with --reveal
    noise: str | None = None  # why this finding was downgraded (placeholder, example key...)
    verification: str | None = None  # verified / invalid / unknown, with --verify
    blast_radius: BlastRadius | None = None  # what the credential opens (scanner.blast)

    @property
    def fingerprint(self) -> str:
        """Stable identity across layers, rebuilds and releases.

        Built from what the finding *is* (rule, where in the filesystem or config, the
        secret's hash), not from where it happens to sit in this build (layer index and
        digest change on every rebuild).
        """
        loc = self.location
        where = loc.display_path() if loc.path is not None else (loc.field or loc.kind.value)
        if loc.kind is LocationKind.HISTORY and loc.path is None:
            # Not the step's index: builders (Docker, buildah) number history differently.
            where = "history:" + HISTORY_INDEX.sub("", loc.field or "", count=1)
        evidence = self.secret_hash or self.match
        raw = "\x1f".join([self.rule_id, where, evidence])
        return hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()[:32]

    def placed(self, image: str, platform: str, status: Status | None = None) -> Finding:
        """This finding as seen in one image and platform."""
        return replace(self, image=image, platform=platform, status=status or self.status)

    def to_dict(self, reveal: bool = False) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.label
        data["category"] = self.category.value
        data["location"]["kind"] = self.location.kind.value
        data["status"] = {
            "state": self.status.state.value,
            "changed_in_layer": self.status.changed_in_layer,
            "description": self.status.describe(),
        }
        data["blast_radius"] = self.blast_radius.to_dict() if self.blast_radius else None
        data["fingerprint"] = self.fingerprint
        if not reveal:
            data.pop("secret", None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        """Inverse of :meth:`to_dict` (used by the layer cache and baselines)."""
        loc = dict(data["location"])
        loc["kind"] = LocationKind(loc["kind"])
        status = data.get("status") or {}
        return cls(
            rule_id=data["rule_id"],
            title=data["title"],
            severity=Severity.parse(data["severity"]),
            category=Category.parse(data["category"]),
            location=Location(**loc),
            match=data.get("match", ""),
            secret_hash=data.get("secret_hash"),
            detector=data.get("detector"),
            description=data.get("description", ""),
            image=data.get("image", ""),
            platform=data.get("platform", ""),
            status=Status(
                FileState(status.get("state", FileState.UNKNOWN.value)),
                status.get("changed_in_layer"),
            ),
            secret=data.get("secret"),
            noise=data.get("noise"),
            verification=data.get("verification"),
            blast_radius=(
                BlastRadius.from_dict(data["blast_radius"])
                if isinstance(data.get("blast_radius"), dict)
                else None
            ),
        )


def hash_secret(secret: str | bytes, key: bytes) -> str:
    """HMAC-SHA256 of the secret under the fingerprint key (:mod:`scanner.keys`).

    Keyed, so that a report's hashes and fingerprints cannot be used to confirm a
    guessed secret by anyone who does not hold the key.
    """
    raw = secret.encode("utf-8", "surrogateescape") if isinstance(secret, str) else secret
    return "hmac-sha256:" + hmac.new(key, raw, hashlib.sha256).hexdigest()


def redact(secret: str, keep: int = 4) -> str:
    """Show enough of a secret to recognise it, never enough to use it.

    At most ``keep`` leading characters and never more than a quarter of the
    secret are shown; the rest is replaced by a fixed-width mask so the length
    of the secret does not leak either.
    """
    secret = secret.strip()
    if not secret:
        return ""
    shown = min(keep, len(secret) // 4)
    return secret[:shown] + "*" * 8 if shown else "*" * 8

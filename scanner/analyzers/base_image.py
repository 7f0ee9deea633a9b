"""Is the base image pinned? From annotations/labels, SLSA provenance, or a Dockerfile.

Nothing is guessed: pinning is judged by what the builder actually recorded. A base
name that carries ``@sha256:...`` proves the pin. A ``base.digest`` next to a name
without one does not: buildah and podman write the tag they resolved and the digest it
resolved to whether or not the ``FROM`` line was pinned (and with ``--layers`` the
digest can be that of an intermediate image), so such an image gets an informational
``base-image-pin-unknown``. When the image does not say what it was built from and no
Dockerfile was given, an informational ``base-image-unknown`` says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from scanner.analyzers.interface import ImageAnalyzer, ImageContext
from scanner.findings import Category, Finding, Location, LocationKind, Severity
from scanner.image import BASE_DIGEST_KEY, BASE_NAME_KEY, Image, PlatformImage

FROM_LINE = re.compile(r"^\s*FROM\s+(?P<rest>.+)$", re.I)
DIGEST_PIN = re.compile(r"@sha256:[a-f0-9]{64}$")
BUILDAH_LABEL = "io.buildah.version"


@dataclass(frozen=True)
class BaseRef:
    name: str
    digest: str | None
    where: Location
    origin: str  # "annotation", "label", "provenance", "Dockerfile"
    builder: str = "the builder"  # who wrote it, for messages: "buildah" when it says so


def tag_problem(reference: str) -> str | None:
    """'latest' or 'no tag' when the reference floats on the default tag."""
    if DIGEST_PIN.search(reference):
        return None
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last:
        return "no tag (means :latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return ":latest"
    return None


def dockerfile_froms(text: str) -> list[tuple[int, str, str | None]]:
    """(line, image, stage alias) for each FROM, joining continuation lines."""
    result: list[tuple[int, str, str | None]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i
        line = lines[i]
        while line.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line.rstrip()[:-1] + " " + lines[i]
        i += 1
        m = FROM_LINE.match(line)
        if not m:
            continue
        words = [w for w in m.group("rest").split() if not w.startswith("--")]
        if not words:
            continue
        alias = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
        result.append((start + 1, words[0], alias))
    return result


class BaseImageAnalyzer(ImageAnalyzer):
    id = "base-image"
    version = 1

    def analyze(
        self, image: Image, platform: PlatformImage, context: ImageContext
    ) -> Iterable[Finding]:
        bases = self._declared(image, platform)
        found = [f for b in bases if (f := self._unpinned(b)) is not None]
        if context.dockerfile is not None:  # the Dockerfile answers what the image cannot
            found = [f for f in found if f.rule_id != "base-image-pin-unknown"]
        if context.dockerfile is not None and platform is image.platforms[0]:
            found += self._dockerfile(context.dockerfile, context.dockerfile_name or "Dockerfile")
        elif not bases:
            found.append(
                Finding(
                    rule_id="base-image-unknown",
                    title="The image does not say which base image it was built from",
                    severity=Severity.INFO,
                    category=Category.SUPPLY_CHAIN,
                    location=Location(kind=LocationKind.IMAGE, field="base image"),
                    match="no base.name annotation or label, no provenance",
                    description=(
                        "Pinning cannot be checked. Pass the Dockerfile with --dockerfile, or "
                        "build with provenance (docker buildx --provenance) or with the "
                        "org.opencontainers.image.base.name/.base.digest annotations."
                    ),
                )
            )
        return found

    def _declared(self, image: Image, platform: PlatformImage) -> list[BaseRef]:
        labels = platform.runtime.get("Labels")
        labels = labels if isinstance(labels, dict) else {}
        sources = (
            ("annotation", platform.annotations, "manifest.annotations"),
            ("annotation", image.index_annotations, "index.annotations"),
            ("label", labels, "config.Labels"),
        )
        for origin, values, prefix in sources:
            name = values.get(BASE_NAME_KEY)
            if name:
                digest = values.get(BASE_DIGEST_KEY)
                where = Location(
                    kind=LocationKind.MANIFEST if origin == "annotation" else LocationKind.CONFIG,
                    field=f"{prefix}[{BASE_NAME_KEY}]",
                )
                builder = "buildah" if BUILDAH_LABEL in labels else "the builder"
                return [BaseRef(str(name), str(digest) if digest else None, where, origin, builder)]
        return [
            BaseRef(
                name,
                digest,
                Location(kind=LocationKind.MANIFEST, field="attestation provenance materials"),
                "provenance",
            )
            for name, digest in platform.provenance_bases
        ]

    def _unpinned(self, base: BaseRef) -> Finding | None:
        name = base.name
        if DIGEST_PIN.search(name):
            return None
        if base.origin != "provenance" and base.digest:
            return self._pin_unknown(base)
        moving = tag_problem(name)
        detail = f" ({moving})" if moving else ""
        resolved = f"; it resolved to {base.digest} at build time" if base.digest else ""
        return Finding(
            rule_id="unpinned-base-image",
            title=f"Base image {name} is not pinned by digest{detail}",
            severity=Severity.MEDIUM if moving else Severity.LOW,
            category=Category.SUPPLY_CHAIN,
            location=base.where,
            match=name,
            description=(
                f"The {base.origin} names the base by tag{resolved}. A tag can move: the next "
                "build may get different, unreviewed content. Pin it: FROM name:tag@sha256:..."
            ),
        )

    def _pin_unknown(self, base: BaseRef) -> Finding:
        """A name without digest next to a recorded digest: no proof either way."""
        name = base.name[:200]
        return Finding(
            rule_id="base-image-pin-unknown",
            title=f"Whether base image {name} was pinned cannot be told from the image",
            severity=Severity.INFO,
            category=Category.SUPPLY_CHAIN,
            location=base.where,
            match=f"{name} (recorded digest {(base.digest or '')[:80]})",
            description=(
                f"The {base.origin} names the base by tag and {base.builder} recorded the "
                "digest it resolved to; builders such as buildah and podman write both "
                "whether or not the FROM line was pinned (with --layers the digest can be "
                "that of an intermediate image). Pass the Dockerfile with --dockerfile to "
                "check each FROM."
            ),
        )

    def _dockerfile(self, text: str, filename: str) -> list[Finding]:
        found = []
        stages: set[str] = set()
        for line, ref, alias in dockerfile_froms(text):
            if ref.lower() in stages or ref.lower() == "scratch":
                if alias:
                    stages.add(alias.lower())
                continue
            if alias:
                stages.add(alias.lower())
            if DIGEST_PIN.search(ref):
                continue
            location = Location(
                kind=LocationKind.DOCKERFILE, path=None, line=line, field=f"{filename}:{line}"
            )
            if "$" in ref:
                found.append(
                    Finding(
                        rule_id="unpinned-base-image",
                        title=f"FROM {ref} depends on a build argument; pinning not checked",
                        severity=Severity.INFO,
                        category=Category.SUPPLY_CHAIN,
                        location=location,
                        match=ref,
                    )
                )
                continue
            moving = tag_problem(ref)
            found.append(
                Finding(
                    rule_id="unpinned-base-image",
                    title=f"FROM {ref} is not pinned by digest"
                    + (f" ({moving})" if moving else ""),
                    severity=Severity.MEDIUM if moving else Severity.LOW,
                    category=Category.SUPPLY_CHAIN,
                    location=location,
                    match=ref,
                    description="Pin the base image: FROM name:tag@sha256:<digest>.",
                )
            )
        return found

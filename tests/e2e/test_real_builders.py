"""Images built by real builders from realistic Dockerfiles, scanned from every source
their builder can produce, against a hand-written truth.

Builders: Docker 20.10's classic builder and BuildKit (Debian's ``docker`` client against
the suite's dockerd), and Debian's buildah 1.28 with ``--layers`` and in its default
single-layer mode (``--isolation chroot``, private vfs storage). One shared base image, a
cut-down ``debootstrap --variant=minbase`` root (tests/infra/builders.py), is pushed to
the suite's registry so that FROM lines can pin it by digest.

Sources: Docker-built images from ``docker save``, the engine (``docker:``) and the
registry (``docker push``); buildah-built images from ``buildah push`` to ``oci:``,
``docker-archive:`` and the registry. Every source of one image must give the same
report, except what a source cannot carry (a docker archive has no manifest, so the
base-image annotations buildah writes there are lost: said explicitly below).
"""

from __future__ import annotations

import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fixtures.fakesecrets import fly_token, github_pat, stripe_live_key
from scanner.findings import Finding, hash_secret
from scanner.results import ImageResult
from scanner.scan import Scanner, ScanOptions
from tests.conftest import TEST_FINGERPRINT_KEY
from tests.infra.builders import (
    BaseRoot,
    Buildah,
    BuilderUnavailable,
    BuildFailed,
    DockerCli,
    base_root,
)
from tests.infra.registry import Registry

pytestmark = pytest.mark.engine

FLY = fly_token(1501)  # "FlyV1 fm2_...,fm2_...": a build argument whose value holds a space
STRIPE = stripe_live_key(1502)  # ENV
GITHUB = github_pat(1503)  # in .env: COPY then RUN rm
MOUNTED = stripe_live_key(1504)  # RUN --mount=type=secret: must be nowhere in the image
DB_PASSWORD = "Vq8rT2wLz5nK"  # fly.toml [env] DATABASE_URL

APP = """\
FROM {base_tag}
ARG FLY_API_TOKEN
ENV STRIPE_API_KEY={stripe}
COPY .env fly.toml /app/
RUN rm /app/.env
"""
FLY_TOML = f"""\
app = "ll-real"
primary_region = "ams"

[env]
  LOG_LEVEL = "info"
  DATABASE_URL = "postgres://app:{DB_PASSWORD}@db.internal:5432/app"
"""
MULTISTAGE = """\
FROM {base_pinned} AS build
COPY .env artifact.txt /src/
FROM {base_pinned}
COPY --from=build /src/artifact.txt /app/
USER 1000
"""
SECRET_MOUNT = """\
FROM {base_pinned}
RUN --mount=type=secret,id=api_key test -s /run/secrets/api_key && echo used > /secret-used
"""
CONTEXTS = {"app": APP, "multistage": MULTISTAGE, "secretmount": SECRET_MOUNT}
BUILDERS = ("classic", "buildkit", "buildah-layers", "buildah")
# The classic builder has no RUN --mount.
BASE = ("base", "docker", "registry")
BUILDS = [(c, b) for c in CONTEXTS for b in BUILDERS if (c, b) != ("secretmount", "classic")]


@dataclass
class Built:
    context: str
    builder: str
    tag: str
    sources: dict[str, str] = field(default_factory=dict)  # kind -> source text


@dataclass
class Bench:
    root: BaseRoot
    registry: str
    base_tag: str
    base_pinned: str
    docker: DockerCli
    buildah: Buildah | None
    unavailable: dict[str, str]  # builder -> why it cannot build here
    images: dict[tuple[str, str], Built]
    work: Path
    timings: dict[str, float]
    failed: dict[tuple[str, str], str] = field(default_factory=dict)


def _contexts(work: Path, base_tag: str, base_pinned: str) -> dict[str, Path]:
    for name, text in CONTEXTS.items():
        ctx = work / "ctx" / name
        ctx.mkdir(parents=True)
        (ctx / "Dockerfile").write_text(
            text.format(base_tag=base_tag, base_pinned=base_pinned, stripe=STRIPE)
        )
        (ctx / ".env").write_text(f"GITHUB_TOKEN={GITHUB}\nLOG_LEVEL=debug\n")
        (ctx / "fly.toml").write_text(FLY_TOML)
        (ctx / "artifact.txt").write_text("built\n")
    (work / "api_key").write_text(MOUNTED + "\n")
    return {n: work / "ctx" / n for n in CONTEXTS}


def _build_docker(bench: Bench, ctx: Path, context: str, builder: str) -> Built:
    tag = f"{bench.registry}/ll-real/{context}:{builder}"
    bench.docker.build(
        ctx,
        tag,
        buildkit=builder == "buildkit",
        build_args={"FLY_API_TOKEN": FLY} if context == "app" else None,
        secrets={"api_key": bench.work / "api_key"} if context == "secretmount" else None,
    )
    built = Built(context, builder, tag)
    archive = bench.work / "out" / f"{context}-{builder}.tar"
    bench.docker("save", "-o", str(archive), tag)
    bench.docker("push", tag)
    built.sources = {
        "docker-archive": f"docker-archive:{archive}",
        "docker-daemon": f"docker:{tag}",
        "registry": tag,
    }
    return built


def _build_buildah(bench: Bench, ctx: Path, context: str, builder: str) -> Built:
    assert bench.buildah is not None
    tag = f"{bench.registry}/ll-real/{context}:{builder}"
    bench.buildah.build(
        ctx,
        tag,
        layers=builder == "buildah-layers",
        build_args={"FLY_API_TOKEN": FLY} if context == "app" else None,
        secrets={"api_key": bench.work / "api_key"} if context == "secretmount" else None,
    )
    built = Built(context, builder, tag)
    layout = bench.work / "out" / f"{context}-{builder}-oci"
    archive = bench.work / "out" / f"{context}-{builder}.tar"
    bench.buildah.push(tag, f"oci:{layout}:{builder}")
    bench.buildah.push(tag, f"docker-archive:{archive}:{tag}")
    bench.buildah.push(tag, f"docker://{tag}")
    built.sources = {
        "oci": f"oci:{layout}",
        "docker-archive": f"docker-archive:{archive}",
        "registry": tag,
    }
    return built


@pytest.fixture(scope="session")
def bench(
    docker_engine: str,
    registry_anonymous: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Bench]:
    """Build every image once per session (Docker builds and buildah builds in parallel)."""
    timings: dict[str, float] = {}
    began = time.monotonic()
    root = base_root()
    timings["base root"] = time.monotonic() - began
    work = tmp_path_factory.mktemp("real-builders")
    (work / "out").mkdir()
    (work / "docker-config").mkdir()
    docker = DockerCli(docker_engine, config_dir=work / "docker-config")
    registry = f"{registry_anonymous.host}:{registry_anonymous.port}"
    base_tag = f"{registry}/ll/minbase:bookworm"
    began = time.monotonic()
    with open(root.tar, "rb") as fh:
        from tests.infra.builders import run

        run(
            [docker.binary, "import", "-", base_tag],
            env={"DOCKER_HOST": docker_engine},
            stdin=fh.read(),
        )
    docker("push", base_tag)
    repo_digest = docker("image", "inspect", "--format", "{{index .RepoDigests 0}}", base_tag)
    base_pinned = repo_digest.strip()
    timings["base image"] = time.monotonic() - began
    try:
        buildah: Buildah | None = Buildah.create(Path(tempfile.mkdtemp(prefix="llbh-", dir="/tmp")))
        unavailable = {}
    except BuilderUnavailable as exc:
        buildah = None
        unavailable = {"buildah-layers": str(exc), "buildah": str(exc)}
    if root.reason:
        warnings.warn(
            f"real-builder base image made from host binaries: {root.reason}", stacklevel=1
        )
    bench = Bench(
        root, registry, base_tag, base_pinned, docker, buildah, unavailable, {}, work, timings
    )
    contexts = _contexts(work, base_tag, base_pinned)

    def run_builds(builders: tuple[str, ...], build: Callable[..., Built]) -> None:
        """Build in order; a builder whose first build fails cannot build here (its tests
        skip with the error); a later failure is an error of the tests that need it."""
        for builder in builders:
            first = True
            for context, b in BUILDS:
                if b != builder or builder in unavailable:
                    continue
                t0 = time.monotonic()
                try:
                    bench.images[(context, builder)] = build(
                        bench, contexts[context], context, builder
                    )
                except BuildFailed as exc:
                    if first:
                        unavailable[builder] = f"{builder} cannot build here: {exc}"
                    else:
                        failed[(context, builder)] = str(exc)
                first = False
                timings[f"{context}/{builder}"] = time.monotonic() - t0

    failed: dict[tuple[str, str], str] = {}
    with ThreadPoolExecutor(3) as pool:
        jobs = [
            pool.submit(run_builds, ("classic",), _build_docker),
            pool.submit(run_builds, ("buildkit",), _build_docker),
            pool.submit(run_builds, ("buildah-layers", "buildah"), _build_buildah),
        ]
        try:
            for job in jobs:
                job.result()
        except BaseException:
            if buildah is not None:
                buildah.remove_storage()
            raise
    bench.failed = failed
    print("\nreal builders:", ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    yield bench
    if buildah is not None:
        buildah.remove_storage()


@pytest.fixture(scope="session")
def scanner(tmp_path_factory: pytest.TempPathFactory) -> Scanner:
    cache = tmp_path_factory.mktemp("real-builders-cache")
    return Scanner(ScanOptions(jobs=1, cache_dir=cache, reveal=False))


@pytest.fixture(scope="session")
def reports(
    bench: Bench, scanner: Scanner, docker_engine: str
) -> dict[tuple[str, str, str], ImageResult]:
    """Every built image scanned from every source it has."""
    out = {}
    mp = pytest.MonkeyPatch()
    mp.setenv("DOCKER_HOST", docker_engine)
    try:
        out[BASE] = scanner.scan(bench.base_tag)
        for (context, builder), built in bench.images.items():
            for kind, text in built.sources.items():
                out[(context, builder, kind)] = scanner.scan(text)
    finally:
        mp.undo()
        scanner.close()
    return out


def _need(bench: Bench, builder: str, context: str | None = None) -> None:
    if builder in bench.unavailable:
        pytest.skip(bench.unavailable[builder])
    if context is not None and (context, builder) in bench.failed:
        pytest.fail(f"{context} with {builder}: {bench.failed[(context, builder)]}")


# --- the truth ------------------------------------------------------------------------------
#
# Written by hand from the Dockerfiles above. One row per expected finding:
# (rule id, severity, location kind, where, layer made by, status). "where" is the file
# path, or the field without its history index. "layer made by" is a piece of the build
# step recorded for the layer (or, for a history finding on an empty step, of that step);
# "" when the finding is not tied to a step. The base image's own findings (layer 0) are
# not listed: they must be those of the base image scanned alone.

Row = tuple[str, str, str, str, str, str]
BUILDAH_BASE = ("manifest", "manifest.annotations[org.opencontainers.image.base.name]")


def truth(context: str, builder: str, source: str) -> set[Row]:
    squashed = builder == "buildah"  # buildah's default: one layer on the last step
    if builder.startswith("buildah") and source != "docker-archive":
        base: Row = ("base-image-pin-unknown", "info", *BUILDAH_BASE, "", "n/a")
    else:  # Docker records no base; a docker archive has no manifest for buildah's annotations
        base = ("base-image-unknown", "info", "image", "base image", "", "n/a")
    health: Row = ("no-healthcheck", "low", "config", "config.Healthcheck", "", "n/a")
    root: Row = ("root-user", "medium", "config", "config.User", "", "n/a")
    if context == "app":
        copied = "rm /app/.env" if squashed else "COPY"
        rows = {
            base,
            health,
            root,
            # one finding holding the whole "FlyV1 fm2_...,fm2_..." build argument
            (
                "flyio-api-token",
                "critical",
                "history",
                "Build argument FLY_API_TOKEN",
                "rm /app/.env",
                "n/a",
            ),
            ("stripe-live-secret-key", "critical", "config", "config.Env[1]", "", "n/a"),
            (
                "stripe-live-secret-key",
                "critical",
                "history",
                "ENV step STRIPE_API_KEY",
                "ENV STRIPE_API_KEY=",
                "n/a",
            ),
            ("postgres-connection-url", "high", "file", "app/fly.toml", copied, "present"),
            # the same value, as a secret under fly.toml's [env] (belongs in fly secrets)
            ("flytoml-env-secret", "high", "file", "app/fly.toml", copied, "present"),
        }
        if not squashed:  # COPY .env then RUN rm: recoverable from the COPY layer
            rows |= {
                ("env-file", "high", "file", "app/.env", "COPY", "deleted"),
                ("github-personal-access-token", "critical", "file", "app/.env", "COPY", "deleted"),
            }
        return rows
    if context == "multistage":  # the .env stayed in the build stage; USER 1000
        return {base, health}
    return {base, health, root}  # secretmount: the mounted secret is in no layer


def layers_truth(context: str, builder: str) -> list[str]:
    """What made each layer above the base: a piece of its build step."""
    if context == "app":
        return ["rm /app/.env"] if builder == "buildah" else ["COPY", "rm /app/.env"]
    if context == "multistage":
        return ["USER 1000"] if builder == "buildah" else ["COPY"]
    return ["echo used > /secret-used"]


def _where(f: Finding) -> str:
    loc = f.location
    if loc.path is not None:
        return loc.path
    return re.sub(r"^history\[\d+\] ", "", loc.field or "")


def observed(result: ImageResult) -> set[tuple[str, ...]]:
    return {
        (
            f.rule_id,
            f.severity.label,
            f.location.kind.value,
            _where(f),
            f.location.created_by or "",
            f.status.state.value,
        )
        for f in result.findings
        if f.location.layer_index != 0
    }


def matches(expected: set[Row], got: set[tuple[str, ...]]) -> bool:
    """A one-to-one match where 'layer made by' is a piece of what was recorded."""
    if len(expected) != len(got):
        return False
    remaining = sorted(got)
    for row in sorted(expected):
        hit = next(
            (g for g in remaining if g[:4] == row[:4] and g[5] == row[5] and row[4] in g[4]),
            None,
        )
        if hit is None or (row[4] == "" and hit[4] and row[2] != "history"):
            return False
        remaining.remove(hit)
    return True


# --- tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("context", "builder"), BUILDS)
def test_findings_match_the_truth(
    bench: Bench,
    reports: dict[tuple[str, str, str], ImageResult],
    context: str,
    builder: str,
) -> None:
    _need(bench, builder, context)
    base = {
        (f.rule_id, f.location.path, f.status.state.value)
        for f in reports[BASE].findings
        if f.location.path
    }
    for kind in bench.images[(context, builder)].sources:
        result = reports[(context, builder, kind)]
        assert result.problems == [], (kind, result.problems)
        expected = truth(context, builder, kind)
        got = observed(result)
        assert matches(expected, got), (kind, sorted(expected), sorted(got))
        (platform,) = result.platforms
        made_by = [layer.created_by or "" for layer in platform.layers[1:]]
        assert len(made_by) == len(layers_truth(context, builder)), (kind, made_by)
        assert all(w in m for w, m in zip(layers_truth(context, builder), made_by, strict=True))
        in_base = {
            (f.rule_id, f.location.path, f.status.state.value)
            for f in result.findings
            if f.location.layer_index == 0
        }
        assert in_base == base, kind


def view(result: ImageResult) -> list[tuple[Any, ...]]:
    """What must not depend on the source: each finding's identity, place and status, and
    each layer's position, diff_id, entries and build step."""
    findings = sorted(
        (
            f.rule_id,
            f.severity.label,
            f.fingerprint,
            f.status.state.value,
            f.status.changed_in_layer,
            f.location.layer_index,
            f.location.diff_id,
            f.location.path,
            f.location.created_by,
            f.location.history_index,
            f.match,
        )
        for f in result.findings
        if not f.rule_id.startswith("base-image")
    )
    layers = [
        (layer.index, layer.diff_id, layer.entries, layer.created_by, layer.history_index)
        for p in result.platforms
        for layer in p.layers
    ]
    return [*findings, *layers]


@pytest.mark.parametrize(("context", "builder"), BUILDS)
def test_every_source_gives_the_same_report(
    bench: Bench,
    reports: dict[tuple[str, str, str], ImageResult],
    context: str,
    builder: str,
) -> None:
    _need(bench, builder, context)
    kinds = list(bench.images[(context, builder)].sources)
    first = view(reports[(context, builder, kinds[0])])
    for kind in kinds[1:]:
        assert view(reports[(context, builder, kind)]) == first, kind


@pytest.mark.parametrize("builder", [b for b in BUILDERS])
def test_fly_build_arg_is_one_whole_finding_with_one_fingerprint(
    bench: Bench, reports: dict[tuple[str, str, str], ImageResult], builder: str
) -> None:
    _need(bench, builder, "app")
    _need(bench, "classic", "app")
    result = reports[("app", builder, "registry")]
    fly = [
        f
        for f in result.findings
        if f.location.kind.value == "history" and "FLY" in (f.location.field or "")
    ]
    assert len(fly) == 1
    assert fly[0].secret_hash == hash_secret(
        FLY, TEST_FINGERPRINT_KEY
    )  # the whole "FlyV1 fm2_...,fm2_..." value
    docker = [
        f
        for f in reports[("app", "classic", "registry")].findings
        if f.rule_id == fly[0].rule_id
        and f.location.kind.value == "history"
        and "FLY" in (f.location.field or "")
    ]
    assert [f.fingerprint for f in docker] == [fly[0].fingerprint]


def test_mounted_secret_is_nowhere(
    bench: Bench, reports: dict[tuple[str, str, str], ImageResult]
) -> None:
    """RUN --mount=type=secret leaves nothing: no finding holds it, no file is left where
    it was mounted, in any build, from any source."""
    mounted = hash_secret(MOUNTED, TEST_FINGERPRINT_KEY)
    checked = 0
    for (context, _builder, _kind), result in reports.items():
        assert all(f.secret_hash != mounted for f in result.findings)
        if context == "secretmount":
            checked += 1
            assert not [
                f for f in result.findings if (f.location.path or "").startswith("run/secrets/")
            ]
    assert checked >= 3


def test_docker_save_of_two_images(bench: Bench, scanner: Scanner) -> None:
    _need(bench, "classic", "app")
    _need(bench, "classic", "multistage")
    app = bench.images[("app", "classic")].tag
    multi = bench.images[("multistage", "classic")].tag
    archive = bench.work / "out" / "two.tar"
    bench.docker("save", "-o", str(archive), app, multi)
    both = scanner.scan_source(f"docker-archive:{archive}")
    assert [r.tags for r in both] == [[app], [multi]] or [r.tags for r in both] == [[multi], [app]]
    by_tag = {r.tags[0]: r for r in both}
    for tag, result in by_tag.items():  # each its own image: its config digest is its id
        image_id = bench.docker("image", "inspect", "--format", "{{.Id}}", tag).strip()
        assert [p.config_digest for p in result.platforms] == [image_id]
    single = {
        t: scanner.scan(bench.images[(c, "classic")].sources["docker-archive"])
        for c, t in (("app", app), ("multistage", multi))
    }
    for tag, result in by_tag.items():
        assert view(result) == view(single[tag])
        assert result.name == f"docker-archive:{archive}:{tag}"
        (picked,) = scanner.scan_source(f"docker-archive:{archive}:{tag}")
        assert view(picked) == view(single[tag])
    scanner.close()

import pytest

from scanner.analyzers.base_image import dockerfile_froms, tag_problem

PIN = "@sha256:" + "a" * 64


def test_dockerfile_froms() -> None:
    text = (
        "FROM --platform=$BUILDPLATFORM golang:1.22 AS build\n"
        "RUN make\n"
        "FROM \\\n  debian\n"
        f"FROM python:3.12{PIN}\n"
        "from build as final\n"
    )
    assert dockerfile_froms(text) == [
        (1, "golang:1.22", "build"),
        (3, "debian", None),
        (5, f"python:3.12{PIN}", None),
        (6, "build", "final"),
    ]


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("debian", "no tag (means :latest)"),
        ("debian:latest", ":latest"),
        ("registry:5000/team/app", "no tag (means :latest)"),
        ("registry:5000/team/app:1.2", None),
        (f"debian{PIN}", None),
        ("python:3.12-slim", None),
    ],
)
def test_tag_problem(ref: str, problem: str | None) -> None:
    assert tag_problem(ref) == problem


# --- what the builder recorded (issue 15 item 4) ---------------------------------------------

from scanner.analyzers.base_image import BaseImageAnalyzer  # noqa: E402
from scanner.analyzers.interface import ImageContext  # noqa: E402
from scanner.detection import Detection  # noqa: E402
from scanner.image import BASE_DIGEST_KEY, BASE_NAME_KEY, Image, Platform, PlatformImage  # noqa: E402
from scanner.signatures import SignatureSet  # noqa: E402

DIGEST = "sha256:" + "b" * 64


def _image(annotations: dict[str, str], labels: dict[str, str]) -> tuple[Image, PlatformImage]:
    platform = PlatformImage(
        platform=Platform("linux", "amd64"),
        manifest_digest=None,
        manifest={},
        config_digest=None,
        config={"config": {"Labels": labels}},
        layers=[],
        history=[],
        annotations=annotations,
    )
    return Image(name="x", source_kind="oci", platforms=[platform]), platform


def _rules(
    annotations: dict[str, str], labels: dict[str, str], dockerfile: str | None = None
) -> list[tuple[str, str]]:
    image, platform = _image(annotations, labels)
    analyzer = BaseImageAnalyzer(Detection(SignatureSet.load()))
    found = analyzer.analyze(image, platform, ImageContext(dockerfile=dockerfile))
    return [(f.rule_id, f.severity.label) for f in found]


BUILDAH = {"io.buildah.version": "1.28.2"}


@pytest.mark.parametrize(
    ("annotations", "labels", "expected"),
    [
        # buildah, FROM pinned or not: the same tag and resolved digest either way
        (
            {BASE_NAME_KEY: "127.0.0.1:5000/ll/minbase:bookworm", BASE_DIGEST_KEY: DIGEST},
            BUILDAH,
            [("base-image-pin-unknown", "info")],
        ),
        # any builder: a resolved digest next to a tag is not proof of a pin
        (
            {BASE_NAME_KEY: "debian:bookworm", BASE_DIGEST_KEY: DIGEST},
            {},
            [("base-image-pin-unknown", "info")],
        ),
        # the name itself carries the digest: pinned
        ({BASE_NAME_KEY: f"debian:bookworm@{DIGEST}", BASE_DIGEST_KEY: DIGEST}, BUILDAH, []),
        # a name without digest and nothing resolved: floating
        ({BASE_NAME_KEY: "debian:bookworm"}, {}, [("unpinned-base-image", "low")]),
        ({BASE_NAME_KEY: "debian"}, BUILDAH, [("unpinned-base-image", "medium")]),
        # classic builder, BuildKit without provenance: nothing recorded
        ({}, {}, [("base-image-unknown", "info")]),
    ],
)
def test_pinning_by_what_was_recorded(
    annotations: dict[str, str], labels: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    assert _rules(annotations, labels) == expected


def test_dockerfile_decides_for_buildah_images() -> None:
    annotations = {BASE_NAME_KEY: "127.0.0.1:5000/ll/minbase:bookworm", BASE_DIGEST_KEY: DIGEST}
    pinned = f"FROM 127.0.0.1:5000/ll/minbase@{DIGEST}\n"
    assert _rules(annotations, BUILDAH, pinned) == []
    floating = "FROM 127.0.0.1:5000/ll/minbase:bookworm\n"
    assert _rules(annotations, BUILDAH, floating) == [("unpinned-base-image", "low")]


@pytest.mark.parametrize(
    "name",
    ["", " ", "x" * 5000, "\x1b[31mdebian", "debian@sha256:zz"],
)
def test_hostile_base_names(name: str) -> None:
    found = _rules({BASE_NAME_KEY: name, BASE_DIGEST_KEY: "junk"}, BUILDAH)
    assert len(found) == 1

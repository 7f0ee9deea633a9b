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

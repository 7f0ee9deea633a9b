import pytest

from scanner.analyzers.history import parse_build_args, parse_instruction, pipe_to_shell


@pytest.mark.parametrize(
    ("created_by", "args", "command"),
    [
        (
            "RUN |2 NPM_TOKEN=npm_abc OTHER=1 /bin/sh -c npm ci # buildkit",
            [("NPM_TOKEN", "npm_abc"), ("OTHER", "1")],
            "/bin/sh -c npm ci # buildkit",
        ),
        ("|1 TOKEN=x /bin/sh -c make", [("TOKEN", "x")], "/bin/sh -c make"),
        ("/bin/sh -c make", [], "/bin/sh -c make"),
        ("RUN |1 EMPTY= /bin/sh -c true # buildkit", [("EMPTY", "")], "/bin/sh -c true # buildkit"),
        (
            "RUN |2 FLY_API_TOKEN=FlyV1 fm2_a,fm2_b MODE=prod /bin/sh -c fly deploy # buildkit",
            [("FLY_API_TOKEN", "FlyV1 fm2_a,fm2_b"), ("MODE", "prod")],
            "/bin/sh -c fly deploy # buildkit",
        ),
        ("|1 A=x y /bin/bash -c run", [("A", "x y")], "/bin/bash -c run"),
    ],
)
def test_build_args(created_by: str, args: list[tuple[str, str]], command: str) -> None:
    assert parse_build_args(created_by) == (args, command)


@pytest.mark.parametrize(
    ("created_by", "expected"),
    [
        ("ENV A=1 B=two", ("ENV", [("A", "1"), ("B", "two")])),
        ('/bin/sh -c #(nop)  ENV KEY="a b"', ("ENV", [("KEY", "a b")])),
        (
            "/bin/sh -c #(nop)  ENV LEGACY value with spaces",
            ("ENV", [("LEGACY", "value with spaces")]),
        ),
        ("ARG TOKEN=abc", ("ARG", [("TOKEN", "abc")])),
        ("ARG TOKEN", ("ARG", [("TOKEN", "")])),
        ("LABEL a=b # buildkit", ("LABEL", [("a", "b")])),
        ("RUN /bin/sh -c env", None),
    ],
)
def test_instructions(created_by: str, expected: object) -> None:
    assert parse_instruction(created_by) == expected


@pytest.mark.parametrize(
    ("command", "flagged"),
    [
        ("curl -fsSL https://get.example.sh | sh", True),
        ("wget -qO- https://x.io/install | sudo bash", True),
        ("curl https://x | python3 -", True),
        ("curl -o /tmp/i.sh https://x && sha256sum -c sums && sh /tmp/i.sh", False),
        ("apt-get install -y curl", False),
        ("curl https://x || sh fallback.sh", False),
        ("curl -sL https://x | env A=1 B=2 bash -s", True),
        ("fetch -o - https://x | sudo -E sh", True),
    ],
)
def test_pipe_to_shell(command: str, flagged: bool) -> None:
    assert (pipe_to_shell(command) is not None) is flagged


# --- the exact strings each builder writes (issue 15 item 1) ---------------------------------
# Same Dockerfile (ARG FLY_API_TOKEN, ARG MODE=prod, RUN echo building $MODE && rm /app/.env),
# built with --build-arg "FLY_API_TOKEN=FlyV1 fm2_aaa,fm2_bbb": Docker 20.10's classic builder
# and BuildKit count arguments, buildah 1.28 counts the words of "K=V K=V".
RUN_CMD = "echo building $MODE && rm /app/.env"
FLY = "FlyV1 fm2_aaa,fm2_bbb"
BUILDER_STRINGS = {
    "classic": f"|2 FLY_API_TOKEN={FLY} MODE=prod /bin/sh -c {RUN_CMD}",
    "buildkit": f"RUN |2 FLY_API_TOKEN={FLY} MODE=prod /bin/sh -c {RUN_CMD} # buildkit",
    "buildah": f"|3 FLY_API_TOKEN={FLY} MODE=prod /bin/sh -c {RUN_CMD}",
}


@pytest.mark.parametrize("builder", sorted(BUILDER_STRINGS))
def test_each_builders_convention(builder: str) -> None:
    args, command = parse_build_args(BUILDER_STRINGS[builder])
    assert args == [("FLY_API_TOKEN", FLY), ("MODE", "prod")]
    assert command.startswith(f"/bin/sh -c {RUN_CMD}")


@pytest.mark.parametrize(
    ("created_by", "args", "command"),
    [
        # buildah, one argument whose value holds a space: N=2 words, one NAME=
        (
            f"|2 FLY_API_TOKEN={FLY} /bin/sh -c fly deploy",
            [("FLY_API_TOKEN", FLY)],
            "/bin/sh -c fly deploy",
        ),
        # buildah, a value with two spaces, then another argument
        ("|4 A=x y z B=1 /bin/sh -c make", [("A", "x y z"), ("B", "1")], "/bin/sh -c make"),
        # after SHELL ["/bin/bash", "-o", "pipefail", "-c"]
        ("|1 A=b /bin/bash -o pipefail -c make", [("A", "b")], "/bin/bash -o pipefail -c make"),
        # exec form
        ('|1 A=b ["make","all"]', [("A", "b")], '["make","all"]'),
        # more NAME= words than Docker's N: they belong to the last value
        ("|1 A=x B=y /bin/sh -c make", [("A", "x B=y")], "/bin/sh -c make"),
        # no command start found: at most N words
        ("|2 A=x y", [("A", "x y")], ""),
        ("|1 A=x y", [("A", "x")], "y"),
        ("|2 A=1 B=2", [("A", "1"), ("B", "2")], ""),
        # hostile or odd
        ("|0 /bin/sh -c true", [], "/bin/sh -c true"),
        ("|99999 A=1 /bin/sh -c x", [("A", "1")], "/bin/sh -c x"),
        ("|3 not-an-arg /bin/sh -c x", [], "not-an-arg /bin/sh -c x"),
        ("|1 A=" + "v" * 100_000 + " /bin/sh -c x", [("A", "v" * 100_000)], "/bin/sh -c x"),
    ],
)
def test_word_counted_and_odd_forms(
    created_by: str, args: list[tuple[str, str]], command: str
) -> None:
    assert parse_build_args(created_by) == (args, command)


def test_fly_token_is_one_finding_with_the_docker_fingerprint() -> None:
    from fixtures.fakesecrets import fly_token
    from scanner.analyzers.history import HistoryAnalyzer
    from scanner.analyzers.interface import ImageContext
    from scanner.detection import Detection
    from scanner.image import HistoryStep, Image, Platform, PlatformImage
    from scanner.signatures import SignatureSet

    token = fly_token(15)
    strings = {
        # (history index differs: buildah writes its own base entries)
        "classic": (5, f"|1 FLY_API_TOKEN={token} /bin/sh -c fly deploy"),
        "buildkit": (5, f"RUN |1 FLY_API_TOKEN={token} /bin/sh -c fly deploy # buildkit"),
        "buildah": (3, f"|2 FLY_API_TOKEN={token} /bin/sh -c fly deploy"),
    }
    detection = Detection(SignatureSet.load(), reveal=True)
    seen = {}
    for builder, (index, text) in strings.items():
        step = HistoryStep(index, text, "", None, True, None)
        platform = PlatformImage(Platform("linux", "amd64"), None, {}, None, {}, [], [step])
        image = Image("x", "oci", [platform])
        found = list(HistoryAnalyzer(detection).analyze(image, platform, ImageContext()))
        assert len(found) == 1, (builder, [(f.rule_id, f.match) for f in found])
        assert found[0].secret == token
        seen[builder] = (found[0].rule_id, found[0].fingerprint)
    assert len(set(seen.values())) == 1, seen

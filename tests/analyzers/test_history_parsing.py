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

"""Every ``layerleak`` command and option the recipes in ``examples/`` use exists in the
CLI (``scanner.cli.main``), and every value given to a choice option is a valid choice.

The recipes are parsed, not run: shell scripts as they are, YAML files through the
strings under their ``run:`` and ``script:`` keys. Each ``layerleak`` invocation is
split with :mod:`shlex` up to the first shell operator and checked against the Click
command tree.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from scanner.findings import Category

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RECIPES = sorted(
    p for p in EXAMPLES.iterdir() if p.suffix in (".yml", ".yaml", ".sh") and p.is_file()
)
OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&", "(", ")", "2>", "2>&1", "$(", "`"}


@dataclass(frozen=True)
class Invocation:
    recipe: str
    words: tuple[str, ...]  # after "layerleak"

    def __str__(self) -> str:
        return f"{self.recipe}: layerleak {' '.join(self.words)}"


SHELL_KEYS = {"run", "script", "before_script", "after_script"}  # GitHub Actions, GitLab CI


def _strings(node: Any, shell: bool = False) -> Iterator[str]:
    """The shell text in a CI file: strings under ``run:`` / ``script:`` keys."""
    if isinstance(node, str):
        if shell:
            yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, shell or key in SHELL_KEYS)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value, shell)


def _shell_texts(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".sh":
        return [text]
    return list(_strings(yaml.safe_load(text)))


def _words(command_text: str) -> list[str]:
    lexer = shlex.shlex(command_text, posix=True, punctuation_chars="|&;<>()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def invocations(path: Path) -> list[Invocation]:
    found = []
    for text in _shell_texts(path):
        text = text.replace("\\\n", " ")
        for line in text.splitlines():
            if line.lstrip().startswith("#") or "layerleak" not in line:
                continue
            try:
                words = _words(line)
            except ValueError:
                continue  # not shell (prose that mentions layerleak)
            for i, word in enumerate(words):
                if word != "layerleak":
                    continue
                if i > 0 and words[i - 1] not in OPERATORS and words[i - 1] not in ("|", "then"):
                    continue  # an argument that happens to be "layerleak" (pipx install ...)
                rest = []
                for w in words[i + 1 :]:
                    if w in OPERATORS or set(w) <= set("|&;<>()"):
                        break
                    rest.append(w)
                found.append(Invocation(path.name, tuple(rest)))
    return found


ALL = [inv for recipe in RECIPES for inv in invocations(recipe)]


def _main() -> click.Group:
    from scanner.cli import main

    return main


def _check(invocation: Invocation, group: click.Group) -> None:
    words = list(invocation.words)
    assert words, f"{invocation}: no subcommand"
    name = words.pop(0)
    command = group.commands.get(name)
    assert command is not None, f"{invocation}: no command {name!r} in the CLI"
    by_opt: dict[str, click.Parameter] = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in [*param.opts, *param.secondary_opts]:
                by_opt[opt] = param
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("-") or word == "-":
            continue
        opt, eq, inline = word.partition("=")
        option = by_opt.get(opt)
        assert option is not None, f"{invocation}: {name} has no option {opt}"
        assert isinstance(option, click.Option)
        if option.is_flag or option.count:
            assert not eq, f"{invocation}: {opt} is a flag and takes no value"
            continue
        value = inline if eq else (words[i] if i < len(words) else None)
        if not eq:
            i += 1
        assert value is not None, f"{invocation}: {opt} needs a value"
        if isinstance(option.type, click.Choice) and "$" not in value:
            choices = [str(c) for c in option.type.choices]
            ok = value in choices or (
                not option.type.case_sensitive and value.lower() in [c.lower() for c in choices]
            )
            assert ok, f"{invocation}: {opt} {value!r} is not one of {choices}"
        if opt == "--fail-on-category" and "$" not in value:
            known = {c.value for c in Category}
            for part in value.split(","):
                assert part in known, f"{invocation}: unknown category {part!r} ({known})"


def test_recipes_exist_and_use_layerleak() -> None:
    names = {p.name for p in RECIPES}
    assert {"github-actions-fly-deploy.yml", "promotion-gate.sh", "gitlab-ci.yml"} <= names
    for recipe in RECIPES:
        assert invocations(recipe), f"{recipe.name} runs no layerleak command"
    used = {inv.words[0] for inv in ALL}
    assert {"fly", "diff", "scan"} <= used


@pytest.mark.parametrize("invocation", ALL, ids=[str(i) for i in ALL])
def test_every_command_and_option_exists(invocation: Invocation) -> None:
    _check(invocation, _main())


def test_the_checker_catches_mistakes() -> None:
    group = click.Group(commands=[_fake()])
    _check(Invocation("x", ("fake", "--format", "json", "--flag")), group)
    for words, text in [
        (("nope",), "no command"),
        (("fake", "--nope"), "no option --nope"),
        (("fake", "--format", "xml"), "not one of"),
        (("fake", "--flag=1"), "takes no value"),
        (("fake", "--fail-on-category", "secret,secrets"), "unknown category"),
    ]:
        with pytest.raises(AssertionError, match=text):
            _check(Invocation("x", words), group)


def test_invocations_are_parsed_from_shell_and_yaml(tmp_path: Path) -> None:
    script = tmp_path / "r.sh"
    script.write_text(
        "# layerleak --not-this\n"
        "pipx install layerleak\n"
        'echo "$P" | layerleak diff a b \\\n  --fail-on high > out.md && layerleak fly x -q\n'
    )
    assert [i.words for i in invocations(script)] == [
        ("diff", "a", "b", "--fail-on", "high"),
        ("fly", "x", "-q"),
    ]
    yml = tmp_path / "r.yml"
    yml.write_text(
        "job:\n  cache: {key: layerleak}\n  script:\n    - >-\n      layerleak scan x\n"
        "      --format sarif\n"
    )
    assert [i.words for i in invocations(yml)] == [("scan", "x", "--format", "sarif")]


def _fake() -> click.Command:
    @click.command("fake")
    @click.option("--format", type=click.Choice(["json", "table"]))
    @click.option("--flag", is_flag=True)
    @click.option("--fail-on-category")
    def fake(format: str, flag: bool, fail_on_category: str) -> None:
        pass

    return fake

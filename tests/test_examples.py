"""Every ``layerleak`` command and option the recipes in ``examples/`` use exists in the
CLI (``scanner.cli.main``), and every value given to a choice option is a valid choice.
Every use of the layerleak GitHub Action (``action.yml``) gives only inputs it declares,
every required one, valid ``fail-on`` / ``format`` values, and reads only outputs it sets.

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
ACTION_YML = EXAMPLES.parent / "action.yml"
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
    assert {
        "github-actions-fly-deploy.yml",
        "github-actions-fly-deploy-action.yml",
        "promotion-gate.sh",
        "gitlab-ci.yml",
    } <= names
    for recipe in RECIPES:
        uses_it = bool(invocations(recipe) or action_uses(recipe))
        assert uses_it, f"{recipe.name} runs no layerleak command and uses no layerleak Action"
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


@dataclass(frozen=True)
class ActionUse:
    recipe: str
    step_id: str | None
    inputs: dict[str, str]
    job: dict[str, Any]


def _is_layerleak_action(uses: str) -> bool:
    name = uses.split("@", 1)[0]
    return name in (".", "./") or name.rstrip("/").rsplit("/", 1)[-1] == "layerleak"


def action_uses(path: Path) -> list[ActionUse]:
    """Steps of a GitHub Actions workflow that use the layerleak Action."""
    if path.suffix not in (".yml", ".yaml"):
        return []
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    found = []
    for job in (doc.get("jobs") or {}).values():
        for step in job.get("steps") or []:
            if _is_layerleak_action(str(step.get("uses", ""))):
                with_ = {k: str(v) for k, v in (step.get("with") or {}).items()}
                found.append(ActionUse(path.name, step.get("id"), with_, job))
    return found


USES = [use for recipe in RECIPES for use in action_uses(recipe)]


def _check_action_use(use: ActionUse, action: dict[str, Any]) -> None:
    declared = action["inputs"]
    unknown = set(use.inputs) - set(declared)
    assert not unknown, f"{use.recipe}: the Action has no input(s) {sorted(unknown)}"
    for name, spec in declared.items():
        if spec.get("required") and "default" not in spec:
            assert name in use.inputs, f"{use.recipe}: required input {name!r} missing"
    scan = _main().commands["scan"]
    choices = {
        opt: [str(c).lower() for c in p.type.choices]
        for p in scan.params
        if isinstance(p, click.Option) and isinstance(p.type, click.Choice)
        for opt in p.opts
    }
    for name in ("fail-on", "format"):  # passed to `layerleak scan --NAME`
        value = use.inputs.get(name)
        if value is not None and "${{" not in value:
            assert value.lower() in choices[f"--{name}"], f"{use.recipe}: {name} {value!r}"
    for secret in ("registry-password", "fly-api-token"):
        value = use.inputs.get(secret)
        if value is not None:
            assert value.strip().startswith("${{ secrets."), (
                f"{use.recipe}: {secret} should come from a secret, not be written in"
            )
    if use.step_id:
        text = yaml.safe_dump(use.job)
        prefix = f"steps.{use.step_id}.outputs."
        for part in text.split(prefix)[1:]:
            output = part.split()[0].rstrip("}'\")")
            assert output in action["outputs"], f"{use.recipe}: the Action has no output {output}"


def test_action_uses_exist() -> None:
    assert USES, "no recipe shows the GitHub Action"
    assert any(u.inputs.get("image", "").startswith("registry.fly.io/") for u in USES)


@pytest.mark.parametrize("use", USES, ids=[f"{u.recipe}:{u.step_id}" for u in USES])
def test_every_action_use_is_valid(use: ActionUse) -> None:
    _check_action_use(use, yaml.safe_load(ACTION_YML.read_text(encoding="utf-8")))


def test_the_action_checker_catches_mistakes() -> None:
    action = yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))
    job = {"steps": [{"id": "ll", "run": "echo ${{ steps.ll.outputs.exit-code }}"}]}
    _check_action_use(ActionUse("x", "ll", {"image": "a"}, job), action)
    for inputs, text, job_ in [
        ({"image": "a", "args": "--reveal"}, "no input", job),
        ({"fail-on": "high"}, "required input 'image'", job),
        ({"image": "a", "fail-on": "severe"}, "fail-on", job),
        ({"image": "a", "format": "xml"}, "format", job),
        ({"image": "a", "fly-api-token": "FlyV1 fm2_abc"}, "from a secret", job),
        ({"image": "a"}, "no output nope", {"steps": [{"run": "${{ steps.ll.outputs.nope }}"}]}),
    ]:
        with pytest.raises(AssertionError, match=text):
            _check_action_use(ActionUse("x", "ll", inputs, job_), action)

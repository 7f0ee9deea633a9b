import click

from scanner.analyzers.builtin import FILE_ANALYZERS, IMAGE_ANALYZERS, analyzers_version
from scanner.cli import main
from scanner.report.formats import FORMATTERS


def test_analyzer_ids_are_unique_and_versioned() -> None:
    ids = [a.id for a in FILE_ANALYZERS] + [a.id for a in IMAGE_ANALYZERS]
    assert len(ids) == len(set(ids))
    assert all(a.version >= 1 for a in FILE_ANALYZERS)
    assert analyzers_version().count("@") == len(FILE_ANALYZERS)


def test_every_format_choice_has_a_formatter() -> None:
    scan = main.commands["scan"]
    option = next(p for p in scan.params if p.name == "fmt")
    assert isinstance(option.type, click.Choice)
    assert set(option.type.choices) == set(FORMATTERS)

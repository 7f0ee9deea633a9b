"""Archive limits: sizes, settings by CLI name, budget scopes."""

from __future__ import annotations

import pytest

from scanner.archives import DEFAULT_LIMITS, ArchiveBudget, ArchiveLimits, ImageUsage, parse_size


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("1048576", 1 << 20), ("512K", 512 << 10), ("64m", 64 << 20), ("2G", 2 << 30),
     ("1TiB", 1 << 40), (" 3 MB ", 3 << 20)],
)  # fmt: skip
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "-1", "1.5G", "lots", "2X"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def test_settings_by_cli_name() -> None:
    limits = DEFAULT_LIMITS.with_settings({"layer-budget": "4G", "image_members": "10"})
    assert limits.layer_budget == 4 << 30 and limits.image_members == 10
    assert limits.budget == DEFAULT_LIMITS.budget
    with pytest.raises(ValueError, match="unknown archive limit 'layer-bugdet'"):
        DEFAULT_LIMITS.with_settings({"layer-bugdet": "1"})


def test_budget_names_the_tighter_scope() -> None:
    limits = ArchiveLimits(layer_budget=100, image_budget=1000, layer_members=5)
    image = ImageUsage()
    image.add(950, 0)
    budget = ArchiveBudget(limits, image)
    assert budget.room() == 50 and "per image" in budget.bytes_scope()
    budget.charge(10, entries=5)
    assert budget.room() == 40 and budget.entries_left() == 0
    assert "per layer" in budget.entries_scope()
    image.reset()
    assert image.totals() == (0, 0)

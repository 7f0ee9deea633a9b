"""Where the built-in rules are found: inside an installed package, or beside the package
in a checkout; never a stray ``signatures/`` folder next to an installed package."""

from __future__ import annotations

from pathlib import Path

import pytest

import scanner
from scanner import signatures
from scanner.errors import SignatureError
from scanner.signatures import BUILTIN_DIR, builtin_dir
from tests.packaging.artefacts import CHECKOUT


def _layout(root: Path, *dirs: str, files: tuple[str, ...] = ()) -> Path:
    for d in ("scanner", *dirs):
        (root / d).mkdir(parents=True, exist_ok=True)
    for f in files:
        (root / f).write_text("")
    return root / "scanner"


def test_installed_wheel_layout(tmp_path: Path) -> None:
    package = _layout(tmp_path, "scanner/_signatures", "signatures", files=("pyproject.toml",))
    assert builtin_dir(package) == package / "_signatures"  # the packaged copy wins


def test_checkout_layout(tmp_path: Path) -> None:
    package = _layout(tmp_path, "signatures", files=("pyproject.toml",))
    assert builtin_dir(package) == tmp_path / "signatures"


def test_stray_signatures_beside_an_installed_package_is_not_taken(tmp_path: Path) -> None:
    package = _layout(tmp_path / "site-packages", "signatures")  # no pyproject.toml
    assert builtin_dir(package) == package / "_signatures"
    assert not builtin_dir(package).exists()


def test_missing_rules_fail_loudly_naming_the_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = builtin_dir(_layout(tmp_path))
    monkeypatch.setattr(signatures, "BUILTIN_DIR", missing)
    signatures._builtin.cache_clear()  # the built-in set is loaded once per process
    try:
        with pytest.raises(SignatureError, match="built-in signature directory not found") as err:
            signatures.SignatureSet.load()
    finally:
        signatures._builtin.cache_clear()  # later tests load the real set again
    assert str(missing) in str(err.value)


def test_this_checkout_uses_its_signatures_folder() -> None:
    if Path(scanner.__file__).resolve().parent.parent != CHECKOUT:
        pytest.skip("scanner is not imported from this checkout")
    assert BUILTIN_DIR.resolve() == CHECKOUT / "signatures"

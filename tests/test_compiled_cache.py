"""The compiled-rules cache: checksummed, private, bounded, optional."""

from __future__ import annotations

import importlib.util
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from scanner import compiled_cache
from scanner.secrets.engine import SecretEngine
from scanner.secrets.prefilter import hyperscan_db
from scanner.signatures import SignatureSet


@pytest.fixture(autouse=True)
def _cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("LAYERLEAK_NO_COMPILED_CACHE", raising=False)
    return tmp_path


def test_a_stored_database_loads_back_private_and_checksummed() -> None:
    compiled_cache.store("k1", b"database bytes")
    assert compiled_cache.load("k1") == b"database bytes"
    path = compiled_cache.directory() / "k1.db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(compiled_cache.directory().stat().st_mode) == 0o700
    assert compiled_cache.load("other") is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-1],  # truncated
        lambda b: b[:-1] + bytes([b[-1] ^ 1]),  # a flipped bit
        lambda b: b"not our magic\n" + b[14:],
        lambda b: b"",
    ],
)
def test_a_damaged_file_is_ignored(damage: Any) -> None:
    compiled_cache.store("k2", b"x" * 1000)
    path = compiled_cache.directory() / "k2.db"
    path.write_bytes(damage(path.read_bytes()))
    assert compiled_cache.load("k2") is None


def test_an_oversized_file_is_not_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled_cache, "MAX_BYTES", 100)
    compiled_cache.store("big", b"x" * 101)
    assert not (compiled_cache.directory() / "big.db").exists()
    compiled_cache.directory().mkdir(parents=True, exist_ok=True)
    (compiled_cache.directory() / "big.db").write_bytes(b"y" * 10_000)
    assert compiled_cache.load("big") is None


def test_turned_off_it_neither_reads_nor_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAYERLEAK_NO_COMPILED_CACHE", "1")
    compiled_cache.store("k3", b"data")
    assert not compiled_cache.directory().exists()
    assert compiled_cache.load("k3") is None


def test_an_unwritable_directory_is_not_an_error(_cache_home: Path) -> None:
    (_cache_home / "layerleak").write_text("a file where the directory should be")
    compiled_cache.store("k4", b"data")
    assert compiled_cache.load("k4") is None


def test_old_databases_are_pruned() -> None:
    for i in range(compiled_cache.KEEP + 3):
        compiled_cache.store(f"n{i}", b"data")
        os.utime(compiled_cache.directory() / f"n{i}.db", (1000 + i, 1000 + i))
    compiled_cache.store("last", b"data")
    kept = sorted(p.stem for p in compiled_cache.directory().glob("*.db"))
    assert len(kept) == compiled_cache.KEEP and "last" in kept and "n0" not in kept


@pytest.mark.skipif(importlib.util.find_spec("hyperscan") is None, reason="no hyperscan wheel")
def test_the_engine_compiles_once_then_loads_and_recovers_from_a_bad_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sigs = SignatureSet.builtin()
    data = "\n".join(e.text for r in sigs.rules for e in r.examples_match).encode()
    expected = SecretEngine(sigs).scan(data)  # compiles and stores
    (stored,) = compiled_cache.directory().glob("*.db")
    hs = hyperscan_db._library()
    real_database = hs.Database
    compiles: list[int] = []

    def counting(*a: Any, **k: Any) -> Any:
        compiles.append(1)
        return real_database(*a, **k)

    monkeypatch.setattr(hs, "Database", counting)
    assert SecretEngine(sigs).scan(data) == expected
    assert compiles == []  # loaded, not compiled
    # garbage with a valid checksum (written by something else): refused by Hyperscan's
    # own checks, compiled again, same results
    key = stored.stem
    compiled_cache.store(key, b'{"with_checks": [0]}\n' + os.urandom(4096))
    assert SecretEngine(sigs).scan(data) == expected
    assert compiles

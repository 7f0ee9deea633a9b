"""Keyword prefilters: every backend gives the brute-force hits; Hyperscan falls back cleanly."""

from __future__ import annotations

import importlib
import pickle
import random
import re
from typing import Any

import pytest

from scanner.secrets import prefilter as prefilter_pkg
from scanner.secrets.engine import SecretEngine
from scanner.secrets.prefilter import BACKENDS, active_backend, hyperscan_db, make_prefilter
from scanner.secrets.prefilter.interface import PrefilterUnavailable
from scanner.signatures import SignatureSet

# lower-case, one char per byte: "é" as its two UTF-8 bytes, and a high byte alone
KEYWORDS = ["token", "ghp_", "-----begin", "ok", "oke", "caf\xc3\xa9", "\xff\xfe", "a"]
HAVE = [name for name in BACKENDS if name != "hyperscan" or importlib.util.find_spec("hyperscan")]


def brute_force(data: bytes, start: int, end: int) -> dict[int, list[int]]:
    low = data.lower()
    found: dict[int, list[int]] = {}
    for kid, keyword in enumerate(KEYWORDS):
        k = keyword.encode("latin-1")
        i = low.find(k, start, end)
        while i >= 0:
            found.setdefault(kid, []).append(i + len(k))
            i = low.find(k, i + 1, end)
    return found


@pytest.mark.parametrize("backend", HAVE)
@pytest.mark.parametrize("seed", range(5))
def test_every_backend_gives_the_brute_force_hits(backend: str, seed: int) -> None:
    rng = random.Random(seed)
    alphabet = b"tokenTOKENgh_p-BEGINbegin \n\x00\xff\xfe\xc3\xa9\x89CAFcafaA"
    data = bytes(rng.choice(alphabet) for _ in range(30_000))
    prefilter = make_prefilter(KEYWORDS, backend)
    assert prefilter.backend == backend
    for start, end in [(0, len(data)), (100, 29_000), (5, 6), (0, 0)]:
        assert prefilter.hits(data, start, end) == brute_force(data, start, end)


@pytest.mark.parametrize("backend", HAVE)
def test_upper_case_matches_without_a_lower_cased_copy_and_only_ascii_folds(backend: str) -> None:
    prefilter = make_prefilter(KEYWORDS, backend)
    data = b"TOKEN Caf\xc3\xa9 CAF\xc3\x89"  # U+00C9 is not folded: neither does bytes.lower()
    hits = prefilter.hits(data, 0, len(data))
    assert hits[0] == [5] and hits[5] == [11]


@pytest.mark.parametrize("backend", HAVE)
def test_prefilters_pickle_for_worker_processes(backend: str) -> None:
    prefilter = make_prefilter(KEYWORDS, backend)
    again = pickle.loads(pickle.dumps(prefilter))
    data = b"x token ghp_ OKE -----BEGIN"
    assert again.hits(data, 0, len(data)) == prefilter.hits(data, 0, len(data))


@pytest.mark.skipif(importlib.util.find_spec("hyperscan") is None, reason="no hyperscan wheel")
def test_workers_load_the_serialised_database_instead_of_compiling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blob = pickle.dumps(make_prefilter(KEYWORDS, "hyperscan"))
    hs = importlib.import_module("hyperscan")

    def no_compile(*_a: Any, **_k: Any) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(hs, "Database", no_compile)
    again = pickle.loads(blob)
    assert again.hits(b"TOKEN", 0, 5) == {0: [5], 3: [3], 4: [4]}


def test_without_hyperscan_auto_falls_back_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def fake_import(name: str, *args: Any) -> Any:
        if name == "hyperscan":
            raise ImportError("libhs.so: cannot open shared object file")
        return real(name, *args)

    monkeypatch.setattr(hyperscan_db.importlib, "import_module", fake_import)
    assert make_prefilter(KEYWORDS).backend in ("ahocorasick-rs", "pyahocorasick")
    with pytest.raises(PrefilterUnavailable):
        make_prefilter(KEYWORDS, "hyperscan")
    text = active_backend()
    assert text.startswith(("ahocorasick-rs", "pyahocorasick")) and "libhs.so" in text
    engine = SecretEngine(SignatureSet.builtin())
    assert engine.prefilter_backend != "hyperscan"


def test_unknown_backend_and_empty_keyword_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown prefilter"):
        make_prefilter(["abc"], "regex")
    with pytest.raises(ValueError, match="empty"):
        make_prefilter(["abc", ""], "pyahocorasick")


@pytest.mark.parametrize("backend", [b for b in HAVE if b != "pyahocorasick"])
def test_engines_on_every_backend_find_the_same_secrets(backend: str) -> None:
    sigs = SignatureSet.builtin()
    examples = [e.text for r in sigs.rules for e in r.examples_match]
    examples += [t for r in sigs.rules for t in r.examples_no_match]
    data = "\n".join(examples).encode()
    expected = SecretEngine(sigs, prefilter="pyahocorasick").scan(data)
    assert len(expected) > len(sigs.rules)
    assert SecretEngine(sigs, prefilter=backend).scan(data) == expected
    assert SecretEngine(sigs, prefilter=backend).scan(data.upper()) == SecretEngine(
        sigs, prefilter="pyahocorasick"
    ).scan(data.upper())


def test_auto_is_hyperscan_where_the_wheel_loads() -> None:
    expected = "hyperscan" if importlib.util.find_spec("hyperscan") else "ahocorasick-rs"
    assert active_backend().startswith(expected)
    assert prefilter_pkg.AUTO_ORDER[0] == "hyperscan"


def test_version_says_which_prefilter_is_active(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from scanner import __version__
    from scanner.cli import main

    out = CliRunner().invoke(main, ["--version"])
    assert out.exit_code == 0
    assert out.output.splitlines() == [
        f"layerleak, version {__version__}",
        f"keyword prefilter: {active_backend()}",
    ]
    real = importlib.import_module

    def fake_import(name: str, *args: Any) -> Any:
        if name == "hyperscan":
            raise ImportError("no hyperscan here")
        return real(name, *args)

    monkeypatch.setattr(hyperscan_db.importlib, "import_module", fake_import)
    out = CliRunner().invoke(main, ["--version"])
    assert "keyword prefilter: " in out.output and "no hyperscan here" in out.output
    assert "prefilter: hyperscan" not in out.output


@pytest.mark.parametrize("backend", HAVE)
def test_keywords_are_literals_whatever_they_hold(backend: str) -> None:
    # a rule file may carry any keyword: regex metacharacters match only themselves
    keywords = ["a.b*", "(x)|y", "[z]\\d", "{2}^$"]
    prefilter = make_prefilter(keywords, backend)
    data = b"aXb* a.b* (x)|y x [z]\\d z {2}^$ {2}"
    hits = prefilter.hits(data, 0, len(data))
    assert hits == {0: [9], 1: [15], 2: [23], 3: [31]}


@pytest.mark.skipif(importlib.util.find_spec("hyperscan") is None, reason="no hyperscan wheel")
@pytest.mark.parametrize("seed", range(3))
def test_keywords_in_a_database_with_checks_give_the_brute_force_hits(seed: int) -> None:
    # with checks, keywords are compiled as escaped caseless patterns, not literals
    from scanner.secrets.prefilter import Checks

    rng = random.Random(seed)
    alphabet = b"tokenTOKENgh_p-BEGINbegin \n\x00\xff\xfe\xc3\xa9\x89CAFcafaA"
    data = bytes(rng.choice(alphabet) for _ in range(30_000))
    checks = Checks(f"brute force {seed}", lambda: [rb"tok[a-z]n", None, rb"\x00\xff"])
    prefilter = make_prefilter(KEYWORDS, "hyperscan", checks)
    assert prefilter.with_checks == {0, 2}
    for start, end in [(0, len(data)), (100, 29_000), (5, 6), (0, 0)]:
        assert prefilter.hits(data, start, end) == brute_force(data, start, end)
        hits, fired = prefilter.scan(data, start, end)
        assert hits == brute_force(data, start, end)
        assert fired == {i for i, p in ((0, rb"tok[a-z]n"), (2, b"\x00\xff")) if re.search(p, data)}

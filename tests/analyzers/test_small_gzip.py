"""Small gzip files scanned without the archive walk give what the walk gives.

The content analyzer decodes a whole single-member gzip file in memory
(ArchiveWalk.small_gzip) instead of walking it; every input here is analysed both
ways, and findings, layer problems and budget charges must be the same. Inputs the
shortcut must hand back to the walk (damaged, several members, trailing bytes, a
compressed tar, over a cap, too large) are here too, built in code.
"""

from __future__ import annotations

import gzip
import io
import zlib

import pytest

from fixtures import fakesecrets as fs
from scanner.analyzers import content_secrets
from scanner.analyzers.content_secrets import ContentSecretsAnalyzer
from scanner.analyzers.interface import LayerContext
from scanner.archives import ArchiveBudget, ArchiveLimits, ArchiveWalk
from scanner.detection import Detection
from scanner.findings import Finding
from scanner.layers import EntryKind, FileInfo
from scanner.signatures import SignatureSet
from tests.archives.helpers import tar_bytes

DETECTION = Detection(SignatureSet.load(()))
GHP = fs.github_pat("small-gzip")
TEXT = f"line one\nexport GITHUB_TOKEN={GHP}\npassword = 'Zq8vT3mW9xK2pL7rN4sB'\n".encode()
BINARY = b"\x00\x01ELF" + b"\x00" * 100 + b"\x07" + f"ghp_{GHP[4:]}".encode() + b"\x00" * 50


def _gz(data: bytes, mtime: int = 0) -> bytes:
    return gzip.compress(data, mtime=mtime)


CASES: dict[str, bytes] = {
    "text": _gz(TEXT),
    "binary with a glued token": _gz(BINARY),
    "empty content": _gz(b""),
    "no secret": _gz(b"just a man page\n" * 200),
    "env file inside": _gz(b"API_KEY=" + GHP.encode() + b"\n"),
    "two members": _gz(TEXT) + _gz(TEXT),
    "trailing zeros": _gz(TEXT) + b"\x00" * 64,
    "trailing data": _gz(TEXT) + b"AAAA" + GHP.encode(),
    "truncated": _gz(TEXT * 50)[:-40],
    "corrupt body": _gz(TEXT)[:12] + b"\xff" * 30 + _gz(TEXT)[42:],
    "bad crc": _gz(TEXT)[:-8] + b"\x00\x00\x00\x00" + _gz(TEXT)[-4:],
    "compressed tar": _gz(tar_bytes({"app/.env": TEXT})),
    "gzip in gzip": _gz(_gz(TEXT)),
    "large": _gz(TEXT + b"x" * (5 << 20)),
    "bomb over the member cap": _gz(bytes(3 << 20) + TEXT),
    "raw deflate, not gzip": zlib.compress(TEXT),
}


def run(
    path: str, data: bytes, shortcut: bool, limits: ArchiveLimits, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Finding], list[str], int, int]:
    budget = ArchiveBudget(limits)
    layer = LayerContext(1, "sha256:" + "b" * 64, None, None, None, budget)
    with monkeypatch.context() as patch:
        if not shortcut:
            patch.setattr(ArchiveWalk, "small_gzip", lambda *_a: None)
        info = FileInfo(path, EntryKind.FILE, 0o644, len(data), 0, 0)
        found = list(ContentSecretsAnalyzer(DETECTION).analyze(info, io.BytesIO(data), layer))
    return found, list(layer.problems), budget.bytes, budget.entries


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("cap", [8 << 20, 1 << 20])
def test_the_shortcut_gives_what_the_walk_gives(
    name: str, cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = ArchiveLimits(member_cap=cap)
    for path in ("srv/app/notes.1.gz", "data0/usr/share/man/man1/ls.1.gz", "root/.env.gz"):
        fast = run(path, CASES[name], True, limits, monkeypatch)
        slow = run(path, CASES[name], False, limits, monkeypatch)
        assert fast == slow, (name, path)


def test_the_shortcut_finds_the_secret_with_its_inner_path(monkeypatch: pytest.MonkeyPatch) -> None:
    found, problems, used, _ = run(
        "srv/app/notes.txt.gz", CASES["text"], True, ArchiveLimits(), monkeypatch
    )
    token = [f for f in found if f.rule_id == "github-personal-access-token"]
    assert [(f.location.inner_path, f.location.line) for f in token] == [("notes.txt", 2)]
    assert problems == [] and used == len(TEXT)


def test_the_shortcut_is_taken_for_a_plain_member_and_not_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken: list[str] = []
    real = ArchiveWalk.small_gzip

    def spy(self: ArchiveWalk, data: bytes, name: str, limit: int) -> tuple[str, bytes] | None:
        leaf = real(self, data, name, limit)
        taken.append("shortcut" if leaf is not None else "walk")
        return leaf

    monkeypatch.setattr(ArchiveWalk, "small_gzip", spy)
    layer = LayerContext(1, "sha256:" + "b" * 64, None, None, None, ArchiveBudget(ArchiveLimits()))
    for name in ("text", "two members", "trailing data", "truncated", "compressed tar", "large"):
        data = CASES[name]
        info = FileInfo("srv/x.gz", EntryKind.FILE, 0o644, len(data), 0, 0)
        list(ContentSecretsAnalyzer(DETECTION).analyze(info, io.BytesIO(data), layer))
    # "large" is small compressed, but its content is over the engine's stream window
    assert taken == ["shortcut", "walk", "walk", "walk", "walk", "walk"]
    assert len(CASES["large"]) <= content_secrets.WHOLE_FILE_LIMIT


def test_an_exhausted_budget_leaves_it_to_the_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = ArchiveLimits(layer_budget=len(TEXT) - 1)
    fast = run("srv/a.gz", CASES["text"], True, limits, monkeypatch)
    slow = run("srv/a.gz", CASES["text"], False, limits, monkeypatch)
    assert fast == slow and fast[1], "the walk reports the budget that stopped it"

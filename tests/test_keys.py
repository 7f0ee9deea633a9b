"""The fingerprint key: a report's hashes cannot confirm a guessed secret without it,
and the same key gives the same fingerprints run after run."""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner

from fixtures.imagebuilder import Entry, ImageSpec, LayerSpec, write_oci_layout
from scanner.cli import main
from scanner.errors import ConfigError
from scanner.keys import KEY_ENV, KEY_FILE_ENV, load_key

SECRET = "Zq8vPlm2XwRtYu3KdE5f"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = ImageSpec(
        steps=[
            LayerSpec(
                [Entry("app/.env", content=f"DB_PASSWORD={SECRET}\n".encode())],
                "COPY . /app # buildkit",
            )
        ],
        env=["PATH=/usr/bin", f"API_TOKEN={SECRET}"],
    )
    return write_oci_layout(tmp_path_factory.mktemp("keys") / "img", [spec])


def _json(image: Path, env: Mapping[str, str | None], *args: str) -> dict[str, object]:
    result = CliRunner(env=env).invoke(
        main, ["scan", "--no-cache", "--format", "json", *args, str(image)]
    )
    assert result.exit_code in (0, 1), result.stderr
    return json.loads(result.stdout)


def _hashes(doc: dict[str, object]) -> list[tuple[str, str]]:
    return sorted(
        (f["secret_hash"], f["fingerprint"])
        for image in doc["images"]  # type: ignore[attr-defined]
        for f in image["findings"]
        if f["secret_hash"]
    )


def test_default_key_is_created_private_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    key = load_key()
    path = tmp_path / "config" / "layerleak" / "fingerprint.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(key) >= 32 and load_key() == key


def test_key_sources_in_order(tmp_path: Path) -> None:
    shared = tmp_path / "team.key"
    shared.write_text("team-key-0123456789abcdef\n")
    env = {KEY_ENV: "env-key-0123456789abcdef"}
    assert load_key(environ=env) == b"env-key-0123456789abcdef"
    assert load_key(shared, environ=env) == b"team-key-0123456789abcdef"
    assert load_key(environ={**env, KEY_FILE_ENV: str(shared)}) == b"team-key-0123456789abcdef"
    with pytest.raises(ConfigError, match="shorter"):
        load_key(environ={KEY_ENV: "short"})
    with pytest.raises(ConfigError, match="fingerprint key file"):
        load_key(tmp_path / "missing.key", environ={})


def test_report_hashes_cannot_confirm_a_guess(image: Path) -> None:
    doc = _json(image, {KEY_ENV: "one-key-0123456789abcdef"})
    hashes = _hashes(doc)
    assert hashes
    plain = hashlib.sha256(SECRET.encode()).hexdigest()
    text = json.dumps(doc)
    assert plain not in text  # the unkeyed hash of the right guess is nowhere
    assert all(h.startswith("hmac-sha256:") for h, _ in hashes)


def test_same_key_same_fingerprints_other_key_other_fingerprints(
    image: Path, tmp_path: Path
) -> None:
    one = {KEY_ENV: "one-key-0123456789abcdef"}
    assert _hashes(_json(image, one)) == _hashes(_json(image, one))
    other = _hashes(_json(image, {KEY_ENV: "two-key-0123456789abcdef"}))
    assert {fp for _, fp in other}.isdisjoint({fp for _, fp in _hashes(_json(image, one))})
    key_file = tmp_path / "team.key"
    key_file.write_text("one-key-0123456789abcdef")
    via_option = _json(image, {KEY_ENV: None}, "--fingerprint-key-file", str(key_file))
    assert _hashes(via_option) == _hashes(_json(image, one))


def test_layer_cache_entries_are_per_key(image: Path, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")

    def fingerprints(key: str) -> list[tuple[str, str]]:
        result = CliRunner(env={KEY_ENV: key}).invoke(
            main, ["scan", "--cache-dir", cache, "--format", "json", str(image)]
        )
        return _hashes(json.loads(result.stdout))

    first = fingerprints("one-key-0123456789abcdef")
    second = fingerprints("two-key-0123456789abcdef")  # must not reuse key one's entries
    assert second == _hashes(_json(image, {KEY_ENV: "two-key-0123456789abcdef"}))
    assert set(first).isdisjoint(second)


def test_workers_elsewhere_hash_with_the_clients_key(tmp_path: Path) -> None:
    """A cluster worker rebuilds the detection from the spec: with the client's key, not
    its own installation's (whose hashes would never match the client's baselines)."""
    import pickle

    from scanner.detection import Detection
    from scanner.runners.interface import DetectionSpec, detection_from_spec
    from scanner.signatures import SignatureSet

    key = b"client-key-0123456789abcdef"
    client = Detection(SignatureSet.builtin(), hash_key=key)
    spec = DetectionSpec.from_files([], client.signatures, False, hash_key=client.key)
    worker = detection_from_spec(pickle.loads(pickle.dumps(spec)))
    assert worker.hash(SECRET) == client.hash(SECRET)

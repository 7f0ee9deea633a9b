"""Hostile input: images whose index, manifest or config hold the wrong JSON types,
nest without end, or are not UTF-8.

Each malformed image A is built here (an OCI layout whose blobs carry their true
digests, so only the content is wrong) and scanned together with a good image B:
A must become a problem of A (exit 3), never a crash, and B must still be scanned
and reported.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fixtures.imagebuilder import Entry, ImageSpec, LayerSpec, write_oci_layout
from scanner.cli import main
from scanner.scan import Scanner, ScanOptions

Doc = dict[str, Any]
Change = Callable[[Doc, Doc, Doc], None]  # (index, manifest, config), changed in place

DEEP = "[" * 100_000 + "]" * 100_000  # json.loads: RecursionError


def _set(path: str, value: Any) -> Change:
    """A change that sets ``doc.key.key`` (first word: index, manifest or config)."""
    which, *keys = path.split(".")

    def change(index: Doc, manifest: Doc, config: Doc) -> None:
        node: Any = {"index": index, "manifest": manifest, "config": config}[which]
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(keys[-1])] = value
        else:
            node[keys[-1]] = value

    return change


CASES: dict[str, Change | bytes] = {
    "index manifests an object": _set("index.manifests", {"a": 1}),
    "index manifests of numbers": _set("index.manifests", [1, 2]),
    "index descriptor digest a number": _set("index.manifests.0.digest", 5),
    "index descriptor mediaType a list": _set("index.manifests.0.mediaType", []),
    "index descriptor platform a string": _set("index.manifests.0.platform", "linux/amd64"),
    "index descriptor annotations a list": _set("index.manifests.0.annotations", ["x"]),
    "index descriptor size a string": _set("index.manifests.0.size", "12"),
    "index annotations a number": _set("index.annotations", 7),
    "index null": b"null",
    "index not utf-8": b'{"schemaVersion": 2, "manifests": [], "x": "\xff\xfe"}',
    "index nested without end": DEEP.encode(),
    "manifest layers a string": _set("manifest.layers", "layer.tar"),
    "manifest layer digest null": _set("manifest.layers.0.digest", None),
    "manifest layer size negative": _set("manifest.layers.0.size", -5),
    "manifest layer size a list": _set("manifest.layers.0.size", [1]),
    "manifest config digest a list": _set("manifest.config.digest", ["sha256:x"]),
    "manifest annotations a number": _set("manifest.annotations", 5),
    "manifest mediaType an object": _set("manifest.mediaType", {}),
    "config rootfs a list": _set("config.rootfs", []),
    "config diff_ids numbers": _set("config.rootfs.diff_ids", [1]),
    "config history numbers": _set("config.history", [1, 2]),
    "config history created_by a number": _set("config.history.0.created_by", 5),
    "config history empty_layer a string": _set("config.history.0.empty_layer", "yes"),
    "config Env an object": _set("config.config.Env", {"A": 1}),
    "config Env numbers": _set("config.config.Env", [1, None]),
    "config Labels a list": _set("config.config.Labels", ["x"]),
    "config Labels values objects": _set("config.config.Labels", {"a": {"b": 1}}),
    "config User a number": _set("config.config.User", 5),
    "config ExposedPorts a list": _set("config.config.ExposedPorts", ["22/tcp"]),
    "config Healthcheck a string": _set("config.config.Healthcheck", "CMD true"),
    "config os a list": _set("config.os", ["linux"]),
    "config architecture a number": _set("config.architecture", 64),
    "config created a number": _set("config.created", 5),
    "config a list": _set("config.config", []),
}
# Documents replaced whole by bytes: which one is in the case name.
WHOLE_CONFIG = {
    "config nested without end": DEEP.encode(),
    "config not utf-8": b'{"architecture": "amd64", "os": "linux", "x": "\xff"}',
    "manifest nested without end": DEEP.encode(),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = ImageSpec(
        steps=[LayerSpec([Entry("app/.env", content=b"A=1\n")], "COPY . /app # buildkit")],
        labels={"a": "b"},
        exposed_ports=["80/tcp"],
    )
    return write_oci_layout(tmp_path_factory.mktemp("base") / "img", [spec])


def _blob(root: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    return digest, len(data)


def _docs(base: Path) -> tuple[Doc, Doc, Doc]:
    index = json.loads((base / "index.json").read_bytes())
    first = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((base / "blobs" / "sha256" / first).read_bytes())
    config_hex = manifest["config"]["digest"].split(":")[1]
    config = json.loads((base / "blobs" / "sha256" / config_hex).read_bytes())
    return index, manifest, config


def malformed(base: Path, dest: Path, name: str) -> Path:
    """A copy of ``base`` with the one defect ``name`` describes, digests kept true."""
    import shutil

    shutil.copytree(base, dest)
    index, manifest, config = (copy.deepcopy(d) for d in _docs(base))
    case = CASES.get(name)
    if callable(case):
        case(index, manifest, config)
    config_bytes = json.dumps(config).encode()
    if name.startswith("config") and name in WHOLE_CONFIG:
        config_bytes = WHOLE_CONFIG[name]
    if isinstance(manifest.get("config"), dict) and not name.startswith("manifest config"):
        manifest["config"]["digest"], manifest["config"]["size"] = _blob(dest, config_bytes)
    manifest_bytes = json.dumps(manifest).encode()
    if name.startswith("manifest") and name in WHOLE_CONFIG:
        manifest_bytes = WHOLE_CONFIG[name]
    digest, size = _blob(dest, manifest_bytes)
    if isinstance(index.get("manifests"), list) and index["manifests"]:
        first = index["manifests"][0]
        if isinstance(first, dict) and name not in (
            "index descriptor digest a number",
            "index descriptor size a string",
        ):
            first["digest"], first["size"] = digest, size
    index_bytes = case if isinstance(case, bytes) else json.dumps(index).encode()
    (dest / "index.json").write_bytes(index_bytes)
    return dest


ALL = sorted([*CASES, *WHOLE_CONFIG])


@pytest.mark.parametrize("name", ALL)
def test_malformed_image_is_a_problem_and_the_next_image_is_still_scanned(
    base: Path, images: dict[str, Path], tmp_path: Path, name: str
) -> None:
    bad = malformed(base, tmp_path / "bad", name)
    good = images["deleted_secret"]
    with Scanner(ScanOptions(use_cache=False, jobs=1)) as scanner:
        report = scanner.scan_all([str(bad), str(good)])
    first, second = report.images
    assert second.findings and not second.problems  # B: scanned and reported in full
    # A: either a problem of A, or (for defects the reader tolerates) scanned anyway
    assert first.problems or first.platforms
    for problem in first.problems:
        assert problem.image == str(bad)


def test_cli_reports_every_image_and_exits_3(
    base: Path, images: dict[str, Path], tmp_path: Path
) -> None:
    bads = [
        str(malformed(base, tmp_path / f"bad{i}", name))
        for i, name in enumerate(
            [
                "index nested without end",
                "index not utf-8",
                "index descriptor platform a string",
                "manifest layers a string",
                "index descriptor annotations a list",
                "config nested without end",
            ]
        )
    ]
    good = str(images["deleted_secret"])
    result = CliRunner().invoke(main, ["scan", "--no-cache", "--format", "json", *bads, good])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exit_code == 3
    doc = json.loads(result.stdout)
    by_name = {image["name"]: image for image in doc["images"]}
    assert by_name[good]["findings"] and not by_name[good]["problems"]
    for bad in bads:
        assert by_name[bad]["problems"], bad

"""First-party code in site-packages keeps its severity; index packages stay noise.

Each image is built here: one layer that installs a package into site-packages with
the dist-info pip would write for that kind of install (PEP 610 ``direct_url.json``),
and a password assignment in the package's code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.imagebuilder import Entry, ImageSpec, LayerSpec, write_oci_layout
from scanner.analyzers.content_secrets import NOISE_DISTRO, NOISE_THIRD_PARTY
from scanner.analyzers.python_dists import PythonDists
from scanner.findings import Finding, Severity
from scanner.signatures import SignatureSet
from tests.e2e.helpers import scan

SITE = "usr/local/lib/python3.11/site-packages"
CODE = b'DATABASE_PASSWORD = "Zq8vPlm2XwRt9Lkq"\n'


def _record(files: list[str]) -> bytes:
    return "".join(f"{f},sha256=x,1\n" for f in files).encode()


def _image(tmp: Path, entries: list[Entry], name: str = "img") -> Path:
    spec = ImageSpec(steps=[LayerSpec(entries, "RUN /bin/sh -c pip install . # buildkit")])
    return write_oci_layout(tmp / name, [spec])


def _dist(site: str, direct_url: dict[str, object] | None, *, before: bool) -> list[Entry]:
    code = [
        Entry(f"{site}/myapp/__init__.py", content=b""),
        Entry(f"{site}/myapp/settings.py", content=CODE),
        Entry(f"{site}/myapp/tests/test_db.py", content=CODE),
    ]
    meta = [
        Entry(
            f"{site}/myapp-1.0.dist-info/RECORD",
            content=_record(["myapp/__init__.py", "myapp/settings.py", "myapp/tests/test_db.py"]),
        ),
        Entry(f"{site}/myapp-1.0.dist-info/top_level.txt", content=b"myapp\n"),
    ]
    if direct_url is not None:
        meta.append(
            Entry(
                f"{site}/myapp-1.0.dist-info/direct_url.json",
                content=json.dumps(direct_url).encode(),
            )
        )
    return meta + code if before else code + meta


def _code_findings(result_findings: list[Finding]) -> list[Finding]:
    return [
        f
        for f in result_findings
        if f.location.path and f.location.path.endswith(".py") and f.category.value == "secret"
    ]


def _rule_severity(finding: Finding) -> Severity:
    rule = SignatureSet.builtin().get(finding.rule_id)
    assert rule is not None
    return rule.severity


@pytest.mark.parametrize("before", [True, False], ids=["metadata-first", "metadata-last"])
@pytest.mark.parametrize(
    "direct_url",
    [
        {"url": "file:///src", "dir_info": {}},
        {"url": "file:///app", "dir_info": {"editable": True}},
        {"url": "file:///build/dist/myapp-1.0-py3-none-any.whl", "archive_info": {}},
    ],
    ids=["local-dir", "editable", "local-wheel"],
)
def test_package_from_the_build_context_keeps_full_severity(
    tmp_path: Path, direct_url: dict[str, object], before: bool
) -> None:
    result = scan(_image(tmp_path, _dist(SITE, direct_url, before=before)))
    found = _code_findings(result.findings)
    assert {f.location.path for f in found} == {
        f"{SITE}/myapp/settings.py",
        f"{SITE}/myapp/tests/test_db.py",
    }
    for f in found:
        assert f.noise is None
        assert f.severity == _rule_severity(f) > Severity.LOW


@pytest.mark.parametrize(
    "direct_url",
    [
        None,  # from an index: pip writes no direct_url.json
        {"url": "https://github.com/o/r", "vcs_info": {"vcs": "git", "commit_id": "ab"}},
        {"url": "https://files.example.com/x-1.0.whl", "archive_info": {}},
    ],
    ids=["index", "vcs", "remote-archive"],
)
def test_package_from_elsewhere_stays_noise(
    tmp_path: Path, direct_url: dict[str, object] | None
) -> None:
    result = scan(_image(tmp_path, _dist(SITE, direct_url, before=False)))
    found = _code_findings(result.findings)
    assert found
    for f in found:
        assert f.severity == Severity.LOW and f.noise is not None


def test_package_with_no_metadata_at_all_is_first_party(tmp_path: Path) -> None:
    entries = [Entry(f"{SITE}/handmade/config.py", content=CODE)]
    found = _code_findings(scan(_image(tmp_path, entries)).findings)
    assert found and all(f.noise is None and f.severity > Severity.LOW for f in found)


def test_first_party_in_a_distribution_path_is_still_distribution_content(
    tmp_path: Path,
) -> None:
    site = "usr/lib/python3/dist-packages"
    result = scan(_image(tmp_path, _dist(site, {"url": "file:///src"}, before=True)))
    found = _code_findings(result.findings)
    assert found and all(f.noise == NOISE_DISTRO for f in found)


def test_index_package_next_to_a_first_party_one(tmp_path: Path) -> None:
    entries = [
        *_dist(SITE, {"url": "file:///src", "dir_info": {}}, before=True),
        Entry(f"{SITE}/requests/auth.py", content=CODE),
        Entry(f"{SITE}/requests-2.0.dist-info/RECORD", content=_record(["requests/auth.py"])),
    ]
    found = {f.location.path: f for f in _code_findings(scan(_image(tmp_path, entries)).findings)}
    assert found[f"{SITE}/requests/auth.py"].noise == NOISE_THIRD_PARTY
    assert found[f"{SITE}/myapp/settings.py"].noise is None


def test_hostile_metadata_is_harmless() -> None:
    dists = PythonDists()
    dists.note(f"{SITE}/x-1.dist-info/direct_url.json", b"\xff\xfe not json")
    dists.note(f"{SITE}/y-1.dist-info/direct_url.json", b"[1, 2]")
    dists.note(f"{SITE}/y-1.dist-info/RECORD", b"../../../etc/passwd,,\n,,,\n\x00\n")
    dists.note(f"{SITE}/z-1.egg-info/installed-files.txt", b"../z/__init__.py\n../../../x\n")
    assert not dists.first_party(f"{SITE}/x-1.dist-info/METADATA")  # unreadable: remote
    assert not dists.first_party(f"{SITE}/z/__init__.py")  # egg-info: not the build context
    assert dists.first_party(f"{SITE}/unclaimed/a.py")
    assert not dists.first_party(f"{SITE}/unclaimed/__pycache__/a.cpython-311.pyc")
    assert not dists.first_party("app/main.py")  # not in site-packages at all

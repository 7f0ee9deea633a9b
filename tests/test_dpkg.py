"""Debian conffiles: parsing dpkg's status file and lowering unmodified /etc files."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures import fakesecrets as fs
from fixtures.imagebuilder import Entry, ImageSpec, LayerSpec, write_oci_layout
from scanner import dpkg
from scanner.findings import Severity
from scanner.layers import LayerIndex
from tests.e2e.helpers import scan

APIKEYS = f'export GITHUB_TOKEN="{fs.github_pat("conffile")}"\n'.encode()
README = b"# the package's own file\n"


def _status(*stanzas: tuple[str, list[str]]) -> bytes:
    out = []
    for package, conffiles in stanzas:
        out.append(f"Package: {package}\nStatus: install ok installed\nVersion: 1.0\n")
        if conffiles:
            out.append("Conffiles:\n" + "".join(f" {c}\n" for c in conffiles))
        out.append("Description: a package\n with a long description\n\n")
    return "".join(out).encode()


def test_parse_status_reads_every_packages_conffiles() -> None:
    data = _status(
        (
            "chromium",
            [
                f"/etc/chromium.d/apikeys {dpkg.md5_hex(APIKEYS)}",
                "/etc/chromium.d/README " + "a" * 32,
            ],
        ),
        ("base-files", ["/etc/debian_version " + "B" * 32]),
        ("no-conffiles", []),
    )
    found = dpkg.parse_status(data)
    assert found["etc/chromium.d/apikeys"] == dpkg.Conffile("chromium", dpkg.md5_hex(APIKEYS))
    assert found["etc/chromium.d/README"].package == "chromium"
    assert found["etc/debian_version"].md5 == "b" * 32
    assert len(found) == 3


@pytest.mark.parametrize(
    "line",
    [
        "/etc/old.conf " + "a" * 32 + " obsolete",  # no longer the package's content
        "/etc/gone.conf " + "a" * 32 + " remove-on-upgrade",
        "/etc/new.conf newconffile",  # dpkg's marker while unpacking: no MD5
        "/etc/short.conf abc",
        "/etc/nothex.conf " + "z" * 32,
        "relative/path " + "a" * 32,
        "/usr/share/x.conf " + "a" * 32,  # outside etc/: never trusted
        "",
    ],
)
def test_parse_status_skips_lines_that_prove_nothing(line: str) -> None:
    assert dpkg.parse_status(_status(("pkg", [line]))) == {}


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe\x00garbage\n Conffiles:\n /etc/x " + b"a" * 32,
        b" /etc/x " + b"a" * 32 + b"\n",  # a continuation line before any package
        b"Conffiles:\n /etc/x " + b"a" * 32 + b"\n",  # no Package field
        b"Package: p\nConffiles:\n" + b" /etc/x " + b"a" * 32 + b" y z\n",
        b"\n" * 10_000,
    ],
)
def test_parse_status_hostile_input_yields_nothing(data: bytes) -> None:
    assert dpkg.parse_status(data) == {}


def test_parse_status_is_bounded_in_entries() -> None:
    lines = [f"/etc/f{i} {'a' * 32}" for i in range(dpkg.MAX_CONFFILES + 50)]
    assert len(dpkg.parse_status(_status(("big", lines)))) == dpkg.MAX_CONFFILES


def test_shipped_unmodified_needs_the_same_md5() -> None:
    conffiles = {"etc/a": dpkg.Conffile("pkg", dpkg.md5_hex(b"x"))}
    assert dpkg.shipped_unmodified("etc/a", dpkg.md5_hex(b"x"), conffiles) == (
        "unmodified configuration file of Debian package pkg"
    )
    assert dpkg.shipped_unmodified("etc/a", dpkg.md5_hex(b"y"), conffiles) is None
    assert dpkg.shipped_unmodified("etc/a", None, conffiles) is None
    assert dpkg.shipped_unmodified("etc/b", dpkg.md5_hex(b"x"), conffiles) is None


def test_layer_index_round_trips_conffiles_and_md5() -> None:
    index = LayerIndex(
        added={"var/lib/dpkg/status"},
        conffiles={"etc/a": dpkg.Conffile("pkg", "a" * 32)},
        md5={"etc/a": "b" * 32},
    )
    assert LayerIndex.from_json(index.to_json()) == index


@pytest.mark.parametrize(
    "bad", [{"conffiles": []}, {"conffiles": {"etc/a": ["pkg"]}}, {"md5": ["x"]}]
)
def test_layer_index_refuses_damaged_conffile_records(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LayerIndex.from_json(bad)


def _image(tmp_path: Path, *layers: list[Entry]) -> Path:
    steps = [LayerSpec(list(entries), f"RUN step {i}") for i, entries in enumerate(layers)]
    return write_oci_layout(tmp_path / "img", [ImageSpec(steps=steps)])


def _secret(result_path: Path, path: str) -> list[tuple[Severity, str | None]]:
    result = scan(result_path)
    assert result.problems == []
    return [
        (f.severity, f.noise)
        for f in result.findings
        if f.location.path == path and f.rule_id == "github-personal-access-token"
    ]


def _distro_layer(content: bytes = APIKEYS, path: str = "etc/chromium.d/apikeys") -> list[Entry]:
    status = _status(("chromium", [f"/{path} {dpkg.md5_hex(APIKEYS)}"]))
    return [Entry("var/lib/dpkg/status", content=status), Entry(path, content=content)]


def test_unmodified_conffile_finding_is_lowered_with_its_package(tmp_path: Path) -> None:
    found = _secret(_image(tmp_path, _distro_layer()), "etc/chromium.d/apikeys")
    assert found == [(Severity.LOW, "unmodified configuration file of Debian package chromium")]


def test_status_in_a_lower_layer_covers_the_file_above(tmp_path: Path) -> None:
    status, apikeys = _distro_layer()
    found = _secret(_image(tmp_path, [status], [apikeys]), "etc/chromium.d/apikeys")
    assert found[0][0] is Severity.LOW


def test_modified_conffile_keeps_its_severity(tmp_path: Path) -> None:
    edited = APIKEYS.replace(b"export", b"declare -x")
    found = _secret(_image(tmp_path, _distro_layer(content=edited)), "etc/chromium.d/apikeys")
    assert found and all(sev > Severity.LOW and noise is None for sev, noise in found)


def test_a_status_claim_outside_etc_is_not_trusted(tmp_path: Path) -> None:
    found = _secret(_image(tmp_path, _distro_layer(path="app/.env")), "app/.env")
    assert found and all(sev > Severity.LOW for sev, _ in found)


def test_a_deleted_status_file_proves_nothing(tmp_path: Path) -> None:
    layers = [_distro_layer(), [Entry("var/lib/dpkg/status", kind="whiteout")]]
    found = _secret(_image(tmp_path, *layers), "etc/chromium.d/apikeys")
    assert found and all(sev > Severity.LOW for sev, _ in found)

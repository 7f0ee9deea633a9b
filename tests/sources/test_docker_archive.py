"""docker save archives holding several images, picked by reference as docker does."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from fixtures.imagebuilder import (
    Entry,
    HistoryOnly,
    ImageSpec,
    LayerSpec,
    write_docker_archive,
    write_multi_docker_archive,
)
from scanner.errors import SourceError, UsageError
from scanner.image import Image
from scanner.scan import Scanner, ScanOptions
from scanner.sources.interface import SourceOptions
from scanner.sources.resolve import resolve, split_path_tag

FLY_REF = "registry.fly.io/app:deployment-01J9ZQ4W6M5Y3V8N2K7X1B0C4D"


def _spec(marker: str, env: str) -> ImageSpec:
    return ImageSpec(
        steps=[
            LayerSpec([Entry(f"srv/{marker}.txt", content=marker.encode())], f"COPY {marker}"),
            HistoryOnly(f"ENV {env}"),
        ],
        env=("PATH=/usr/bin", env),
    )


A = _spec("alpha", "MODE=alpha")
B = _spec("beta", "MODE=beta")
C = _spec("gamma", "MODE=gamma")


@pytest.fixture(params=["legacy", "docker25"])
def multi(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return write_multi_docker_archive(
        tmp_path / "multi.tar",
        [(A, ["app:latest", "app:v1"]), (B, [FLY_REF]), (C, [])],
        layout=request.param,
    )


def _load_all(text: str) -> list[Image]:
    with resolve(text, SourceOptions()) as source:
        return source.load_all()


def _marker(image: Image) -> str:
    (platform,) = image.platforms
    env = platform.runtime["Env"]
    return next(e for e in env if e.startswith("MODE="))


def test_every_image_is_its_own_image(multi: Path) -> None:
    images = _load_all(f"docker-archive:{multi}")
    assert [_marker(i) for i in images] == ["MODE=alpha", "MODE=beta", "MODE=gamma"]
    assert [i.tags for i in images] == [["app:latest", "app:v1"], [FLY_REF], []]
    assert [i.name for i in images] == [
        f"docker-archive:{multi}:app:latest",
        f"docker-archive:{multi}:{FLY_REF}",
        f"docker-archive:{multi}:@2",
    ]
    digests = {i.platforms[0].config_digest for i in images}
    assert len(digests) == 3 and all(d and d.startswith("sha256:") for d in digests)


@pytest.mark.parametrize(
    ("selector", "marker"),
    [
        ("app", "MODE=alpha"),  # docker.io/library/app:latest
        ("app:latest", "MODE=alpha"),
        ("app:v1", "MODE=alpha"),
        ("docker.io/library/app:v1", "MODE=alpha"),
        ("index.docker.io/library/app", "MODE=alpha"),
        (FLY_REF, "MODE=beta"),
        ("@1", "MODE=beta"),
        ("@2", "MODE=gamma"),
    ],
)
def test_pick_one_by_full_reference(multi: Path, selector: str, marker: str) -> None:
    text = f"docker-archive:{multi}:{selector}"
    (image,) = _load_all(text)
    assert _marker(image) == marker
    assert image.name == text
    with resolve(text, SourceOptions()) as source:
        assert _marker(source.load()) == marker


@pytest.mark.parametrize(
    "selector",
    ["latest", "other/app:latest", "registry.fly.io/app:latest", "app:v2", "registry.fly.io/app"],
)
def test_no_match_names_what_the_archive_holds(multi: Path, selector: str) -> None:
    with pytest.raises(SourceError) as info:
        _load_all(f"docker-archive:{multi}:{selector}")
    message = str(info.value)
    assert "no image" in message
    assert f"app:latest, app:v1, {FLY_REF}" in message
    assert "1 untagged (select with @N)" in message


def test_index_out_of_range(multi: Path) -> None:
    with pytest.raises(SourceError, match=r"no image @3: the archive holds 3 \(@0 to @2\)"):
        _load_all(f"docker-archive:{multi}:@3")


def test_selector_that_is_not_a_reference(multi: Path) -> None:
    with pytest.raises(UsageError, match="not a valid repository name component"):
        _load_all(f"docker-archive:{multi}:App:1")


def test_load_refuses_to_merge_several_images(multi: Path) -> None:
    with (
        resolve(f"docker-archive:{multi}", SourceOptions()) as source,
        pytest.raises(
            SourceError, match=r"holds 3 images .*pick one with docker-archive:PATH:REFERENCE"
        ),
    ):
        source.load()


def test_select_by_config_digest(multi: Path) -> None:
    images = _load_all(f"docker-archive:{multi}")
    digest = images[1].platforms[0].config_digest
    (image,) = _load_all(f"docker-archive:{multi}:app@{digest}")
    assert _marker(image) == "MODE=beta"


def test_scan_reports_each_image(multi: Path, tmp_path: Path) -> None:
    options = ScanOptions(jobs=1, use_cache=False)
    with Scanner(options) as scanner:
        report = scanner.scan_all([f"docker-archive:{multi}"])
        results = report.images
    assert [r.name.rsplit(":", 1)[-1] for r in results] == [
        "latest",
        "deployment-01J9ZQ4W6M5Y3V8N2K7X1B0C4D",
        "@2",
    ]
    assert [len(r.platforms) for r in results] == [1, 1, 1]
    assert [r.tags for r in results] == [["app:latest", "app:v1"], [FLY_REF], []]
    assert all(f.image == r.name for r in results for f in r.findings)
    assert report.complete


def test_single_image_archive_keeps_the_name_typed(tmp_path: Path) -> None:
    path = write_docker_archive(tmp_path / "one.tar", A, repo_tags=["app:latest"])
    (image,) = _load_all(f"docker-archive:{path}")
    assert image.name == f"docker-archive:{path}"


def test_path_with_colons_and_a_reference(tmp_path: Path) -> None:
    odd = tmp_path / "a:b"
    odd.mkdir()
    archive = odd / "x.tar"
    archive.write_bytes(b"")
    assert split_path_tag(str(archive)) == (archive, None)
    assert split_path_tag(f"{archive}:{FLY_REF}") == (archive, FLY_REF)
    assert split_path_tag(f"{archive}:@0") == (archive, "@0")
    assert split_path_tag(f"{tmp_path}/missing.tar:app:1")[1] is None


# --- hostile archives ------------------------------------------------------------------------


def _rewrite_manifest(src: Path, dest: Path, manifest: object) -> Path:
    with tarfile.open(src) as tin, tarfile.open(dest, "w") as tout:
        for member in tin.getmembers():
            data = tin.extractfile(member) if member.isfile() else None
            if member.name == "manifest.json":
                raw = json.dumps(manifest).encode()
                member.size = len(raw)
                import io

                tout.addfile(member, io.BytesIO(raw))
            else:
                tout.addfile(member, data)
    return dest


def test_hostile_repo_tags_are_bounded_and_ignored(tmp_path: Path) -> None:
    src = write_docker_archive(tmp_path / "one.tar", A, repo_tags=["app:latest"])
    with tarfile.open(src) as tar:
        fh = tar.extractfile("manifest.json")
        assert fh is not None
        entry = json.load(fh)[0]
    many = [f"junk{i}:t" for i in range(500)]
    entry["RepoTags"] = [123, None, "NOT A REF", "\x1b[31mred", *many]
    dest = _rewrite_manifest(src, tmp_path / "hostile.tar", [entry, {"Config": 5}])
    images = _load_all(f"docker-archive:{dest}")
    assert len(images) == 2
    assert images[0].platforms and images[0].name.endswith(":junk0:t")
    assert not images[1].platforms and "lacks Config or Layers" in images[1].problems[0]
    with pytest.raises(SourceError) as info:
        _load_all(f"docker-archive:{dest}:nothere")
    assert "and 482 more" in str(info.value)


def test_empty_manifest_list(tmp_path: Path) -> None:
    src = write_docker_archive(tmp_path / "one.tar", A, repo_tags=["app:latest"])
    dest = _rewrite_manifest(src, tmp_path / "empty.tar", [])
    with pytest.raises(SourceError, match="lists no image"):
        _load_all(f"docker-archive:{dest}")


def test_cli_reports_each_image_and_lists_references(multi: Path) -> None:
    import json as _json

    from click.testing import CliRunner

    from scanner.cli import main

    done = CliRunner().invoke(
        main, ["scan", "--format", "json", "--no-cache", "-q", f"docker-archive:{multi}"]
    )
    assert done.exit_code in (0, 1), done.output
    doc = _json.loads(done.stdout)
    assert [i["tags"] for i in doc["images"]] == [["app:latest", "app:v1"], [FLY_REF], []]
    assert doc["summary"]["images"] == 3
    missing = CliRunner().invoke(main, ["scan", "-q", f"docker-archive:{multi}:app:v9"])
    assert missing.exit_code == 3
    assert f"no image app:v9 in the archive; it holds app:latest, app:v1, {FLY_REF}" in (
        missing.stderr
    )

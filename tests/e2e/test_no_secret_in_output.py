"""Property: a secret found in an image never appears in any output made without --reveal.

Every format (table, json, sarif, markdown), every stream (stdout, stderr) and the
``-o`` file. The secrets are the findings' own (collected with ``--reveal``), over
every fixture image plus an image built here whose build steps, config and files
carry credentials in the forms a hostile or careless Dockerfile writes them; the
hypothesis test varies the secret.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from fixtures.imagebuilder import Entry, HistoryOnly, ImageSpec, LayerSpec, write_oci_layout
from scanner.cli import main
from scanner.report.formats import FORMATTERS
from scanner.scan import Scanner, ScanOptions

FORMATS = ("table", "json", "sarif", "markdown", "html")
MIN_CHECKED = 8  # shorter secrets ("root", "1234") also occur as ordinary words


def leaky_image(dest: Path, secret: str) -> Path:
    """An image that holds ``secret`` in build steps, config, labels and a file."""
    steps: list[LayerSpec | HistoryOnly] = [
        LayerSpec(
            [Entry("app/.env", content=f"DB_PASSWORD={secret}\n".encode())],
            f"RUN |1 NPM_TOKEN=npm_{secret} /bin/sh -c curl -u admin:{secret} https://x # buildkit",
        ),
        HistoryOnly(f"/bin/sh -c #(nop)  ENV DB_PASSWORD {secret}"),
        HistoryOnly(f"ADD https://user:{secret}@downloads.example.com/tool.tgz /opt/"),
        LayerSpec(
            [Entry("root/.netrc", content=f"machine h login u password {secret}\n".encode())],
            f"RUN /bin/sh -c mysql -uroot -p{secret} -e 'select 1' && "
            f"curl -H 'X-Api-Key: {secret}' https://api.example.com # buildkit",
        ),
    ]
    spec = ImageSpec(
        steps=steps,
        env=["PATH=/usr/bin", f"API_TOKEN={secret}"],
        labels={"deploy.password": secret},
    )
    return write_oci_layout(dest, [spec])


def _run(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _secrets(sources: list[str]) -> set[str]:
    _, out, _ = _run(["scan", "--no-cache", "--reveal", "--format", "json", *sources])
    doc = json.loads(out)
    return {
        f["secret"]
        for image in doc["images"]
        for f in image["findings"]
        if f.get("secret") and len(f["secret"].strip()) >= MIN_CHECKED
    }


def _outputs(sources: list[str], tmp: Path) -> dict[str, str]:
    texts: dict[str, str] = {}
    for fmt in FORMATS:
        _, out, err = _run(["scan", "--no-cache", "--format", fmt, *sources])
        texts[f"{fmt} stdout"] = out
        texts[f"{fmt} stderr"] = err
        dest = tmp / f"report.{fmt}"
        _, out, err = _run(["scan", "--no-cache", "--format", fmt, "-o", str(dest), *sources])
        texts[f"{fmt} -o file"] = dest.read_text(encoding="utf-8")
        texts[f"{fmt} -o stdout+stderr"] = out + err
    return texts


def _leaks(secrets: set[str], texts: dict[str, str]) -> list[str]:
    return [
        f"{secret[:4]}... in {where}"
        for secret in sorted(secrets)
        for where, text in texts.items()
        if secret.strip() in text
    ]


def test_no_fixture_secret_in_any_output(images: dict[str, Path], tmp_path: Path) -> None:
    sources = [str(p) for name, p in sorted(images.items()) if not name.startswith("broken")]
    sources.append(str(leaky_image(tmp_path / "leaky", "Zq8vPlm2XwRtYu")))
    secrets = _secrets(sources)
    assert len(secrets) > 20  # the fixtures plant many; this is not a vacuous check
    assert _leaks(secrets, _outputs(sources, tmp_path)) == []


SECRET_TEXT = st.text(
    alphabet=st.sampled_from("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"),
    min_size=10,
    max_size=32,
)


def _rendered(source: str) -> dict[str, str]:
    with Scanner(ScanOptions(use_cache=False, jobs=1)) as scanner:
        report = scanner.scan_all([source])
    texts = {name: cls(color=False).render(report) for name, cls in FORMATTERS.items()}
    texts["problems"] = "\n".join(p.message for p in report.problems)
    return texts


@pytest.fixture(scope="module")
def control_texts(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every format's rendering of the same image with another secret: the formats' own
    words (``indexDigest``, ``ruleIndex``, ...), which a generated secret may spell."""
    source = str(leaky_image(tmp_path_factory.mktemp("control") / "img", "Zq8vPlm2XwRtYu"))
    return "\n".join(_rendered(source).values())


@settings(
    max_examples=10,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # shrinking re-scans images: too slow
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(secret=SECRET_TEXT)
def test_property_generated_secret_never_printed(
    tmp_path: Path, control_texts: str, secret: str
) -> None:
    assume(secret not in control_texts)  # a word of the format itself proves nothing
    source = str(leaky_image(tmp_path / "img", secret))
    with Scanner(ScanOptions(use_cache=False, jobs=1, reveal=True)) as scanner:
        revealed = scanner.scan_all([source])
    assert any(secret in (f.secret or "") for f in revealed.findings)  # it does leak
    texts = _rendered(source)
    assert [where for where, text in texts.items() if secret in text] == []


def test_report_with_revealed_secrets_is_written_0600(tmp_path: Path) -> None:
    source = str(leaky_image(tmp_path / "img", "Zq8vPlm2XwRtYu"))
    for fmt in FORMATS:
        dest = tmp_path / f"revealed.{fmt}"
        _run(["scan", "--no-cache", "--reveal", "--format", fmt, "-o", str(dest), source])
        assert "Zq8vPlm2XwRtYu" in dest.read_text()
        assert stat.S_IMODE(dest.stat().st_mode) == 0o600, fmt


@pytest.mark.parametrize("fmt", FORMATS)
def test_report_file_replaced_by_a_revealing_one_becomes_private(tmp_path: Path, fmt: str) -> None:
    dest = tmp_path / "report"
    dest.write_text("old")
    dest.chmod(0o644)
    source = str(leaky_image(tmp_path / "img", "Zq8vPlm2XwRtYu"))
    _run(["scan", "--no-cache", "--reveal", "--format", fmt, "-o", str(dest), source])
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600

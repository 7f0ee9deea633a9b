"""Hostile input: build steps that carry credentials in every command-line form.

One redaction function (``Detection.redact_text``, through ``redact_step`` for build
steps) must mask each of them; the table and the property test build the steps in
code, with secrets no signature recognises, so only the command-line forms catch them.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.analyzers.history import redact_step
from scanner.detection import Detection
from scanner.findings import Location, LocationKind
from scanner.signatures import SignatureSet
from tests.conftest import TEST_FINGERPRINT_KEY

SECRET = "Zq8vPlm2XwRt"  # no vendor shape: only its place on the line makes it a secret


@pytest.fixture(scope="module")
def detection() -> Detection:
    return Detection(SignatureSet.builtin(), hash_key=TEST_FINGERPRINT_KEY)


# (build step, the secret it holds)
CREDENTIAL_FORMS = [
    (f"curl -u admin:{SECRET} https://example.com/x", SECRET),
    (f"curl -uadmin:{SECRET} https://example.com/x", SECRET),
    (f"curl --user 'admin:{SECRET} two' https://example.com/x", f"{SECRET} two"),
    (f"curl --proxy-user proxy:{SECRET} https://example.com/x", SECRET),
    (f"wget --password={SECRET} https://example.com/x", SECRET),
    (f"wget --http-password {SECRET} https://example.com/x", SECRET),
    (f'wget --ftp-password="{SECRET}" ftp://example.com/x', SECRET),
    (f"mysql -uroot -p{SECRET} -h db", SECRET),
    (f"mysqldump -u root -p{SECRET} app > /tmp/dump.sql", SECRET),
    (f"psql postgres://app:{SECRET}@db:5432/app -c 'select 1'", SECRET),
    (f"PGPASSWORD={SECRET} psql -h db -U app", SECRET),
    (f"git clone https://oauth2:{SECRET}@gitlab.example.com/g/p.git", SECRET),
    (f"git clone https://{SECRET}{SECRET}@github.com/o/r.git", f"{SECRET}{SECRET}"),
    (f"docker login -u bot -p {SECRET} registry.example.com", SECRET),
    (f"docker login --password {SECRET} --username bot registry.example.com", SECRET),
    (f"npm config set //registry.npmjs.org/:_authToken {SECRET}", SECRET),
    (f"npm config set //registry.npmjs.org/:_authToken={SECRET}", SECRET),
    (f"yarn config set npmAuthToken {SECRET}", SECRET),
    (f"echo '//npm.example.com/:_authToken={SECRET}' > ~/.npmrc", SECRET),
    (f'curl -H "Authorization: Bearer {SECRET}" https://api.example.com', SECRET),
    (f'curl -H "Authorization: token {SECRET}" https://api.example.com', SECRET),
    (f"curl -H 'X-Api-Key: {SECRET}' https://api.example.com", SECRET),
    (f"curl --header 'PRIVATE-TOKEN: {SECRET}' https://gitlab.example.com", SECRET),
    (f'echo "machine github.com login bot password {SECRET}" > ~/.netrc', SECRET),
    (f"printf 'machine h\\nlogin u\\npassword {SECRET}\\n' > /root/.netrc", SECRET),
    (f"/bin/sh -c #(nop)  ENV DB_PASSWORD {SECRET}", SECRET),
    (f"ENV DB_PASSWORD {SECRET} more words # buildkit", f"{SECRET} more words"),
    (f"deploy-tool --password {SECRET} --host x", SECRET),
    (f"tool --api-key={SECRET}", SECRET),
    (f"sshpass -p {SECRET} ssh deploy@host", SECRET),
    (f"redis-cli -h cache -a {SECRET} ping", SECRET),
    (f"openssl pkcs12 -export -passout pass:{SECRET} -in cert.pem", SECRET),
    (f"htpasswd -bc /etc/nginx/.htpasswd admin {SECRET}", SECRET),
    (f"""curl -d '{{"password": "{SECRET}"}}' https://api.example.com""", SECRET),
    (f"export API_TOKEN={SECRET} && ./run.sh", SECRET),
    (f"RUN |1 FLY_TOKEN=FlyV1 {SECRET} /bin/sh -c flyctl deploy # buildkit", SECRET),
    (f"ADD https://user:{SECRET}@downloads.example.com/tool.tgz /opt/", SECRET),
    (f"pip install --index-url https://__token__:{SECRET}@pypi.example.com/simple x", SECRET),
    (f"401 Unauthorized (sent: Bearer {SECRET}{SECRET})", f"{SECRET}{SECRET}"),
    ("denied: Basic dXNlcjpacThwUGxtMlh3UnQ= rejected", "dXNlcjpacThwUGxtMlh3UnQ="),
]


@pytest.mark.parametrize(("step", "secret"), CREDENTIAL_FORMS)
def test_every_command_line_credential_form_is_masked(
    detection: Detection, step: str, secret: str
) -> None:
    shown = redact_step(detection, step)
    assert shown is not None
    assert secret not in shown
    assert "********" in shown


@pytest.mark.parametrize(
    "step",
    [
        "apt-get install -y curl && rm -rf /var/lib/apt/lists/*",
        "pip install --no-cache-dir -r requirements.txt",
        "COPY app/ /app/ # buildkit",
        "/bin/sh -c #(nop)  ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/bin",
        "ENV PYTHONUNBUFFERED 1",
        "docker login --password-stdin -u bot registry.example.com",
        "useradd -m -u 1000 app",
    ],
)
def test_ordinary_steps_are_left_readable(detection: Detection, step: str) -> None:
    assert redact_step(detection, step) == step


def test_values_a_finding_redacts_are_masked_everywhere_in_the_step(
    detection: Detection,
) -> None:
    # A build argument whose value has spaces: the finding holds the whole value, so
    # the step must not show any part of it after the first word either.
    step = f"RUN |2 DB_PASSWORD=alpha {SECRET} OTHER=x /bin/sh -c echo {SECRET} > /x # buildkit"
    shown = redact_step(detection, step)
    assert shown is not None and SECRET not in shown


def test_redaction_keeps_the_quotes_around_a_masked_value(detection: Detection) -> None:
    shown = detection.redact_text(f"echo 'API_TOKEN={SECRET}' > /etc/app.env")
    assert shown.endswith("' > /etc/app.env")
    assert SECRET not in shown


def test_add_from_url_finding_never_shows_the_password(detection: Detection) -> None:
    from scanner.analyzers.history import step_findings

    step = f"ADD https://user:{SECRET}@host.example.com/f.tgz /opt/ # buildkit"
    found, _ = step_findings(detection, step, lambda f: Location(LocationKind.HISTORY, field=f))
    add = [f for f in found if f.rule_id == "add-from-url"]
    assert add and all(SECRET not in f.match for f in add)


# --- property: whatever the secret, every form masks it -----------------------------

TEMPLATES = [step.replace(SECRET, "{s}") for step, secret in CREDENTIAL_FORMS if secret == SECRET]
SECRETS = st.text(
    alphabet=st.sampled_from("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789_.+"),
    min_size=8,
    max_size=40,
).filter(lambda s: s[0].isalnum() and s[-1].isalnum())


@settings(max_examples=150, deadline=None)
@given(template=st.sampled_from(TEMPLATES), secret=SECRETS)
def test_property_no_command_line_form_shows_its_secret(template: str, secret: str) -> None:
    detection = _shared()
    shown = redact_step(detection, template.replace("{s}", secret))
    assert shown is not None and secret not in shown


_DETECTION: list[Detection] = []


def _shared() -> Detection:
    if not _DETECTION:
        _DETECTION.append(Detection(SignatureSet.builtin(), hash_key=TEST_FINGERPRINT_KEY))
    return _DETECTION[0]


# --- hostile length: matching stays linear ---------------------------------------------

HOSTILE_UNITS = [
    "mysql ",
    "docker login ",
    "sshpass ",
    "redis-cli ",
    "htpasswd -b a ",
    "npm config set ",
    "-H Authorization: ",
    "Cookie:",
    "password ",
    ",a://x:",
    "(-uxx",
    "ENV A_PASSWORD ",
    '"password": ',
    'A_TOKEN="',
    '--password "',
    "curl ",
    "ADD --a ",
    "|9 A=",
    "a",
]


@pytest.mark.parametrize("unit", HOSTILE_UNITS)
def test_a_long_hostile_step_is_redacted_without_blowing_up(
    detection: Detection, unit: str
) -> None:
    """Each of these took from seconds to minutes on 20 KB with backtracking patterns;
    the alarm turns a regression into a failure instead of a hung suite."""
    import signal

    def too_slow(signum: int, frame: object) -> None:
        raise TimeoutError(f"redacting {unit!r} * N did not finish: super-linear matching")

    text = unit * (60_000 // len(unit))
    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(30)
    try:
        shown = redact_step(detection, text)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert shown is not None


def test_problem_messages_are_redacted(tmp_path: object) -> None:
    """A problem message quotes what it was given (a path, a server's text)."""
    from scanner.scan import Scanner, ScanOptions

    with Scanner(ScanOptions(use_cache=False, jobs=1)) as scanner:
        result = scanner.scan(f"oci:/nonexistent/x --password={SECRET}")
    assert result.problems
    assert all(SECRET not in p.message for p in result.problems)

"""The signature set: every rule against its own examples, and the loader's checks."""

from __future__ import annotations

import random
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from scanner import signatures
from scanner.errors import SignatureError
from scanner.findings import Category, Severity
from scanner.secrets.engine import SecretEngine
from scanner.signatures import BUILTIN_DIR, PathRule, Rule, SignatureSet, load_file

BUILTIN = SignatureSet.builtin()
ENGINE = SecretEngine(BUILTIN)

MATCH_CASES = [
    pytest.param(rule, i, id=f"{rule.id}-{i}")
    for rule in BUILTIN.rules
    for i in range(len(rule.examples_match))
]
NO_MATCH_CASES = [
    pytest.param(rule, i, id=f"{rule.id}-{i}")
    for rule in BUILTIN.rules
    for i in range(len(rule.examples_no_match))
]
PATH_MATCH = [
    pytest.param(rule, path, id=f"{rule.id}:{path}")
    for rule in BUILTIN.path_rules
    for path in rule.examples_match
]
PATH_NO_MATCH = [
    pytest.param(rule, path, id=f"{rule.id}:{path}")
    for rule in BUILTIN.path_rules
    for path in rule.examples_no_match
]


@pytest.mark.parametrize(("rule", "index"), MATCH_CASES)
def test_rule_matches_its_examples(rule: Rule, index: int) -> None:
    example = rule.examples_match[index]
    matches = [m for m in ENGINE.scan(example.text.encode()) if m.rule.id == rule.id]
    assert matches, f"{rule.id} did not match {example.text!r}"
    if example.secret is not None:
        assert example.secret in [m.secret for m in matches]
        matches = [m for m in matches if m.secret == example.secret]
    assert matches[0].noise == example.noise


@pytest.mark.parametrize(("rule", "index"), NO_MATCH_CASES)
def test_rule_ignores_its_counter_examples(rule: Rule, index: int) -> None:
    """A counter-example yields nothing from the rule, or only noise (a placeholder or
    a value failing the rule's check is kept as a suppressed finding, never reported)."""
    text = rule.examples_no_match[index]
    found = [m for m in ENGINE.scan(text.encode()) if m.rule.id == rule.id]
    assert [m for m in found if m.noise is None] == []


@pytest.mark.parametrize(("rule", "path"), PATH_MATCH)
def test_path_rule_matches_its_examples(rule: PathRule, path: str) -> None:
    assert rule in BUILTIN.match_path(path)
    assert rule in BUILTIN.match_path("/" + path)


@pytest.mark.parametrize(("rule", "path"), PATH_NO_MATCH)
def test_path_rule_ignores_its_counter_examples(rule: PathRule, path: str) -> None:
    assert rule not in BUILTIN.match_path(path)


def test_builtin_set_is_large_and_well_formed() -> None:
    assert len(BUILTIN.rules) >= 85
    ids = [r.id for r in BUILTIN.rules] + [p.id for p in BUILTIN.path_rules]
    assert len(ids) == len(set(ids))
    for rule in BUILTIN.rules:
        assert rule.description, rule.id
        assert rule.keywords == tuple(k.lower() for k in rule.keywords)
        assert rule.category is Category.SECRET
        assert Path(rule.source).parent == BUILTIN_DIR
    assert all(p.category is Category.SENSITIVE_FILE for p in BUILTIN.path_rules)


def test_every_builtin_rule_has_a_provider_and_examples() -> None:
    for rule in BUILTIN.rules:
        assert rule.provider, rule.id
        assert rule.examples_match and rule.examples_no_match, rule.id
    providers = {r.provider for r in BUILTIN.rules}
    assert len(providers) >= 300
    assert len(BUILTIN.rules) >= 550


def test_a_keyword_is_inside_every_match_of_an_example() -> None:
    """The prefilter finds a rule's matches only where one of its keywords occurs."""
    for rule in BUILTIN.rules:
        for example in rule.examples_match:
            for m in rule.regex.finditer(example.text.encode()):
                text = m.group(0).lower()
                assert any(k.encode() in text for k in rule.keywords), (rule.id, example.text)


def test_no_two_rules_are_identical() -> None:
    seen: dict[tuple[bytes, int], str] = {}
    for rule in BUILTIN.rules:
        key = (rule.regex.pattern, rule.regex.flags)
        assert key not in seen, f"{rule.id} has the same regex as {seen[key]}"
        seen[key] = rule.id


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@pytest.mark.parametrize(("rule", "index"), MATCH_CASES)
def test_no_unrelated_rule_outranks_an_example(rule: Rule, index: int) -> None:
    """An example of one rule is not also reported, more severely, by a specific rule
    of another provider on the same bytes (that would be a duplicate finding)."""
    example = rule.examples_match[index]
    matches = ENGINE.scan(example.text.encode())
    own = [(m.start, m.end) for m in matches if m.rule.id == rule.id]
    for m in matches:
        if m.rule.generic or m.rule.provider == rule.provider or m.noise is not None:
            continue
        if m.rule.severity > rule.severity and any(_overlaps((m.start, m.end), o) for o in own):
            raise AssertionError(f"{m.rule.id} ({m.rule.severity.label}) also matches {rule.id}")


def test_provider_defaults_to_the_detector(tmp_path: Path) -> None:
    [rule], _ = load_file(write_rules(tmp_path, GOOD_RULE))
    assert rule.provider == "Acme"
    named = GOOD_RULE.replace("detector: Acme", "detector: Acme\n  provider: Acme Inc")
    [rule], _ = load_file(write_rules(tmp_path, named))
    assert rule.provider == "Acme Inc"


def test_fly_tokens_are_covered() -> None:
    ids = {r.id for r in BUILTIN.rules if r.detector == "FlyIO"}
    assert {"flyio-api-token", "flyio-macaroon", "flyio-org-token"} <= ids


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("app/.env", "env-file"),
        (".env.production", "env-file"),
        ("root/.ssh/id_ed25519", "ssh-private-key-file"),
        ("root/.docker/config.json", "docker-config"),
        ("root/.kube/config", "kubeconfig"),
        ("root/.bash_history", "shell-history"),
        ("infra/prod.tfstate", "terraform-state"),
        ("srv/.git/config", "git-directory"),
        ("etc/nginx/server.key", "private-key-file"),
    ],
)
def test_sensitive_paths(path: str, expected: str) -> None:
    assert expected in [r.id for r in BUILTIN.match_path(path)]


@pytest.mark.parametrize(
    "path",
    [
        "root/.ssh/authorized_keys",
        "app/.env.example",
        "etc/ssl/certs/ca-certificates.crt",
        "etc/ssl/certs/DigiCert_Global_Root_CA.pem",
        "usr/lib/python3.11/os.py",
    ],
)
def test_not_sensitive_paths(path: str) -> None:
    assert BUILTIN.match_path(path) == []


def path_rule(globs: tuple[str, ...], exclude: tuple[str, ...] = ()) -> PathRule:
    """A path rule ``t`` with these globs and nothing else."""
    return PathRule(
        id="t",
        title="t",
        severity=Severity.LOW,
        category=Category.SENSITIVE_FILE,
        globs=globs,
        description="",
        examples_match=(),
        examples_no_match=(),
        exclude=exclude,
    )


def test_glob_semantics() -> None:
    rule = path_rule(
        ("**/.aws/credentials", "*.key", "data/*/x?.txt", "secrets/**", "[ab]c"),
        exclude=("**/test/**",),
    )
    assert rule.matches(".aws/credentials")
    assert rule.matches("/root/.aws/credentials")
    assert rule.matches("a/b/c/.aws/credentials")
    assert not rule.matches("root/aws/credentials")
    assert rule.matches("deep/dir/server.key")  # no slash: basename
    assert rule.matches("data/one/x1.txt")
    assert not rule.matches("data/one/two/x1.txt")  # * stops at a slash
    assert rule.matches("secrets/a/b/c")
    assert rule.matches("dir/ac") and rule.matches("bc") and not rule.matches("cc")
    assert not rule.matches("pkg/test/fixtures/server.key")


def test_the_set_prefilter_flags_exactly_what_the_rules_flag() -> None:
    """match_path's combined patterns (basename, last part of full-path globs, globs
    whose last part says nothing) never hide a rule that matches, nor add one."""
    rule = path_rule(("**/.aws/credentials", "data/*/x?.txt", "secrets/**", "keys/*", "k/**/z*"))
    sigs = SignatureSet.from_rules(BUILTIN.rules, [*BUILTIN.path_rules, rule])
    rng = random.Random(7)
    parts = [
        "root",
        ".aws",
        "credentials",
        "data",
        "one",
        "x1.txt",
        "secrets",
        "keys",
        "k",
        "z",
        "zed",
        ".ssh",
        "id_rsa",
        ".gnupg",
        "private-keys-v1.d",
        "a",
        ".env",
        "config",
        ".docker",
        "config.json",
        "etc",
        "ssh",
        "ssh_host_rsa_key",
        "x",
    ]
    examples = [e for r in sigs.path_rules for e in (*r.examples_match, *r.examples_no_match)]
    paths = examples + [
        "/".join(rng.choice(parts) for _ in range(rng.randrange(1, 6))) for _ in range(5000)
    ]
    flagged = 0
    for path in paths:
        expected = [r for r in sigs.path_rules if r.matches(path)]
        assert sigs.match_path(path) == expected, path
        flagged += bool(expected)
    assert flagged > 300  # the draw reaches the rules


# -- loader errors ---------------------------------------------------------------------

GOOD_RULE = """\
- id: acme-token
  detector: Acme
  title: Acme token
  severity: high
  keywords: [acme_]
  regex: 'acme_[a-z0-9]{10}'
  description: test rule
  examples:
    match: ['acme_k3j9x0q2lm', {text: 'X=acme_p9z8y7x6w5', secret: acme_p9z8y7x6w5}]
    no_match: ['acme_short', 'nothing here']
"""


def write_rules(tmp_path: Path, body: str, name: str = "user.yaml") -> Path:
    path = tmp_path / name
    path.write_text("rules:\n" + textwrap.indent(body, "  "))
    return path


def load_error(path: Path) -> str:
    with pytest.raises(SignatureError) as info:
        SignatureSet.load([path])
    return str(info.value)


def test_user_rules_load_with_builtin(tmp_path: Path) -> None:
    path = write_rules(tmp_path, GOOD_RULE)
    sigs = SignatureSet.load([path])
    assert sigs.get("acme-token") is not None
    assert len(sigs.rules) == len(BUILTIN.rules) + 1
    matches = SecretEngine(sigs).scan(b"token: acme_0a1b2c3d4e")
    assert [m.rule.id for m in matches] == ["acme-token"]
    only = SignatureSet.load([tmp_path], include_builtin=False)
    assert [r.id for r in only.rules] == ["acme-token"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.replace("regex: 'acme_[a-z0-9]{10}'", "regex: 'acme_[a-z'"), "bad regex"),
        (lambda r: r.replace("severity: high", "severity: urgent"), "unknown severity"),
        (lambda r: r.replace("  detector: Acme\n", ""), "missing field(s): detector"),
        (lambda r: r.replace("no_match: ['acme_short', 'nothing here']", "no_match: []"), "needs"),
        (
            lambda r: r.replace(
                "match: ['acme_k3j9x0q2lm', {text: 'X=acme_p9z8y7x6w5', secret: acme_p9z8y7x6w5}]",
                "match: ['acme_k3j9x0q2lm']",
            ),
            "needs at least 2",
        ),
        (lambda r: r + "  secret_group: 2\n", "secret_group 2 is not in the regex"),
        (lambda r: r + "  secret_group: token\n", "secret_group 'token' is not a named group"),
        (lambda r: r.replace("keywords: [acme_]", "keywords: [acme_, zeta]"), "keyword 'zeta'"),
        (lambda r: r + "  colour: blue\n", "unknown field(s): colour"),
        (lambda r: r.replace("id: acme-token", "id: Acme_Token"), "kebab-case"),
        (lambda r: r + "  entropy_min: 12\n", "entropy_min"),
        (lambda r: r + "  validate: luhn\n", "unknown validate"),
        (lambda r: r.replace("secret: acme_p9z8y7x6w5", "secret: acme_0000000000"), "expected"),
    ],
)
def test_invalid_rules_name_file_and_rule(
    tmp_path: Path, edit: Callable[[str], str], message: str
) -> None:
    path = write_rules(tmp_path, edit(GOOD_RULE))
    error = load_error(path)
    assert str(path) in error
    assert message in error
    if "kebab-case" not in message:
        assert "acme-token" in error


def test_duplicate_ids_in_one_file(tmp_path: Path) -> None:
    path = write_rules(tmp_path, GOOD_RULE + GOOD_RULE)
    error = load_error(path)
    assert "acme-token" in error and "duplicate id" in error and str(path) in error


def test_duplicate_of_a_builtin_id(tmp_path: Path) -> None:
    body = GOOD_RULE.replace("id: acme-token", "id: github-personal-access-token")
    path = write_rules(tmp_path, body)
    error = load_error(path)
    assert "github-personal-access-token" in error and "duplicate id" in error
    assert str(path) in error and "vcs.yaml" in error


def test_malformed_files(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("rules: [\n")
    assert "invalid YAML" in load_error(bad_yaml)
    bad_top = tmp_path / "top.yaml"
    bad_top.write_text("signatures: []\n")
    assert "unknown top-level key" in load_error(bad_top)
    assert "cannot read" in load_error(tmp_path / "missing.yaml")


def test_path_rule_examples_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "paths.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            paths:
              - id: secret-dir
                title: Secret dir
                severity: medium
                globs: ['**/secret/*']
                examples:
                  match: [app/secret/a, secret/b]
                  no_match: [app/secrets/a, app/secret]
              - id: bad-path-rule
                title: Bad
                severity: low
                globs: ['*.pem']
                examples:
                  match: [a.pem, b.key]
                  no_match: [a.txt, b.txt]
            """
        )
    )
    error = load_error(path)
    assert "bad-path-rule" in error and "b.key" in error


def test_digest_changes_with_any_rule(tmp_path: Path) -> None:
    path = write_rules(tmp_path, GOOD_RULE)
    first = SignatureSet.load([path]).digest
    assert SignatureSet.load([path]).digest == first
    assert first != BUILTIN.digest
    path.write_text(path.read_text().replace("severity: high", "severity: critical"))
    assert SignatureSet.load([path]).digest != first
    path.write_text(path.read_text().replace("'acme_[a-z0-9]{10}'", "'acme_[a-z0-9]{10,12}'"))
    second = SignatureSet.load([path]).digest
    path.write_text(path.read_text().replace("description: test rule", "description: other"))
    assert SignatureSet.load([path]).digest not in (first, second)


def test_digest_does_not_depend_on_file_location(tmp_path: Path) -> None:
    a = write_rules(tmp_path, GOOD_RULE, "a.yaml")
    other = tmp_path / "other"
    other.mkdir()
    b = write_rules(other, GOOD_RULE, "b.yaml")
    assert SignatureSet.load([a]).digest == SignatureSet.load([b]).digest


def test_every_builtin_file_loads_alone() -> None:
    """Loaded as a user's file is (every check, regexes compiled), each built-in file
    passes: the checks the run-time loader leaves out of the built-in set."""
    ids: list[str] = []
    for path in sorted(BUILTIN_DIR.glob("*.yaml")):
        rules, paths = load_file(path)
        assert rules or paths, path
        ids += [r.id for r in rules]
    assert sorted(ids) == sorted(r.id for r in BUILTIN.rules)


def test_builtin_set_passes_the_deferred_checks() -> None:
    SignatureSet.builtin().check()
    assert all("regex" in rule.__dict__ for rule in BUILTIN.rules)


def test_loading_the_builtin_set_compiles_no_regex() -> None:
    """A run whose layers are all cached gets the digest without compiling a rule."""
    fresh = signatures._builtin.__wrapped__()
    assert fresh.digest == BUILTIN.digest
    assert fresh.rules and not any(
        "regex" in r.__dict__ or "allow" in r.__dict__ for r in fresh.rules
    )
    fresh.compile()
    assert all("regex" in r.__dict__ and "allow" in r.__dict__ for r in fresh.rules)
    assert [r.regex.pattern.decode() for r in fresh.rules] == [r.pattern for r in fresh.rules]


DEFERRED = [
    (lambda r: r.replace("regex: 'acme_[a-z0-9]{10}'", "regex: 'acme_[a-z'"), "bad regex"),
    (lambda r: r + "  allow: ['(unclosed']\n", "bad allow pattern #1"),
    (lambda r: r + "  secret_group: 2\n", "secret_group 2 is not in the regex"),
    (lambda r: r + "  secret_group: token\n", "secret_group 'token' is not a named group"),
    (lambda r: r.replace("secret: acme_p9z8y7x6w5", "secret: acme_0000000000"), "expected"),
    (lambda r: r.replace("'acme_k3j9x0q2lm'", "'acme_K3J9'"), "does not match 'match' example #1"),
]


@pytest.mark.parametrize(("edit", "message"), DEFERRED)
def test_checks_left_to_check_name_file_and_rule(
    tmp_path: Path, edit: Callable[[str], str], message: str
) -> None:
    """What the built-in loader defers is still checked: at load for a user's file, by
    :meth:`SignatureSet.check` (which the tests run on the built-in set) otherwise."""
    path = write_rules(tmp_path, edit(GOOD_RULE))
    error = load_error(path)
    assert message in error and str(path) in error and "acme-token" in error
    rules, _ = load_file(path, checked=False)
    with pytest.raises(SignatureError) as info:
        SignatureSet.from_rules(rules).check()
    assert str(info.value) == error


def test_unparseable_key_block_never_spans_another_marker() -> None:
    """Each BEGIN line is matched only up to the next ``-----``: a flood of BEGIN lines
    without END costs one short look per line, not 20 000 characters each."""
    text = (
        b"-----BEGIN RSA PRIVATE KEY-----\n" * 50
        + b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC%%\n"
        + b"-----END PRIVATE KEY-----\n"
    )
    found = [m for m in ENGINE.scan(text) if m.rule.id == "private-key-block-unparseable"]
    assert len(found) == 1
    assert text[found[0].start :].startswith(b"-----BEGIN PRIVATE KEY-----\nMIIE")
    rule = BUILTIN.get("private-key-block-unparseable")
    assert isinstance(rule, Rule)
    assert rule.regex.search(b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBAD%%%\n" + b"A" * 30) is None


def test_the_built_in_set_parsed_once_loads_back_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parse of the built-in files is kept in the compiled-rules cache; loaded back it
    is the same set (every field, the digest), and a changed file is parsed again."""
    from scanner import compiled_cache

    module = signatures

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    copy = tmp_path / "builtin"
    copy.mkdir()
    for path in sorted(module.BUILTIN_DIR.glob("*.yaml")):
        (copy / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(module, "BUILTIN_DIR", copy)
    module._builtin.cache_clear()
    parsed = module._builtin()  # parsed from YAML, then kept
    (kept,) = compiled_cache.directory().glob("rules-*.db")
    loads: list[str] = []
    real_load = yaml.load

    def counting(*args: Any, **kwargs: Any) -> Any:
        loads.append("yaml")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(yaml, "load", counting)
    module._builtin.cache_clear()
    again = module._builtin()
    assert loads == []  # from the cache
    assert again.rules == parsed.rules and again.path_rules == parsed.path_rules
    assert again.digest == parsed.digest
    assert [r.source for r in again.rules] == [r.source for r in parsed.rules]
    assert again.rules[0].examples_match == parsed.rules[0].examples_match

    # a kept parse that does not read back as one (valid checksum, wrong content) is redone
    compiled_cache.store(kept.stem, b'{"rules": [{"id": 1}], "paths": [], "digest": "x"}')
    module._builtin.cache_clear()
    assert module._builtin().digest == parsed.digest and loads
    # a changed rule file is another key: parsed again, the change seen
    loads.clear()
    first = sorted(copy.glob("*.yaml"))[0]
    first.write_text(first.read_text().replace("title: ", "title: Changed ", 1))
    module._builtin.cache_clear()
    changed = module._builtin()
    assert loads and changed.digest != parsed.digest
    module._builtin.cache_clear()

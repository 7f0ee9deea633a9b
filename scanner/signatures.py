"""Detection rules as data: load ``signatures/*.yaml`` into validated, frozen rules.

One schema serves the built-in rules and the user's (``--rules FILE``). A file holds
``rules:`` (content rules: keywords, a regex on bytes, the group holding the secret,
examples that must and must not match) and/or ``paths:`` (sensitive files flagged by
path). Everything a rule file gets wrong raises :class:`SignatureError` naming the
file and the rule, at load time, before any byte of an image is read.

The :attr:`SignatureSet.digest` is a hash over a canonical form of every rule; it
goes into the layer cache key, so editing any rule invalidates cached results.

Content rule fields (``rules:``)::

    id            kebab-case, unique across all loaded files
    detector      trufflehog's detector name where one exists (AWS, Github, FlyIO...)
    provider      who issues the credential (GitHub, Fly.io, Slack...; default: the
                  detector); ``layerleak rules --coverage`` groups rules by it
    title         one line
    severity      info | low | medium | high | critical
    category      default "secret"
    keywords      matched case-insensitively; the regex runs only around a hit, so a
                  keyword must be in (or next to) every true match
    regex         Python re syntax, compiled on bytes
    secret_group  group number or name holding the secret (default 0)
    entropy_min   optional: Shannon bits/char the secret needs (lower is dropped)
    allow         optional: regexes; a secret matching one is dropped
    validate      optional: jwt | base64-credentials (checks a regex cannot do)
    multiline     optional: the match spans lines (PEM blocks, JSON key files)
    generic       optional: matches by context, not vendor format (see Rule)
    description   what it is and how to rotate it
    examples      match: [text | {text, secret, noise}], no_match: [text]; at least
                  two of each; the tests run every one through the engine

Path rule fields (``paths:``): id, title, severity, category (default
"sensitive-file"), globs, exclude, description, examples (match/no_match paths).

A rule's regexes are compiled on first use (:attr:`Rule.regex`), so a run that scans
no layer (every layer in the cache) does not pay for hundreds of them. A user's file
(``--rules``) is fully checked when it is loaded: regexes compiled, ``secret_group``
and every example checked against them. The built-in files are parsed and checked
for structure only at run time; :meth:`SignatureSet.check` runs the rest of the
checks on them, and the test suite runs it on every built-in rule.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

import scanner
from scanner import compiled_cache
from scanner.errors import SignatureError
from scanner.findings import Category, Severity

# libyaml's loader when PyYAML was built with it: several times faster.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def builtin_dir(package: Path) -> Path:
    """Where the built-in rule files are, for the ``scanner`` package at ``package``.

    An installed wheel carries them inside the package, as ``scanner/_signatures/``
    (``setup.py`` maps that package onto the repository's ``signatures/``). A checkout
    (the editable install ``make install`` does, or the source tree on ``sys.path``) has
    them in ``signatures/`` beside ``scanner/``, next to ``pyproject.toml``; a stray
    ``signatures/`` beside an installed package (site-packages) is never taken.
    """
    packaged = package / "_signatures"
    if packaged.is_dir():
        return packaged
    root = package.parent
    if (root / "pyproject.toml").is_file() and (root / "signatures").is_dir():
        return root / "signatures"
    return packaged  # missing: loading says so, naming this path


BUILTIN_DIR = builtin_dir(Path(str(importlib.resources.files(scanner))))

RULE_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MIN_KEYWORD_LENGTH = 2
MIN_EXAMPLES = 2

RULE_FIELDS = frozenset(
    {
        "id",
        "detector",
        "provider",
        "title",
        "severity",
        "category",
        "keywords",
        "regex",
        "secret_group",
        "entropy_min",
        "allow",
        "description",
        "examples",
        "multiline",
        "generic",
        "validate",
    }
)
RULE_REQUIRED = ("id", "detector", "title", "severity", "keywords", "regex", "examples")
PATH_FIELDS = frozenset(
    {"id", "title", "severity", "category", "globs", "exclude", "description", "examples"}
)
PATH_REQUIRED = ("id", "title", "severity", "globs", "examples")
FILE_KEYS = frozenset({"rules", "paths"})


@dataclass(frozen=True)
class Example:
    """A text a rule must match; ``secret`` and ``noise`` are what it must report."""

    text: str
    secret: str | None = None
    noise: str | None = None


@dataclass(frozen=True)
class Rule:
    """A content rule.

    ``multiline`` rules (PEM blocks, JSON key files) see a larger region after each
    keyword hit than single-line rules, which see the keyword's line. ``generic``
    rules match by context rather than by a vendor format: their matches yield to a
    specific rule's match on the same bytes, and a placeholder or variable reference
    in them is dropped rather than kept as noise. ``validate`` names a check the
    engine runs on the secret (``jwt``, ``base64-credentials``).
    """

    id: str
    detector: str
    title: str
    severity: Severity
    category: Category
    keywords: tuple[str, ...]
    pattern: str  # the regex, compiled on bytes on first use (:attr:`regex`)
    secret_group: int | str
    entropy_min: float | None
    allow_patterns: tuple[str, ...]  # compiled on first use (:attr:`allow`)
    description: str
    examples_match: tuple[Example, ...]
    examples_no_match: tuple[str, ...]
    source: str
    multiline: bool = False
    generic: bool = False
    validate: str | None = None
    provider: str = ""

    @functools.cached_property
    def regex(self) -> re.Pattern[bytes]:
        """The compiled regex (compiled once, on first use)."""
        return _compile(self.pattern, "regex", _RuleErrors.of(self))

    @functools.cached_property
    def allow(self) -> tuple[re.Pattern[bytes], ...]:
        err = _RuleErrors.of(self)
        return tuple(
            _compile(p, f"allow pattern #{i + 1}", err) for i, p in enumerate(self.allow_patterns)
        )

    def canonical(self) -> dict[str, Any]:
        """Everything that defines the rule (not where it was loaded from).

        Regexes are given as text: they are compiled without flags, so the text holds
        every flag (inline, ``(?i)``) and the digest needs no compilation."""
        return {
            "id": self.id,
            "detector": self.detector,
            "provider": self.provider,
            "title": self.title,
            "severity": self.severity.label,
            "category": self.category.value,
            "keywords": list(self.keywords),
            "regex": self.pattern,
            "secret_group": self.secret_group,
            "entropy_min": self.entropy_min,
            "allow": list(self.allow_patterns),
            "description": self.description,
            "multiline": self.multiline,
            "generic": self.generic,
            "validate": self.validate,
            "match": [[e.text, e.secret, e.noise] for e in self.examples_match],
            "no_match": list(self.examples_no_match),
        }


@dataclass(frozen=True)
class PathRule:
    """A file that is sensitive by its path, whatever its content.

    Globs are matched against the image path without its leading slash: on the
    basename when the glob has no slash, on the whole path otherwise; ``*`` and
    ``?`` stop at slashes, ``**/`` spans any number of directories (none included).
    ``exclude`` globs win over ``globs``.
    """

    id: str
    title: str
    severity: Severity
    category: Category
    globs: tuple[str, ...]
    description: str
    examples_match: tuple[str, ...]
    examples_no_match: tuple[str, ...]
    source: str = ""
    exclude: tuple[str, ...] = ()
    _include: tuple[tuple[bool, re.Pattern[str]], ...] = field(
        default=(), init=False, repr=False, compare=False
    )
    _exclude: tuple[tuple[bool, re.Pattern[str]], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_include", tuple(_compile_glob(g) for g in self.globs))
        object.__setattr__(self, "_exclude", tuple(_compile_glob(g) for g in self.exclude))

    def matches(self, path: str) -> bool:
        path = path.lstrip("/")
        base = path.rsplit("/", 1)[-1]
        if not any(p.fullmatch(base if on_base else path) for on_base, p in self._include):
            return False
        return not any(p.fullmatch(base if on_base else path) for on_base, p in self._exclude)

    def canonical(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity.label,
            "category": self.category.value,
            "globs": list(self.globs),
            "exclude": list(self.exclude),
            "description": self.description,
            "match": list(self.examples_match),
            "no_match": list(self.examples_no_match),
        }


@dataclass(frozen=True)
class SignatureSet:
    rules: tuple[Rule, ...]
    path_rules: tuple[PathRule, ...]
    digest: str
    # one combined pattern per kind of glob: most paths match no rule at all, and
    # match_path runs for every file of every layer
    _any_base: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)
    _any_path: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)
    # The last part of the full-path globs, on the basename: a path whose basename
    # matches none cannot match those globs, and the slower full-path pattern is skipped.
    # Globs whose last part is ``*`` or holds ``**`` are in _any_path_always.
    _path_last: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)
    _any_path_always: re.Pattern[str] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        base = [p.pattern for r in self.path_rules for on_base, p in r._include if on_base]
        full = [g.lstrip("/") for r in self.path_rules for g in r.globs if "/" in g.lstrip("/")]
        last = [g.rsplit("/", 1)[1] for g in full]
        # a last part with "**" may span directories; one of only "*" says nothing
        spanning = [g for g, part in zip(full, last, strict=True) if _uninformative(part)]
        settable = functools.partial(object.__setattr__, self)
        if base:
            settable("_any_base", re.compile("|".join(base), re.DOTALL))
        if full:
            settable("_any_path", _union(full))
            settable("_path_last", _union([p for p in last if not _uninformative(p)]))
        if spanning:
            settable("_any_path_always", _union(spanning))

    @classmethod
    def from_rules(cls, rules: Iterable[Rule], path_rules: Iterable[PathRule] = ()) -> SignatureSet:
        """A set from already-built rules; raises on duplicate ids."""
        rules = tuple(rules)
        path_rules = tuple(path_rules)
        seen: dict[str, str] = {}
        items: list[Rule | PathRule] = [*rules, *path_rules]
        for item in items:
            if item.id in seen:
                raise SignatureError(
                    f"{item.source}: rule {item.id!r}: duplicate id "
                    f"(already defined in {seen[item.id]})"
                )
            seen[item.id] = item.source
        return cls(rules, path_rules, _digest(rules, path_rules))

    @classmethod
    def builtin(cls) -> SignatureSet:
        return _builtin()

    @classmethod
    def load(cls, extra: Sequence[Path] = (), include_builtin: bool = True) -> SignatureSet:
        """The built-in rules (unless excluded) plus the user's files or directories.

        The built-in files are parsed once per process, whatever the user adds; their
        regexes are compiled on first use. The user's files are fully checked here."""
        if include_builtin and not extra:
            return _builtin()
        files: list[Path] = []
        rules: list[Rule] = []
        path_rules: list[PathRule] = []
        if include_builtin:
            builtin = _builtin()
            rules.extend(builtin.rules)
            path_rules.extend(builtin.path_rules)
        for item in extra:
            item = Path(item)
            if item.is_dir():
                files.extend(sorted([*item.glob("*.yaml"), *item.glob("*.yml")]))
            else:
                files.append(item)
        for path in files:
            file_rules, file_paths = load_file(path)
            rules.extend(file_rules)
            path_rules.extend(file_paths)
        return cls.from_rules(rules, path_rules)

    def compile(self) -> None:
        """Compile every rule's regexes now (a parent process does, once, before it
        forks workers that share them)."""
        for rule in self.rules:
            rule.regex  # noqa: B018 - cached on the rule
            rule.allow  # noqa: B018

    def check(self) -> None:
        """The checks that need the compiled regexes, on every rule: ``secret_group``
        and every example against the regex (SignatureError naming file and rule).
        Loading does these for the user's files; the tests do them for the built-in
        ones."""
        for rule in self.rules:
            _check_compiled(rule, _RuleErrors.of(rule))

    def match_path(self, path: str) -> list[PathRule]:
        """The path rules that flag ``path`` (an image path, leading slash optional)."""
        path = path.lstrip("/")
        base = path.rsplit("/", 1)[-1]
        if not (
            (self._any_base is not None and self._any_base.fullmatch(base))
            or (
                self._path_last is not None
                and self._path_last.fullmatch(base)
                and self._any_path is not None
                and self._any_path.fullmatch(path)
            )
            or (self._any_path_always is not None and self._any_path_always.fullmatch(path))
        ):
            return []
        return [rule for rule in self.path_rules if rule.matches(path)]

    def get(self, rule_id: str) -> Rule | PathRule | None:
        items: list[Rule | PathRule] = [*self.rules, *self.path_rules]
        for item in items:
            if item.id == rule_id:
                return item
        return None

    def __len__(self) -> int:
        return len(self.rules) + len(self.path_rules)


@functools.cache
def _builtin() -> SignatureSet:
    """The built-in set: parsed from its files, or, when their text is unchanged, from
    the parse kept in the compiled-rules cache (:mod:`scanner.compiled_cache`)."""
    files = _builtin_files()
    digest = hashlib.sha256(f"{PARSED_FORMAT}\0{BUILTIN_DIR}".encode())
    for path in files:
        digest.update(b"\0" + path.name.encode() + b"\0" + path.read_bytes())
    key = f"rules-{digest.hexdigest()}"
    kept = _parsed_from(compiled_cache.load(key))
    if kept is not None:
        return kept
    rules: list[Rule] = []
    path_rules: list[PathRule] = []
    for path in files:
        file_rules, file_paths = load_file(path, checked=False)
        rules.extend(file_rules)
        path_rules.extend(file_paths)
    built = SignatureSet.from_rules(rules, path_rules)
    compiled_cache.store(key, _parsed_to(built))
    return built


PARSED_FORMAT = "parsed rules v1"  # changes with the fields of Rule, PathRule and Example


def _parsed_to(signatures: SignatureSet) -> bytes:
    """The set's rules as JSON, every field as the dataclass holds it."""

    def plain(item: Rule | PathRule) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(item):
            if not f.init:
                continue
            value = getattr(item, f.name)
            if f.name == "examples_match" and isinstance(item, Rule):
                value = [[e.text, e.secret, e.noise] for e in value]
            elif isinstance(value, Severity):
                value = value.label
            out[f.name] = value
        return out

    doc = {
        "rules": [plain(r) for r in signatures.rules],
        "paths": [plain(r) for r in signatures.path_rules],
        "digest": signatures.digest,
    }
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogateescape")


def _parsed_from(blob: bytes | None) -> SignatureSet | None:
    """The set :func:`_parsed_to` wrote, or None (nothing kept, or not readable as one)."""
    if blob is None:
        return None
    try:
        doc = json.loads(blob.decode("utf-8", "surrogateescape"))
        rules = [_rule_from(raw) for raw in doc["rules"]]
        paths = [_path_rule_from(raw) for raw in doc["paths"]]
        built = SignatureSet.from_rules(rules, paths)
    except (ValueError, KeyError, TypeError, SignatureError):
        return None
    return built if built.digest == doc["digest"] else None


def _rule_from(raw: dict[str, Any]) -> Rule:
    raw = dict(raw)
    raw["severity"] = Severity.parse(raw["severity"])
    raw["category"] = Category(raw["category"])
    raw["examples_match"] = tuple(Example(*e) for e in raw["examples_match"])
    for name in ("keywords", "allow_patterns", "examples_no_match"):
        raw[name] = tuple(raw[name])
    return Rule(**raw)


def _path_rule_from(raw: dict[str, Any]) -> PathRule:
    raw = dict(raw)
    raw["severity"] = Severity.parse(raw["severity"])
    raw["category"] = Category(raw["category"])
    for name in ("globs", "examples_match", "examples_no_match", "exclude"):
        raw[name] = tuple(raw[name])
    return PathRule(**raw)


def _builtin_files() -> list[Path]:
    if not BUILTIN_DIR.is_dir():
        raise SignatureError(f"{BUILTIN_DIR}: built-in signature directory not found")
    return sorted(BUILTIN_DIR.glob("*.yaml"))


def load_file(path: Path, checked: bool = True) -> tuple[list[Rule], list[PathRule]]:
    """Parse and validate one rule file.

    ``checked=False`` (the built-in files, which the tests check) leaves out what needs
    the regexes compiled: see :meth:`SignatureSet.check`."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SignatureError(f"{source}: cannot read signature file: {exc.strerror}") from None
    try:
        doc = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise SignatureError(f"{source}: invalid YAML: {exc}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise SignatureError(f"{source}: expected a mapping with 'rules' and/or 'paths'")
    unknown = set(doc) - FILE_KEYS
    if unknown:
        raise SignatureError(f"{source}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    rules = [
        _parse_rule(raw, source, i, checked) for i, raw in enumerate(_list(doc, "rules", source))
    ]
    paths = [_parse_path(raw, source, i) for i, raw in enumerate(_list(doc, "paths", source))]
    return rules, paths


def _list(doc: Mapping[str, Any], key: str, source: str) -> list[Any]:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise SignatureError(f"{source}: '{key}' must be a list")
    return value


class _RuleErrors:
    """Builds error messages that name the file and the rule."""

    def __init__(self, source: str, raw: Any, index: int, kind: str) -> None:
        self.source = source
        rule_id = raw.get("id") if isinstance(raw, dict) else None
        self.name = f"rule {rule_id!r}" if rule_id else f"{kind} #{index + 1} (no id)"

    @classmethod
    def of(cls, rule: Rule) -> _RuleErrors:
        return cls(rule.source, {"id": rule.id}, 0, "rule")

    def __call__(self, problem: str) -> SignatureError:
        return SignatureError(f"{self.source}: {self.name}: {problem}")


def _check_fields(
    raw: Any, allowed: frozenset[str], required: Sequence[str], err: _RuleErrors
) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise err("a rule must be a mapping")
    unknown = set(raw) - allowed
    if unknown:
        raise err(f"unknown field(s): {', '.join(sorted(unknown))}")
    missing = [name for name in required if raw.get(name) in (None, "", [])]
    if missing:
        raise err(f"missing field(s): {', '.join(missing)}")
    if not isinstance(raw["id"], str) or not RULE_ID.match(raw["id"]):
        raise err("id must be kebab-case (lower-case letters, digits and dashes)")
    for name in ("title", "detector", "provider", "description"):
        if name in raw and not isinstance(raw[name], str):
            raise err(f"{name} must be a string")
    return raw


def _severity(raw: Mapping[str, Any], err: _RuleErrors) -> Severity:
    try:
        return Severity.parse(str(raw["severity"]))
    except ValueError as exc:
        raise err(str(exc)) from None


def _category(raw: Mapping[str, Any], default: Category, err: _RuleErrors) -> Category:
    if raw.get("category") is None:
        return default
    try:
        return Category.parse(str(raw["category"]))
    except ValueError as exc:
        raise err(str(exc)) from None


def _pattern(pattern: Any, what: str, err: _RuleErrors) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise err(f"{what} must be a non-empty string")
    return pattern


def _compile(pattern: str, what: str, err: _RuleErrors) -> re.Pattern[bytes]:
    try:
        return re.compile(pattern.encode("utf-8", "surrogateescape"))
    except re.error as exc:
        raise err(f"bad {what}: {exc}") from None


def _examples(raw: Mapping[str, Any], err: _RuleErrors) -> tuple[list[Any], list[Any]]:
    examples = raw.get("examples")
    if not isinstance(examples, dict):
        raise err("examples must be a mapping with 'match' and 'no_match' lists")
    unknown = set(examples) - {"match", "no_match"}
    if unknown:
        raise err(f"unknown examples key(s): {', '.join(sorted(unknown))}")
    match = examples.get("match") or []
    no_match = examples.get("no_match") or []
    if not isinstance(match, list) or not isinstance(no_match, list):
        raise err("examples.match and examples.no_match must be lists")
    if len(match) < MIN_EXAMPLES or len(no_match) < MIN_EXAMPLES:
        raise err(
            f"needs at least {MIN_EXAMPLES} 'match' and {MIN_EXAMPLES} 'no_match' examples "
            f"(has {len(match)} and {len(no_match)})"
        )
    return match, no_match


def _parse_example(item: Any, index: int, err: _RuleErrors) -> Example:
    if isinstance(item, str):
        return Example(item)
    if isinstance(item, dict) and isinstance(item.get("text"), str):
        unknown = set(item) - {"text", "secret", "noise"}
        if unknown:
            raise err(f"match example #{index + 1}: unknown key(s): {', '.join(sorted(unknown))}")
        secret, noise = item.get("secret"), item.get("noise")
        if secret is not None and not isinstance(secret, str):
            raise err(f"match example #{index + 1}: secret must be a string")
        if noise is not None and not isinstance(noise, str):
            raise err(f"match example #{index + 1}: noise must be a string")
        return Example(item["text"], secret, noise)
    raise err(f"match example #{index + 1}: expected a string or a mapping with 'text'")


def _secret_group(raw: Mapping[str, Any], err: _RuleErrors) -> int | str:
    group = raw.get("secret_group", 0)
    if isinstance(group, bool) or not isinstance(group, int | str):
        raise err("secret_group must be a group number or name")
    return group


def _check_secret_group(rule: Rule, err: _RuleErrors) -> None:
    group, regex = rule.secret_group, rule.regex
    if isinstance(group, int):
        if not 0 <= group <= regex.groups:
            raise err(f"secret_group {group} is not in the regex (it has {regex.groups} groups)")
    elif group not in regex.groupindex:
        raise err(f"secret_group {group!r} is not a named group of the regex")


def _parse_rule(raw: Any, source: str, index: int, checked: bool = True) -> Rule:
    err = _RuleErrors(source, raw, index, "rule")
    raw = _check_fields(raw, RULE_FIELDS, RULE_REQUIRED, err)
    pattern = _pattern(raw["regex"], "regex", err)
    group = _secret_group(raw, err)

    keywords_raw = raw["keywords"]
    if not isinstance(keywords_raw, list) or not all(isinstance(k, str) for k in keywords_raw):
        raise err("keywords must be a list of strings")
    keywords = tuple(dict.fromkeys(k.lower() for k in keywords_raw))
    short = [k for k in keywords if len(k) < MIN_KEYWORD_LENGTH]
    if short:
        raise err(f"keyword(s) shorter than {MIN_KEYWORD_LENGTH} characters: {short}")

    entropy = raw.get("entropy_min")
    if entropy is not None and (
        isinstance(entropy, bool) or not isinstance(entropy, int | float) or not 0 <= entropy <= 8
    ):
        raise err("entropy_min must be a number of bits per character between 0 and 8")

    allow_raw = raw.get("allow") or []
    if not isinstance(allow_raw, list):
        raise err("allow must be a list of regexes")
    allow = tuple(_pattern(p, f"allow pattern #{i + 1}", err) for i, p in enumerate(allow_raw))

    for flag in ("multiline", "generic"):
        if flag in raw and not isinstance(raw[flag], bool):
            raise err(f"{flag} must be true or false")

    validate = raw.get("validate")
    if validate is not None:
        from scanner.secrets.validators import VALIDATORS

        if validate not in VALIDATORS:
            raise err(
                f"unknown validate {validate!r} (choose from {', '.join(sorted(VALIDATORS))})"
            )

    match_raw, no_match_raw = _examples(raw, err)
    examples = tuple(_parse_example(item, i, err) for i, item in enumerate(match_raw))
    if not all(isinstance(item, str) for item in no_match_raw):
        raise err("no_match examples must be strings")

    rule = Rule(
        id=raw["id"],
        detector=raw["detector"],
        title=raw["title"],
        severity=_severity(raw, err),
        category=_category(raw, Category.SECRET, err),
        keywords=keywords,
        pattern=pattern,
        secret_group=group,
        entropy_min=float(entropy) if entropy is not None else None,
        allow_patterns=allow,
        description=raw.get("description", "").strip(),
        examples_match=examples,
        examples_no_match=tuple(no_match_raw),
        source=source,
        multiline=bool(raw.get("multiline", False)),
        generic=bool(raw.get("generic", False)),
        validate=validate,
        provider=raw.get("provider") or raw["detector"],
    )
    _check_keywords(rule, err)
    if checked:
        _check_compiled(rule, err)
    return rule


def _check_keywords(rule: Rule, err: _RuleErrors) -> None:
    """Every keyword is in some 'match' example, every 'match' example has one."""
    lowered = [e.text.lower() for e in rule.examples_match]
    for keyword in rule.keywords:
        if not any(keyword in text for text in lowered):
            raise err(f"keyword {keyword!r} appears in none of the 'match' examples")
    for i, text in enumerate(lowered):
        if not any(k in text for k in rule.keywords):
            raise err(f"match example #{i + 1} contains none of the keywords")


def _check_compiled(rule: Rule, err: _RuleErrors) -> None:
    """The checks that need the regexes compiled (but no engine): they compile,
    ``secret_group`` is in the regex, the regex matches every 'match' example and
    captures its expected secret."""
    rule.regex  # noqa: B018 - compiles it: an error names the file and the rule
    rule.allow  # noqa: B018
    _check_secret_group(rule, err)
    for i, example in enumerate(rule.examples_match):
        data = example.text.encode("utf-8", "surrogateescape")
        secrets = [
            m.group(rule.secret_group)
            for m in rule.regex.finditer(data)
            if m.group(rule.secret_group) is not None
        ]
        if not secrets:
            raise err(f"regex does not match 'match' example #{i + 1}")
        if example.secret is not None:
            wanted = example.secret.encode("utf-8", "surrogateescape")
            if wanted not in secrets:
                raise err(f"match example #{i + 1}: regex does not capture the expected secret")


def _parse_path(raw: Any, source: str, index: int) -> PathRule:
    err = _RuleErrors(source, raw, index, "path rule")
    raw = _check_fields(raw, PATH_FIELDS, PATH_REQUIRED, err)
    globs = _strings(raw["globs"], "globs", err)
    exclude = _strings(raw.get("exclude") or [], "exclude", err)
    match_raw, no_match_raw = _examples(raw, err)
    if not all(isinstance(p, str) for p in (*match_raw, *no_match_raw)):
        raise err("path examples must be strings")
    try:
        rule = PathRule(
            id=raw["id"],
            title=raw["title"],
            severity=_severity(raw, err),
            category=_category(raw, Category.SENSITIVE_FILE, err),
            globs=globs,
            description=raw.get("description", "").strip(),
            examples_match=tuple(match_raw),
            examples_no_match=tuple(no_match_raw),
            source=source,
            exclude=exclude,
        )
    except re.error as exc:
        raise err(f"bad glob: {exc}") from None
    for path in rule.examples_match:
        if not rule.matches(path):
            raise err(f"globs do not match 'match' example {path!r}")
    for path in rule.examples_no_match:
        if rule.matches(path):
            raise err(f"globs match 'no_match' example {path!r}")
    return rule


def _strings(value: Any, what: str, err: _RuleErrors) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise err(f"{what} must be a list of non-empty strings")
    return tuple(value)


def _uninformative(part: str) -> bool:
    return "**" in part or not part.strip("*")


def _union(globs: Sequence[str]) -> re.Pattern[str] | None:
    """One pattern matching what any of ``globs`` matches (None for no globs)."""
    if not globs:
        return None
    return re.compile("|".join(_compile_glob(g)[1].pattern for g in globs), re.DOTALL)


def _compile_glob(glob: str) -> tuple[bool, re.Pattern[str]]:
    """(match on basename?, regex) for a glob; see :class:`PathRule`."""
    glob = glob.lstrip("/")
    on_base = "/" not in glob
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = i + 1
            if j < n and glob[j] == "!":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            end = glob.find("]", j)
            if end == -1:
                out.append(re.escape(c))
                i += 1
                continue
            body = glob[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return on_base, re.compile("".join(out), re.DOTALL)


def _digest(rules: Sequence[Rule], path_rules: Sequence[PathRule]) -> str:
    doc = {
        "rules": [r.canonical() for r in sorted(rules, key=lambda r: r.id)],
        "paths": [p.canonical() for p in sorted(path_rules, key=lambda p: p.id)],
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(blob.encode("ascii")).hexdigest()

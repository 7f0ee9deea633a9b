"""Credentials written on command lines, the way build steps hold them.

Signatures find vendor tokens wherever they are; a build step also carries secrets
that have no recognisable shape and are only credentials by *where they sit*: the
argument of ``curl -u``, ``mysql -pPASS``, ``--password PASS``, the value of an
``Authorization`` header, the password part of ``https://user:pass@host``, a
``.netrc`` line, ``ENV DB_PASSWORD value``. :func:`credential_spans` returns where
those values are in a text so that :meth:`scanner.detection.Detection.redact_text`
(the one redaction function) masks them. Over-masking a harmless word costs a little
readability; missing a password prints it, so the patterns lean towards masking.

The text comes from the image, so it may be hostile: every pattern starts at a word
boundary or a literal and every repetition is bounded, which keeps matching linear
in the length of the text (a megabyte of ``docker login docker login ...`` must not
take minutes). Forms that depend on the command (``-p`` means a password only for
``mysql``, ``docker login``...) are matched per shell segment (between ``|``, ``;``,
``&`` and newlines) that names the command.
"""

from __future__ import annotations

import re

# A value on a command line: a quoted string, or a run of non-blank characters
# that stops at a quote or a shell operator. Bounded: see the module docstring.
# A missing closing quote still masks the value (and keeps a failed match from
# having scanned far for nothing).
_VALUE = (
    r"""(?:"(?P<dq>[^"\n]{0,2048})"?|'(?P<sq>[^'\n]{0,2048})'?"""
    r"""|(?P<bare>[^\s"'|;&<>()]{1,2048}))"""
)

# Option names that take a credential as their argument: --password, --http-password,
# --proxy-password, --token, --auth-token, --api-key, --secret, --client-secret...
_CREDENTIAL_OPTION = (
    r"--(?:[A-Za-z0-9]{1,32}[-_]){0,4}"
    r"(?:password|passwd|pass|pwd|passphrase|token|secret|api[-_]?key|access[-_]?key"
    r"|secret[-_]?key|private[-_]?key|auth|credentials?)"
)

# Header names whose value is a credential.
_CREDENTIAL_HEADER = (
    r"(?:proxy-)?authorization|cookie|x-api-key|api-key|apikey|x-auth-token|x-access-token"
    r"|private-token|job-token|deploy-token|x-vault-token|x-[a-z0-9-]{0,64}(?:token|key|secret)"
)

# Words in a variable or key name that make its value worth masking in display text.
# Broader than the finding rules' notion of a sensitive name (``PGPASSWORD``,
# ``NPM_AUTH``): masking a harmless value only costs readability.
SENSITIVE_FRAGMENT = re.compile(
    r"pass(?:w|wd|word|phrase)?(?![a-z])|passw|pwd|token|secret|api_?key|apikey|auth"
    r"|credential|private_?key|access_?key|signing_?key|session_?key|cookie|dsn",
    re.IGNORECASE,
)

_FLAGS = re.IGNORECASE | re.VERBOSE

# Forms recognised wherever they are.
PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, _FLAGS)
    for p in (
        # scheme://user:password@host (git clone, psql, pip --index-url, ADD https://...)
        r"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,31}://[^\s/@:'\"]{0,256}:"
        r"(?P<bare>[^\s/@'\"]{1,2048})@",
        # scheme://TOKEN@host: a user name long enough to be a token
        r"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,31}://(?P<bare>[^\s/@:'\"]{16,2048})@",
        # curl -u user:pass, --user user:pass, --proxy-user, -U, -uuser:pass
        r"(?<![\w-])(?:-u|-U|--user|--proxy-user)(?:\s{1,16}|=)?"
        r"(?:\"[^\":\n]{0,128}:(?P<dq>[^\"\n]{0,2048})\"?|'[^':\n]{0,128}:(?P<sq>[^'\n]{0,2048})'?"
        r"|[^\s:\"'|;&]{0,128}:(?P<bare>[^\s\"'|;&<>()]{1,2048}))",
        # --password PASS, --password=PASS, --http-password=..., --token X, --api-key X
        rf"(?<![\w-]){_CREDENTIAL_OPTION}(?:\s{{1,16}}|=){_VALUE}",
        # openssl -pass pass:X / -passin / -passout
        r"(?<![\w-])-pass(?:in|out)?\s{1,16}(?:pass|env):(?P<bare>[^\s\"'|;&<>()]{1,2048})",
        # -H "Authorization: Bearer X", --header 'X-Api-Key: X', Cookie: ...
        rf"(?<![\w-])(?:{_CREDENTIAL_HEADER})\s{{0,16}}:\s{{0,16}}"
        r"(?:(?:bearer|basic|token|digest|apikey|flyv1)\s{1,16})?"
        r"(?P<bare>[^\s\"'\n][^\"'\n]{0,2047})",
        # a bare scheme and credential, as servers echo them: Bearer X, Basic BASE64
        r"(?<![\w-])(?:bearer|basic)\s{1,16}(?P<bare>[A-Za-z0-9._~+/=-]{8,2048})",
        # .netrc: machine HOST login USER password PASS (also "passwd"; \n as printf writes it)
        rf"(?:(?<![\w-])|(?<=\\[nt]))(?:password|passwd)\s{{1,16}}(?![-=]){_VALUE}",
        # JSON or YAML-ish "password": "X", token: 'X'
        r"""(?<![A-Za-z0-9_.-])["']?[A-Za-z0-9_.-]{0,64}"""
        r"""(?:password|passwd|secret|token|api_?key|apikey|auth)[A-Za-z0-9_.-]{0,64}["']?"""
        r"""\s{0,16}:\s{0,16}(?:"(?P<dq>[^"\n]{1,2048})"?|'(?P<sq>[^'\n]{1,2048})'?)""",
    )
)

# Forms that depend on the command of their shell segment: (words the segment names,
# in this order; argument pattern). A ``key`` group, when the pattern has one, must
# name a credential for the value to count.
SEGMENT_PATTERNS: tuple[tuple[tuple[re.Pattern[str], ...], re.Pattern[str]], ...] = tuple(
    # arguments are case-sensitive: mysql -P is the port, -p the password
    (tuple(re.compile(c, _FLAGS) for c in commands), re.compile(argument, re.VERBOSE))
    for commands, argument in (
        # mysql/mariadb -pPASS (attached), also mysqldump, mysqladmin
        (
            (r"\b(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump|mysqlimport)\b",),
            r"(?<![\w-])-p(?P<bare>[^\s\"'|;&<>()-][^\s\"'|;&<>()]{0,2047})",
        ),
        # docker/podman/helm/... login -p PASS
        (
            (r"\b(?:docker|podman|buildah|skopeo|helm|oras|crane|nerdctl)\b", r"\blogin\b"),
            rf"(?<![\w-])-p(?:\s{{1,16}}|=)?{_VALUE}",
        ),
        # sshpass -p PASS
        ((r"\bsshpass\b",), rf"(?<![\w-])-p\s{{0,16}}{_VALUE}"),
        # redis-cli -a PASS
        ((r"\bredis-cli\b",), rf"(?<![\w-])-a\s{{1,16}}{_VALUE}"),
        # npm/yarn/pnpm config set _authToken X, npmAuthToken X, //host/:_authToken X
        (
            (r"\b(?:npm|yarn|pnpm)\b", r"\bconfig\b"),
            r"(?<![\w-])set\s{1,16}(?:--[\w-]{1,64}\s{1,16}){0,4}(?P<key>[^\s=]{1,320})"
            rf"\s{{1,16}}{_VALUE}",
        ),
    )
)

# htpasswd -b FILE USER PASSWORD (and -nb USER PASSWORD): the last word of the segment.
HTPASSWD = re.compile(r"\bhtpasswd\s{1,16}-[a-z]{0,8}b", re.IGNORECASE)

# ENV NAME value (the legacy space form): the whole rest of the line is the value.
ENV_SPACE_FORM = re.compile(
    r"(?:^|(?<=\s))ENV\s{1,16}(?P<name>[A-Za-z_][A-Za-z0-9_.-]{0,256})\s{1,16}(?=[^=\s])"
)

_SEGMENT = re.compile(r"[^|;&\n]+")
_LINE = re.compile(r"[^\n]+")


def _value_span(m: re.Match[str], offset: int = 0) -> tuple[int, int] | None:
    for group in ("dq", "sq", "bare"):
        if group in m.re.groupindex and m.group(group):
            start, end = m.span(group)
            return start + offset, end + offset
    return None


def credential_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of ``text`` that hold a credential by where they sit."""
    spans: list[tuple[int, int]] = []
    for pattern in PATTERNS:
        for m in pattern.finditer(text):
            span = _value_span(m)
            if span is not None:
                spans.append(span)
    for segment in _SEGMENT.finditer(text):
        spans += _segment_spans(segment.group(0), segment.start())
    for line in _LINE.finditer(text):
        spans += _env_spans(line.group(0), line.start())
    return spans


def _env_spans(line: str, offset: int) -> list[tuple[int, int]]:
    """``ENV NAME value`` with a credential's name: the rest of the line is masked."""
    for m in ENV_SPACE_FORM.finditer(line):
        if SENSITIVE_FRAGMENT.search(m.group("name")):
            end = _without_buildkit_suffix(line)
            if end > m.end():
                return [(offset + m.end(), offset + end)]
    return []


def _without_buildkit_suffix(line: str) -> int:
    """Where ``line`` ends without trailing blanks and a ``# buildkit`` comment."""
    text = line.rstrip()
    if text.endswith("buildkit"):
        before = text[: -len("buildkit")].rstrip()
        if before.endswith("#"):
            return len(before[:-1].rstrip())
    return len(text)


def _segment_spans(segment: str, offset: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for commands, argument in SEGMENT_PATTERNS:
        pos = 0
        for command in commands:
            found = command.search(segment, pos)
            if found is None:
                break
            pos = found.end()
        else:
            for m in argument.finditer(segment, pos):
                if "key" in argument.groupindex and not SENSITIVE_FRAGMENT.search(m["key"]):
                    continue
                span = _value_span(m, offset)
                if span is not None:
                    spans.append(span)
    if HTPASSWD.search(segment):
        words = list(re.finditer(r"\S+", segment))
        if len(words) >= 4:  # htpasswd -b[c] [FILE] USER PASSWORD
            start, end = words[-1].span()
            spans.append((start + offset, end + offset))
    return spans

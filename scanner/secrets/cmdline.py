"""Credentials written on command lines, the way build steps hold them.

Signatures find vendor tokens wherever they are; a build step also carries secrets
that have no recognisable shape and are only credentials by *where they sit*: the
argument of ``curl -u``, ``mysql -pPASS``, ``--password PASS``, the value of an
``Authorization`` header, the password part of ``https://user:pass@host``, a
``.netrc`` line, ``ENV DB_PASSWORD value``. :func:`credential_spans` returns where
those values are in a text so that :meth:`scanner.detection.Detection.redact_text`
(the one redaction function) masks them. Over-masking a harmless word costs a little
readability; missing a password prints it, so the patterns lean towards masking.
"""

from __future__ import annotations

import re

# A value on a command line: a quoted string, or a run of non-blank characters
# that stops at a quote or a shell operator.
_VALUE = r"""(?:"(?P<dq>[^"\n]*)"|'(?P<sq>[^'\n]*)'|(?P<bare>[^\s"'|;&<>()]+))"""

# Option names that take a credential as their argument: --password, --http-password,
# --proxy-password, --token, --auth-token, --api-key, --secret, --client-secret...
_CREDENTIAL_OPTION = (
    r"--(?:[A-Za-z0-9]+[-_])*"
    r"(?:password|passwd|pass|pwd|passphrase|token|secret|api[-_]?key|access[-_]?key"
    r"|secret[-_]?key|private[-_]?key|auth|credentials?)"
)

# Header names whose value is a credential.
_CREDENTIAL_HEADER = (
    r"(?:proxy-)?authorization|cookie|x-api-key|api-key|apikey|x-auth-token|x-access-token"
    r"|private-token|job-token|deploy-token|x-vault-token|x-[a-z0-9-]*(?:token|key|secret)"
)

# Words in a variable or key name that make its value worth masking in display text.
# Broader than the finding rules' notion of a sensitive name (``PGPASSWORD``,
# ``NPM_AUTH``): masking a harmless value only costs readability.
SENSITIVE_FRAGMENT = re.compile(
    r"pass(?:w|wd|word|phrase)?(?![a-z])|passw|pwd|token|secret|api_?key|apikey|auth"
    r"|credential|private_?key|access_?key|signing_?key|session_?key|cookie|dsn",
    re.IGNORECASE,
)

PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE | re.VERBOSE)
    for p in (
        # scheme://user:password@host (git clone, psql, pip --index-url, ADD https://...)
        r"[a-z][a-z0-9+.-]*://[^\s/@:'\"]*:(?P<bare>[^\s/@'\"]+)@",
        # scheme://TOKEN@host: a user name long enough to be a token
        r"[a-z][a-z0-9+.-]*://(?P<bare>[^\s/@:'\"]{16,})@",
        # curl -u user:pass, --user user:pass, --proxy-user, -U, -uuser:pass
        r"(?<![\w-])(?:-u|-U|--user|--proxy-user)(?:\s+|=)?"
        r"(?:\"[^\":\n]*:(?P<dq>[^\"\n]*)\"|'[^':\n]*:(?P<sq>[^'\n]*)'"
        r"|[^\s:\"'|;&]*:(?P<bare>[^\s\"'|;&<>()]+))",
        # --password PASS, --password=PASS, --http-password=..., --token X, --api-key X
        rf"(?<![\w-]){_CREDENTIAL_OPTION}(?:\s+|=){_VALUE}",
        # mysql/mariadb -pPASS (attached), also mysqldump, mysqladmin
        r"\b(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump|mysqlimport)\b"
        r"[^|;&\n]*?\s-p(?P<bare>[^\s\"'|;&<>()-][^\s\"'|;&<>()]*)",
        # docker/podman/helm/... login -p PASS
        r"\b(?:docker|podman|buildah|skopeo|helm|oras|crane|nerdctl)\b[^|;&\n]*?\blogin\b"
        rf"[^|;&\n]*?\s-p(?:\s+|=)?{_VALUE}",
        # sshpass -p PASS, redis-cli -a PASS, openssl -pass pass:X / -passin / -passout
        rf"\bsshpass\s+(?:-\S+\s+)*?-p\s*{_VALUE}",
        rf"\bredis-cli\b[^|;&\n]*?\s-a\s+{_VALUE}",
        r"(?<![\w-])-pass(?:in|out)?\s+(?:pass|env):(?P<bare>[^\s\"'|;&<>()]+)",
        # htpasswd -b FILE USER PASSWORD (and -nb USER PASSWORD)
        r"\bhtpasswd\s+(?:-[a-zA-Z]*b[a-zA-Z]*\s+)(?:-\S+\s+)*(?:\S+\s+)?\S+\s+"
        rf"{_VALUE}(?=\s*(?:$|[|;&)]))",
        # -H "Authorization: Bearer X", --header 'X-Api-Key: X', Cookie: ...
        rf"(?<![\w-])(?:{_CREDENTIAL_HEADER})\s*:\s*"
        r"(?:(?:bearer|basic|token|digest|apikey|flyv1)\s+)?(?P<bare>[^\s\"'\n][^\"'\n]*)",
        # a bare scheme and credential, as servers echo them: Bearer X, Basic BASE64
        r"(?<![\w-])(?:bearer|basic)\s+(?P<bare>[A-Za-z0-9._~+/=-]{8,})",
        # npm/yarn/pnpm config set _authToken X, npmAuthToken X, //host/:_authToken X
        r"\b(?:npm|yarn|pnpm)\b[^|;&\n]*?\bconfig\s+set\s+(?:--\S+\s+)*\S*"
        rf"(?:auth|token|password|_auth)\S*\s+{_VALUE}",
        # .netrc: machine HOST login USER password PASS (also "passwd")
        rf"(?:(?<![\w-])|(?<=\\[nt]))(?:password|passwd)\s+(?![-=]){_VALUE}",
        # JSON or YAML-ish "password": "X", token: X
        r"""["']?[A-Za-z0-9_.-]*(?:password|passwd|secret|token|api_?key|apikey|auth)"""
        r"""[A-Za-z0-9_.-]*["']?\s*:\s*(?:"(?P<dq>[^"\n]+)"|'(?P<sq>[^'\n]+)')""",
    )
)

# ENV NAME value (the legacy space form): the whole rest of the step is the value.
ENV_SPACE_FORM = re.compile(
    r"(?:^|\s|#\(nop\)\s+)ENV\s+(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)\s+(?P<value>[^=\n][^\n]*?)"
    r"(?:\s+#\s*buildkit)?$",
    re.MULTILINE,
)


def _value_span(m: re.Match[str]) -> tuple[int, int] | None:
    for group in ("dq", "sq", "bare"):
        if group in m.re.groupindex and m.group(group):
            return m.span(group)
    return None


def credential_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of ``text`` that hold a credential by where they sit."""
    spans: list[tuple[int, int]] = []
    for pattern in PATTERNS:
        for m in pattern.finditer(text):
            span = _value_span(m)
            if span is not None and span[1] > span[0]:
                spans.append(span)
    for m in ENV_SPACE_FORM.finditer(text):
        if SENSITIVE_FRAGMENT.search(m.group("name")) and m.group("value").strip():
            spans.append(m.span("value"))
    return spans

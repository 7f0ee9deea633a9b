"""Secrets in file contents, text or binary, inside nested archives, through the engine.

Every regular file is read once as a stream. :class:`scanner.archives.ArchiveWalk`
opens archives found by magic bytes (zip/jar/war/ear/whl/apk, tar, 7z, ar/.deb,
gzip, zstd, xz, lzma, bzip2) down to three levels and within the budgets per file,
layer and image (``LayerContext.archive_budget``); each leaf goes through the signature
engine in overlapping windows (any file size, any line length), and its findings
carry the leaf's ``inner_path`` (``BOOT-INF/classes/application.properties``).
Leaves inside archives are also matched against the path rules
(``a.tar.gz!home/x/.ssh/id_rsa``). What a *limit* kept from being scanned (depth,
a byte or entry budget, the zip central directory size) is a problem of the layer
(``LayerContext.problems``: the scan is incomplete, exit 3), since a secret may hide
behind it; what no scanner can open (encryption, corruption) becomes an ``info``
finding ``archive-not-fully-scanned`` with the reason: visible, never silent, and
below any gate.

Archives are not opened where every finding would be documentation anyway (the
test-data and documentation paths of rule 1 below, compressed man pages, locale
and font data under ``/usr/share``, the packages apt downloaded into
``/var/cache/apt/archives``): those files are scanned as they are.

Binary files (a NUL byte in the first 8 KB) up to 32 MB outside distribution and
package paths get one more pass (:class:`GluedTokens`): a vendor token glued to a
printable byte before it (a class file's length byte, a SQLite record's previous
column) is matched from its prefix on, which the rules' look-behind would refuse.

Noise policy by provenance
--------------------------

Where a file sits says who wrote it. Secrets leaked by the image's owner live in
application paths (``/app``, ``/srv``, ``/root``, ``/home``, ``/opt/<app>``,
``/etc``, ``/usr/local/bin``, ``/var/www``, web roots under ``/usr/share``...);
content *shipped by someone else* -- a distribution package or an installed
third-party package -- carries test keys, documentation examples and self-test
fixtures (measured on a real Debian rootfs and a large site-packages: PEM keys
compiled into ``libgnutls``, ``moto``'s proxy CA key, ``awscli`` examples with
``AKIA`` keys, hundreds of generic ``password=`` assignments in SDK code). So:

1. **Third-party test data and documentation** (``site-packages/*/tests/``,
   ``node_modules/*/test/``, ``test_*.py`` in packages, ``/usr/share/doc``,
   ``man``, ``info``, ``licenses``): every finding is lowered to ``low`` with
   ``noise`` = "test data or documentation of an installed third-party package".
2. **Installed third-party packages and language runtimes** (``site-packages/``,
   ``dist-packages/``, ``node_modules/``, Ruby gems, ``vendor/bundle``, the Go
   module cache, the Maven repository, pip/npm/yarn/gradle caches left by a
   build, and runtimes installed under ``/usr/local`` by official language
   images: ``/usr/local/lib/python3.*``, ``/usr/local/go``...) and
   **distribution-packaged files** (``usr/lib``, ``lib``,
   ``lib64``, ``usr/libexec``, ``bin``, ``sbin``, ``usr/bin``, ``usr/sbin``,
   ``usr/include``, ``usr/share`` except web roots, ``usr/lib/jvm``,
   ``var/lib/dpkg``, ``var/lib/apt``, ``var/cache/apt``): lowered to ``low``
   with ``noise`` naming the provenance -- *unless* the rule is
   :func:`distinctive`: a vendor token format that carries a unique prefix and
   only exists once a vendor issued it (``ghp_``, ``github_pat_``, ``glpat-``,
   ``sk_live_``, ``xoxb-``, ``npm_``, ``pypi-AgEIcHlwaS5vcmc``, ``FlyV1``/``fm2_``,
   ``sk-ant-api03-``, ``dop_v1_``...). Those keep their severity everywhere: a
   live GitHub token inside ``site-packages`` is as leaked as one in ``/app``.
   Not distinctive, so lowered there: generic assignments and connection URLs,
   private keys of every kind (libraries embed self-test keys), JWTs, AWS key
   ids (docs use real-looking ones), password hashes, and rules keyed on a
   vendor *word* (``twilio``, ``datadog``...) rather than a token prefix.

Nothing is dropped by this policy: lowered findings keep their rule, location and
fingerprint, and ``--fail-on low`` still gates on them.
"""

from __future__ import annotations

import functools
import io
import posixpath
import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import BinaryIO, cast

from scanner.analyzers.interface import FileAnalyzer, LayerContext
from scanner.analyzers.python_dists import PythonDists, is_metadata
from scanner.archives import ArchiveWalk, Prefixed, Skipped, read_head, sniff
from scanner.detection import Detection
from scanner.findings import Category, Finding, Severity
from scanner.layers import EntryKind, FileInfo
from scanner.secrets.engine import STREAM_WINDOW, KeywordPrefilter, SecretEngine, SecretMatch
from scanner.signatures import Rule, SignatureSet
from scanner.streams import ByteData, known_left, read_buffer

ARCHIVE_RULE_ID = "archive-not-fully-scanned"
ARCHIVE_RULE_TITLE = "Archive not fully scanned"

NOISE_THIRD_PARTY_TESTS = "test data or documentation of an installed third-party package"
NOISE_THIRD_PARTY = "content of an installed third-party package or language runtime"
NOISE_DISTRO = "content of a distribution-packaged file"
THIRD_PARTY_REASONS = frozenset({NOISE_THIRD_PARTY_TESTS, NOISE_THIRD_PARTY})

# Content that ships inside third-party packages as test data or documentation:
# real-looking keys there are nearly always fixtures. Reported as low, never dropped.
THIRD_PARTY_NOISE = re.compile(
    r"(^|/)(site-packages|dist-packages)/[^/]+/(.+/)?(tests?|testing|fixtures?)/"
    r"|(^|/)node_modules/(@[^/]+/)?[^/]+/(.+/)?(tests?|__tests__|spec|fixtures?|examples?)/"
    r"|^usr/share/(doc|man|info|licenses|common-licenses)/"
    r"|(^usr/local/go/|(^|/)go/pkg/mod/).*/testdata/"
    r"|(^|/)(site-packages|dist-packages)/[^/]+/(.+/)?"
    r"(test_[^/]*|[^/]*_tests?|conftest|testing_utils|test_utils|testutils)\.py$"
)
# Compressed distribution data not worth decompressing (besides THIRD_PARTY_NOISE), and
# the package files apt downloaded from the distribution (left when `apt-get clean` was
# not run: hundreds of MB of xz that would spend the layer's archive budget on files
# whose every finding is distribution noise anyway).
UNOPENED = re.compile(
    r"^usr/share/(i18n|locale|zoneinfo|X11|fonts|icons)/|^var/cache/apt/archives/"
)
# Installed third-party packages, package-manager caches and language runtimes.
THIRD_PARTY_PACKAGE = re.compile(
    r"(^|/)(site-packages|dist-packages|node_modules)/"
    r"|(^|/)vendor/bundle/"
    r"|(^|/)gems/[^/]+/gems/"
    r"|(^|/)go/pkg/mod/"
    r"|(^|/)\.m2/repository/"
    r"|(^|/)\.cargo/registry/"
    r"|(^|/)\.cache/(pip|pypoetry|uv|yarn|pnpm|go-build)/"
    r"|(^|/)\.npm/_cacache/"
    r"|(^|/)\.yarn/(cache|berry)/"
    r"|(^|/)\.gradle/caches/"
    r"|^usr/local/lib/(python[0-9.]+|ruby|perl5?)/"
    r"|^usr/local/(go|rustup|openjdk[^/]*|julia[^/]*)/"
    r"|(^|/)\.(pyenv|rbenv|nodenv|nvm)/versions/"
    r"|^opt/(java|conda/pkgs|conda/lib)/"
)
# Files put there by the distribution's package manager.
DISTRO_PATH = re.compile(
    r"^(usr/)?(lib|lib32|lib64|libx32|bin|sbin)/"
    r"|^usr/(libexec|include|games|src)/"
    r"|^usr/share/(?!(nginx|caddy|httpd|apache2|www|html|webapps)/)"
    r"|^var/lib/(dpkg|apt|rpm|ucf)/"
    r"|^var/cache/(apt|debconf|ldconfig)/"
)
# Keywords that are plain vendor words, not token prefixes: a rule keyed on one of
# these (or on a short prefix like AKIA) finds look-alikes in SDKs and documentation.
_WORD_KEYWORD = re.compile(r"^[a-z]+$")
# Never distinctive, whatever their keywords: content shipped by others holds them.
_NOT_DISTINCTIVE_DETECTORS = frozenset({"PrivateKey", "JWT", "PasswordHash", "Generic", "URI"})
_NOT_DISTINCTIVE_IDS = frozenset(
    {
        "gcp-service-account-key",  # a private key in JSON: SDK test data
        "aws-secret-access-key",  # keyed on a variable name, value is 40 base64 chars
        "aws-session-token",
        "azure-storage-account-key",
        "azure-shared-access-key",
        "azure-ad-client-secret",
        "azure-sas-token",
        "mailgun-api-key-legacy",  # "key-" + 32 chars
        "mailchimp-api-key",
        "telegram-bot-token",
        "sendgrid-api-key",
        "docker-config-auth",
        "npmrc-auth",
        "npmrc-auth-token",
        "flyio-registry-auth",
        "twilio-credentials-url",
        "neon-connection-url",
        "gitlab-runner-registration-token",
        "cloudflare-origin-ca-key",
        "firebase-cloud-messaging-server-key",
    }
)


def distinctive(rule: Rule) -> bool:
    """True for rules whose matches do not occur in benign third-party content.

    A distinctive rule has a specific (non-generic) vendor token format whose
    every keyword is a token prefix with a separator or digit (``ghp_``,
    ``sk_live_``, ``xoxb-``), not a plain word (``twilio``, ``akia``, ``eyj``).
    """
    if rule.generic or rule.detector in _NOT_DISTINCTIVE_DETECTORS:
        return False
    if rule.id in _NOT_DISTINCTIVE_IDS or rule.severity < Severity.MEDIUM:
        return False
    return bool(rule.keywords) and not any(_WORD_KEYWORD.match(k.lower()) for k in rule.keywords)


# Literal text that every alternative of the pattern above it needs (checked first: a
# substring test costs far less than the regex's search; tests hold the two together).
THIRD_PARTY_NOISE_NEEDS = (
    "site-packages/",
    "dist-packages/",
    "node_modules/",
    "usr/share/",
    "/testdata/",
)
THIRD_PARTY_PACKAGE_NEEDS = (
    "site-packages/",
    "dist-packages/",
    "node_modules/",
    "vendor/bundle/",
    "gems/",
    "go/pkg/mod/",
    ".m2/repository/",
    ".cargo/registry/",
    ".cache/",
    ".npm/_cacache/",
    ".yarn/",
    ".gradle/caches/",
    "usr/local/",
    "/versions/",
    "opt/",
)


@functools.lru_cache(maxsize=1024)  # a file's path is judged once per match
def third_party_noise(path: str) -> str | None:
    """The noise reason for *any* finding at ``path`` (tests and docs of packages)."""
    if any(n in path for n in THIRD_PARTY_NOISE_NEEDS) and THIRD_PARTY_NOISE.search(path):
        return NOISE_THIRD_PARTY_TESTS
    return None


@functools.lru_cache(maxsize=1024)
def provenance_noise(path: str) -> str | None:
    """The noise reason for non-distinctive findings at ``path`` (see the policy)."""
    if any(n in path for n in THIRD_PARTY_PACKAGE_NEEDS) and THIRD_PARTY_PACKAGE.search(path):
        return NOISE_THIRD_PARTY
    if DISTRO_PATH.search(path):
        return NOISE_DISTRO
    return None


def worth_opening(path: str) -> bool:
    """False for archives whose content would all be documentation (see the policy)."""
    return third_party_noise(path) is None and not UNOPENED.search(path)


def noise_for(path: str, rule: Rule | None, *, first_party: bool = False) -> str | None:
    """Why a finding of ``rule`` at ``path`` is lowered, or None (the module policy).

    ``first_party``: the file is the image owner's own code installed into
    ``site-packages`` (:mod:`scanner.analyzers.python_dists`), so the third-party
    reasons do not apply; a distribution path still does.
    """
    reason = None if first_party else third_party_noise(path)
    if reason is not None:
        return reason
    if rule is not None and distinctive(rule):
        return None
    if first_party:
        return NOISE_DISTRO if DISTRO_PATH.search(path) else None
    return provenance_noise(path)


def lowered(finding: Finding, reason: str | None) -> Finding:
    """The finding at most ``low`` with ``reason`` as its noise (kept when it had one)."""
    if reason is None or (finding.severity <= Severity.LOW and finding.noise is not None):
        return finding
    return replace(
        finding,
        severity=min(finding.severity, Severity.LOW),
        noise=finding.noise or reason,
    )


BINARY_SNIFF = 8192  # a NUL byte in the first 8 KB makes a file binary
GLUED_LIMIT = 32 << 20  # binaries up to this size get the glued-token pass
WHOLE_FILE_LIMIT = 4 << 20  # files up to this size are read whole (the engine's window)
GLUED_REACH = 8192  # bytes after a glued prefix handed to the engine


class GluedTokens:
    """Distinctive tokens glued to the bytes before them, inside binary files.

    Rules guard their tokens with a look-behind (``(?<![A-Za-z0-9_-])ghp_...``) so
    that ``xghp_...`` in text is not a token. In binaries, a string's neighbour
    is often printable by accident: a Java class file's 2-byte length before a
    56-character Slack token is ``\x00\x38`` (``8``); a SQLite record stores its
    columns back to back (``openai_api_keysk-proj-...``). For distinctive rules
    (whose example secrets all start with the keyword), each keyword occurrence
    preceded by a printable byte is scanned again from the keyword on, so the
    look-behind sees the start of the data.
    """

    def __init__(self, signatures: SignatureSet) -> None:
        prefixes: dict[str, set[str]] = {}
        for rule in signatures.rules:
            secrets = [e.secret.lower() for e in rule.examples_match if e.secret]
            if not secrets or not distinctive(rule):
                continue
            for keyword in rule.keywords:
                key = keyword.lower()
                if len(key) >= 3 and all(x.startswith(key) for x in secrets):
                    prefixes.setdefault(key, set()).add(rule.id)
        self._keys = list(prefixes)
        self._kids = {key: kid for kid, key in enumerate(self._keys)}
        self._ids = [frozenset(prefixes[k]) for k in self._keys]
        self._prefilter = KeywordPrefilter(self._keys) if self._keys else None
        # Every key is one of the engine's keywords (lower-cased byte by byte, as its
        # prefilter holds them): the engine's hits can be reused (find's ``hits``).
        engine_keys = {
            k.encode("utf-8", "surrogateescape").lower().decode("latin-1")
            for rule in signatures.rules
            for k in rule.keywords
        }
        self._shares_keys = all(k in engine_keys for k in self._keys)

    def find(
        self, data: ByteData, engine: SecretEngine, hits: dict[str, list[int]] | None = None
    ) -> list[SecretMatch]:
        """``hits``: the engine's keyword hits in ``data`` (:meth:`SecretEngine.scan_with_hits`),
        which hold this pass's keys; without them, its own prefilter finds them."""
        if self._prefilter is None:
            return []
        found: dict[int, list[int]]
        if hits is not None and self._shares_keys:
            kids = self._kids
            found = {kids[key]: ends for key, ends in hits.items() if key in kids}
            found = dict(sorted(found.items(), key=lambda item: (item[1][0], item[0])))
        else:
            found = self._prefilter.hits(data, 0, len(data))
        out: list[SecretMatch] = []
        for kid, ends in found.items():
            length, ids = len(self._keys[kid]), self._ids[kid]
            for end in ends:
                pos = end - length
                if pos == 0 or not 0x21 <= data[pos - 1] <= 0x7E:
                    continue  # the normal scan sees these
                for m in engine.scan(data[pos : pos + GLUED_REACH]):
                    if m.start == 0 and m.rule.id in ids:
                        line = data.count(b"\n", 0, pos) + m.line
                        out.append(replace(m, start=pos, end=pos + m.end, line=line))
        return out


_GLUED: dict[str, GluedTokens] = {}  # signature-set digest -> its glued-token pass
_GLUED_SETS = 8


def glued_tokens(signatures: SignatureSet) -> GluedTokens:
    """The :class:`GluedTokens` of a signature set, built once per process and set: an
    analyzer is made for every layer, and the set has hundreds of rules."""
    found = _GLUED.get(signatures.digest)
    if found is None:
        if len(_GLUED) >= _GLUED_SETS:
            _GLUED.clear()
        found = _GLUED[signatures.digest] = GluedTokens(signatures)
    return found


MAX_ARCHIVE_PROBLEMS = 20  # per layer; the rest are counted on the last line


def note_problem(layer: LayerContext, path: str, skipped: Skipped) -> None:
    """A limit stopped the scanning of an archive: a problem of the layer (exit 3)."""
    where = f"/{path}" + (f"!{skipped.inner_path}" if skipped.inner_path else "")
    budget = layer.archive_budget
    budget.problems += 1
    label = f"layer {layer.index} ({layer.digest[:19]})"
    if budget.problems <= MAX_ARCHIVE_PROBLEMS:
        layer.problems.append(f"{label}: {where}: {skipped.reason}")
        return
    more = budget.problems - MAX_ARCHIVE_PROBLEMS
    summary = f"{label}: {more} more part(s) of archives not fully scanned because of limits"
    if budget.problems == MAX_ARCHIVE_PROBLEMS + 1:
        layer.problems.append(summary)
    else:
        layer.problems[layer.problems.index(budget.summary)] = summary
    budget.summary = summary


class ContentSecretsAnalyzer(FileAnalyzer):
    id = "content-secrets"
    version = 6  # 3: blast radius; 4: archive limits; 5: first-party; 6: noise kept
    needs_content = True

    def __init__(self, detection: Detection) -> None:
        super().__init__(detection)
        self._glued = glued_tokens(detection.signatures)
        self._dists = PythonDists()

    def finish(self, findings: list[Finding]) -> list[Finding]:
        """Findings lowered as third-party content that turned out to be first-party
        (the layer's dist-info says so) get their severity back."""
        dists, self._dists = self._dists, PythonDists()
        return [self._first_party(f, dists) for f in findings]

    def _first_party(self, finding: Finding, dists: PythonDists) -> Finding:
        path = finding.location.path
        if finding.noise not in THIRD_PARTY_REASONS or path is None:
            return finding
        if not dists.first_party(path):
            return finding
        rule = self.detection.signatures.get(finding.rule_id)
        if rule is None:
            return finding
        noise = noise_for(path, rule if isinstance(rule, Rule) else None, first_party=True)
        severity = min(rule.severity, Severity.LOW) if noise else rule.severity
        return replace(finding, severity=Severity(severity), noise=noise)

    def required(self, info: FileInfo) -> bool:
        return info.kind is EntryKind.FILE and info.size > 0

    def analyze(
        self, info: FileInfo, content: BinaryIO | None, layer: LayerContext
    ) -> Iterable[Finding]:
        if content is None:
            return []
        if info.size <= WHOLE_FILE_LIMIT:
            # Most files are small: read them whole and, unless they are archives, scan
            # the bytes directly, without the stream wrappers archives and windows need.
            data = content.read()
            if is_metadata(info.path):
                self._dists.note(info.path, data)
            kind = sniff(data[:512])
            if kind is None:
                return self._file_findings(info.path, data, layer)
            if kind == "gzip" and worth_opening(info.path):
                found = self._small_gzip(info.path, data, layer)
                if found is not None:
                    return found
            content = cast(BinaryIO, io.BytesIO(data))
        return self._findings(info.path, content, layer)

    def _small_gzip(self, path: str, data: bytes, layer: LayerContext) -> list[Finding] | None:
        """What :meth:`_findings` gives for a gzip file the walk would open to one plain
        leaf (see :meth:`ArchiveWalk.small_gzip`), without the walk; None otherwise.
        A leaf under the engine's stream window is one scan, as in :meth:`_matches`."""
        walk = ArchiveWalk(layer.archive_budget.limits, layer.archive_budget)
        leaf = walk.small_gzip(data, posixpath.basename(path), STREAM_WINDOW - 1)
        if leaf is None:
            return None
        inner, plain = leaf
        found = list(self._inner_path_findings(path, inner, layer))
        found.extend(self._secret_findings(path, self._data_matches(plain, path), layer, inner))
        return found

    def _file_findings(self, path: str, data: bytes, layer: LayerContext) -> list[Finding]:
        return list(self._secret_findings(path, self._data_matches(data, path), layer))

    def _secret_findings(
        self,
        path: str,
        matches: Iterable[SecretMatch],
        layer: LayerContext,
        inner: str | None = None,
    ) -> Iterator[Finding]:
        """The findings of the engine's matches in the file at ``path`` (or in its member
        ``inner``), lowered where the file's provenance says so."""
        detection = self.detection
        for match in matches:
            location = layer.location(path, line=match.line, inner_path=inner)
            yield lowered(detection.finding(match, location), noise_for(path, match.rule))

    def _findings(self, path: str, content: BinaryIO, layer: LayerContext) -> Iterator[Finding]:
        walk = ArchiveWalk(layer.archive_budget.limits, layer.archive_budget)
        for inner, stream in walk.leaves(
            content, posixpath.basename(path), lambda: worth_opening(path)
        ):
            if inner is not None:
                yield from self._inner_path_findings(path, inner, layer)
            yield from self._secret_findings(path, self._matches(stream, path), layer, inner)
        for skipped in walk.skipped:
            if skipped.limit:
                note_problem(layer, path, skipped)
                continue
            yield Finding(
                rule_id=ARCHIVE_RULE_ID,
                title=ARCHIVE_RULE_TITLE,
                severity=Severity.INFO,
                category=Category.SECRET,
                location=layer.location(path, inner_path=skipped.inner_path),
                match=skipped.reason,
                description="Part of an archive inside this file cannot be scanned by any "
                "scanner (encrypted, corrupt or unreadable); the reason says which. The rest "
                "of the file was read.",
            )

    def _matches(self, stream: BinaryIO, path: str) -> Iterable[SecretMatch]:
        engine = self.detection.engine
        head, stream = read_head(stream, BINARY_SNIFF)
        # the glued-token pass is for binaries not shipped by a distribution or package
        if b"\x00" not in head or provenance_noise(path) is not None:
            return engine.scan_stream(stream)
        if (left := known_left(stream)) is not None and left > GLUED_LIMIT:
            # known to be too large for the glued-token pass: not read whole to find out
            return engine.scan_stream(stream)
        data = read_buffer(stream, GLUED_LIMIT + 1)  # the stream still starts with head
        if len(data) > GLUED_LIMIT:
            return engine.scan_stream(Prefixed(data, stream))  # type: ignore[arg-type]
        return self._data_matches(data, path)

    def _data_matches(self, data: ByteData, path: str) -> list[SecretMatch]:
        """Matches in a whole file held in memory (text, or a binary up to GLUED_LIMIT)."""
        engine = self.detection.engine
        if b"\x00" not in data[:BINARY_SNIFF] or provenance_noise(path) is not None:
            return engine.scan(data)
        matches, hits = engine.scan_with_hits(data)
        seen = {(m.rule.id, m.start) for m in matches}
        glued = self._glued.find(data, engine, hits)
        extra = [m for m in glued if (m.rule.id, m.start) not in seen]
        return sorted([*matches, *extra], key=lambda m: m.start) if extra else matches

    def _inner_path_findings(self, path: str, inner: str, layer: LayerContext) -> Iterator[Finding]:
        """Path rules (``.env``, ``id_rsa``...) on a file inside an archive."""
        member = inner.rsplit("!", 1)[-1]
        for rule in self.detection.signatures.match_path(member):
            finding = Finding(
                rule_id=rule.id,
                title=rule.title,
                severity=rule.severity,
                category=rule.category,
                location=layer.location(path, inner_path=inner),
                match=f"file inside {posixpath.basename(path)}",
                description=rule.description,
            )
            yield lowered(finding, noise_for(path, None))

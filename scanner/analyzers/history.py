"""Build steps in config.history: build args, ARG/ENV steps, secrets in commands,
``ADD`` from a URL and ``curl ... | sh``.

BuildKit records RUN steps as ``RUN |N K=V ... /bin/sh -c CMD # buildkit`` and the
classic builder as ``|N K=V ... /bin/sh -c CMD``; the values are the effective
ones, ``--build-arg`` values included. ARG and ENV steps appear as ``ARG K=V`` /
``ENV K=V`` (BuildKit) or ``/bin/sh -c #(nop)  ENV K=V`` (classic).
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import replace

from scanner.analyzers.assignments import assignment_findings
from scanner.analyzers.interface import ImageAnalyzer, ImageContext
from scanner.detection import Detection
from scanner.findings import Category, Finding, Location, LocationKind, Severity
from scanner.image import HistoryStep, Image, PlatformImage

NOP = re.compile(r"^/bin/(?:ba)?sh -c #\(nop\)\s+")
BUILD_ARGS = re.compile(r"^(?:RUN\s+)?\|(\d+)\s+")
ARG_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
NEXT_ARG = re.compile(r" (?=[A-Za-z_][A-Za-z0-9_]*=)")
# Where the command starts after the build arguments: a shell (``/bin/sh -c``, ``/bin/bash
# -o pipefail -c`` after a SHELL instruction) or an exec-form JSON array.
SHELL_START = re.compile(
    r" (?=(?:/[\w.-]+)*/?(?:ba|da|z|k|a)?sh(?: -{1,2}[\w-]+(?: [\w-]+)?)*? -c |\[\")"
)
INSTRUCTION = re.compile(r"^(ARG|ENV|LABEL)\s+(.*)$", re.S)
ADD_URL = re.compile(r"(?:^|\s)ADD\s+(?:--\S{1,256}\s+){0,8}(?P<url>https?://\S+)", re.I)
# ``curl ... | sh``, matched per shell piece so that hostile steps (a megabyte of
# ``curl curl curl``) cost linear time: a piece naming a downloader, then a pipe, then
# a piece starting with a shell (or python, after curl or wget).
_PIECE = re.compile(r"([^|;&\n]*)([|;&\n]?)")
_DOWNLOADER = re.compile(r"\b(?:curl|wget|fetch)\b")
_SHELL_AFTER = re.compile(
    r"\s*(?:sudo\s+(?:-\S{1,64}\s+){0,8})?(?:env\s+(?:\S{1,256}=\S{1,256}\s+){0,16})?"
    r"(?:ba|z|da|k)?sh\b"
)
_PYTHON_AFTER = re.compile(r"\s*(?:sudo\s+)?python[0-9.]*\b")


def pipe_to_shell(command: str) -> str | None:
    """The ``curl ... | sh`` part of a command, or None."""
    pieces = [(m.start(1), m.group(1), m.group(2)) for m in _PIECE.finditer(command) if m.group(0)]
    for (start, text, sep), (next_start, next_text, _) in itertools.pairwise(pieces):
        if sep != "|":
            continue
        downloader = _DOWNLOADER.search(text)
        if downloader is None:
            continue
        shell = _SHELL_AFTER.match(next_text)
        if shell is None and downloader.group(0) != "fetch":
            shell = _PYTHON_AFTER.match(next_text)
        if shell is not None:
            return command[start + downloader.start() : next_start + shell.end()]
    return None


def parse_build_args(created_by: str) -> tuple[list[tuple[str, str]], str]:
    """``|N K=V ... CMD`` -> ([(K, V)...], CMD).

    Docker (classic and BuildKit) writes N as the number of arguments; buildah and podman
    write the number of space-separated *words* of ``K=V K=V`` (``|2 TOKEN=FlyV1 fm2_...``
    for one argument whose value holds a space). The values are unquoted, so both
    conventions are read the same way: the arguments end where the command starts (the
    shell, or an exec-form array), a value runs up to the next `` NAME=``, and the last
    one up to the command. When more ``NAME=`` words are found than N allows, the extra
    ones belong to the last value. Without a recognisable command start, N words at most
    are taken.
    """
    m = BUILD_ARGS.match(created_by)
    if not m:
        return [], created_by
    count = int(m.group(1))
    rest = created_by[m.end() :]
    if not ARG_NAME.match(rest):
        return [], rest
    start = SHELL_START.search(rest)
    if start is None:
        return _args_by_words(rest, count)
    region, command = rest[: start.start()], rest[start.start() + 1 :]
    pieces = NEXT_ARG.split(region)
    if count >= 1 and len(pieces) > count:
        pieces = [*pieces[: count - 1], " ".join(pieces[count - 1 :])]
    args = []
    for piece in pieces:
        name, _, value = piece.partition("=")
        args.append((name, value))
    return args, command


def _args_by_words(rest: str, count: int) -> tuple[list[tuple[str, str]], str]:
    """No command start found: take at most ``count`` words (exact for both conventions
    when no value holds a space)."""
    words = rest.split(" ")
    args: list[tuple[str, str]] = []
    used = 0
    while used < len(words) and used < count:
        word = words[used]
        if ARG_NAME.match(word):
            name, _, value = word.partition("=")
            args.append((name, value))
        elif args:
            args[-1] = (args[-1][0], f"{args[-1][1]} {word}")
        else:
            break
        used += 1
    return args, " ".join(words[used:])


def parse_instruction(created_by: str) -> tuple[str, list[tuple[str, str]]] | None:
    """``ARG``/``ENV``/``LABEL`` steps -> (instruction, [(name, value)...])."""
    text = NOP.sub("", created_by.strip())
    text = re.sub(r"\s*# buildkit$", "", text)
    m = INSTRUCTION.match(text)
    if not m:
        return None
    body = m.group(2).strip()
    try:
        words = shlex.split(body, posix=True)
    except ValueError:
        words = body.split()
    pairs: list[tuple[str, str]] = []
    if "=" not in (words[0] if words else "") and len(words) >= 2 and m.group(1) == "ENV":
        return m.group(1), [(words[0], " ".join(words[1:]))]  # legacy "ENV KEY value"
    for word in words:
        name, sep, value = word.partition("=")
        if name:
            pairs.append((name, value if sep else ""))
    return m.group(1), pairs


class HistoryAnalyzer(ImageAnalyzer):
    id = "history"
    version = 1

    def analyze(
        self, image: Image, platform: PlatformImage, context: ImageContext
    ) -> Iterable[Finding]:
        found: list[Finding] = []
        for step in platform.history:
            found.extend(self._step(platform, step))
        return found

    def _location(
        self, platform: PlatformImage, step: HistoryStep, created_by: str, field: str
    ) -> Location:
        layer = (
            platform.layers[step.layer_index]
            if (step.layer_index is not None and step.layer_index < len(platform.layers))
            else None
        )
        return Location(
            kind=LocationKind.HISTORY,
            layer_index=layer.index if layer else None,
            layer_digest=layer.digest if layer else None,
            diff_id=layer.diff_id if layer else None,
            history_index=step.index,
            created_by=created_by,
            field=field,
        )

    def _step(self, platform: PlatformImage, step: HistoryStep) -> list[Finding]:
        text = step.created_by
        if not text:
            return []

        def where(field: str) -> Location:
            return self._location(platform, step, "", f"history[{step.index}] {field}")

        found, values = step_findings(self.detection, text, where)
        shown = self.detection.redact_text(text, also=values)
        return [replace(f, location=replace(f.location, created_by=shown)) for f in found]

    @staticmethod
    def _supply_chain(
        detection: Detection, command: str, where: Callable[[str], Location]
    ) -> list[Finding]:
        found = []
        add = ADD_URL.search(command)
        if add and "--checksum=" not in command:
            found.append(
                Finding(
                    rule_id="add-from-url",
                    title="ADD downloads a remote file without a checksum",
                    severity=Severity.MEDIUM,
                    category=Category.SUPPLY_CHAIN,
                    location=where("ADD"),
                    match=detection.redact_text(add.group("url"))[:200],
                    description=(
                        "The file can change between builds with nothing noticing. Download "
                        "with a pinned checksum (ADD --checksum=sha256:...) or vendor it."
                    ),
                )
            )
        pipe = pipe_to_shell(command)
        if pipe:
            found.append(
                Finding(
                    rule_id="pipe-to-shell",
                    title="A build step pipes a download into a shell",
                    severity=Severity.MEDIUM,
                    category=Category.SUPPLY_CHAIN,
                    location=where("RUN"),
                    match=detection.redact_text(pipe)[:200],
                    description=(
                        "Whatever the server returns at build time is executed unverified. "
                        "Download to a file, verify its checksum or signature, then run it."
                    ),
                )
            )
        return found


def step_findings(
    detection: Detection, text: str, where: Callable[[str], Location]
) -> tuple[list[Finding], list[str]]:
    """The findings of one build step, and the raw values they were made from.

    The values go to :meth:`Detection.redact_text` for the step's display text, so a
    value that a finding redacts (a build argument with spaces, a secret a rule
    matched) is never shown in full in the step itself.
    """
    found: list[Finding] = []
    values: list[str] = []
    args, command = parse_build_args(text)
    assignments = [("build-arg-secret", "Build argument", name, value) for name, value in args]
    instruction = parse_instruction(text)
    if instruction:
        kind, pairs = instruction
        label = {"ARG": "ARG default", "ENV": "ENV step", "LABEL": "LABEL step"}[kind]
        assignments += [(f"{kind.lower()}-step-secret", label, n, v) for n, v in pairs]
    for rule_id, what, name, value in assignments:
        made = assignment_findings(detection, name, value, where, rule_id=rule_id, what=what)
        if made:
            values.append(value.strip().strip("\"'"))
        found += made
    # Secrets written straight into commands (echo ghp_... > ~/.netrc, ...).
    known = {f.secret_hash for f in found}
    for match in detection.scan_text(command):
        values.append(match.secret)
        if detection.hash(match.secret) not in known:
            known.add(detection.hash(match.secret))
            found.append(detection.finding(match, where("command")))
    found += HistoryAnalyzer._supply_chain(detection, command, where)
    return found, values


def redact_step(detection: Detection, text: str | None) -> str | None:
    """A build step as shown anywhere (layer lines, locations): redacted at least as
    strongly as the findings made from it."""
    if not text:
        return text
    _, values = step_findings(detection, text, lambda field: Location(LocationKind.HISTORY))
    return detection.redact_text(text, also=values)

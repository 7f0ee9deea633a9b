"""Build steps in config.history: build args, ARG/ENV steps, secrets in commands,
``ADD`` from a URL and ``curl ... | sh``.

BuildKit records RUN steps as ``RUN |N K=V ... /bin/sh -c CMD # buildkit`` and the
classic builder as ``|N K=V ... /bin/sh -c CMD``; the values are the effective
ones, ``--build-arg`` values included. ARG and ENV steps appear as ``ARG K=V`` /
``ENV K=V`` (BuildKit) or ``/bin/sh -c #(nop)  ENV K=V`` (classic).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable

from scanner.analyzers.assignments import assignment_findings
from scanner.analyzers.interface import ImageAnalyzer, ImageContext
from scanner.findings import Category, Finding, Location, LocationKind, Severity, hash_secret
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
ADD_URL = re.compile(r"(?:^|\s)ADD\s+(?:--\S+\s+)*(?P<url>https?://\S+)", re.I)
PIPE_TO_SHELL = re.compile(
    r"\b(?:curl|wget|fetch)\b[^|;&\n]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?"
    r"(?:env\s+\S+=\S+\s+)*(?:ba|z|da|k)?sh\b|"
    r"\b(?:curl|wget)\b[^|;&\n]*\|\s*(?:sudo\s+)?python[0-9.]*\b"
)


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
        shown = self.detection.redact_text(text)

        def where(field: str) -> Location:
            return self._location(platform, step, shown, f"history[{step.index}] {field}")

        found: list[Finding] = []
        args, command = parse_build_args(text)
        for name, value in args:
            found += assignment_findings(
                self.detection,
                name,
                value,
                where,
                rule_id="build-arg-secret",
                what="Build argument",
            )
        instruction = parse_instruction(text)
        if instruction:
            kind, pairs = instruction
            label = {"ARG": "ARG default", "ENV": "ENV step", "LABEL": "LABEL step"}[kind]
            for name, value in pairs:
                found += assignment_findings(
                    self.detection,
                    name,
                    value,
                    where,
                    rule_id=f"{kind.lower()}-step-secret",
                    what=label,
                )
        # Secrets written straight into commands (echo ghp_... > ~/.netrc, ...).
        known = {f.secret_hash for f in found}
        for match in self.detection.scan_text(command):
            if hash_secret(match.secret) not in known:
                known.add(hash_secret(match.secret))
                found.append(self.detection.finding(match, where("command")))
        found += self._supply_chain(command, where)
        return found

    def _supply_chain(self, command: str, where: Callable[[str], Location]) -> list[Finding]:
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
                    match=add.group("url")[:200],
                    description=(
                        "The file can change between builds with nothing noticing. Download "
                        "with a pinned checksum (ADD --checksum=sha256:...) or vendor it."
                    ),
                )
            )
        pipe = PIPE_TO_SHELL.search(command)
        if pipe:
            found.append(
                Finding(
                    rule_id="pipe-to-shell",
                    title="A build step pipes a download into a shell",
                    severity=Severity.MEDIUM,
                    category=Category.SUPPLY_CHAIN,
                    location=where("RUN"),
                    match=self.detection.redact_text(pipe.group(0))[:200],
                    description=(
                        "Whatever the server returns at build time is executed unverified. "
                        "Download to a file, verify its checksum or signature, then run it."
                    ),
                )
            )
        return found

"""setuid/setgid files and world-writable entries in system paths."""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

from scanner.analyzers.interface import FileAnalyzer, LayerContext
from scanner.findings import Category, Finding, Severity
from scanner.layers import EntryKind, FileInfo

SYSTEM_PREFIXES = ("bin/", "sbin/", "lib/", "lib64/", "usr/", "etc/", "boot/", "opt/")
# Directories where world-writable with the sticky bit is the norm.
STICKY_OK = ("tmp", "var/tmp", "dev/shm", "run/lock", "var/lock")


class PermissionsAnalyzer(FileAnalyzer):
    id = "permissions"
    version = 1

    def required(self, info: FileInfo) -> bool:
        return info.kind in (EntryKind.FILE, EntryKind.DIR) and bool(info.mode & 0o6002)

    def analyze(
        self, info: FileInfo, content: BinaryIO | None, layer: LayerContext
    ) -> Iterable[Finding]:
        found = []
        mode = f"{info.mode & 0o7777:04o}"
        in_system = info.path.startswith(SYSTEM_PREFIXES) or info.path + "/" in SYSTEM_PREFIXES
        if info.is_setuid or info.is_setgid:
            which = "setuid" if info.is_setuid else "setgid"
            if info.is_setuid and info.is_setgid:
                which = "setuid+setgid"
            owner = "root" if info.uid == 0 else f"uid {info.uid}"
            found.append(
                Finding(
                    rule_id=f"{which.replace('+', '-')}-file",
                    title=f"{which} file owned by {owner}",
                    severity=Severity.LOW if in_system else Severity.MEDIUM,
                    category=Category.MISCONFIG,
                    location=layer.location(info.path),
                    match=f"mode {mode}",
                    description=(
                        "Runs with its owner's privileges whoever starts it. Expected for a "
                        "few system tools (su, passwd, mount); anything else is a privilege-"
                        "escalation path. Remove the bit (chmod u-s,g-s) if it is not needed."
                    ),
                )
            )
        world_writable = bool(info.mode & 0o002)
        sticky_dir = info.kind is EntryKind.DIR and bool(info.mode & 0o1000)
        if world_writable and in_system and not (sticky_dir and info.path in STICKY_OK):
            found.append(
                Finding(
                    rule_id="world-writable-system-path",
                    title=f"world-writable {info.kind.value} in a system path",
                    severity=Severity.MEDIUM,
                    category=Category.MISCONFIG,
                    location=layer.location(info.path),
                    match=f"mode {mode}",
                    description=(
                        "Any user in the container can change this, and through it what "
                        "system programs run or read. Use chmod o-w."
                    ),
                )
            )
        return found

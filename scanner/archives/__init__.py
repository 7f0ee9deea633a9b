"""Nested archives: the files inside zip/jar/war/ear/whl/apk, tar, 7z, ar (.deb), and
gzip, zstd, xz, lzma and bzip2 compressed data, at every nesting level.

:class:`ArchiveWalk` turns one top-level file into the *leaves* to scan: the file
itself when it is not an archive, otherwise every regular file inside it, opened
recursively. Archives are recognised by their magic bytes, never by their name
alone (a jar renamed ``.bin`` is still opened; a ``.zip`` that is not one is
scanned as bytes):

=========  =================================  ==========================================
kind       magic                              how it is read (module)
=========  =================================  ==========================================
zip        ``PK\\x03\\x04`` / ``PK\\x05\\x06``     spooled for random access; the central
                                              directory measured first (``zipdir``);
                                              stored and deflated members read here
                                              from their local header, others by zipfile
tar        ``ustar`` at offset 257            streamed (``tarfile`` ``r|``), then what
                                              follows the end-of-archive marker
7z         ``7z\\xbc\\xaf\\x27\\x1c``              spooled, ``py7zr`` bounded (``sevenzip``)
ar (.deb)  ``!<arch>\\n``                      streamed, own parser (``ar``)
gzip       ``\\x1f\\x8b\\x08``                   streamed member by member (``compressed``)
zstd       ``\\x28\\xb5\\x2f\\xfd``                ditto
xz         ``\\xfd7zXZ\\x00``                    ditto
bzip2      ``BZh1``-``BZh9`` + block magic     ditto
lzma       properties ``0x5D``, dictionary    ditto (the legacy ``.lzma`` format)
=========  =================================  ==========================================

A leaf is named by its *inner path*: the member names from the outermost archive
in, joined with ``!`` (``BOOT-INF/lib/b.jar!x.properties``); ``None`` for the
top-level file itself. A compressed file names its content after itself without
the suffix (``app.log.gz`` -> ``app.log``), except that a compressed tar or zip
adds no level (``x.tar.gz!etc/app.conf``).

Nothing is silently skipped: data after a tar's end-of-archive marker (another
tar is walked as such, anything else scanned raw), bytes before a zip's first
entry, between its entries where no central record points, or after its end
record (the comment, anything appended), and data appended after the last member of a
compressed stream are leaves too, with the inner path of the archive they follow.

Limits (:mod:`scanner.archives.limits`): per file, per layer and per image.
Whatever is not scanned because of a limit, an encrypted or unsupported member,
or corruption is recorded in ``skipped`` (a :class:`Skipped` with the inner path,
the reason and whether a limit caused it). The outer file's own read errors (a
corrupt *layer*) are not caught here.
"""

from __future__ import annotations

from scanner.archives.limits import (
    DEFAULT_LIMITS,
    ArchiveBudget,
    ArchiveLimits,
    ImageUsage,
    Skipped,
    parse_size,
)
from scanner.archives.sniff import clean_member_name, decompressed_name, join_inner, sniff
from scanner.archives.streams import Prefixed, read_head
from scanner.archives.walk import ARCHIVE_ERRORS, ArchiveWalk

__all__ = [
    "ARCHIVE_ERRORS",
    "DEFAULT_LIMITS",
    "ArchiveBudget",
    "ArchiveLimits",
    "ArchiveWalk",
    "ImageUsage",
    "Prefixed",
    "Skipped",
    "clean_member_name",
    "decompressed_name",
    "join_inner",
    "parse_size",
    "read_head",
    "sniff",
]

"""A zip archive of label files, read entry by entry without trusting anything it says about itself.

An archive is the most hostile input the importer takes: names can climb out of a folder (`../../x`) or be
absolute, entries can be symlinks, a few kilobytes can claim to expand to terabytes, and a directory can list
millions of entries. So before any entry is read, the entry count is taken from the end record (before the
directory is parsed), and every name, type and declared size is checked; while an entry is read, the bytes it
yields are bounded by the same budget as any label file. `zipfile` never yields more than an entry declares
(it fails the CRC instead), so checking the declared sizes bounds what decompression can produce.

The archive is read through a seekable file whose reads are ranged requests, buffered: memory holds the
directory and one buffer, however large the archive.
"""

from __future__ import annotations

import io
import posixpath
import stat
import struct
import zipfile
import zlib
from dataclasses import replace
from typing import IO

from label_importer.model.limits import Limits
from label_importer.model.problems import ErrorCode
from label_importer.sources.bounded_reading import BoundedReader, FileRefused, ItemStream, ReadBudget

READ_BUFFER_BYTES = 1 << 20
"""Bytes per ranged read: few requests for a large entry, one buffer of memory."""

IGNORED_FOLDERS = ("__MACOSX/",)
"""What archivers add beside the files (macOS resource forks): not labels, and not an error."""

_END_RECORD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_END_RECORD_SEARCH = 22 + 0xFFFF  # the record, and the longest comment it may end with
_RATIO_SLACK_BYTES = 1 << 20


class Archive:
    def __init__(self, raw: io.RawIOBase, budget: ReadBudget, limits: Limits) -> None:
        self._budget = budget
        self._file = io.BufferedReader(raw, READ_BUFFER_BYTES)
        count = _entry_count(self._file)
        if count > limits.max_archive_entries:
            raise FileRefused(
                ErrorCode.TOO_MANY_ENTRIES,
                f"the archive lists {count} entries; at most {limits.max_archive_entries} are allowed "
                "(MAX_ARCHIVE_ENTRIES): split it",
            )
        try:
            self._zip = zipfile.ZipFile(self._file)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as error:
            raise _invalid(f"its directory cannot be read ({error})") from None
        self.names: list[str] = _checked_names(self._zip.infolist(), budget)
        """Every file in the archive, in directory order: folders and archivers' extras left out."""

    def open(self, name: str, *, max_bytes: int | None = None) -> ItemStream:
        """One entry's bytes, decompressed as they are read; `max_bytes` bounds an entry built whole (an XML
        document, the class list), reported as the entry being too large."""
        try:
            entry = self._zip.open(name)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError) as error:
            raise _invalid(f"entry {name!r} cannot be read ({error})") from None
        budget = self._budget if max_bytes is None else replace(self._budget, max_item_bytes=max_bytes)
        return _Entry(name, BoundedReader(entry, budget), max_bytes)

    def read(self, name: str, *, max_bytes: int) -> bytes:
        stream = self.open(name, max_bytes=max_bytes)
        parts = []
        while part := stream.read(READ_BUFFER_BYTES):
            parts.append(part)
        return b"".join(parts)


class _Entry:
    """An entry's stream, whose corruption is the archive's problem, not a crash."""

    def __init__(self, name: str, reader: BoundedReader, max_bytes: int | None) -> None:
        self._name = name
        self._reader = reader
        self._max_bytes = max_bytes
        self._itemised = False

    def read(self, size: int = -1) -> bytes:
        try:
            return self._reader.read(size)
        except FileRefused as refused:
            if refused.problem.code is ErrorCode.ITEM_TOO_LARGE:
                what = (
                    f"one item of entry {self._name!r} (an image, a track) spans"
                    if self._itemised
                    else f"entry {self._name!r} holds"
                )
                raise FileRefused(
                    ErrorCode.ITEM_TOO_LARGE,
                    f"{what} more than {self._max_bytes} bytes, which is more than such a file needs (MAX_LINE_BYTES)",
                ) from None
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
            raise _invalid(f"entry {self._name!r} is corrupt ({error})") from None

    def mark_item(self) -> None:
        """An entry streamed item by item (a CVAT document's images) bounds each item by `max_bytes`, not the
        whole entry: an item starts here."""
        self._itemised = True
        self._reader.mark_item()


def _invalid(why: str) -> FileRefused:
    return FileRefused(ErrorCode.INVALID_ARCHIVE, f"the file ends in .zip but is not a readable zip archive: {why}")


def _entry_count(file: IO[bytes]) -> int:
    """The count the end record gives, read before `zipfile` builds an object per entry of the directory."""
    size = file.seek(0, io.SEEK_END)
    start = max(0, size - _END_RECORD_SEARCH)
    file.seek(start)
    tail = file.read(size - start)
    at = tail.rfind(_END_RECORD)
    if at < 0 or len(tail) - at < 22:
        raise _invalid("it has no end-of-directory record")
    (count,) = struct.unpack_from("<H", tail, at + 10)
    locator = at - 20
    if count == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == _ZIP64_LOCATOR:
        (zip64_end,) = struct.unpack_from("<Q", tail, locator + 8)
        file.seek(zip64_end + 32)
        (count,) = struct.unpack("<Q", file.read(8))
    return int(count)


def _checked_names(entries: list[zipfile.ZipInfo], budget: ReadBudget) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    declared = 0
    for entry in entries:
        name = entry.filename
        if entry.is_dir() or name.startswith(IGNORED_FOLDERS):
            continue
        reason = _unsafe(entry)
        if reason is None and name in seen:
            reason = "is listed twice, so which one is meant cannot be told"
        if reason is not None:
            raise FileRefused(ErrorCode.UNSAFE_ARCHIVE_ENTRY, f"entry {name!r} {reason}; the archive is refused")
        if entry.file_size > entry.compress_size * budget.max_compression_ratio + _RATIO_SLACK_BYTES:
            raise FileRefused(
                ErrorCode.COMPRESSION_RATIO_TOO_HIGH,
                f"entry {name!r} claims to expand from {entry.compress_size} to {entry.file_size} bytes, more than "
                f"{budget.max_compression_ratio} times (MAX_COMPRESSION_RATIO): refused as a likely decompression "
                "bomb",
            )
        declared += entry.file_size
        if declared > budget.max_bytes:
            raise FileRefused(
                ErrorCode.FILE_TOO_LARGE,
                f"the archive's entries hold more than {budget.max_bytes} bytes after decompression; at most "
                f"{budget.max_bytes} are allowed (MAX_FILE_BYTES): split it",
            )
        seen.add(name)
        names.append(name)
    return names


def _unsafe(entry: zipfile.ZipInfo) -> str | None:
    name = entry.filename
    if stat.S_ISLNK(entry.external_attr >> 16):
        return "is a symbolic link"
    if entry.flag_bits & 0x1:
        return "is encrypted"
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\0" in name:
        return "has an absolute or Windows path"
    if ".." in name.split("/") or posixpath.normpath(name).startswith(".."):
        return "climbs out of the archive's folder ('..')"
    return None

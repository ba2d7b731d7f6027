"""One version of a label file, as every source reads it: streamed within the read budget, or as an archive.

The caller says where the stored bytes come from (an S3 object version, bytes in a test); this class is the
one place that decides how they are bounded, so a format cannot read around the budget. An archive's
directory is read once and kept, because telling formats apart and reading one both need it.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from label_importer.model.limits import Limits
from label_importer.runtime.deadline import Deadline
from label_importer.sources.archive import Archive
from label_importer.sources.bounded_reading import (
    BoundedReader,
    FileRefused,
    ItemStream,
    ReadBudget,
    is_compressed,
)

StoredBytes = Callable[[], tuple[IO[bytes], int]]
"""Opens the stored bytes from their start; with their count (a .gz file's compressed size)."""
RandomAccess = Callable[[], io.RawIOBase]
"""Opens the stored bytes as a seekable file; each read may be a ranged request."""


class LabelFile:
    def __init__(
        self, key: str, budget: ReadBudget, limits: Limits, stored: StoredBytes, random_access: RandomAccess
    ) -> None:
        self.key = key
        self.budget = budget
        self._limits = limits
        self._stored = stored
        self._random_access = random_access
        self._archive: Archive | None = None
        self._head: bytes | None = None

    @classmethod
    def of_bytes(cls, key: str, data: bytes, limits: Limits, deadline: Deadline) -> LabelFile:
        """A file held in memory: one a test or a benchmark builds."""
        budget = ReadBudget(limits.max_file_bytes, limits.max_compression_ratio, deadline)
        return cls(key, budget, limits, lambda: (io.BytesIO(data), len(data)), lambda: _InMemory(data))

    @classmethod
    def of_path(cls, key: str, path: Path, limits: Limits, deadline: Deadline) -> LabelFile:
        """A file on this machine (`label-importer validate`), streamed from disk within the same budget as an S3
        object, never read whole; `key` is the object key it stands for (its suffix says the format)."""
        budget = ReadBudget(limits.max_file_bytes, limits.max_compression_ratio, deadline)
        return cls(key, budget, limits, lambda: (path.open("rb"), path.stat().st_size), lambda: path.open("rb", 0))

    def stream(self, *, max_item_bytes: int | None = None) -> ItemStream:
        """The file from its start, decompressed and within the read budget; `max_item_bytes` bounds one item
        of a document that the parser builds whole (a COCO annotation)."""
        body, stored_bytes = self._stored()
        return BoundedReader(
            body,
            replace(self.budget, max_item_bytes=max_item_bytes),
            compressed_bytes=stored_bytes if is_compressed(self.key) else None,
        )

    def head(self) -> bytes:
        """The first 4096 bytes after a UTF-8 byte-order mark and whitespace (b"" if none): what tells formats that
        share a suffix apart (a JSON object from a JSON list, one XML root from another). Read once and kept; a
        file the budget refuses to read has none here, and the format reading it says why."""
        if self._head is None:
            try:
                start = self.stream().read(4096)
            except (FileRefused, OSError, EOFError, zlib.error):  # reported by the source that reads the file
                start = b""
            self._head = start.removeprefix(b"\xef\xbb\xbf").lstrip()
        return self._head

    def archive(self) -> Archive:
        """The file as a zip archive, its directory checked; raises FileRefused."""
        if self._archive is None:
            self._archive = Archive(self._random_access(), self.budget, self._limits)
        return self._archive


class _InMemory(io.RawIOBase):
    """Bytes as the raw, seekable file an archive is read from (BytesIO is buffered, not raw)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._data.seek(offset, whence)

    def tell(self) -> int:
        return self._data.tell()

    def readinto(self, buffer: Any) -> int:
        return self._data.readinto(buffer)

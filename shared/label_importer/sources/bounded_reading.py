"""Reading an untrusted file with a budget: bytes after decompression, the compression ratio, and time.

A 300 KB gzip file can expand to gigabytes, and a validator that runs into Lambda's timeout is killed without
a word. So every read of a label file, in every pass and every format, goes through one `BoundedReader`: it
counts the bytes the parsers see (decompressed), stops a file whose expansion is implausible for labels long
before the total limit, and stops while there is still time to write the report.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import IO, Protocol

from label_importer.model.problems import ErrorCode, Problem
from label_importer.runtime.deadline import Deadline

WRAP_UP_SECONDS = 20.0
"""Time kept back at the end of an invocation to record the job's outcome and write its reports."""


class ByteStream(Protocol):
    """What the parsers read a label file from: S3's body, a gzip file, a BoundedReader, or a file in tests."""

    def read(self, size: int = -1, /) -> bytes: ...


class ItemStream(ByteStream, Protocol):
    """A stream whose parser hands over one item at a time (a COCO annotation, a CVAT image), each bounded."""

    def mark_item(self) -> None: ...


class FileRefused(Exception):
    """The file as a whole cannot be read (over a limit, or a .gz that does not decompress): rejected whatever
    the error policy."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(0, "", code, message)


class OutOfTime(Exception):
    """The invocation is about to end: the job must be failed now, while its report can still be written."""


@dataclass(frozen=True)
class ReadBudget:
    max_bytes: int
    """Bytes after decompression (MAX_FILE_BYTES applies to what the parsers read, not to what S3 stores)."""
    max_compression_ratio: int
    deadline: Deadline
    max_item_bytes: int | None = None
    """Bytes one item of a document may span (a COCO image, category or annotation), when the reader marks
    where items start: one item's JSON is built whole by the parser, so this bounds its memory."""


def is_compressed(key: str) -> bool:
    return key.endswith(".gz")


class BoundedReader:
    """A binary stream that raises FileRefused or OutOfTime instead of reading past its budget."""

    def __init__(self, stream: IO[bytes], budget: ReadBudget, *, compressed_bytes: int | None = None) -> None:
        """`compressed_bytes` is the stored size of a .gz file, whose `stream` this reader then decompresses."""
        self._stream: ByteStream = gzip.GzipFile(fileobj=stream) if compressed_bytes is not None else stream
        self._budget = budget
        self._compressed_bytes = compressed_bytes
        self.bytes_read = 0
        self._item_started_at = 0

    def read(self, size: int = -1) -> bytes:
        if self._budget.deadline.remaining() < WRAP_UP_SECONDS:
            raise OutOfTime("the validator ran out of time reading the file")
        try:
            data = self._stream.read(size)
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise FileRefused(
                ErrorCode.INVALID_GZIP,
                f"the file ends in .gz but cannot be decompressed ({error}); compress it with gzip, or drop the .gz "
                "suffix",
            ) from None
        self.bytes_read += len(data)
        self._check()
        return data

    def mark_item(self) -> None:
        """An item of the document starts here (COCO: the parser has just handed over the previous one)."""
        self._item_started_at = self.bytes_read

    def _check(self) -> None:
        budget = self._budget
        if self.bytes_read > budget.max_bytes:
            raise FileRefused(
                ErrorCode.FILE_TOO_LARGE,
                f"the file holds more than {budget.max_bytes} bytes of labels (after decompression); at most "
                f"{budget.max_bytes} are allowed (MAX_FILE_BYTES): split it",
            )
        if self._compressed_bytes is not None and self.bytes_read > _ratio_allowance(self._compressed_bytes, budget):
            raise FileRefused(
                ErrorCode.COMPRESSION_RATIO_TOO_HIGH,
                f"the {self._compressed_bytes}-byte compressed file expands more than "
                f"{budget.max_compression_ratio} times (MAX_COMPRESSION_RATIO); label files do not compress that "
                "well, so it is refused as a likely decompression bomb",
            )
        if budget.max_item_bytes is not None and self.bytes_read - self._item_started_at > budget.max_item_bytes:
            raise FileRefused(
                ErrorCode.ITEM_TOO_LARGE,
                f"one item of the document (an image, category or annotation, or a value in it) spans more than "
                f"{budget.max_item_bytes} bytes (MAX_LINE_BYTES)",
            )


_RATIO_SLACK_BYTES = 1 << 20
"""A tiny file of repeated labels may compress better than any real one; the first MiB is always allowed."""


def _ratio_allowance(compressed_bytes: int, budget: ReadBudget) -> int:
    return compressed_bytes * budget.max_compression_ratio + _RATIO_SLACK_BYTES

"""Reading a label file from S3 as numbered lines, streaming, plain or gzip-compressed.

Memory holds one line at a time, and never more than `max_line_bytes` of it: a file with no newline at
all (or a gigabyte-long line) is reported as too long, not buffered.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from typing import BinaryIO

from label_importer.checks.validation import Line
from label_importer.sources.bounded_reading import ByteStream

_BOM = b"\xef\xbb\xbf"
_READ_SIZE = 1 << 16

TooLong = Callable[[int, int], None]
"""Called with (line number, length in bytes) for each line over the limit; the line is skipped."""


def is_compressed(key: str) -> bool:
    return key.endswith(".gz")


def opened(stream: BinaryIO, *, compressed: bool) -> ByteStream:
    return gzip.GzipFile(fileobj=stream) if compressed else stream


def numbered_lines(stream: ByteStream, *, max_line_bytes: int, too_long: TooLong | None = None) -> Iterator[Line]:
    """Yield (line number, bytes) for every non-blank line; numbers count blank lines too, as editors do.

    A UTF-8 byte-order mark on the first line is dropped: editors on Windows add it and it is not an error.
    """
    number = 0
    pending = bytearray()
    dropped = 0  # length of the current line once it passed the limit; its bytes are not kept

    def finish() -> Iterator[Line]:
        nonlocal dropped
        if dropped and too_long is not None:
            too_long(number, dropped)
        elif not dropped:
            yield from _non_blank(number, bytes(pending))
        pending.clear()
        dropped = 0

    while chunk := stream.read(_READ_SIZE):
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end == -1 else chunk[start:end]
            if dropped:
                dropped += len(piece)
            else:
                pending += piece
                if len(pending) > max_line_bytes:
                    dropped = len(pending)
                    pending.clear()
            if end == -1:
                break
            number += 1
            yield from finish()
            start = end + 1
    if pending or dropped:
        number += 1
        yield from finish()


def _non_blank(number: int, raw: bytes) -> Iterator[Line]:
    if number == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    raw = raw.rstrip(b"\r")
    if raw.strip():
        yield number, raw

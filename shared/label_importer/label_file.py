"""Reading a label file from S3 as numbered lines, streaming, plain or gzip-compressed."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import BinaryIO

from label_importer.validation import Line

_BOM = b"\xef\xbb\xbf"
_READ_SIZE = 1 << 16


def is_compressed(key: str) -> bool:
    return key.endswith(".gz")


def numbered_lines(stream: BinaryIO, *, compressed: bool) -> Iterator[Line]:
    """Yield (line number, bytes) for every non-blank line; numbers count blank lines too, as editors do.

    A UTF-8 byte-order mark on the first line is dropped: editors on Windows add it and it is not an error.
    """
    source: BinaryIO = gzip.GzipFile(fileobj=stream) if compressed else stream
    number = 0
    pending = b""
    while chunk := source.read(_READ_SIZE):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            number += 1
            yield from _non_blank(number, raw)
    if pending:
        yield from _non_blank(number + 1, pending)


def _non_blank(number: int, raw: bytes) -> Iterator[Line]:
    if number == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    raw = raw.rstrip(b"\r")
    if raw.strip():
        yield number, raw

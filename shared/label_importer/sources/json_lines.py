"""JSON Lines, the importer's own format: an optional header line, then one label record per line.

Records are already in the label format, so the source only numbers lines: memory holds one line at a time,
and never more than `max_line_bytes` of it. A file with no newline at all (or a gigabyte-long line) is
reported as too long, not buffered.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import orjson
import pydantic

from label_importer.model.label_format import Header, is_header
from label_importer.model.limits import Limits
from label_importer.model.problems import ErrorCode, Problem, problems_from_pydantic
from label_importer.model.project import ProjectView
from label_importer.model.source_items import Record, Rejected, SourceItem
from label_importer.sources.bounded_reading import ByteStream
from label_importer.sources.label_file import LabelFile
from label_importer.sources.label_source import SourceRejected

_BOM = b"\xef\xbb\xbf"
_READ_SIZE = 1 << 16


class JsonLinesSource:
    records_noun = "label records"
    options_section = "header"
    options_line = 1

    @staticmethod
    def claims(file: LabelFile) -> bool:
        """Every file no other format claims: JSON Lines is the importer's own format."""
        return True

    def __init__(self, file: LabelFile, limits: Limits) -> None:
        self._file = file
        self._max_line_bytes = limits.max_line_bytes
        self._header_line: int | None = None
        self._unread: Iterator[SourceItem] | None = None
        """The first read, as `options` left it after the header: validation goes on from there."""

    def options(self) -> Header:
        """The header is the first line that is not blank and not too long to read (such a line is reported
        as such, and a header after it still applies)."""
        items = self._numbered()
        unreadable: list[Rejected] = []
        first = next(items, None)
        while isinstance(first, Rejected):
            unreadable.append(first)
            first = next(items, None)
        header, problems = parse_header(first) if first is not None else (None, [])
        if problems:
            raise SourceRejected(problems)
        if header is not None and first is not None:
            self._header_line = first.number
            self._unread = itertools.chain(unreadable, items)
        else:
            self._unread = itertools.chain(unreadable, [first] if first is not None else [], items)
        return header or Header()

    def match(self, project: ProjectView) -> list[Problem]:
        return []  # records name their data units and ontology features themselves

    def items(self) -> Iterator[SourceItem]:
        if self._unread is not None:
            unread, self._unread = self._unread, None
            return unread
        return (item for item in self._numbered() if item.number != self._header_line)

    def locate(self, problem: Problem) -> Problem:
        return problem

    def _numbered(self) -> Iterator[Record | Rejected]:
        return numbered_lines(self._file.stream(), max_line_bytes=self._max_line_bytes)


def parse_header(line: Record) -> tuple[Header | None, list[Problem]]:
    """The header if `line` is one (None if it is a label record), with its problems."""
    number, raw = line
    try:
        candidate = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, []  # not a header; reported as a record with the record's own error
    if not (isinstance(candidate, dict) and is_header(candidate)):
        return None, []
    try:
        return Header.model_validate_json(raw), []
    except pydantic.ValidationError as error:
        return Header(), problems_from_pydantic(number, error.errors(), prefix="header")


def numbered_lines(stream: ByteStream, *, max_line_bytes: int) -> Iterator[Record | Rejected]:
    """Every non-blank line as a Record, or Rejected if it is over the limit; numbers count blank lines too, as
    editors do.

    A UTF-8 byte-order mark on the first line is dropped: editors on Windows add it and it is not an error.
    """
    number = 0
    pending = bytearray()
    dropped = 0  # length of the current line once it passed the limit; its bytes are not kept

    def finish() -> Iterator[Record | Rejected]:
        nonlocal dropped
        if dropped:
            message = f"the line is {dropped} bytes long; at most {max_line_bytes} are allowed (MAX_LINE_BYTES)"
            yield Rejected(number, None, [Problem(number, "", ErrorCode.LINE_TOO_LONG, message)])
        else:
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


def _non_blank(number: int, raw: bytes) -> Iterator[Record]:
    if number == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    raw = raw.rstrip(b"\r")
    if raw.strip():
        yield Record(number, raw)

"""Reading label files as numbered lines: line numbers must match what an editor shows."""

import gzip
import io

import pytest

from label_importer.model.label_format import ErrorPolicy
from label_importer.model.limits import Limits
from label_importer.model.problems import ErrorCode
from label_importer.model.source_items import Record, Rejected
from label_importer.runtime.deadline import Deadline
from label_importer.sources.bounded_reading import BoundedReader, FileRefused, ReadBudget, is_compressed
from label_importer.sources.json_lines import JsonLinesSource, numbered_lines
from label_importer.sources.label_file import LabelFile

_BUDGET = ReadBudget(1 << 30, 100, Deadline.in_seconds(3600))


def lines_of(data: bytes, *, compressed: bool = False) -> list[Record | Rejected]:
    stream = BoundedReader(io.BytesIO(data), _BUDGET, compressed_bytes=len(data) if compressed else None)
    return list(numbered_lines(stream, max_line_bytes=1 << 20))


def test_blank_lines_are_skipped_but_counted() -> None:
    assert lines_of(b'{"a": 1}\n\n   \n{"b": 2}\n') == [(1, b'{"a": 1}'), (4, b'{"b": 2}')]


def test_crlf_line_endings_and_a_missing_final_newline() -> None:
    assert lines_of(b'{"a": 1}\r\n{"b": 2}') == [(1, b'{"a": 1}'), (2, b'{"b": 2}')]


def test_a_byte_order_mark_is_dropped_from_the_first_line_only() -> None:
    assert lines_of(b'\xef\xbb\xbf{"a": 1}\n\xef\xbb\xbf{"b": 2}\n') == [
        (1, b'{"a": 1}'),
        (2, b'\xef\xbb\xbf{"b": 2}'),
    ]


def test_lines_longer_than_the_read_size_are_kept_whole() -> None:
    long_line = b'{"data_title": "' + b"x" * 200_000 + b'"}'
    assert lines_of(long_line + b"\n" + long_line) == [(1, long_line), (2, long_line)]


def test_gzip_files_read_the_same_as_plain_ones() -> None:
    plain = b'{"a": 1}\n\n{"b": 2}\n'
    assert lines_of(gzip.compress(plain), compressed=True) == lines_of(plain)
    assert is_compressed("incoming/labels.jsonl.gz") and not is_compressed("incoming/labels.jsonl")


def test_a_gz_file_that_does_not_decompress_is_refused_as_a_whole() -> None:
    with pytest.raises(FileRefused) as refused:
        lines_of(b'{"a": 1}\n', compressed=True)
    assert refused.value.problem.code is ErrorCode.INVALID_GZIP


def test_a_line_over_the_limit_is_reported_and_never_buffered_whole() -> None:
    data = b'{"a": 1}\n' + b"x" * 300_000 + b'\n{"b": 2}\n' + b"y" * 200_001
    items = list(numbered_lines(io.BytesIO(data), max_line_bytes=200_000))
    assert [item for item in items if isinstance(item, Record)] == [(1, b'{"a": 1}'), (3, b'{"b": 2}')]
    too_long = [item for item in items if isinstance(item, Rejected)]
    assert [(item.number, item.problems[0].code) for item in too_long] == [
        (2, ErrorCode.LINE_TOO_LONG),
        (4, ErrorCode.LINE_TOO_LONG),
    ]
    assert [item.problems[0].message.split(" bytes")[0] for item in too_long] == [
        "the line is 300000",
        "the line is 200001",
    ]


def test_a_header_after_a_line_too_long_to_read_still_applies() -> None:
    """The header is the first line that can be read: one unreadable line before it is reported, and the file's
    options (here `skip-invalid`, which lets that line be skipped) still hold."""
    data = b"x" * 300 + b'\n{"format_version": "1", "on_error": "skip-invalid"}\n{"data_title": "a.jpg"}\n'
    limits = Limits(max_line_bytes=200)
    source = JsonLinesSource(LabelFile.of_bytes("labels.jsonl", data, limits, Deadline.in_seconds(3600)), limits)

    assert source.options().on_error is ErrorPolicy.SKIP_INVALID
    items = list(source.items())
    assert [(type(item).__name__, item.number) for item in items] == [("Rejected", 1), ("Record", 3)]
    assert [(type(item).__name__, item.number) for item in source.items()] == [("Rejected", 1), ("Record", 3)]

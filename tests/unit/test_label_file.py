"""Reading label files as numbered lines: line numbers must match what an editor shows."""

import gzip
import io

from label_importer.sources.json_lines import is_compressed, numbered_lines, opened


def lines_of(data: bytes, *, compressed: bool = False) -> list[tuple[int, bytes]]:
    return list(numbered_lines(opened(io.BytesIO(data), compressed=compressed), max_line_bytes=1 << 20))


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


def test_a_line_over_the_limit_is_reported_and_never_buffered_whole() -> None:
    too_long: list[tuple[int, int]] = []
    data = b'{"a": 1}\n' + b"x" * 300_000 + b'\n{"b": 2}\n' + b"y" * 200_001
    lines = list(
        numbered_lines(
            io.BytesIO(data),
            max_line_bytes=200_000,
            too_long=lambda n, size: too_long.append((n, size)),
        )
    )
    assert lines == [(1, b'{"a": 1}'), (3, b'{"b": 2}')]
    assert too_long == [(2, 300_000), (4, 200_001)]

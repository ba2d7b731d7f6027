"""Packing data units into chunks: each data unit once, in one chunk, whatever the order of its lines."""

import orjson
import pytest

from label_importer.checks.validation import FileIndex
from label_importer.model.label_format import Mode
from label_importer.model.messages import Chunk, chunk_document
from label_importer.model.problems import ErrorCode, Problem
from label_importer.model.source_items import Record, Rejected
from label_importer.services.chunking import FileChanged, assemble_chunks, plan_chunks


def accepted(*records: tuple[int, str]) -> FileIndex:
    """An index as validation leaves it: each (line, data hash) accepted in file order."""
    index = FileIndex(max_problems=10)
    for number, data_hash in records:
        index.accept(number, data_hash, 10)
    return index


def test_plan_keeps_first_appearance_order_and_closes_each_chunk_at_its_last_line() -> None:
    plan = plan_chunks({"a": [1, 9], "b": [2], "c": [3, 4], "d": [5]}, rows_per_chunk=2)
    assert plan.chunk_of_unit == {"a": 0, "b": 0, "c": 1, "d": 1}
    assert plan.closing_line == [9, 5]
    assert plan.count == 2


def test_records_of_one_data_unit_are_merged_even_when_far_apart() -> None:
    lines = [
        (1, {"data_hash": "a", "objects": [{"name": "Cherry", "point": [0.1, 0.1]}]}),
        (2, {"data_title": "b.jpg"}),
        (3, {"data_hash": "c"}),
        (5, {"data_hash": "a", "objects": [{"name": "Cherry", "point": [0.2, 0.2]}]}),
    ]
    raw = [Record(number, orjson.dumps(record)) for number, record in lines]
    index = accepted((1, "a"), (2, "b"), (3, "c"), (5, "a"))
    assert index.lines_by_unit == {"a": [1, 5], "b": [2], "c": [3]}
    plan = plan_chunks(index.lines_by_unit, rows_per_chunk=2)
    emitted: list[tuple[int, list[dict]]] = []

    assemble_chunks(raw, plan, index, lambda i, rows: emitted.append((i, rows)))

    # Chunk 1 (c) completes at line 3, before chunk 0 (a, b), which must wait for line 5.
    assert [(i, [(row["data_hash"], [r["line"] for r in row["records"]]) for row in rows]) for i, rows in emitted] == [
        (1, [("c", [3])]),
        (0, [("a", [1, 5]), ("b", [2])]),
    ]
    assert [obj["point"] for obj in emitted[1][1][0]["records"][1]["objects"]] == [[0.2, 0.2]]
    # What the import function reads back is a valid Chunk.
    Chunk.model_validate_json(orjson.dumps(chunk_document("job", 0, "project", Mode.APPEND, "main", emitted[1][1])))


def test_invalid_lines_are_left_out() -> None:
    index = accepted((2, "a"), (3, "a"))
    index.reject_line(3, "a", [Problem(3, "", ErrorCode.FRAME_WITHOUT_OBJECT, "rejected once the file was read")])
    problem = Problem(4, "", ErrorCode.LINE_TOO_LONG, "too long")
    raw = [Record(1, b"{broken"), Record(2, b'{"data_hash": "a"}'), Record(3, b'{"data_hash": "a"}')]
    raw.append(Rejected(4, None, [problem]))
    emitted: list[list[dict]] = []
    assemble_chunks(raw, plan_chunks(index.lines_by_unit, 100), index, lambda i, rows: emitted.append(rows))
    assert [[[r["line"] for r in row["records"]] for row in rows] for rows in emitted] == [[[2]]]


@pytest.mark.parametrize(
    "second_read",
    [
        [Record(1, b'{"data_hash": "a"}')],  # the file ends early
        [Record(1, b'{"data_hash": "a"}'), Record(3, b'{"data_hash": "a"}')],  # a valid record is gone
        [Record(1, b'{"data_hash": "a"}'), Rejected(2, None, [])],  # a valid record no longer reads
    ],
)
def test_a_file_that_reads_differently_the_second_time_queues_nothing_unchecked(second_read: list) -> None:
    index = accepted((1, "a"), (2, "a"))
    emitted: list[list[dict]] = []
    with pytest.raises(FileChanged):
        assemble_chunks(second_read, plan_chunks(index.lines_by_unit, 100), index, lambda i, rows: emitted.append(rows))
    assert emitted == []


def test_interleaved_files_spill_to_disk_and_emit_the_same_chunks() -> None:
    lines = [
        Record(n, orjson.dumps({"data_hash": f"u{n % 6}", "objects": [{"name": "Pedicel", "point": [n / 100, 0.5]}]}))
        for n in range(1, 61)
    ]
    index = accepted(*((n, f"u{n % 6}") for n, _ in lines))
    plan = plan_chunks(index.lines_by_unit, rows_per_chunk=2)

    def chunks(budget: int) -> list[tuple[int, list[dict]]]:
        emitted: list[tuple[int, list[dict]]] = []
        assemble_chunks(lines, plan, index, lambda i, rows: emitted.append((i, rows)), spill_after_bytes=budget)
        return emitted

    in_memory, spilled = chunks(1 << 20), chunks(200)
    assert spilled == in_memory
    assert sorted(i for i, _ in spilled) == [0, 1, 2]
    assert [len(row["records"]) for _, rows in spilled for row in rows] == [10] * 6


def test_chunks_are_bounded_by_bytes_as_well_as_rows() -> None:
    lines = {"a": [1], "b": [2], "c": [3], "d": [4], "e": [5]}
    sizes = {"a": 600, "b": 500, "c": 100, "d": 1000, "e": 1}

    plan = plan_chunks(lines, rows_per_chunk=3, row_bytes=sizes, max_chunk_bytes=1000)

    assert plan.chunk_of_unit == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 3}
    assert plan.closing_line == [1, 3, 4, 5]

"""Pack a validated file into chunks: one chunk = one Encord bundle of up to B label rows.

Records that target the same data unit are merged into one row, so each data unit is initialised and
saved once per job, wherever its lines are in the file. The file is read a second time; a chunk is sent
as soon as the last line of its last data unit has been read, so memory holds only the chunks still open
(for a file sorted by data unit, one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from label_importer.data_units import DataUnitIndex
from label_importer.label_format import LabelRecord
from label_importer.messages import ChunkRow, RecordLabels
from label_importer.validation import FileIndex, Line, parse_record


@dataclass(frozen=True)
class ChunkPlan:
    chunk_of_unit: dict[str, int]
    closing_line: list[int]
    """For each chunk, the line after which all its records have been read."""

    @property
    def count(self) -> int:
        return len(self.closing_line)


def plan_chunks(lines_by_unit: dict[str, list[int]], rows_per_chunk: int) -> ChunkPlan:
    """Data units in order of first appearance, `rows_per_chunk` to a chunk."""
    chunk_of_unit: dict[str, int] = {}
    closing_line: list[int] = []
    for position, (data_hash, lines) in enumerate(lines_by_unit.items()):
        chunk_index = position // rows_per_chunk
        chunk_of_unit[data_hash] = chunk_index
        if chunk_index == len(closing_line):
            closing_line.append(0)
        closing_line[chunk_index] = max(closing_line[chunk_index], lines[-1])
    return ChunkPlan(chunk_of_unit, closing_line)


def assemble_chunks(
    lines: Iterable[Line],
    plan: ChunkPlan,
    index: FileIndex,
    units: DataUnitIndex,
    emit: Callable[[int, list[ChunkRow]], None],
) -> None:
    """Read the file again and call `emit(chunk_index, rows)` as each chunk completes."""
    open_chunks: dict[int, dict[str, list[RecordLabels]]] = {}
    for number, record in _valid_records(lines, index):
        data_hash = units.find(record.data_hash, record.data_title).data_hash
        chunk_index = plan.chunk_of_unit[data_hash]
        rows = open_chunks.setdefault(chunk_index, {})
        rows.setdefault(data_hash, []).append(
            RecordLabels(line=number, objects=record.objects, classifications=record.classifications)
        )
        if number == plan.closing_line[chunk_index]:
            completed = open_chunks.pop(chunk_index)
            emit(chunk_index, [ChunkRow(data_hash=h, records=records) for h, records in completed.items()])


def _valid_records(lines: Iterable[Line], index: FileIndex) -> Iterator[tuple[int, LabelRecord]]:
    for number, raw in lines:
        if number in index.invalid_lines:
            continue
        record = parse_record((number, raw))
        if isinstance(record, list):
            raise RuntimeError(f"line {number} changed between the two reads of the file")
        yield number, record

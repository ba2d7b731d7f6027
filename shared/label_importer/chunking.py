"""Pack a validated file into chunks: one chunk = one Encord bundle of up to B label rows.

Records that target the same data unit are merged into one row, so each data unit is initialised and
saved once per job, wherever its lines are in the file. The file is read a second time; a chunk is sent
as soon as the last line of its last data unit has been read, so memory holds only the chunks still open
(for a file sorted by data unit, one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from label_importer.data_units import DataUnitIndex
from label_importer.validation import FileIndex, Line


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
    emit: Callable[[int, list[dict[str, Any]]], None],
) -> None:
    """Read the file again and call `emit(chunk_index, rows)` as each chunk completes.

    Rows are plain dicts shaped like `messages.ChunkRow`, built with orjson rather than the pydantic models:
    every line here already passed validation in pass 1, and the import function validates the message
    with `messages.Chunk` when it reads it, so building models again here only doubled the cost of pass 2.
    Open chunks keep their lines as raw bytes until they complete.
    """
    open_chunks: dict[int, dict[str, list[tuple[int, bytes]]]] = {}
    for number, raw in lines:
        if number in index.invalid_lines:
            continue
        record = orjson.loads(raw)
        data_hash = units.find(record.get("data_hash"), record.get("data_title")).data_hash
        chunk_index = plan.chunk_of_unit[data_hash]
        open_chunks.setdefault(chunk_index, {}).setdefault(data_hash, []).append((number, raw))
        if number == plan.closing_line[chunk_index]:
            emit(chunk_index, [_row(h, records) for h, records in open_chunks.pop(chunk_index).items()])


def _row(data_hash: str, lines: list[tuple[int, bytes]]) -> dict[str, Any]:
    records = []
    for number, raw in lines:
        record = orjson.loads(raw)
        records.append(
            {"line": number, "objects": record.get("objects", []), "classifications": record.get("classifications", [])}
        )
    return {"data_hash": data_hash, "records": records}

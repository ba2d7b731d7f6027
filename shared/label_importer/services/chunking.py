"""Pack a validated file into chunks: one chunk = one Encord bundle of up to B label rows.

Records that target the same data unit are merged into one row, so each data unit is initialised and
saved once per job, wherever its lines are in the file. The file is read a second time; a chunk is sent
as soon as the last line of its last data unit has been read, so memory holds only the chunks still open
(for a file sorted by data unit, one).
"""

from __future__ import annotations

import io
import tempfile
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from label_importer.checks.data_units import DataUnitIndex
from label_importer.checks.validation import FileIndex, Line


@dataclass(frozen=True)
class ChunkPlan:
    chunk_of_unit: dict[str, int]
    closing_line: list[int]
    """For each chunk, the line after which all its records have been read."""

    @property
    def count(self) -> int:
        return len(self.closing_line)


def plan_chunks(
    lines_by_unit: dict[str, list[int]],
    rows_per_chunk: int,
    *,
    row_bytes: dict[str, int] | None = None,
    max_chunk_bytes: int | None = None,
) -> ChunkPlan:
    """Data units in order of first appearance, up to `rows_per_chunk` to a chunk and, given their sizes, up to
    `max_chunk_bytes` of label JSON: a consumer holds a whole chunk's labels as SDK objects at once, so bytes
    bound its memory where rows alone do not (validation keeps any one row under the byte limit)."""
    chunk_of_unit: dict[str, int] = {}
    closing_line: list[int] = []
    rows_in_chunk = bytes_in_chunk = 0
    for data_hash, lines in lines_by_unit.items():
        size = row_bytes.get(data_hash, 0) if row_bytes else 0
        full = rows_in_chunk == rows_per_chunk or (
            max_chunk_bytes is not None and rows_in_chunk and bytes_in_chunk + size > max_chunk_bytes
        )
        if not closing_line or full:
            closing_line.append(0)
            rows_in_chunk = bytes_in_chunk = 0
        chunk_index = len(closing_line) - 1
        chunk_of_unit[data_hash] = chunk_index
        closing_line[chunk_index] = max(closing_line[chunk_index], lines[-1])
        rows_in_chunk += 1
        bytes_in_chunk += size
    return ChunkPlan(chunk_of_unit, closing_line)


SPILL_AFTER_BYTES = 64 << 20
"""Lines of open chunks kept in memory before they move to a temporary file (Lambda's /tmp)."""


class _OpenChunks:
    """The lines of chunks that have not seen their last line yet, in memory up to a budget, then on disk.

    A file sorted by data unit keeps one chunk open at a time. A file whose data units are interleaved keeps
    them all open until the end: past the budget, their lines go to a temporary file and only three
    integers per line (offset, length, line number) stay in memory.
    """

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._in_memory: dict[int, list[tuple[int, bytes]]] = {}
        self._bytes = 0
        self._spill: BinaryIO | None = None
        self._on_disk: dict[int, array[int]] = {}

    def add(self, chunk_index: int, number: int, raw: bytes) -> None:
        if self._spill is None and self._bytes + len(raw) > self._budget:
            self._spill = tempfile.TemporaryFile()  # noqa: SIM115 - lives for all of pass 2; close() ends it
            for held_index, lines in self._in_memory.items():
                for held_number, held_raw in lines:
                    self._write(held_index, held_number, held_raw)
            self._in_memory.clear()
            self._bytes = 0
        if self._spill is None:
            self._in_memory.setdefault(chunk_index, []).append((number, raw))
            self._bytes += len(raw)
        else:
            self._write(chunk_index, number, raw)

    def pop(self, chunk_index: int) -> list[tuple[int, bytes]]:
        lines = self._in_memory.pop(chunk_index, [])
        self._bytes -= sum(len(raw) for _, raw in lines)
        triplets = self._on_disk.pop(chunk_index, None)
        if triplets is not None and self._spill is not None:
            for at in range(0, len(triplets), 3):
                offset, length, number = triplets[at : at + 3]
                self._spill.seek(offset)
                lines.append((number, self._spill.read(length)))
            self._spill.seek(0, io.SEEK_END)
        return lines

    def close(self) -> None:
        if self._spill is not None:
            self._spill.close()

    def _write(self, chunk_index: int, number: int, raw: bytes) -> None:
        assert self._spill is not None
        offset = self._spill.tell()
        self._spill.write(raw)
        self._on_disk.setdefault(chunk_index, array("q")).extend((offset, len(raw), number))


def assemble_chunks(
    lines: Iterable[Line],
    plan: ChunkPlan,
    index: FileIndex,
    units: DataUnitIndex,
    emit: Callable[[int, list[dict[str, Any]]], None],
    *,
    spill_after_bytes: int = SPILL_AFTER_BYTES,
) -> None:
    """Read the file again and call `emit(chunk_index, rows)` as each chunk completes.

    Rows are plain dicts shaped like `messages.ChunkRow`, built with orjson rather than the pydantic models:
    every line here already passed validation in pass 1, and the import function validates the message
    with `messages.Chunk` when it reads it, so building models again here only doubled the cost of pass 2.
    """
    open_chunks = _OpenChunks(spill_after_bytes)
    try:
        for number, raw in lines:
            if number in index.invalid_lines:
                continue
            chunk_index = plan.chunk_of_unit[_data_hash(orjson.loads(raw), units)]
            open_chunks.add(chunk_index, number, raw)
            if number == plan.closing_line[chunk_index]:
                emit(chunk_index, _rows(open_chunks.pop(chunk_index), units))
    finally:
        open_chunks.close()


def _data_hash(record: dict[str, Any], units: DataUnitIndex) -> str:
    return units.find(record.get("data_hash"), record.get("data_title")).data_hash


def _rows(lines: list[tuple[int, bytes]], units: DataUnitIndex) -> list[dict[str, Any]]:
    """One row per data unit, in order of first appearance, its records in line order."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for number, raw in sorted(lines):
        record = orjson.loads(raw)
        rows.setdefault(_data_hash(record, units), []).append(
            {"line": number, "objects": record.get("objects", []), "classifications": record.get("classifications", [])}
        )
    return [{"data_hash": data_hash, "records": records} for data_hash, records in rows.items()]

"""Pack a validated file into chunks: one chunk = one Encord bundle of up to B label rows.

Records that target the same data unit are merged into one row, so each data unit is initialised and
saved once per job, wherever its lines are in the file. The file is read a second time, each record parsed
once (validation already said which data unit it is for); a chunk is sent as soon as the last line of its
last data unit has been read, so memory holds only the chunks still open (for a file sorted by data unit,
one).
"""

from __future__ import annotations

import io
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from label_importer.checks.validation import FileIndex
from label_importer.model.label_format import AfterSave
from label_importer.model.source_items import NotImported, Record, SourceItem


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


_Held = tuple[int, int, bytes]
"""A record waiting for its chunk to complete: line number, its data unit's position in
`FileIndex.unit_hashes`, label JSON."""


class _OpenChunks:
    """The records of chunks that have not seen their last line yet, in memory up to a budget, then on disk.

    A file sorted by data unit keeps one chunk open at a time. A file whose data units are interleaved keeps
    them all open until the end: past the budget, their records go to a temporary file and only four
    integers per record (offset, length, line number, data unit) stay in memory.
    """

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._in_memory: dict[int, list[_Held]] = {}
        self._bytes = 0
        self._spill: BinaryIO | None = None
        self._on_disk: dict[int, array[int]] = {}

    def add(self, chunk_index: int, held: _Held) -> None:
        if self._spill is None and self._bytes + len(held[2]) > self._budget:
            self._spill = tempfile.TemporaryFile()  # noqa: SIM115 - lives for all of pass 2; close() ends it
            for held_index, records in self._in_memory.items():
                for record in records:
                    self._write(held_index, record)
            self._in_memory.clear()
            self._bytes = 0
        if self._spill is None:
            self._in_memory.setdefault(chunk_index, []).append(held)
            self._bytes += len(held[2])
        else:
            self._write(chunk_index, held)

    def pop(self, chunk_index: int) -> list[_Held]:
        records = self._in_memory.pop(chunk_index, [])
        self._bytes -= sum(len(raw) for _, _, raw in records)
        quads = self._on_disk.pop(chunk_index, None)
        if quads is not None and self._spill is not None:
            for at in range(0, len(quads), 4):
                offset, length, number, position = quads[at : at + 4]
                self._spill.seek(offset)
                records.append((number, position, self._spill.read(length)))
            self._spill.seek(0, io.SEEK_END)
        return records

    def close(self) -> None:
        if self._spill is not None:
            self._spill.close()

    def _write(self, chunk_index: int, held: _Held) -> None:
        assert self._spill is not None
        number, position, raw = held
        offset = self._spill.tell()
        self._spill.write(raw)
        quad = (offset, len(raw), number, position)
        self._on_disk.setdefault(chunk_index, array("q")).extend(quad)


def assemble_chunks(
    items: Iterable[SourceItem],
    plan: ChunkPlan,
    index: FileIndex,
    emit: Callable[[int, list[dict[str, Any]]], None],
    *,
    after_save: AfterSave | None = None,
    spill_after_bytes: int = SPILL_AFTER_BYTES,
) -> None:
    """Read the file again and call `emit(chunk_index, rows)` as each chunk completes.

    Rows are plain dicts shaped like `messages.ChunkRow`, built with orjson rather than the pydantic models:
    every record here already passed validation in pass 1, and the import function validates the message
    with `messages.Chunk` when it reads it, so building models again here only doubled the cost of pass 2.
    """
    open_chunks = _OpenChunks(spill_after_bytes)
    try:
        for number, position, raw in _valid_records(items, index):
            chunk_index = plan.chunk_of_unit[index.unit_hashes[position]]
            open_chunks.add(chunk_index, (number, position, raw))
            if number == plan.closing_line[chunk_index]:
                emit(chunk_index, _rows(open_chunks.pop(chunk_index), index.unit_hashes, after_save))
    finally:
        open_chunks.close()


def _valid_records(items: Iterable[SourceItem], index: FileIndex) -> Iterator[_Held]:
    """The records validation kept, with their data units: both walk the file in the same order."""
    accepted = index.accepted()
    wanted = next(accepted, None)
    for item in items:
        if wanted is None:
            return
        if isinstance(item, NotImported):
            continue
        number = item.number
        if number < wanted[0]:
            continue
        if number > wanted[0] or not isinstance(item, Record):
            raise FileChanged(f"record {wanted[0]} was valid when the file was validated and is not there now")
        yield number, wanted[1], item.raw
        wanted = next(accepted, None)
    if wanted is not None:
        raise FileChanged(f"the file ends before record {wanted[0]}, which was valid when it was validated")


class FileChanged(Exception):
    """Chunking read something else than validation did: the exact version is read twice, so only a broken
    read gets here, and queueing what it read would import what was never checked."""


def _rows(records: list[_Held], unit_hashes: list[str], after_save: AfterSave | None) -> list[dict[str, Any]]:
    """One row per data unit, in order of first appearance, its records in line order, with its workflow actions:
    a record's in place of the file's (validation made sure a data unit's records do not disagree)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    actions: dict[str, AfterSave | None] = {}
    for number, position, raw in sorted(records):
        record = orjson.loads(raw)
        data_hash = unit_hashes[position]
        rows.setdefault(data_hash, []).append(
            {"line": number, "objects": record.get("objects", []), "classifications": record.get("classifications", [])}
        )
        if record.get("after_save") is not None:
            actions[data_hash] = AfterSave.model_validate(record["after_save"]).over(after_save)
    return [_row(data_hash, records, actions.get(data_hash, after_save)) for data_hash, records in rows.items()]


def _row(data_hash: str, records: list[dict[str, Any]], after_save: AfterSave | None) -> dict[str, Any]:
    row: dict[str, Any] = {"data_hash": data_hash, "records": records}
    if after_save is not None and (after_save.priority is not None or after_save.move is not None):
        row["after_save"] = after_save.model_dump(exclude_none=True)
    return row

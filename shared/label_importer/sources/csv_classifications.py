"""CSV classifications: one classification answer per row, for tagging many data units from a spreadsheet.

Columns: `data_title` or `data_hash` (which data unit), `classification` (the question's title), `answer` (a
radio option, the text, or checklist options separated by `|`) and optional `frames` (`3`, `3-7`, `0,2-4`). An
optional first line `# {…}` holds the shared mapping option. Each row becomes one label record, numbered as a
spreadsheet numbers its rows, so problems point at `row 17.answer`, not at a JSON path the user never wrote.

The file is streamed: the csv module reads lines from a bounded text stream, one physical line at a time and
never more than `max_line_bytes` of one, so a file without newlines is reported, not buffered.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
from encord.objects import ChecklistAttribute, Classification, TextAttribute

from label_importer.model.limits import Limits
from label_importer.model.problems import ErrorCode, Problem, did_you_mean, shown_value
from label_importer.model.project import ProjectView
from label_importer.model.source_items import LeftOut, Record, Rejected, SourceItem
from label_importer.sources.bounded_reading import ByteStream
from label_importer.sources.label_file import LabelFile
from label_importer.sources.label_source import SourceRejected
from label_importer.sources.mapping_option import MappingOption, parsed_mapping

_UNIT_COLUMNS = ("data_title", "data_hash")
_COLUMNS = (*_UNIT_COLUMNS, "classification", "answer", "frames")
_CHECKLIST_SEPARATOR = "|"
_FRAME_PART = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")
_UNDECODABLE = re.compile("[\udc80-\udcff]")
"""Bytes that are not UTF-8, as `surrogateescape` keeps them: found per row, so the report names the row."""

_LABEL_TO_COLUMN = {
    "data_title": "data_title",
    "data_hash": "data_hash",
    "name": "classification",
    "feature_hash": "classification",
    "answer": "answer",
    "frames": "frames",
}


class CsvClassificationsSource:
    records_noun = "rows"
    options_section = "header"
    options_line = 1

    @staticmethod
    def claims(file: LabelFile) -> bool:
        return file.key.lower().endswith(".csv")

    def __init__(self, file: LabelFile, limits: Limits) -> None:
        self._file = file
        self._max_line_bytes = limits.max_line_bytes
        self._mapping: MappingOption | None = None
        self._header_row = 1
        self._columns: list[str] = []
        self._project: ProjectView | None = None

    def options(self) -> MappingOption:
        """The `# {…}` line if the file starts with one; the column row is checked here too, because a file
        without `classification` or `answer` has no record that could be right."""
        lines = self._lines()
        first = next(lines, None)
        if first is not None and first[0] < 0:
            message = f"the first line is over {self._max_line_bytes} bytes long (MAX_LINE_BYTES)"
            raise SourceRejected([Problem(1, "row 1", ErrorCode.LINE_TOO_LONG, message)])
        mapping = MappingOption()
        if first is not None and first[1].lstrip("\ufeff").startswith("#"):
            mapping = parsed_mapping(first[1].lstrip("\ufeff")[1:].strip() or "{}", line=1, where="header")
            self._header_row = 2
            first = next(lines, None)
        self._mapping = mapping
        if first is not None and first[0] < 0:
            message = f"the column row is over {self._max_line_bytes} bytes long (MAX_LINE_BYTES)"
            raise SourceRejected([Problem(2, "row 2", ErrorCode.LINE_TOO_LONG, message)])
        if first is not None:
            self._columns = self._checked_columns(first)
        return mapping

    def match(self, project: ProjectView) -> list[Problem]:
        self._project = project  # rows are tied to the project one by one, as the checks would
        return []

    def items(self) -> Iterator[SourceItem]:
        if self._mapping is None:
            self.options()
        lines = self._lines()
        for _ in range(self._header_row):
            next(lines, None)
        too_long: list[int] = []

        def bounded() -> Iterator[str]:
            for number, line in lines:
                if number < 0:
                    too_long.append(-number)
                    yield "\n"
                else:
                    yield line

        reader = csv.reader(bounded(), strict=True)
        row = self._header_row
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                row += 1
                yield Rejected(row, None, [Problem(row, f"row {row}", ErrorCode.INVALID_VALUE, f"not CSV: {error}")])
                continue
            row += 1
            if too_long:
                message = f"a line of this row is over {self._max_line_bytes} bytes long (MAX_LINE_BYTES)"
                too_long.clear()
                yield Rejected(row, None, [Problem(row, f"row {row}", ErrorCode.LINE_TOO_LONG, message)])
            elif any(cell.strip() for cell in cells):
                yield self._convert(row, cells)

    def locate(self, problem: Problem) -> Problem:
        """`classifications[0].answer` -> `row 17.answer`: the record's field, named by the column it came
        from."""
        if problem.line == 0 or problem.field.startswith("row "):
            return problem
        names = (part.split("[")[0] for part in problem.field.split("."))
        column = next((_LABEL_TO_COLUMN[name] for name in names if name in _LABEL_TO_COLUMN), None)
        if column in _UNIT_COLUMNS:
            present = [name for name in _UNIT_COLUMNS if name in self._columns]
            column = present[0] if len(present) == 1 else column
        where = f"row {problem.line}"
        return replace(problem, field=f"{where}.{column}" if column else where)

    def _lines(self) -> Iterator[tuple[int, str]]:
        """Physical lines with 1-based numbers; a line over the limit is skipped to its end and given as its
        number negated, its text never held."""
        raw = io.BufferedReader(_RawStream(self._file.stream()))
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        number = 0
        while line := text.readline(self._max_line_bytes + 1):
            number += 1
            if len(line) > self._max_line_bytes and not line.endswith("\n"):
                while (rest := text.readline(self._max_line_bytes)) and not rest.endswith("\n"):
                    pass
                yield -number, ""
            else:
                yield number, line

    def _checked_columns(self, line: tuple[int, str]) -> list[str]:
        number, text = line
        where = f"row {self._header_row}"
        columns = [name.strip() for name in next(csv.reader([text]), [])]
        problems = [
            Problem(number, f"{where}.{name}", ErrorCode.UNKNOWN_FIELD, "unknown column" + did_you_mean(name, _COLUMNS))
            for name in columns
            if name not in _COLUMNS
        ]
        problems += [
            Problem(number, f"{where}.{name}", ErrorCode.INVALID_VALUE, f"column {name!r} appears more than once")
            for name in sorted({name for name in columns if columns.count(name) > 1})
        ]
        problems += [
            Problem(number, f"{where}.{name}", ErrorCode.MISSING_FIELD, f"the file needs a {name!r} column")
            for name in ("classification", "answer")
            if name not in columns
        ]
        if not any(name in columns for name in _UNIT_COLUMNS):
            message = "the file needs a 'data_title' or a 'data_hash' column"
            problems.append(Problem(number, f"{where}.data_title", ErrorCode.MISSING_FIELD, message))
        if problems:
            raise SourceRejected(problems)
        return columns

    def _convert(self, row: int, cells: list[str]) -> SourceItem:
        where = f"row {row}"
        if len(cells) > len(self._columns):
            message = f"the row has {len(cells)} cells; the column row names {len(self._columns)}"
            return Rejected(row, None, [Problem(row, where, ErrorCode.INVALID_VALUE, message)])
        if _UNDECODABLE.search("".join(cells)):
            return Rejected(row, None, [Problem(row, where, ErrorCode.NOT_UTF8, "the row is not UTF-8 text")])
        values = {name: cell.strip() for name, cell in zip(self._columns, cells, strict=False)}

        def rejected(column: str, code: ErrorCode, message: str) -> Rejected:
            return Rejected(
                row, None, [Problem(row, f"{where}.{column}", code, message, shown_value(values.get(column)))]
            )

        given = [name for name in _UNIT_COLUMNS if values.get(name)]
        if len(given) != 1:
            which = "both" if given else "neither"
            return rejected(
                "data_title", ErrorCode.INVALID_VALUE, f"give exactly one of data_title or data_hash, not {which}"
            )
        for column in ("classification", "answer"):
            if not values.get(column) and not (column == "answer" and "answer" in values):
                return rejected(column, ErrorCode.MISSING_FIELD, f"the row has no {column}")
        assert self._mapping is not None  # items() reads the options first
        title = values["classification"]
        if title in self._mapping.classifications and self._mapping.classifications[title] is None:
            return LeftOut(row)
        label: dict[str, Any] = self._classification(self._mapping.classifications.get(title) or title)
        label["answer"] = self._answer(label, values["answer"])
        if values.get("frames"):
            frames = _frames(values["frames"])
            if frames is None:
                message = "frames are numbers or inclusive ranges separated by commas, like 3, 3-7 or 0,2-4"
                return rejected("frames", ErrorCode.INVALID_VALUE, message)
            label["frames"] = frames
        record: dict[str, Any] = {**self._data_unit(given[0], values[given[0]]), "classifications": [label]}
        return Record(row, orjson.dumps(record))

    def _classification(self, name: str) -> dict[str, Any]:
        """A mapped name that is a classification's feature hash addresses it by hash; any other, by title."""
        project = self._project
        if project is not None and any(item.feature_node_hash == name for item in project.ontology.classifications):
            return {"feature_hash": name}
        return {"name": name}

    def _answer(self, label: dict[str, Any], answer: str) -> Any:
        """The answer as the classification's question takes it; an unknown classification gets the text as
        it is, and the checks say the classification is unknown."""
        question = self._question(label)
        if isinstance(question, TextAttribute):
            return answer
        renamed = self._mapping.options if self._mapping is not None else {}
        if isinstance(question, ChecklistAttribute):
            picked = [part.strip() for part in answer.split(_CHECKLIST_SEPARATOR) if part.strip()]
            return [renamed.get(part, part) for part in picked]
        return renamed.get(answer, answer)

    def _question(self, label: dict[str, Any]) -> Any:
        if self._project is None:
            return None
        matches: list[Classification] = [
            item
            for item in self._project.ontology.classifications
            if item.attributes
            and (item.feature_node_hash == label.get("feature_hash") or item.title == label.get("name"))
        ]
        return matches[0].attributes[0] if len(matches) == 1 else None

    def _data_unit(self, column: str, name: str) -> dict[str, str]:
        """`data_units` renames a name to a data unit title or data hash; which one it is, the project says."""
        mapped = self._mapping.data_units.get(name) if self._mapping is not None else None
        if mapped is None:
            return {column: name}
        project = self._project
        is_hash = (
            project is not None and project.units.with_hash(mapped) is not None and not project.units.titled(mapped)
        )
        return {"data_hash": mapped} if is_hash else {"data_title": mapped}


class _RawStream(io.RawIOBase):
    """The bounded byte stream as the raw file io's buffered reader (and so TextIOWrapper) reads from."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _frames(text: str) -> Any:
    """`3` -> 3, `3-7` -> {start: 3, end: 7}, `0,2-4` -> [0, {start: 2, end: 4}]; None if it is not that."""
    parts: list[Any] = []
    for piece in text.split(","):
        match = _FRAME_PART.fullmatch(piece)
        if match is None:
            return None
        start, end = match.groups()
        parts.append(int(start) if end is None else {"start": int(start), "end": int(end)})
    return parts[0] if len(parts) == 1 else parts

"""A Labelbox export (NDJSON, `.ndjson` or `.ndjson.gz`) as a label source: an optional `{"encord": {...}}` first
line holds the options, every other line is one data row, read one line at a time."""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from label_importer.model.limits import Limits
from label_importer.model.problems import ErrorCode, Problem
from label_importer.model.project import ProjectView
from label_importer.model.source_items import Record, Rejected, SourceItem
from label_importer.sources.json_lines import numbered_lines
from label_importer.sources.label_file import LabelFile
from label_importer.sources.label_source import SourceRejected
from label_importer.sources.labelbox.rows import OPTIONS_KEY, LabelboxRows
from label_importer.sources.mapping_option import MappingOption, parsed_mapping

SUFFIXES = (".ndjson", ".ndjson.gz")


class LabelboxSource:
    records_noun = "data rows"
    options_section = OPTIONS_KEY
    options_line = 1

    @staticmethod
    def claims(file: LabelFile) -> bool:
        """By suffix: NDJSON is what Labelbox's export streams write, one data row per line."""
        return file.key.lower().endswith(SUFFIXES)

    def __init__(self, file: LabelFile, limits: Limits) -> None:
        self._file = file
        self._limits = limits
        self._options: MappingOption | None = None
        self._options_at: int | None = None
        self._rows: LabelboxRows | None = None

    def options(self) -> MappingOption:
        """The first non-blank line, when it is `{"encord": {...}}` and nothing else; the defaults otherwise."""
        if self._options is None:
            self._options = MappingOption()
            first = next(self._lines(), None)
            if first is not None and not isinstance(first, Rejected):
                self._options = self._parsed(first.number, first.raw)
        return self._options

    def match(self, project: ProjectView) -> list[Problem]:
        self._rows = LabelboxRows(project, self.options(), self._limits)
        return []

    def items(self) -> Iterator[SourceItem]:
        if self._rows is None:
            raise RuntimeError("match() ties the export to the project before its rows are read")
        for line in self._lines():
            if line.number == self._options_at:
                continue
            if isinstance(line, Rejected):
                yield line
            else:
                yield from self._rows.convert(line.number, line.raw)

    def locate(self, problem: Problem) -> Problem:
        return self._rows.locate(problem) if self._rows is not None else problem

    def _parsed(self, number: int, raw: bytes) -> MappingOption:
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return MappingOption()  # a data row that is not JSON: reported as that row
        if not isinstance(document, dict) or OPTIONS_KEY not in document or "data_row" in document:
            return MappingOption()
        self._options_at = number
        extra = sorted(set(document) - {OPTIONS_KEY})
        if extra:
            message = f'the options line is {{"encord": {{…}}}} alone; {extra[0]!r} does not belong in it'
            raise SourceRejected([Problem(number, extra[0], ErrorCode.UNKNOWN_FIELD, message)])
        if not isinstance(document[OPTIONS_KEY], dict):
            message = "'encord' holds the mapping option, a JSON object (see docs/format-labelbox.md)"
            raise SourceRejected([Problem(number, OPTIONS_KEY, ErrorCode.WRONG_TYPE, message)])
        return parsed_mapping(orjson.dumps(document[OPTIONS_KEY]), line=number, where=OPTIONS_KEY)

    def _lines(self) -> Iterator[Record | Rejected]:
        return numbered_lines(self._file.stream(), max_line_bytes=self._limits.max_line_bytes)

"""An Encord label export as a label source: the optional `{"encord": {...}}` first element holds the options,
every other element is a label row, streamed one at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ijson
import orjson
import pydantic

from label_importer.model.limits import Limits
from label_importer.model.problems import ErrorCode, Problem, problems_from_pydantic
from label_importer.model.project import ProjectView
from label_importer.model.source_items import SourceItem
from label_importer.sources.bounded_reading import ItemStream
from label_importer.sources.encord_export.ontology_map import OntologyMap
from label_importer.sources.encord_export.rows import ExportRows
from label_importer.sources.json_document import invalid_json, is_json_document, without_bom
from label_importer.sources.label_file import LabelFile
from label_importer.sources.label_source import SourceRejected
from label_importer.sources.mapping_option import MappingOption

OPTIONS_SECTION = "encord"


class ExportSource:
    records_noun = "label rows"
    options_section = OPTIONS_SECTION
    options_line = 0

    @staticmethod
    def claims(file: LabelFile) -> bool:
        """A `.json` (or `.json.gz`) file whose document is a list: what Encord's label export writes."""
        return is_json_document(file.key) and file.head()[:1] == b"["

    def __init__(self, file: LabelFile, limits: Limits) -> None:
        self._file = file
        self._limits = limits
        self._options: MappingOption | None = None
        self._rows: ExportRows | None = None

    def options(self) -> MappingOption:
        if self._options is None:
            elements = self._elements()
            first = next(elements, None)
            row = next(elements, None) if first is not None and _is_options(first[1]) else first
            if row is not None and _is_coco_result(row[1]):
                raise SourceRejected([Problem(0, "", ErrorCode.NOT_COCO, _COCO_RESULTS)])
            given = first[1][OPTIONS_SECTION] if first is not None and _is_options(first[1]) else {}
            try:  # as JSON, which the strict header options need for their enums
                self._options = MappingOption.model_validate_json(orjson.dumps(given))
            except pydantic.ValidationError as error:
                where = f"[0].{OPTIONS_SECTION}"
                problems = problems_from_pydantic(0, error.errors(), prefix=where, known=MappingOption.model_fields)
                raise SourceRejected(problems) from None
        return self._options

    def match(self, project: ProjectView) -> list[Problem]:
        option = self.options()
        self._rows = ExportRows(OntologyMap(project.ontology, option), project.units, option)
        return []

    def items(self) -> Iterator[SourceItem]:
        if self._rows is None:
            raise RuntimeError("match() ties the export to the project before its rows are read")
        for position, element in self._elements():
            if position == 0 and _is_options(element):
                continue
            yield self._rows.convert(position + 1, element)

    def locate(self, problem: Problem) -> Problem:
        return self._rows.locate(problem) if self._rows is not None else problem

    def _elements(self) -> Iterator[tuple[int, Any]]:
        stream = self._body()
        try:
            for position, element in enumerate(ijson.items(without_bom(stream), "item", use_float=True)):
                stream.mark_item()
                yield position, element
        except ijson.JSONError as error:
            raise SourceRejected([Problem(0, "", ErrorCode.INVALID_JSON, invalid_json(error))]) from None

    def _body(self) -> ItemStream:
        return self._file.stream(max_item_bytes=self._limits.max_line_bytes)


_COCO_RESULTS = (
    "the file is a list of COCO results (annotations with image_id and category_id), not a COCO document nor an "
    "Encord export: a COCO document is an object with images, annotations and categories"
)


def _is_coco_result(element: Any) -> bool:
    return (
        isinstance(element, dict)
        and "data_units" not in element
        and ("image_id" in element or "category_id" in element)
    )


def _is_options(element: Any) -> bool:
    return isinstance(element, dict) and OPTIONS_SECTION in element and "data_hash" not in element

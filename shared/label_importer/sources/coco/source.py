"""A COCO file as a label source: sections first (options, images, categories), then annotations, streamed."""

from __future__ import annotations

from collections.abc import Iterator

from label_importer.model.limits import Limits
from label_importer.model.problems import Problem
from label_importer.model.project import ProjectView
from label_importer.model.source_items import SourceItem
from label_importer.sources.bounded_reading import ByteStream
from label_importer.sources.coco.document import OPTIONS_SECTION, NotCoco, read_sections
from label_importer.sources.coco.format import CocoDocument, CocoOptions, checked
from label_importer.sources.coco.mapping import map_document
from label_importer.sources.coco.records import CocoRecords, locate
from label_importer.sources.json_document import is_json_document
from label_importer.sources.label_file import LabelFile
from label_importer.sources.label_source import SourceRejected


class CocoSource:
    records_noun = "annotations"
    options_section = OPTIONS_SECTION
    options_line = 0

    @staticmethod
    def claims(file: LabelFile) -> bool:
        """Every `.json` file an Encord export (a list, asked first) does not claim: a COCO document, or an error
        saying why not."""
        return is_json_document(file.key)

    def __init__(self, file: LabelFile, limits: Limits) -> None:
        self._file = file
        self._limits = limits
        self._document: CocoDocument | None = None
        self._records: CocoRecords | None = None

    def options(self) -> CocoOptions:
        limits = self._limits
        try:
            sections = read_sections(
                self._body(), max_images=limits.max_coco_images, max_categories=limits.max_coco_categories
            )
        except NotCoco as error:
            raise SourceRejected([error.problem]) from None
        self._document, problems = checked(sections)
        if problems:
            raise SourceRejected(problems)
        return self._document.options

    def match(self, project: ProjectView) -> list[Problem]:
        document = self._read_document()
        mapping, problems = map_document(document.images, document.categories, document.options, project)
        self._records = CocoRecords(mapping, document.options)
        return problems

    def items(self) -> Iterator[SourceItem]:
        if self._records is None:
            raise RuntimeError("match() ties images and categories to the project before annotations are read")
        try:
            yield from self._records.items(self._body())
        except NotCoco as error:  # read once already: only a file that changed in between gets here
            raise SourceRejected([error.problem]) from None

    def locate(self, problem: Problem) -> Problem:
        return locate(problem)

    def _read_document(self) -> CocoDocument:
        if self._document is None:
            self.options()
        assert self._document is not None  # options() read it or raised
        return self._document

    def _body(self) -> ByteStream:
        return self._file.stream(max_item_bytes=self._limits.max_line_bytes)

"""A Pascal VOC zip (`Annotations/*.xml`, `encord.json` at the root) or one `.xml` file as a label source.

Every document is read and checked in `options()`, before the project is, because a document that is unsafe or
not XML rejects the whole file; documents are read in entry-name order and their objects numbered 1, 2, … across
them, the same on every call of `items()`. Problems name the document and the XPath of the object in it
(`Annotations/x.xml:/annotation/object[2]/bndbox`), since VOC has no lines to count.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import replace

from encord.objects import Object

from label_importer.model.limits import Limits
from label_importer.model.matching import Unmatched
from label_importer.model.problems import Problem
from label_importer.model.project import ProjectView
from label_importer.model.source_items import SourceItem
from label_importer.sources.coco.geometry import ImageSize
from label_importer.sources.label_file import LabelFile
from label_importer.sources.label_source import SourceRejected
from label_importer.sources.mapping_option import MAPPING_FILE, MappingOption, archive_mapping
from label_importer.sources.name_matching import ObjectNames, UnitNames
from label_importer.sources.pascal_voc.document import DocumentRefused, VocDocument, read_document
from label_importer.sources.pascal_voc.records import IMPORTABLE_SHAPES, convert, unknown_attributes
from label_importer.sources.safe_xml import XmlRefused, parse_xml

_WHERE = f"{MAPPING_FILE} (at the root of a zip)"
_LABEL_TO_VOC = {
    "bounding_box": "/bndbox",
    "rotatable_bounding_box": "/bndbox",
    "polygon": "/polygon",
    "feature_hash": "/name",
}


def _is_xml(name: str) -> bool:
    return name.lower().endswith(".xml")


class VocSource:
    records_noun = "objects"
    options_section = MAPPING_FILE
    options_line = 0

    @staticmethod
    def claims(file: LabelFile) -> bool:
        """A `.xml` file, or a `.zip` holding any `.xml` entry (other zips are another format's)."""
        key = file.key.lower()
        if _is_xml(key):
            return True
        return key.endswith(".zip") and any(_is_xml(name) for name in file.archive().names)

    def __init__(self, file: LabelFile, limits: Limits) -> None:
        self._file = file
        self._limits = limits
        self._options: MappingOption | None = None
        self._documents: list[VocDocument] = []
        self._units: dict[str, tuple[str, ImageSize] | Unmatched] = {}
        self._unit_fields: dict[str, str] = {}
        self._objects: dict[str, Object | Unmatched | None] = {}
        self._located: dict[int, tuple[VocDocument, str, dict[str, str]]] = {}

    def options(self) -> MappingOption:
        if self._options is None:
            self._options, self._documents = self._read()
        return self._options

    def match(self, project: ProjectView) -> list[Problem]:
        options = self.options()
        units = UnitNames(project.units, options.data_units, where=f"'data_units' of {_WHERE}")
        problems = []
        for document in self._documents:
            unit = units.image(document.filename, width=document.width, height=document.height)
            at = "size" if isinstance(unit, Unmatched) and unit.field else "filename"  # a size mismatch names a field
            where = f"{document.entry}:/annotation/{at}"
            self._unit_fields[document.entry] = where
            if isinstance(unit, Unmatched):
                self._units[document.entry] = unit
                problems.append(Problem(0, where, unit.code, f"{document.entry}: {unit.reason}"))
            else:
                self._units[document.entry] = (unit.data_hash, ImageSize(document.width, document.height))
        names = ObjectNames(
            project.ontology,
            options.objects,
            shapes=IMPORTABLE_SHAPES,
            format_name="Pascal VOC",
            where=f"'objects' of {_WHERE}",
        )
        classes = {obj.name for document in self._documents for obj in document.objects if obj.name is not None}
        self._objects = {name: names.object(name) for name in classes}  # once per class, not per object
        return problems + unknown_attributes(project.ontology, options)

    def items(self) -> Iterator[SourceItem]:
        if not self._units and self._documents:
            raise RuntimeError("match() ties documents and classes to the project before objects are read")
        options = self.options()
        number = 0
        for document in self._documents:
            for obj in document.objects:
                number += 1
                found = self._objects.get(obj.name) if obj.name is not None else None
                unit = self._units[document.entry]
                item, sources = convert(number, obj, unit, self._unit_fields[document.entry], found, options)
                self._located[number] = (document, obj.where, sources)
                yield item

    def locate(self, problem: Problem) -> Problem:
        """A problem the shared checks found in a converted record, placed on the `<object>` it came from."""
        located = self._located.get(problem.line)
        if located is None or ":/annotation" in problem.field:
            return problem
        document, where, sources = located
        parts = [part.split("[")[0] for part in problem.field.split(".")]
        if "attributes" in parts[:-1]:
            title = problem.field.split("attributes.", 1)[1].split(".")[0].split("[")[0]
            voc_field = sources.get(title)
            return replace(problem, field=f"{where}/{voc_field}" if voc_field else where)
        if "data_hash" in parts:
            return replace(problem, field=f"{document.entry}:/annotation/filename")
        voc = next((_LABEL_TO_VOC[part] for part in parts if part in _LABEL_TO_VOC), "")
        return replace(problem, field=f"{where}{voc}")

    def _read(self) -> tuple[MappingOption, list[VocDocument]]:
        """The mapping and every document, or SourceRejected with every document's problem."""
        max_bytes = self._limits.max_line_bytes
        options = MappingOption()
        if _is_xml(self._file.key):
            entries = [posixpath.basename(self._file.key)]

            def read(entry: str) -> bytes:
                return self._file.stream(max_item_bytes=max_bytes).read()
        else:
            archive = self._file.archive()
            options = archive_mapping(archive, max_bytes=max_bytes)
            entries = sorted(filter(_is_xml, archive.names))

            def read(entry: str) -> bytes:
                return archive.read(entry, max_bytes=max_bytes)

        problems: list[Problem] = []
        documents = []
        for entry in entries:  # one document's bytes at a time: only the values the importer uses are kept
            try:
                documents.append(read_document(parse_xml(read(entry), entry), entry))
            except (XmlRefused, DocumentRefused) as refused:
                problems.append(refused.problem)
        if problems:
            raise SourceRejected(problems)
        return options, documents

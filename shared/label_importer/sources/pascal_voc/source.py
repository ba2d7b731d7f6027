"""A Pascal VOC zip (`Annotations/*.xml`, `encord.json` at the root) or one `.xml` file as a label source.

Documents are read one at a time in entry-name order, on each call of `items()`, and their objects numbered 1,
2, … across them; nothing of a document is kept once its objects are records, so memory does not grow with the
archive. A document that is unsafe or not a VOC annotation rejects the whole file: every such document is
named, once all were read. Problems name the document and the XPath of the object in it
(`Annotations/x.xml:/annotation/object[2]/bndbox`), since VOC has no lines to count.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial

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
from label_importer.sources.pascal_voc.document import DocumentRefused, VocObject, read_document
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
        self._units: UnitNames | None = None
        self._names: ObjectNames | None = None
        self._objects: dict[str, Object | Unmatched | None] = {}
        """Each class name decided once, not per object."""
        self._located: tuple[int, str, VocObject, dict[str, str]] | None = None
        """The record last converted, its document's entry, its object and the VOC field of each answer: a
        problem is located while its record is checked (VOC records have nothing the end of the file decides)."""

    def options(self) -> MappingOption:
        if self._options is None:
            self._options = MappingOption()
            if not _is_xml(self._file.key):
                self._options = archive_mapping(self._file.archive(), max_bytes=self._limits.max_line_bytes)
        return self._options

    def match(self, project: ProjectView) -> list[Problem]:
        options = self.options()
        self._units = UnitNames(project.units, options.data_units, where=f"'data_units' of {_WHERE}")
        self._names = ObjectNames(
            project.ontology,
            options.objects,
            shapes=IMPORTABLE_SHAPES,
            format_name="Pascal VOC",
            where=f"'objects' of {_WHERE}",
        )
        return unknown_attributes(project.ontology, options)

    def items(self) -> Iterator[SourceItem]:
        if self._units is None or self._names is None:
            raise RuntimeError("match() ties documents and classes to the project before objects are read")
        options = self.options()
        refused: list[Problem] = []
        number = 0
        for entry, read in self._documents():
            try:
                document = read_document(parse_xml(read(), entry), entry)
            except (XmlRefused, DocumentRefused) as error:
                refused.append(error.problem)
                continue
            unit = self._units.image(document.filename, width=document.width, height=document.height)
            at = "size" if isinstance(unit, Unmatched) and unit.field else "filename"  # a size mismatch names a field
            unit_field = f"{document.entry}:/annotation/{at}"
            placed = (
                unit if isinstance(unit, Unmatched) else (unit.data_hash, ImageSize(document.width, document.height))
            )
            for obj in document.objects:
                number += 1
                found = self._object(obj.name) if obj.name is not None else None
                item, sources = convert(number, obj, placed, unit_field, found, options)
                self._located = (number, document.entry, obj, sources)
                yield item
        if refused:
            raise SourceRejected(refused)

    def locate(self, problem: Problem) -> Problem:
        """A problem the shared checks found in a converted record, placed on the `<object>` it came from."""
        if self._located is None or self._located[0] != problem.line or ":/annotation" in problem.field:
            return problem
        _, entry, obj, sources = self._located
        where = obj.where
        parts = [part.split("[")[0] for part in problem.field.split(".")]
        if "attributes" in parts[:-1]:
            title = problem.field.split("attributes.", 1)[1].split(".")[0].split("[")[0]
            voc_field = sources.get(title)
            return replace(problem, field=f"{where}/{voc_field}" if voc_field else where)
        if "data_hash" in parts:
            return replace(problem, field=f"{entry}:/annotation/filename")
        voc = next((_LABEL_TO_VOC[part] for part in parts if part in _LABEL_TO_VOC), "")
        return replace(problem, field=f"{where}{voc}")

    def _object(self, name: str) -> Object | Unmatched | None:
        if name not in self._objects:
            assert self._names is not None  # items() checked
            self._objects[name] = self._names.object(name)
        return self._objects[name]

    def _documents(self) -> Iterator[tuple[str, Callable[[], bytes]]]:
        """(entry, a reader of its bytes bounded by MAX_LINE_BYTES) of each document, in entry-name order."""
        max_bytes = self._limits.max_line_bytes
        if _is_xml(self._file.key):
            yield posixpath.basename(self._file.key), lambda: self._file.stream(max_item_bytes=max_bytes).read()
            return
        archive = self._file.archive()
        for entry in sorted(filter(_is_xml, archive.names)):
            yield entry, partial(archive.read, entry, max_bytes=max_bytes)

"""A CVAT for images 1.1 or CVAT for video 1.1 document as a label source: `annotations.xml` alone, or CVAT's
export zip (`annotations.xml` at its root, beside `images/`), with an optional `encord.json` mapping in the zip.

`options()` reads the mapping and `<meta>`; every call of `items()` reads the document again from its start,
item by item (document.py), so memory does not grow with the task. Records are numbered 1, 2, … in document
order; problems are placed by XPath (`annotations.xml:/annotations/image[3]/box[2]/@xtl`), as CVAT has no lines.
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator

from label_importer.model.limits import Limits
from label_importer.model.matching import Unmatched
from label_importer.model.problems import ErrorCode, Problem
from label_importer.model.project import ProjectView
from label_importer.model.source_items import SourceItem
from label_importer.sources.bounded_reading import ItemStream
from label_importer.sources.coco.geometry import ImageSize
from label_importer.sources.cvat.document import ROOT, CvatDocument, Meta
from label_importer.sources.cvat.records import CvatRecords, Unit
from label_importer.sources.label_file import LabelFile
from label_importer.sources.label_source import SourceRejected
from label_importer.sources.mapping_option import MAPPING_FILE, MappingOption, archive_mapping
from label_importer.sources.name_matching import UnitNames
from label_importer.sources.safe_xml import root_tag

ANNOTATIONS = "annotations.xml"
"""The document's name at the root of CVAT's export zip."""


class CvatSource:
    records_noun = "shapes and tags"
    options_section = MAPPING_FILE
    options_line = 0

    @staticmethod
    def claims(file: LabelFile) -> bool:
        """A `.xml` file whose root element is `<annotations>`, or a `.zip` with `annotations.xml` at its root."""
        key = file.key.lower()
        if key.endswith(".xml"):
            return root_tag(file.head()) == ROOT
        return key.endswith(".zip") and any(name.lower() == ANNOTATIONS for name in file.archive().names)

    def __init__(self, file: LabelFile, limits: Limits) -> None:
        self._file = file
        self._limits = limits
        self._options: MappingOption | None = None
        self._meta: Meta | None = None
        self._records: CvatRecords | None = None

    def options(self) -> MappingOption:
        if self._options is None:
            self._options = MappingOption()
            if not self._file.key.lower().endswith(".xml"):
                self._options = archive_mapping(self._file.archive(), max_bytes=self._limits.max_line_bytes)
            self._meta = self._document().meta()
        return self._options

    def match(self, project: ProjectView) -> list[Problem]:
        option = self.options()
        assert self._meta is not None  # options() read it
        units = UnitNames(project.units, option.data_units, where=f"'data_units' of {MAPPING_FILE}")
        video = self._video(units, self._meta) if self._meta.video else None
        self._records = CvatRecords(units, project.ontology, option, self._meta, video, self._limits)
        return []

    def items(self) -> Iterator[SourceItem]:
        records = self._records
        if records is None:
            raise RuntimeError("match() ties the document to the project before its shapes are read")
        records.number = 0
        tags: list[tuple[ElementTree.Element, str]] = []
        tags_frame: int | None = None
        for item in self._document().items():
            tag = item.element.tag
            if tag == "tag":  # a video's tags: those on one frame are one record
                frame = records.frame(item.element)
                if tags and frame != tags_frame:
                    yield self._video_tags(records, tags, tags_frame)
                    tags = []
                tags.append((item.element, item.where))
                tags_frame = frame
                continue
            if tags:
                yield self._video_tags(records, tags, tags_frame)
                tags = []
            yield from records.image(item) if tag == "image" else records.track(item)
        if tags:
            yield self._video_tags(records, tags, tags_frame)

    def locate(self, problem: Problem) -> Problem:
        return self._records.locate(problem) if self._records is not None else problem

    @staticmethod
    def _video_tags(records: CvatRecords, tags: list[tuple[ElementTree.Element, str]], frame: int | None) -> SourceItem:
        where = tags[0][1]
        unit, unit_field = records.video_unit(where)
        if frame is None and not isinstance(unit, Unmatched):
            unit = Unmatched(ErrorCode.INVALID_VALUE, "a video's <tag> needs frame=, a whole number")
            unit_field = f"{where}/@frame"
        return records.tags(tags, unit, unit_field, frame)

    def _video(self, units: UnitNames, meta: Meta) -> Unit:
        where = f"{self._entry()}:/{ROOT}/meta"
        if meta.name is None:
            raise SourceRejected(
                [
                    Problem(
                        0,
                        where,
                        ErrorCode.MISSING_FIELD,
                        "a CVAT for video document names its video in <meta> (<source>, or the task's <name>); this "
                        f"one does not, so map it in {MAPPING_FILE}'s 'data_units'",
                    )
                ]
            )
        found = units.video(meta.name, width=meta.width, height=meta.height)
        if isinstance(found, Unmatched):
            raise SourceRejected([Problem(0, where, found.code, f"the video {meta.name!r}: {found.reason}")])
        width, height = meta.width or found.width, meta.height or found.height
        if not width or not height:
            raise SourceRejected(
                [
                    Problem(
                        0,
                        f"{where}/task/original_size",
                        ErrorCode.MISSING_FIELD,
                        f"neither <original_size> nor data unit {found.title!r} says the frame size",
                    )
                ]
            )
        return found.data_hash, ImageSize(width, height)

    def _document(self) -> CvatDocument:
        return CvatDocument(self._stream(), self._entry())

    def _stream(self) -> ItemStream:
        max_bytes = self._limits.max_line_bytes
        if self._file.key.lower().endswith(".xml"):
            return self._file.stream(max_item_bytes=max_bytes)
        return self._file.archive().open(self._entry(), max_bytes=max_bytes)

    def _entry(self) -> str:
        if self._file.key.lower().endswith(".xml"):
            return posixpath.basename(self._file.key)
        return next(name for name in self._file.archive().names if name.lower() == ANNOTATIONS)

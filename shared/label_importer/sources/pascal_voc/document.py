"""One Pascal VOC annotation document, read into the few values the importer uses, each with where it is.

A VOC document is small and built whole (bounded by MAX_LINE_BYTES before it is parsed), but an archive can
hold thousands of them; so only the texts the importer needs are kept, not the element trees. What a whole
document needs (`<filename>`, `<size>`) is checked here, because without it no object of the document can be
placed; what one object needs is checked when that object becomes a record, so one bad box rejects one record.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

from label_importer.model.problems import ErrorCode, Problem

VOC_FIELDS = ("difficult", "truncated", "occluded", "pose")
"""Per-object fields that become ontology attributes (when the ontology or the mapping has one for them)."""

FLAGS = frozenset({"difficult", "truncated", "occluded"})
"""The fields VOC writes as 0 or 1."""

CORNERS = ("xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class VocObject:
    where: str
    """`Annotations/x.xml:/annotation/object[2]`: the XPath of the object in its document (1-based)."""
    name: str | None
    bndbox: dict[str, str | None] | None
    """Each corner's text (None when the corner is missing); None when the object has no `<bndbox>`."""
    polygon: list[tuple[str, str]] | None
    """The `<polygon>` children as (tag, text), in document order; None when there is none."""
    fields: dict[str, str] = field(default_factory=dict)
    """The VOC_FIELDS the object has, by lower-case tag."""


@dataclass(frozen=True)
class VocDocument:
    entry: str
    """The archive entry (`Annotations/x.xml`) or the file's name."""
    filename: str
    width: int
    height: int
    objects: list[VocObject]


class DocumentRefused(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def read_document(root: ElementTree.Element, entry: str) -> VocDocument:
    """The document's values; raises DocumentRefused when it is not a VOC annotation with a file name and size."""

    def refused(path: str, code: ErrorCode, message: str) -> DocumentRefused:
        return DocumentRefused(Problem(0, f"{entry}:{path}", code, f"{entry}: {message}"))

    if root.tag != "annotation":
        raise refused(
            f"/{root.tag}", ErrorCode.UNKNOWN_FORMAT, f"the root element is <{root.tag}>; Pascal VOC's is <annotation>"
        )
    filename = (root.findtext("filename") or "").strip()
    if not filename:
        raise refused("/annotation/filename", ErrorCode.MISSING_FIELD, "<filename> names the image and is required")
    size: dict[str, int] = {}
    for axis in ("width", "height"):
        path = f"/annotation/size/{axis}"
        text = root.findtext(f"size/{axis}")
        if text is None:
            raise refused(path, ErrorCode.MISSING_FIELD, f"<size><{axis}> is required to place the boxes")
        try:
            size[axis] = int(text.strip())
        except ValueError:
            raise refused(path, ErrorCode.WRONG_TYPE, f"<{axis}> is {text.strip()!r}, not a whole number") from None
        if size[axis] <= 0:
            raise refused(path, ErrorCode.OUT_OF_RANGE, f"<{axis}> is {size[axis]}; an image has at least 1 pixel")
    objects = [
        _object(element, f"{entry}:/annotation/object[{index}]")
        for index, element in enumerate(root.findall("object"), 1)
    ]
    return VocDocument(entry, filename, size["width"], size["height"], objects)


def _text(element: ElementTree.Element, tag: str) -> str | None:
    text = element.findtext(tag)
    return None if text is None else text.strip()


def _object(element: ElementTree.Element, where: str) -> VocObject:
    box = element.find("bndbox")
    polygon = element.find("polygon")
    fields = {}
    for child in element:
        tag = child.tag.lower()
        if tag in VOC_FIELDS and tag not in fields:
            fields[tag] = (child.text or "").strip()
    return VocObject(
        where,
        _text(element, "name") or None,
        None if box is None else {corner: _text(box, corner) for corner in CORNERS},
        None if polygon is None else [(child.tag, (child.text or "").strip()) for child in polygon],
        fields,
    )

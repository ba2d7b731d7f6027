"""Reading a COCO file without holding it: the small sections in one streaming pass, annotations in another.

A COCO file is one JSON document whose `annotations` array can be hundreds of megabytes, and writers put the
sections in any order (the official files list `categories` after `annotations`). So the first pass keeps
`images`, `categories` and the `encord` options and skips over everything else; later passes stream
`annotations` one at a time. Memory grows with the number of images and categories, never with annotations.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import ijson

from label_importer.model.problems import ErrorCode, Problem
from label_importer.sources.bounded_reading import BoundedReader, ByteStream, FileRefused
from label_importer.sources.json_document import invalid_json, without_bom

SECTIONS = ("images", "annotations", "categories")
OPTIONS_SECTION = "encord"
"""The importer's own section: options and mappings (COCO readers ignore keys they do not know)."""
_KEPT = ("images", "categories", OPTIONS_SECTION)


class NotCoco(Exception):
    """The file is not JSON (INVALID_JSON), or not a COCO document (NOT_COCO); the message says where."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def problem(self) -> Problem:
        return Problem(0, "", self.code, self.message)


@dataclass
class CocoSections:
    images: list[Any] = field(default_factory=list)
    categories: list[Any] = field(default_factory=list)
    options: Any = None
    present: set[str] = field(default_factory=set)


_COUNTED = {
    "images.item": ("images", ErrorCode.TOO_MANY_IMAGES),
    "categories.item": ("categories", ErrorCode.TOO_MANY_CATEGORIES),
}
_ITEMS = frozenset({"images.item", "categories.item", "annotations.item"})


def read_sections(stream: ByteStream, *, max_images: int, max_categories: int) -> CocoSections:
    """Keep the small sections; skip the rest token by token (nothing of them is built).

    Images and categories are counted as they stream, so a file of millions of them is refused before they
    are held; a BoundedReader given as `stream` hears where each item starts (its size is bounded too).
    """
    sections = CocoSections()
    builder: ijson.ObjectBuilder | None = None
    key, opened = "", False
    counts = {"images.item": 0, "categories.item": 0}
    limits = {"images.item": max_images, "categories.item": max_categories}
    try:
        for prefix, event, value in ijson.parse(without_bom(stream), use_float=True):
            if (prefix in _ITEMS and event in ("start_map", "start_array")) or (prefix == "" and event == "map_key"):
                _mark_item(stream)
                if prefix in counts:
                    counts[prefix] += 1
                    if counts[prefix] > limits[prefix]:
                        section, code = _COUNTED[prefix]
                        raise FileRefused(
                            code,
                            f"'{section}' has more than {limits[prefix]} entries (MAX_COCO_{section.upper()}); "
                            "split the file",
                        )
            if prefix == "":
                if event == "map_key":
                    key = value
                    sections.present.add(key)
                    builder = ijson.ObjectBuilder() if key in _KEPT else None
                    opened = False
                elif event not in ("start_map", "end_map"):
                    raise NotCoco(
                        ErrorCode.NOT_COCO,
                        "the file is JSON but not a COCO document: its top level must be an object with "
                        f"{', '.join(SECTIONS)}",
                    )
                continue
            if prefix == key and not opened:  # the first event of a section's value says what it is
                opened = True
                if key == "annotations" and event != "start_array":
                    raise NotCoco(ErrorCode.NOT_COCO, "'annotations' must be a list of annotations")
            if builder is not None:
                builder.event(event, value)
                if prefix == key and event not in ("start_map", "start_array"):  # the section's value is complete
                    setattr(sections, "options" if key == OPTIONS_SECTION else key, builder.value)
    except ijson.JSONError as error:
        raise NotCoco(ErrorCode.INVALID_JSON, invalid_json(error)) from None
    missing = [name for name in SECTIONS if name not in sections.present]
    if missing:
        raise NotCoco(
            ErrorCode.NOT_COCO, f"a COCO document has {', '.join(SECTIONS)}; this one has no {', '.join(missing)}"
        )
    return sections


def read_annotations(stream: ByteStream) -> Iterator[Any]:
    """Each element of `annotations`, in file order; the first pass already showed the document is JSON."""
    try:
        for item in ijson.items(without_bom(stream), "annotations.item", use_float=True):
            _mark_item(stream)
            yield item
    except ijson.JSONError as error:
        raise NotCoco(ErrorCode.INVALID_JSON, invalid_json(error)) from None


def _mark_item(stream: ByteStream) -> None:
    if isinstance(stream, BoundedReader):
        stream.mark_item()

"""Each VOC `<object>` as one label record: its box (or polygon) normalised, its flags as attributes.

Coordinates follow VOC's own convention: `<bndbox>` corners are 1-based pixel indices, inclusive, so a box
covering the whole of a 640-pixel-wide image is xmin 1, xmax 640. The label format's boxes are continuous
(the image spans [0, width]), so the box's left edge is `xmin - 1` and its width `xmax - xmin + 1`; a corner
outside 1..width (or 1..height) is refused rather than clipped, since it means the file was written for another
image or in another convention. `<polygon>` vertices (`<x1><y1><x2><y2>…`) are taken as continuous coordinates
as written, in [0, width] x [0, height].
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
from encord.objects import Object, OntologyStructure, Shape

from label_importer.model.matching import Unmatched
from label_importer.model.problems import ErrorCode, Problem, did_you_mean
from label_importer.model.source_items import LeftOut, Record, Rejected, SourceItem
from label_importer.sources.attribute_answers import NamedValue, answers_for
from label_importer.sources.coco.geometry import (
    GeometryMisfit,
    ImageSize,
    normalised_box,
    normalised_rings,
    polygon_geometry,
)
from label_importer.sources.mapping_option import MAPPING_FILE, MappingOption
from label_importer.sources.name_matching import LEFT_OUT, folded
from label_importer.sources.pascal_voc.document import CORNERS, FLAGS, VOC_FIELDS, VocObject

IMPORTABLE_SHAPES = frozenset({Shape.BOUNDING_BOX, Shape.ROTATABLE_BOUNDING_BOX, Shape.POLYGON})
"""Ontology shapes a VOC object has a geometry for: `<bndbox>`, or `<polygon>` where the file has one."""

UNSPECIFIED_POSE = "unspecified"
"""VOC's pose when none was given: no answer, not an answer."""

_VERTEX = re.compile(r"([xy])(\d+)")


def convert(
    number: int,
    obj: VocObject,
    unit: tuple[str, ImageSize] | Unmatched,
    unit_field: str,
    found: Object | Unmatched | None,
    options: MappingOption,
) -> tuple[SourceItem, dict[str, str]]:
    """The object's record (or why there is none), and which VOC field each attribute answer came from."""

    def problem(part: str, code: ErrorCode, message: str) -> Problem:
        return Problem(number, f"{obj.where}{part}", code, f"object {obj.name!r}: {message}")

    if obj.name is None:
        data_hash = None if isinstance(unit, Unmatched) else unit[0]
        missing = Problem(number, f"{obj.where}/name", ErrorCode.MISSING_FIELD, "an <object> needs a <name>")
        return Rejected(number, data_hash, [missing]), {}
    if found is LEFT_OUT:
        return LeftOut(number), {}
    problems = []
    if isinstance(unit, Unmatched):
        problems.append(Problem(number, unit_field, unit.code, f"object {obj.name!r}: {unit.reason}"))
    if isinstance(found, Unmatched):
        problems.append(problem("/name", found.code, found.reason))
    if problems or isinstance(unit, Unmatched) or found is None or isinstance(found, Unmatched):
        return Rejected(number, None if isinstance(unit, Unmatched) else unit[0], problems), {}
    data_hash, size = unit
    try:
        field, geometry = _geometry(obj, found, size)
    except GeometryMisfit as misfit:
        return Rejected(number, data_hash, [problem(misfit.field, misfit.code, misfit.message)]), {}
    label: dict[str, Any] = {"feature_hash": found.feature_node_hash, field: geometry}
    answers, sources = _attributes(obj, found, options)
    if answers:
        label["attributes"] = answers
    return Record(number, orjson.dumps({"data_hash": data_hash, "objects": [label]})), sources


def _geometry(obj: VocObject, ontology: Object, size: ImageSize) -> tuple[str, Any]:
    if ontology.shape is Shape.POLYGON:
        return "polygon", _polygon(obj, ontology, size)
    box = _box(obj, ontology, size)
    if ontology.shape is Shape.ROTATABLE_BOUNDING_BOX:
        return "rotatable_bounding_box", {**box, "theta": 0.0}
    return "bounding_box", box


def _box(obj: VocObject, ontology: Object, size: ImageSize) -> dict[str, float]:
    """1-based inclusive pixel corners -> the normalised continuous box (see the module's docstring)."""
    if obj.bndbox is None:
        raise GeometryMisfit(
            "/bndbox",
            ErrorCode.MISSING_FIELD,
            f"{ontology.title!r} is a {ontology.shape.value}, so it needs a <bndbox>",
        )
    corners: dict[str, float] = {}
    for corner in CORNERS:
        text = obj.bndbox[corner]
        if text is None:
            raise GeometryMisfit(f"/bndbox/{corner}", ErrorCode.MISSING_FIELD, f"<bndbox> has no <{corner}>")
        corners[corner] = _number(text, f"/bndbox/{corner}")
    for low, high, limit, axis in (("xmin", "xmax", size.width, "width"), ("ymin", "ymax", size.height, "height")):
        start, end = corners[low], corners[high]
        if not 1 <= start <= end <= limit:
            raise GeometryMisfit(
                "/bndbox",
                ErrorCode.OUT_OF_RANGE,
                f"<{low}> {start:g} to <{high}> {end:g} is not within the image: VOC pixels are numbered 1 to "
                f"{limit} (the image {axis}), and <{low}> may not exceed <{high}>",
            )
    x, y = corners["xmin"] - 1, corners["ymin"] - 1
    w, h = corners["xmax"] - corners["xmin"] + 1, corners["ymax"] - corners["ymin"] + 1
    return normalised_box([x, y, w, h], size)


def _number(text: str, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise GeometryMisfit(field, ErrorCode.WRONG_TYPE, f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise GeometryMisfit(field, ErrorCode.OUT_OF_RANGE, f"{text!r} is not a finite number")
    return value


def _polygon(obj: VocObject, ontology: Object, size: ImageSize) -> Any:
    """`<polygon><x1>…<y1>…</polygon>` -> one normalised ring."""
    if obj.polygon is None:
        raise GeometryMisfit(
            "/polygon", ErrorCode.MISSING_FIELD, f"{ontology.title!r} is a polygon, so it needs a <polygon>"
        )
    points: dict[int, dict[str, float]] = {}
    for tag, text in obj.polygon:
        vertex = _VERTEX.fullmatch(tag)
        if vertex is None:
            raise GeometryMisfit(
                f"/polygon/{tag}", ErrorCode.UNKNOWN_FIELD, f"<polygon> holds <x1><y1><x2><y2>…, not <{tag}>"
            )
        points.setdefault(int(vertex.group(2)), {})[vertex.group(1)] = _number(text, f"/polygon/{tag}")
    flat: list[float] = []
    for index in sorted(points):
        point = points[index]
        if len(point) != 2:
            missing = "y" if "x" in point else "x"
            raise GeometryMisfit(
                f"/polygon/{missing}{index}", ErrorCode.MISSING_FIELD, f"vertex {index} has no {missing}"
            )
        flat += [point["x"], point["y"]]
    try:
        return polygon_geometry(normalised_rings([flat], size))
    except GeometryMisfit as misfit:
        raise GeometryMisfit(
            "/polygon", misfit.code, misfit.message.replace("a polygon ring is", "a polygon is")
        ) from None


def _attributes(obj: VocObject, ontology: Object, options: MappingOption) -> tuple[dict[str, Any], dict[str, str]]:
    """Answers by attribute title, and the VOC field each came from (to locate what the checks find). A field the
    object has no attribute for is left out (docs/format-voc.md); a mapping naming an attribute no object has is
    reported once, by unknown_attributes()."""
    values = [
        NamedValue(voc_field, value, voc_field in FLAGS)
        for voc_field in VOC_FIELDS
        if (value := obj.fields.get(voc_field)) is not None
        and not (voc_field == "pose" and folded(value) == UNSPECIFIED_POSE)
    ]
    answers = answers_for(ontology, values, options)
    return answers.by_title, answers.sources


def unknown_attributes(ontology: OntologyStructure, options: MappingOption) -> list[Problem]:
    """Mapped attribute titles that no ontology object has: a misspelling would otherwise leave every answer
    out without a word."""
    titles = {folded(attribute.title) for obj in ontology.objects for attribute in obj.attributes}
    return [
        Problem(
            0,
            f"{MAPPING_FILE}.attributes.{voc_field}",
            ErrorCode.UNKNOWN_ATTRIBUTE,
            f"{voc_field!r} is mapped to {title!r}, but no ontology object has an attribute of that title"
            + did_you_mean(
                title, sorted({attribute.title for obj in ontology.objects for attribute in obj.attributes})
            ),
        )
        for voc_field, title in options.attributes.items()
        if folded(title) not in titles
    ]

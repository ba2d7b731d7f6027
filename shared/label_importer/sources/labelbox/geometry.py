"""Labelbox object geometry, in pixels of the data row's image, as the label format's normalised geometry.

Labelbox writes a box as `{top, left, height, width}` and polygons, lines and points as `{x, y}` pixels, with the
image spanning [0, width] x [0, height]; the label format divides by the image size. Which geometry an annotation
must have is decided by the ontology object its name matches, as for every other format. Annotation kinds that
need what the file does not hold (a mask is a URL to Labelbox's servers, and the importer fetches nothing from the
internet) or that Encord images have no shape for (text entities, conversations, cuboids) are told apart here,
so the row can say why they are not imported.
"""

from __future__ import annotations

from typing import Any

from encord.objects import Object, Shape

from label_importer.model.problems import ErrorCode
from label_importer.sources.coco.geometry import GeometryMisfit, ImageSize, normalised_box
from label_importer.sources.json_values import Misfit, mapping, number, sequence

IMPORTABLE_SHAPES = frozenset(
    {Shape.BOUNDING_BOX, Shape.ROTATABLE_BOUNDING_BOX, Shape.POLYGON, Shape.POLYLINE, Shape.POINT}
)
"""Ontology shapes a Labelbox annotation has a geometry for."""

GEOMETRY_FIELDS = {
    Shape.BOUNDING_BOX: "bounding_box",
    Shape.ROTATABLE_BOUNDING_BOX: "bounding_box",
    Shape.POLYGON: "polygon",
    Shape.POLYLINE: "line",
    Shape.POINT: "point",
}
"""The Labelbox field each importable ontology shape is read from."""

LABEL_FIELDS = {"bounding_box": "bounding_box", "polygon": "polygon", "line": "polyline", "point": "point"}
"""Labelbox geometry field -> label-format geometry field (a rotatable box is written by `geometry`)."""

MASK_FIELDS = ("mask", "composite_mask")
_MINIMUM_POINTS = {"polygon": 3, "line": 2}


MASK_URLS = "Labelbox masks (exported as URLs, and the importer fetches nothing from the internet)"
OTHER_KINDS = "Labelbox annotations without a box, polygon, line or point (text entities, conversations, cuboids)"


def unimportable(annotation: dict[str, Any]) -> str | None:
    """Why the annotation is of a kind the importer does not read (one of the sentences above); None for a box,
    polygon, line or point."""
    if any(field in annotation for field in LABEL_FIELDS):
        return None
    return MASK_URLS if any(field in annotation for field in MASK_FIELDS) else OTHER_KINDS


def geometry(annotation: dict[str, Any], target: Object, size: ImageSize, where: str) -> tuple[str, Any]:
    """The label-format geometry field and value for an annotation whose name matched `target`."""
    wanted = GEOMETRY_FIELDS[target.shape]
    if wanted not in annotation:
        given = next(field for field in LABEL_FIELDS if field in annotation)  # unimportable() ruled out none
        raise Misfit(
            f"{where}.{given}",
            ErrorCode.SHAPE_MISMATCH,
            f"ontology object {target.title!r} is a {target.shape.value}, so it takes a Labelbox {wanted}, not a "
            f"{given}",
        )
    at = f"{where}.{wanted}"
    value = annotation[wanted]
    if wanted == "bounding_box":
        box = mapping(value, at)
        pixels = [number(box.get(key), f"{at}.{key}") for key in ("left", "top", "width", "height")]
        try:
            normalised = normalised_box(pixels, size)
        except GeometryMisfit as misfit:
            raise Misfit(at, misfit.code, misfit.message) from None
        if target.shape is Shape.ROTATABLE_BOUNDING_BOX:
            return "rotatable_bounding_box", {**normalised, "theta": 0.0}
        return "bounding_box", normalised
    if wanted == "point":
        return "point", _point(value, at, size)
    points = [_point(point, f"{at}[{index}]", size) for index, point in enumerate(sequence(value, at))]
    if wanted == "polygon" and len(points) > 3 and points[0] == points[-1]:
        points.pop()  # Labelbox closes a polygon by repeating its first point; Encord's polygons close themselves
    if len(points) < _MINIMUM_POINTS[wanted]:
        raise Misfit(
            at, ErrorCode.INVALID_VALUE, f"a {wanted} has at least {_MINIMUM_POINTS[wanted]} points, not {len(points)}"
        )
    return LABEL_FIELDS[wanted], points


def _point(value: Any, where: str, size: ImageSize) -> list[float]:
    point = mapping(value, where)
    x, y = number(point.get("x"), f"{where}.x"), number(point.get("y"), f"{where}.y")
    if not (0 <= x <= size.width and 0 <= y <= size.height):
        raise Misfit(
            where, ErrorCode.OUT_OF_RANGE, f"point ({x:g}, {y:g}) is outside the {size.width}x{size.height} image"
        )
    return [x / size.width, y / size.height]

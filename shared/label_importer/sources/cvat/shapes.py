"""One CVAT shape element as label-format geometry, in CVAT's own terms: pixel coordinates (continuous, the
image spans [0, width]), `points="x1,y1;x2,y2"`, a box's `rotation` in degrees clockwise about its centre, and a
mask's run lengths over its own `width` x `height` box at `left`, `top` (row by row, starting with a run of
unset pixels).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from typing import Any

import numpy as np
from encord.objects import Shape

from label_importer.model.problems import ErrorCode
from label_importer.sources.coco.geometry import GeometryMisfit, ImageSize, encord_bitmask, normalised_box

SHAPES: dict[str, frozenset[Shape]] = {
    "box": frozenset({Shape.BOUNDING_BOX, Shape.ROTATABLE_BOUNDING_BOX}),
    "polygon": frozenset({Shape.POLYGON}),
    "polyline": frozenset({Shape.POLYLINE}),
    "points": frozenset({Shape.POINT}),
    "mask": frozenset({Shape.BITMASK}),
    "skeleton": frozenset({Shape.SKELETON}),
}
"""The ontology shapes each CVAT shape element can become."""

LEFT_OUT_KINDS = {
    "cuboid": "CVAT cuboids (Encord has no cuboid shape)",
    "ellipse": "CVAT ellipses (Encord has no ellipse shape)",
}
"""Shapes CVAT has and Encord has no place for: left out, counted under these reasons."""


def geometries(
    element: ElementTree.Element, shape: Shape, size: ImageSize, *, max_pixels: int
) -> list[tuple[str, Any]]:
    """(label-format field, geometry) of each object the element is: one, except `<points>`, whose points are
    one Encord point each. Raises GeometryMisfit, its `field` the element's attribute at fault (`@points`);
    a mask is built over the whole image, so an image of more than `max_pixels` takes none."""
    kind = element.tag
    if kind == "box":
        return [_box(element, shape, size)]
    if kind == "mask":
        if size.width * size.height > max_pixels:
            raise GeometryMisfit(
                "",
                ErrorCode.BITMASK_TOO_LARGE,
                f"a {size.width}x{size.height} mask is more than {max_pixels} pixels (MAX_BITMASK_PIXELS)",
            )
        return [("bitmask", _mask(element, size))]
    if kind == "skeleton":
        return [("skeleton", _skeleton(element, size))]
    points = _points(element, size)
    if kind == "points":
        return [("point", point) for point in points]
    least = 3 if kind == "polygon" else 2
    if len(points) < least:
        raise GeometryMisfit("@points", ErrorCode.INVALID_VALUE, f"a {kind} needs at least {least} points")
    return [(kind, points)]


def _box(element: ElementTree.Element, shape: Shape, size: ImageSize) -> tuple[str, Any]:
    xtl, ytl, xbr, ybr = (_number(element, name) for name in ("xtl", "ytl", "xbr", "ybr"))
    try:
        box = normalised_box([xtl, ytl, xbr - xtl, ybr - ytl], size)
    except GeometryMisfit as misfit:
        raise GeometryMisfit("@xtl", misfit.code, misfit.message) from None
    rotation = _number(element, "rotation") if "rotation" in element.attrib else 0.0
    if shape is Shape.ROTATABLE_BOUNDING_BOX:
        return "rotatable_bounding_box", {**box, "theta": rotation % 360.0}
    if rotation % 360.0:
        raise GeometryMisfit(
            "@rotation",
            ErrorCode.SHAPE_MISMATCH,
            f"the box is rotated by {rotation:g} degrees, but its ontology object is an upright bounding box; map "
            "the label to a rotatable bounding box object",
        )
    return "bounding_box", box


def _points(element: ElementTree.Element, size: ImageSize) -> list[list[float]]:
    text = element.get("points", "").strip()
    if not text:
        raise GeometryMisfit("@points", ErrorCode.MISSING_FIELD, f'<{element.tag}> needs points="x1,y1;x2,y2;…"')
    points = []
    for pair in text.split(";"):
        try:
            x, y = (float(value) for value in pair.split(","))
        except ValueError:
            raise GeometryMisfit("@points", ErrorCode.INVALID_VALUE, f"{pair!r} is not a point x,y") from None
        if not (math.isfinite(x) and math.isfinite(y) and 0 <= x <= size.width and 0 <= y <= size.height):
            raise GeometryMisfit(
                "@points",
                ErrorCode.OUT_OF_RANGE,
                f"point ({x:g}, {y:g}) is outside the {size.width}x{size.height} image",
            )
        points.append([x / size.width, y / size.height])
    return points


def _mask(element: ElementTree.Element, size: ImageSize) -> dict[str, Any]:
    left, top, width, height = (int(_number(element, name)) for name in ("left", "top", "width", "height"))
    if left < 0 or top < 0 or width <= 0 or height <= 0 or left + width > size.width or top + height > size.height:
        raise GeometryMisfit(
            "@left",
            ErrorCode.OUT_OF_RANGE,
            f"the mask's {width}x{height} box at ({left}, {top}) is not within the {size.width}x{size.height} image",
        )
    try:
        runs = [int(run) for run in element.get("rle", "").split(",")]
    except ValueError:
        raise GeometryMisfit("@rle", ErrorCode.INVALID_VALUE, "rle is comma-separated whole numbers") from None
    covered = sum(runs)  # Python integers: hostile runs must not wrap around to a plausible total
    if any(run < 0 for run in runs) or covered != width * height:
        raise GeometryMisfit(
            "@rle",
            ErrorCode.INVALID_VALUE,
            f"the runs cover {covered} pixels; the mask's {width}x{height} box has {width * height}",
        )
    crop = np.repeat(np.arange(len(runs)) % 2 == 1, runs).reshape(height, width)
    mask = np.zeros((size.height, size.width), dtype=bool)
    mask[top : top + height, left : left + width] = crop
    return encord_bitmask(mask)


def _skeleton(element: ElementTree.Element, size: ImageSize) -> dict[str, Any]:
    skeleton: dict[str, Any] = {}
    for index, point in enumerate(element.findall("points"), 1):
        name = point.get("label")
        if not name:
            raise GeometryMisfit(f"/points[{index}]/@label", ErrorCode.MISSING_FIELD, "a skeleton point needs a label")
        try:
            [(x, y)] = _points(point, size)
        except ValueError:
            raise GeometryMisfit(f"/points[{index}]/@points", ErrorCode.INVALID_VALUE, "one point x,y") from None
        except GeometryMisfit as misfit:
            raise GeometryMisfit(f"/points[{index}]/@points", misfit.code, misfit.message) from None
        visibility = (
            "invisible" if point.get("outside") == "1" else "occluded" if point.get("occluded") == "1" else "visible"
        )
        skeleton[name] = {"x": x, "y": y, "visibility": visibility}
    if not skeleton:
        raise GeometryMisfit("", ErrorCode.MISSING_FIELD, "a <skeleton> needs its <points label=…>")
    return skeleton


def _number(element: ElementTree.Element, name: str) -> float:
    text = element.get(name)
    if text is None:
        raise GeometryMisfit(f"@{name}", ErrorCode.MISSING_FIELD, f"<{element.tag}> needs {name}=")
    try:
        value = float(text)
    except ValueError:
        raise GeometryMisfit(f"@{name}", ErrorCode.WRONG_TYPE, f"{name}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise GeometryMisfit(f"@{name}", ErrorCode.OUT_OF_RANGE, f"{name}={text!r} is not a finite number")
    return value

"""One YOLO label line as one label record: `cls` then normalised numbers, read by the ontology object's shape.

YOLO lines do not say what kind they are; the count of numbers does, mostly: 4 is a box, 8 an oriented box or a
4-point polygon, 4 + K x 2|3 a pose, any other even count a polygon, and one more than any of them the same with a
confidence. Where counts collide (8 numbers; 9 = a 4-point polygon with a confidence or an oriented box with one),
the ontology object the class maps to decides: its shape is what the label will be, so it is what the line must
fit. Everything is in [0, 1] already (YOLO normalises by the image size), so only an oriented box needs the
image's pixel size: its angle is measured in pixels, where a rectangle is a rectangle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from encord.objects import Object, Shape

from label_importer.model.matching import Unmatched
from label_importer.model.problems import ErrorCode, Problem, shown_value
from label_importer.model.source_items import LeftOut, Record, Rejected, SourceItem

IMPORTABLE_SHAPES = frozenset({Shape.BOUNDING_BOX, Shape.ROTATABLE_BOUNDING_BOX, Shape.POLYGON, Shape.SKELETON})
"""Ontology shapes a YOLO line has a geometry for: detection and oriented boxes, segments, poses."""

EDGE_TOLERANCE = 1e-6
"""How far a box's edge (centre ± half the size) may pass 0 or 1 and be taken as on it: YOLO files are
written to 6 decimals, so `cx - w / 2` of a box touching the border can land a rounding error outside it."""

RECTANGLE_TOLERANCE = 0.01
"""How far (as a share of the diagonal, and at least a pixel) an oriented box's opposite sides and diagonals may
differ in length: corners written to 6 decimals of a large image are not exactly a rectangle."""

VISIBILITY = {0: "invisible", 1: "occluded", 2: "visible"}
"""Pose keypoint flags, as COCO's: 0 not labelled, 1 labelled but hidden, 2 visible."""


@dataclass(frozen=True)
class YoloClass:
    """A class id tied to the ontology: the object, and for a skeleton its template's points in order."""

    name: str
    ontology: Object
    points: tuple[str, ...] = ()
    keypoint_numbers: int | None = None
    """2 or 3 per keypoint, from `kpt_shape`; None when `data.yaml` does not say (told from the count)."""


@dataclass(frozen=True)
class ImageUnit:
    data_hash: str
    width: int
    height: int


class LineMisfit(Exception):
    def __init__(self, code: ErrorCode, message: str, value: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.value = value


def parse(raw: bytes) -> tuple[int, list[float]]:
    """The class id and the numbers after it; raises LineMisfit."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LineMisfit(ErrorCode.NOT_UTF8, "the line is not UTF-8 text") from None
    tokens = text.split()  # str.split also splits on Unicode spaces, which the line reader keeps
    if not tokens:
        raise LineMisfit(ErrorCode.INVALID_VALUE, "the line holds only spaces; a label line starts with a class id")
    first, *rest = tokens
    try:
        class_id = int(first)
    except ValueError:
        raise LineMisfit(ErrorCode.WRONG_TYPE, f"the class id {first!r} is not a whole number", first) from None
    numbers = []
    for position, token in enumerate(rest, 2):
        try:
            number = float(token)
        except ValueError:
            raise LineMisfit(
                ErrorCode.WRONG_TYPE, f"value {position} of the line, {token!r}, is not a number", token
            ) from None
        if not math.isfinite(number):
            raise LineMisfit(ErrorCode.OUT_OF_RANGE, f"value {position} of the line, {token!r}, is not finite", token)
        numbers.append(number)
    return class_id, numbers


def convert(
    number: int,
    where: str,
    raw: bytes,
    classes: dict[int, str],
    resolve: Callable[[int], YoloClass | Unmatched | None],
    unit: ImageUnit | Unmatched,
) -> SourceItem:
    """The line's record, or why there is none; `resolve(class_id)` is the class's YoloClass, Unmatched, or None
    (left out by the mapping); every problem is located on `where` (`labels/0001.txt:4`)."""
    data_hash = None if isinstance(unit, Unmatched) else unit.data_hash

    def rejected(code: ErrorCode, message: str, value: Any = None) -> Rejected:
        return Rejected(number, data_hash, [Problem(number, where, code, message, shown_value(value))])

    try:
        class_id, numbers = parse(raw)
    except LineMisfit as misfit:
        return rejected(misfit.code, misfit.message, misfit.value)
    if class_id not in classes:
        known = f"0 to {max(classes)}" if set(classes) == set(range(len(classes))) else f"{sorted(classes)}"
        return rejected(
            ErrorCode.UNKNOWN_REFERENCE, f"class id {class_id} is not in the class list (ids {known})", class_id
        )
    found = resolve(class_id)
    if found is None:
        return LeftOut(number)
    problems = []
    if isinstance(unit, Unmatched):
        problems.append(Problem(number, where, unit.code, unit.reason))
    if isinstance(found, Unmatched):
        problems.append(Problem(number, where, found.code, found.reason))
    if problems or isinstance(unit, Unmatched) or isinstance(found, Unmatched):
        return Rejected(number, data_hash, problems)
    try:
        label = _label(found, numbers, unit)
    except LineMisfit as misfit:
        return rejected(misfit.code, f"class {found.name!r}: {misfit.message}", misfit.value)
    return Record(number, orjson.dumps({"data_hash": unit.data_hash, "objects": [label]}))


def _label(found: YoloClass, numbers: list[float], unit: ImageUnit) -> dict[str, Any]:
    shape = found.ontology.shape
    count = len(numbers)
    kind = f"ontology object {found.ontology.title!r} is a {shape.value}"
    if shape is Shape.SKELETON:
        geometry_numbers, per_point = _pose_numbers(found, count, kind)
    elif shape is Shape.POLYGON:
        if count < 6:
            raise LineMisfit(ErrorCode.INVALID_VALUE, f"{count} numbers; {kind}: x y pairs of at least 3 points", count)
        geometry_numbers, per_point = count - count % 2, 0
    else:
        sizes = (4, 8) if shape is Shape.ROTATABLE_BOUNDING_BOX else (4,)
        geometry_numbers = next((size for size in sizes if count in (size, size + 1)), 0)
        if not geometry_numbers:
            wanted = "cx cy w h or 4 corners x1 y1 … x4 y4" if len(sizes) == 2 else "cx cy w h"
            raise LineMisfit(
                ErrorCode.INVALID_VALUE,
                f"{count} numbers; {kind}: {wanted}, and optionally a confidence",
                count,
            )
        per_point = 0
    coordinates = numbers[:geometry_numbers]
    for position, value in enumerate(coordinates, 2):
        if per_point == 3 and position > 5 and (position - 5) % 3 == 0:
            continue  # a visibility flag, checked with its point
        if not 0.0 <= value <= 1.0:
            raise LineMisfit(
                ErrorCode.OUT_OF_RANGE,
                f"value {position} of the line is {value:g}; YOLO coordinates are in [0, 1]",
                value,
            )
    label: dict[str, Any] = {"feature_hash": found.ontology.feature_node_hash}
    if shape is Shape.SKELETON:
        label["skeleton"] = _skeleton(found, coordinates[4:], per_point)
    elif shape is Shape.POLYGON:
        label["polygon"] = [coordinates[index : index + 2] for index in range(0, len(coordinates), 2)]
    elif geometry_numbers == 8:
        label["rotatable_bounding_box"] = oriented_box(coordinates, unit.width, unit.height)
    else:
        box = _box(coordinates)
        if shape is Shape.ROTATABLE_BOUNDING_BOX:
            label["rotatable_bounding_box"] = {**box, "theta": 0.0}
        else:
            label["bounding_box"] = box
    if count > geometry_numbers:
        label["confidence"] = numbers[-1]
    return label


def _box(numbers: list[float]) -> dict[str, float]:
    """Centre and size -> top-left corner and size; an edge past the image is refused, a rounding error is not."""
    cx, cy, w, h = numbers
    corner = {}
    for axis, centre, extent in (("x", cx, w), ("y", cy, h)):
        start, end = centre - extent / 2, centre + extent / 2
        if start < -EDGE_TOLERANCE or end > 1 + EDGE_TOLERANCE:
            raise LineMisfit(
                ErrorCode.OUT_OF_RANGE,
                f"the box spans {axis} {start:g} to {end:g}; it must lie within the image, [0, 1]",
            )
        corner[axis] = min(max(start, 0.0), 1.0 - min(extent, 1.0))
    return {"x": corner["x"], "y": corner["y"], "w": min(w, 1.0), "h": min(h, 1.0)}


def oriented_box(corners: list[float], width: int, height: int) -> dict[str, float]:
    """Four corners in order (normalised) -> Encord's rotatable box: the unrotated box's top-left corner and size
    (normalised), and `theta`, the clockwise rotation about the centre in degrees [0, 360), the direction of the
    first edge (corner 1 -> corner 2, the box's width) in pixels. Corners that are not a rectangle are refused."""
    points = [(corners[index] * width, corners[index + 1] * height) for index in range(0, 8, 2)]
    (x1, y1), (x2, y2), (x3, y3), (x4, y4) = points
    box_width, box_height = math.dist(points[0], points[1]), math.dist(points[1], points[2])
    diagonal = max(math.dist(points[0], points[2]), math.dist(points[1], points[3]))
    tolerance = max(1.0, RECTANGLE_TOLERANCE * diagonal)
    if (
        abs(math.dist(points[2], points[3]) - box_width) > tolerance
        or abs(math.dist(points[3], points[0]) - box_height) > tolerance
        or abs(math.dist(points[0], points[2]) - math.dist(points[1], points[3])) > tolerance
    ):
        raise LineMisfit(
            ErrorCode.INVALID_VALUE,
            "the 4 corners are not a rectangle (opposite sides or diagonals differ in length); an oriented box's "
            "corners go round the box in order",
        )
    centre_x, centre_y = (x1 + x2 + x3 + x4) / 4, (y1 + y2 + y3 + y4) / 4
    theta = math.degrees(math.atan2(y2 - y1, x2 - x1)) % 360.0
    return {
        "x": (centre_x - box_width / 2) / width,
        "y": (centre_y - box_height / 2) / height,
        "w": box_width / width,
        "h": box_height / height,
        "theta": 0.0 if theta >= 360.0 else theta,
    }


def _pose_numbers(found: YoloClass, count: int, kind: str) -> tuple[int, int]:
    """How many of the numbers are the box and keypoints, and how many numbers each keypoint has."""
    points = len(found.points)
    choices = (found.keypoint_numbers,) if found.keypoint_numbers else (3, 2)
    for per_point in choices:
        size = 4 + points * per_point
        if count in (size, size + 1):
            return size, per_point
    wanted = " or ".join(str(4 + points * per_point) for per_point in choices)
    raise LineMisfit(
        ErrorCode.INVALID_VALUE,
        f"{count} numbers; {kind} of {points} points, so a pose line has {wanted} (cx cy w h, then x y"
        f"{' v' if 3 in choices else ''} per point), and optionally a confidence",
        count,
    )


def _skeleton(found: YoloClass, numbers: list[float], per_point: int) -> dict[str, dict[str, Any]]:
    skeleton = {}
    for index, name in enumerate(found.points):
        x, y = numbers[per_point * index : per_point * index + 2]
        flag = numbers[per_point * index + 2] if per_point == 3 else 2.0
        if flag not in VISIBILITY:
            raise LineMisfit(
                ErrorCode.INVALID_VALUE,
                f"visibility of {name!r} is {flag:g}; YOLO pose uses 0 (not labelled), 1 (hidden) or 2 (visible)",
                flag,
            )
        skeleton[name] = {"x": x, "y": y, "visibility": VISIBILITY[int(flag)]}
    return skeleton

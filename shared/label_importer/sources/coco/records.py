"""Each COCO annotation as one label record, so a COCO file takes the same validation, chunks and import path
as a JSON Lines file.

Annotation N (its 1-based position in `annotations`) is record N: problems and row outcomes give that number
as the line, and problems name the field in the COCO document (`annotations[N-1].bbox`). Records address data
units by hash and objects by feature hash, both decided once by the mapping, so the shared checks never
have to guess. An annotation that cannot be converted is reported where it is, with the annotation's id.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import orjson
import pydantic
from encord.objects import Shape

from label_importer.model.matching import Unmatched
from label_importer.model.problems import ErrorCode, Problem, problems_from_pydantic
from label_importer.model.source_items import LeftOut, Record, Rejected, SourceItem
from label_importer.sources.bounded_reading import ByteStream
from label_importer.sources.coco.document import read_annotations
from label_importer.sources.coco.format import CocoAnnotation, CocoOptions, CocoRle
from label_importer.sources.coco.geometry import (
    GeometryMisfit,
    ImageSize,
    encord_bitmask,
    mask_from_rings,
    mask_from_runs,
    normalised_box,
    normalised_rings,
    polygon_geometry,
    rle_counts,
    skeleton_points,
    traced_polygons,
)
from label_importer.sources.coco.mapping import CocoMapping, MappedCategory, MappedImage
from label_importer.sources.name_matching import LEFT_OUT

_LABEL_TO_COCO_FIELD = {
    "bounding_box": "bbox",
    "rotatable_bounding_box": "bbox",
    "polygon": "segmentation",
    "bitmask": "segmentation",
    "skeleton": "keypoints",
    "confidence": "score",
    "feature_hash": "category_id",
    "data_hash": "image_id",
}


def locate(problem: Problem) -> Problem:
    """A problem the shared checks found in a converted record, placed on the annotation it came from."""
    if problem.line == 0 or problem.field.startswith("annotations"):
        return problem
    names = (part.split("[")[0] for part in problem.field.split("."))
    coco_field = next((_LABEL_TO_COCO_FIELD[name] for name in names if name in _LABEL_TO_COCO_FIELD), None)
    where = f"annotations[{problem.line - 1}]"
    return replace(problem, field=f"{where}.{coco_field}" if coco_field else where)


class CocoRecords:
    def __init__(self, mapping: CocoMapping, options: CocoOptions) -> None:
        self._mapping = mapping
        self._skip_crowds = options.iscrowd == "skip"

    def items(self, stream: ByteStream) -> Iterator[SourceItem]:
        """Each annotation as a label record, or why it is not one."""
        for position, raw in enumerate(read_annotations(stream)):
            yield self._convert(position + 1, raw)

    def _convert(self, number: int, raw: Any) -> SourceItem:
        where = f"annotations[{number - 1}]"
        try:
            annotation = CocoAnnotation.model_validate(raw)
        except pydantic.ValidationError as error:
            problems = problems_from_pydantic(number, error.errors(), prefix=where, known=CocoAnnotation.model_fields)
            return Rejected(number, None, problems)

        def problem(field: str, code: ErrorCode, message: str) -> Problem:
            return Problem(number, f"{where}.{field}", code, f"annotation {annotation.id!r}: {message}")

        category = self._mapping.categories.get(annotation.category_id, _NOT_LISTED)
        if category is LEFT_OUT or (annotation.iscrowd and self._skip_crowds):
            return LeftOut(number)
        image = self._mapping.images.get(annotation.image_id, _NOT_LISTED)
        problems = [
            problem(field, *_unusable(reference, kind, section, coco_id))
            for field, kind, section, coco_id, reference in (
                ("image_id", "image", "images", annotation.image_id, image),
                ("category_id", "category", "categories", annotation.category_id, category),
            )
            if isinstance(reference, Unmatched)
        ]
        data_hash = image.data_hash if isinstance(image, MappedImage) else None
        if problems:
            return Rejected(number, data_hash, problems)
        assert isinstance(image, MappedImage) and isinstance(category, MappedCategory)
        try:
            field, geometry = _geometry(annotation, category, image.size)
        except GeometryMisfit as misfit:
            return Rejected(number, data_hash, [problem(misfit.field, misfit.code, misfit.message)])
        label: dict[str, Any] = {"feature_hash": category.ontology.feature_node_hash, field: geometry}
        if annotation.score is not None:
            label["confidence"] = annotation.score
        return Record(number, orjson.dumps({"data_hash": data_hash, "objects": [label]}))


_NOT_LISTED = Unmatched(ErrorCode.UNKNOWN_REFERENCE, "")


def _unusable(reference: Unmatched, kind: str, section: str, coco_id: Any) -> tuple[ErrorCode, str]:
    if reference is _NOT_LISTED:
        return ErrorCode.UNKNOWN_REFERENCE, (
            f"no entry of '{section}' has id {coco_id!r} (ids compare with their type: 1 and \"1\" differ)"
        )
    return reference.code, f"its {kind} ({coco_id!r}) cannot be used: {reference.reason}"


def _required(value: Any, field: str, category: MappedCategory) -> Any:
    if not value:
        ontology = category.ontology
        raise GeometryMisfit(
            field,
            ErrorCode.MISSING_FIELD,
            f"{ontology.title!r} is a {ontology.shape.value} object, so the annotation needs a {field}",
        )
    return value


def _geometry(annotation: CocoAnnotation, category: MappedCategory, size: ImageSize) -> tuple[str, Any]:
    """The label format's geometry for the category's ontology shape, from the annotation field that has it."""
    shape = category.ontology.shape
    if shape is Shape.BOUNDING_BOX:
        return "bounding_box", normalised_box(_required(annotation.bbox, "bbox", category), size)
    if shape is Shape.ROTATABLE_BOUNDING_BOX:
        box = normalised_box(_required(annotation.bbox, "bbox", category), size)
        return "rotatable_bounding_box", {**box, "theta": 0.0}
    if shape is Shape.SKELETON:
        keypoints = _required(annotation.keypoints, "keypoints", category)
        return "skeleton", skeleton_points(keypoints, category.keypoint_names, size)
    segmentation = _required(annotation.segmentation, "segmentation", category)
    if isinstance(segmentation, CocoRle):
        mask = mask_from_runs(rle_counts(segmentation.size, segmentation.counts, size), size)
        return ("polygon", traced_polygons(_covering(mask), size)) if shape is Shape.POLYGON else _bitmask(mask)
    rings = normalised_rings(segmentation, size)  # checks every ring, whichever shape it becomes
    if shape is Shape.POLYGON:
        return "polygon", polygon_geometry(rings)
    return _bitmask(mask_from_rings(segmentation, size))


def _covering(mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        raise GeometryMisfit("segmentation", ErrorCode.INVALID_VALUE, "the mask covers no pixel: it is not a label")
    return mask


def _bitmask(mask: np.ndarray) -> tuple[str, Any]:
    return "bitmask", encord_bitmask(_covering(mask))

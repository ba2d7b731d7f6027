"""Which data unit each COCO image is, and which ontology object each category is: decided once per file.

Categories match ontology objects by name, ignoring case and runs of whitespace; images match data units by
`file_name`, exactly or by the name without folders (`train2017/0001.jpg` is the data unit `0001.jpg`, and
`0001.jpg` is `orchard/0001.jpg`). The `encord` section overrides either. Whatever does not match, or matches
twice, is a problem located in the COCO document, and so is every annotation that depends on it.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from encord.objects import Object, OntologyStructure, Shape

from label_importer.model.data_units import DataUnit, DataUnitIndex
from label_importer.model.matching import Lookup, Unmatched, exactly_one
from label_importer.model.problems import ErrorCode, Problem, did_you_mean
from label_importer.model.project import ProjectView, skeleton_template_of
from label_importer.sources.coco.format import CocoCategory, CocoId, CocoImage, CocoOptions
from label_importer.sources.coco.geometry import ImageSize

IMPORTABLE_SHAPES = frozenset(
    {Shape.BOUNDING_BOX, Shape.ROTATABLE_BOUNDING_BOX, Shape.POLYGON, Shape.BITMASK, Shape.SKELETON}
)
"""Ontology shapes a COCO annotation has a geometry for (bbox, segmentation or keypoints)."""


@dataclass(frozen=True)
class MappedImage:
    data_hash: str
    size: ImageSize


@dataclass(frozen=True)
class MappedCategory:
    ontology: Object
    keypoint_names: tuple[str, ...] = ()
    """For a skeleton: the template's point name for each of the category's keypoints, in COCO order."""


LEFT_OUT = None
"""A category the `encord` section maps to null: its annotations are deliberately not imported."""


@dataclass
class CocoMapping:
    images: dict[CocoId, MappedImage | Unmatched]
    categories: dict[CocoId, MappedCategory | Unmatched | None]


def folded(name: str) -> str:
    return " ".join(name.split()).casefold()


def map_document(
    images: list[CocoImage],
    categories: list[CocoCategory],
    options: CocoOptions,
    project: ProjectView,
) -> tuple[CocoMapping, list[Problem]]:
    problems: list[Problem] = []
    mapping = CocoMapping({}, {})
    for position, image in _map_images(images, options, project.units):
        _keep(mapping.images, images[position].id, image, f"images[{position}]", problems)
    for position, category in _map_categories(categories, options, project.ontology):
        _keep(mapping.categories, categories[position].id, category, f"categories[{position}]", problems)
    return mapping, problems


def _keep(into: dict[CocoId, Any], coco_id: CocoId, mapped: Any, where: str, problems: list[Problem]) -> None:
    if coco_id in into:
        problems.append(Problem(0, f"{where}.id", ErrorCode.DUPLICATE_ID, f"id {coco_id!r} is used twice"))
        into[coco_id] = Unmatched(ErrorCode.DUPLICATE_ID, f"its id {coco_id!r} is used twice ({where})")
        return
    into[coco_id] = mapped
    if isinstance(mapped, Unmatched):
        field = mapped.field or ("file_name" if where.startswith("images") else "name")
        problems.append(Problem(0, f"{where}.{field}", mapped.code, mapped.reason))


def _map_images(
    images: list[CocoImage], options: CocoOptions, units: DataUnitIndex
) -> Iterator[tuple[int, MappedImage | Unmatched]]:
    by_base_name: dict[str, list[DataUnit]] = defaultdict(list)
    for unit in units:
        by_base_name[posixpath.basename(unit.title)].append(unit)
    for position, image in enumerate(images):
        named = options.images.get(image.file_name)
        if named is not None:
            by_hash = units.with_hash(named)
            candidates = units.titled(named) or ([by_hash] if by_hash else [])
            how = f"{named!r} (named in the 'images' mapping)"
        else:
            base_name = posixpath.basename(image.file_name)
            candidates = units.titled(image.file_name) or by_base_name.get(base_name, [])
            how = f"file_name {image.file_name!r}"
        yield position, _one_unit(image, candidates, how, units)


_DATA_UNITS = Lookup(
    "the project",
    "data unit",
    ErrorCode.UNKNOWN_DATA_UNIT,
    ErrorCode.AMBIGUOUS_DATA_TITLE,
    "map it to one data hash in 'images'",
)
_OBJECTS = Lookup(
    "the ontology",
    "object",
    ErrorCode.UNKNOWN_OBJECT,
    ErrorCode.AMBIGUOUS_TITLE,
    "map it to one feature hash in 'categories'",
)


def _one_unit(image: CocoImage, candidates: list[DataUnit], how: str, units: DataUnitIndex) -> MappedImage | Unmatched:
    def suggest() -> str:
        hint = did_you_mean(posixpath.basename(image.file_name), (unit.title for unit in units))
        return f"{hint}; map it in the 'encord' section's 'images'"

    unit = exactly_one(
        candidates, _DATA_UNITS, f"for {how}", lambda unit: f"{unit.title!r} ({unit.data_hash})", suggest
    )
    if isinstance(unit, Unmatched):
        return unit
    if unit.number_of_frames != 1 or unit.width is None:
        return Unmatched(
            ErrorCode.NOT_AN_IMAGE,
            f"{how} is data unit {unit.title!r}, which has {unit.number_of_frames} frames (a video, image group, "
            "image sequence or DICOM series); a COCO image is imported onto a single image",
        )
    if (unit.width, unit.height) != (image.width, image.height):
        return Unmatched(
            ErrorCode.IMAGE_SIZE_MISMATCH,
            f"the image is {image.width}x{image.height} here but data unit {unit.title!r} is "
            f"{unit.width}x{unit.height}: the coordinates would land in the wrong place",
            field="width",
        )
    return MappedImage(unit.data_hash, ImageSize(image.width, image.height))


def _map_categories(
    categories: list[CocoCategory], options: CocoOptions, ontology: OntologyStructure
) -> Iterator[tuple[int, MappedCategory | Unmatched | None]]:
    objects = ontology.objects
    by_folded: dict[str, list[Object]] = defaultdict(list)
    for obj in objects:
        by_folded[folded(obj.title)].append(obj)
    for position, category in enumerate(categories):
        if category.name in options.categories:
            named = options.categories[category.name]
            if named is LEFT_OUT:
                yield position, LEFT_OUT
                continue
            candidates = [obj for obj in objects if obj.feature_node_hash == named] or by_folded.get(folded(named), [])
            how = f"{named!r} (named in the 'categories' mapping)"
        else:
            candidates = by_folded.get(folded(category.name), [])
            how = f"category {category.name!r}"
        yield position, _one_object(category, candidates, how, ontology)


def _one_object(
    category: CocoCategory, candidates: list[Object], how: str, structure: OntologyStructure
) -> MappedCategory | Unmatched:
    def suggest() -> str:
        hint = did_you_mean(category.name, (obj.title for obj in structure.objects))
        return f"{hint}; map it in the 'encord' section's 'categories' (null leaves it out)"

    def describe(obj: Object) -> str:
        return f"{obj.title!r} ({obj.shape.value}, {obj.feature_node_hash})"

    ontology = exactly_one(candidates, _OBJECTS, f"for {how}", describe, suggest)
    if isinstance(ontology, Unmatched):
        return ontology
    if ontology.shape not in IMPORTABLE_SHAPES:
        return Unmatched(
            ErrorCode.SHAPE_MISMATCH,
            f"{how} is ontology object {ontology.title!r}, a {ontology.shape.value}; COCO has geometry for "
            "bounding boxes, polygons, bitmasks and skeletons only",
        )
    if ontology.shape is not Shape.SKELETON:
        return MappedCategory(ontology)
    template = skeleton_template_of(structure, ontology)
    if template is None:
        return Unmatched(
            ErrorCode.NO_SKELETON_TEMPLATE,
            f"{how} is ontology object {ontology.title!r}, a skeleton whose template the ontology does not have; "
            "link a skeleton template to it in Encord",
        )
    points = {folded(vertex.name): vertex.name for vertex in template.skeleton.values()}
    given = category.keypoints or []
    if sorted(map(folded, given)) != sorted(points):
        return Unmatched(
            ErrorCode.SKELETON_POINTS_MISMATCH,
            f"{how} has keypoints {given} but skeleton {template.name!r} has points {sorted(points.values())}; "
            "the names must match one to one",
            field="keypoints",
        )
    return MappedCategory(ontology, tuple(points[folded(name)] for name in given))

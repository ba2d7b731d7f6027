"""Which data unit each COCO image is, and which ontology object each category is: decided once per file.

Categories match ontology objects by name, ignoring case and runs of whitespace; images match data units by
`file_name`, exactly or by the name without folders (`train2017/0001.jpg` is the data unit `0001.jpg`, and
`0001.jpg` is `orchard/0001.jpg`). The `encord` section overrides either. Whatever does not match, or matches
twice, is a problem located in the COCO document, and so is every annotation that depends on it.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from encord.objects import Object, Shape

from label_importer.checks.data_units import DataUnit, DataUnitIndex
from label_importer.checks.ontology_resolver import OntologyResolver
from label_importer.model.problems import ErrorCode, Problem, did_you_mean
from label_importer.sources.coco.format import CocoCategory, CocoId, CocoImage, CocoOptions
from label_importer.sources.coco.geometry import ImageSize

IMPORTABLE_SHAPES = frozenset(
    {Shape.BOUNDING_BOX, Shape.ROTATABLE_BOUNDING_BOX, Shape.POLYGON, Shape.BITMASK, Shape.SKELETON}
)
"""Ontology shapes a COCO annotation has a geometry for (bbox, segmentation or keypoints)."""


@dataclass(frozen=True)
class Unmatched:
    """Why an image or category cannot be used; each annotation on it repeats this, located on itself."""

    code: ErrorCode
    reason: str
    field: str = ""
    """The field of the image or category at fault, when it is not the name that failed to match."""


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
    units: DataUnitIndex,
    resolver: OntologyResolver,
) -> tuple[CocoMapping, list[Problem]]:
    problems: list[Problem] = []
    mapping = CocoMapping({}, {})
    for position, image in _map_images(images, options, units):
        _keep(mapping.images, images[position].id, image, f"images[{position}]", problems)
    for position, category in _map_categories(categories, options, resolver):
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
            how = f"the 'images' mapping names {named!r}"
        else:
            base_name = posixpath.basename(image.file_name)
            candidates = units.titled(image.file_name) or by_base_name.get(base_name, [])
            how = f"file_name {image.file_name!r}"
        yield position, _one_unit(image, candidates, how, units)


@dataclass(frozen=True)
class _Target:
    """What images or categories are matched to, for the messages of a failed match."""

    noun: str
    unknown: ErrorCode
    ambiguous: ErrorCode
    section: str
    identifier: str
    left_out: str = ""


_DATA_UNIT = _Target("data unit", ErrorCode.UNKNOWN_DATA_UNIT, ErrorCode.AMBIGUOUS_DATA_TITLE, "images", "data hash")
_OBJECT = _Target(
    "ontology object",
    ErrorCode.UNKNOWN_OBJECT,
    ErrorCode.AMBIGUOUS_TITLE,
    "categories",
    "feature hash",
    left_out=" (null leaves it out)",
)
_Match = TypeVar("_Match", DataUnit, Object)


def _single(
    candidates: list[_Match], how: str, target: _Target, hint: Callable[[], str], describe: Callable[[_Match], str]
) -> _Match | Unmatched:
    """The one candidate, or why there is not exactly one; `hint` (a did-you-mean over every title, costly
    for thousands of data units) is only worked out for a failed match."""
    if not candidates:
        return Unmatched(
            target.unknown,
            f"{how} matches no {target.noun}{hint()}; map it in the 'encord' section's '{target.section}'"
            + target.left_out,
        )
    if len(candidates) > 1:
        found = ", ".join(map(describe, candidates))
        return Unmatched(
            target.ambiguous,
            f"{how} matches {len(candidates)} {target.noun}s: {found}; map it to one {target.identifier} in "
            f"'{target.section}'",
        )
    return candidates[0]


def _one_unit(image: CocoImage, candidates: list[DataUnit], how: str, units: DataUnitIndex) -> MappedImage | Unmatched:
    def hint() -> str:
        return did_you_mean(posixpath.basename(image.file_name), [unit.title for unit in units])

    unit = _single(candidates, how, _DATA_UNIT, hint, lambda unit: f"{unit.title!r} ({unit.data_hash})")
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
    categories: list[CocoCategory], options: CocoOptions, resolver: OntologyResolver
) -> Iterator[tuple[int, MappedCategory | Unmatched | None]]:
    objects = resolver.structure.objects
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
            how = f"the 'categories' mapping names {named!r}"
        else:
            candidates = by_folded.get(folded(category.name), [])
            how = f"category {category.name!r}"
        yield position, _one_object(category, candidates, how, objects, resolver)


def _one_object(
    category: CocoCategory, candidates: list[Object], how: str, objects: list[Object], resolver: OntologyResolver
) -> MappedCategory | Unmatched:
    def hint() -> str:
        return did_you_mean(category.name, [obj.title for obj in objects])

    ontology = _single(
        candidates, how, _OBJECT, hint, lambda obj: f"{obj.title!r} ({obj.shape.value}, {obj.feature_node_hash})"
    )
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
    template = resolver.find_skeleton_template(ontology)
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

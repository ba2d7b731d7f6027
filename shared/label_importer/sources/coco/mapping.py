"""Which data unit each COCO image is, and which ontology object each category is: decided once per file.

Images and categories match by name as in every format that names them (name_matching.py); the `encord`
section's `data_units` and `objects` override either. Whatever does not match, or matches twice, is a problem
located in the COCO document, and so is every annotation that depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from encord.objects import Object, OntologyStructure, Shape

from label_importer.model.matching import Unmatched
from label_importer.model.problems import ErrorCode, Problem
from label_importer.model.project import ProjectView
from label_importer.sources.coco.format import CocoCategory, CocoId, CocoImage, CocoOptions
from label_importer.sources.coco.geometry import ImageSize
from label_importer.sources.name_matching import LEFT_OUT, ObjectNames, UnitNames, folded, template_of

IMPORTABLE_SHAPES = frozenset(
    {Shape.BOUNDING_BOX, Shape.ROTATABLE_BOUNDING_BOX, Shape.POLYGON, Shape.BITMASK, Shape.SKELETON}
)
"""Ontology shapes a COCO annotation has a geometry for (bbox, segmentation or keypoints)."""

_WHERE = "the 'encord' section's"


@dataclass(frozen=True)
class MappedImage:
    data_hash: str
    size: ImageSize


@dataclass(frozen=True)
class MappedCategory:
    ontology: Object
    keypoint_names: tuple[str, ...] = ()
    """For a skeleton: the template's point name for each of the category's keypoints, in COCO order."""


@dataclass
class CocoMapping:
    images: dict[CocoId, MappedImage | Unmatched]
    categories: dict[CocoId, MappedCategory | Unmatched | None]


def map_document(
    images: list[CocoImage],
    categories: list[CocoCategory],
    options: CocoOptions,
    project: ProjectView,
) -> tuple[CocoMapping, list[Problem]]:
    problems: list[Problem] = []
    mapping = CocoMapping({}, {})
    units = UnitNames(project.units, options.data_units, where=f"{_WHERE} 'data_units'")
    for position, image in enumerate(images):
        unit = units.image(image.file_name, width=image.width, height=image.height)
        mapped = (
            unit if isinstance(unit, Unmatched) else MappedImage(unit.data_hash, ImageSize(image.width, image.height))
        )
        _keep(mapping.images, image.id, mapped, f"images[{position}]", problems)
    objects = ObjectNames(
        project.ontology,
        options.objects,
        shapes=IMPORTABLE_SHAPES,
        format_name="COCO",
        where=f"{_WHERE} 'objects'",
        noun="category",
    )
    for position, category in enumerate(categories):
        found = objects.object(category.name)
        category_mapped = (
            found
            if found is LEFT_OUT or isinstance(found, Unmatched)
            else _mapped_category(category, found, project.ontology)
        )
        _keep(mapping.categories, category.id, category_mapped, f"categories[{position}]", problems)
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


def _mapped_category(
    category: CocoCategory, ontology: Object, structure: OntologyStructure
) -> MappedCategory | Unmatched:
    """A skeleton category also needs its keypoint names to be the template's points."""
    if ontology.shape is not Shape.SKELETON:
        return MappedCategory(ontology)
    how = f"category {category.name!r}"
    template = template_of(structure, ontology, how)
    if isinstance(template, Unmatched):
        return template
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

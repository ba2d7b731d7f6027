"""What a user would write instead of this product: the two import loops of the Encord SDK docs, bare SDK.

Both put the same bounding boxes on the same images as the label file the pipeline imports, so the three can
be compared request for request and second for second.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from encord import Project
from encord.objects import LabelRowV2, Object
from encord.objects.coordinates import BoundingBoxCoordinates

from local.stack import LocalStack

Box = tuple[float, float, float, float]
OBJECT = "Cherry"


def boxes(titles: Sequence[str], per_image: int, seed: int = 8) -> dict[str, list[Box]]:
    rng = random.Random(seed)
    return {
        title: [
            (round(rng.uniform(0, 0.7), 6), round(rng.uniform(0, 0.7), 6), round(rng.uniform(0.05, 0.3), 6), 0.2)
            for _ in range(per_image)
        ]
        for title in titles
    }


def fresh_images(stack: LocalStack, units: int) -> list[str]:
    """An empty local stack with `units` unlabelled images in the project: where each way starts."""
    stack.reset()
    stack.encord.reset()
    titles = [f"unit_{i:05d}.jpg" for i in range(units)]
    for title in titles:
        stack.encord.add_image(title)
    return titles


def label_file_records(boxes_by_title: dict[str, list[Box]]) -> list[dict[str, Any]]:
    """The same boxes as the pipeline's JSONL records."""
    return [
        {
            "data_title": title,
            "objects": [{"name": OBJECT, "bounding_box": {"x": x, "y": y, "w": w, "h": h}} for x, y, w, h in found],
        }
        for title, found in boxes_by_title.items()
    ]


def _apply(row: LabelRowV2, cherry: Object, found: list[Box]) -> None:
    for x, y, w, h in found:
        instance = cherry.create_instance()
        instance.set_for_frames(BoundingBoxCoordinates(top_left_x=x, top_left_y=y, width=w, height=h), frames=0)
        row.add_object_instance(instance)


def _listed(project: Project, boxes_by_title: dict[str, list[Box]]) -> list[LabelRowV2]:
    """The project's label rows for these titles, as the docs find them: list the project, match titles."""
    return [row for row in project.list_label_rows_v2() if row.data_title in boxes_by_title]


def naive_loop(project: Project, boxes_by_title: dict[str, list[Box]]) -> int:
    """List the rows once, then initialise, apply and save one row at a time. Returns rows saved."""
    cherry = project.ontology_structure.get_child_by_title(OBJECT, type_=Object)
    rows = _listed(project, boxes_by_title)
    for row in rows:
        row.initialise_labels()
        _apply(row, cherry, boxes_by_title[row.data_title])
        row.save()
    return len(rows)


def bundled_loop(project: Project, boxes_by_title: dict[str, list[Box]], bundle_size: int = 100) -> int:
    """List the rows once, initialise them in bundles, apply, save them in bundles. Returns rows saved."""
    cherry = project.ontology_structure.get_child_by_title(OBJECT, type_=Object)
    rows = _listed(project, boxes_by_title)
    with project.create_bundle(bundle_size=bundle_size) as bundle:
        for row in rows:
            row.initialise_labels(bundle=bundle)
    for row in rows:
        _apply(row, cherry, boxes_by_title[row.data_title])
    with project.create_bundle(bundle_size=bundle_size) as bundle:
        for row in rows:
            row.save(bundle=bundle)
    return len(rows)

"""What the formats' tests read back through the SDK, in one place."""

from __future__ import annotations

from encord.objects import LabelRowV2, ObjectInstance


def by_title(row: LabelRowV2) -> dict[str, list[ObjectInstance]]:
    """The row's object instances, grouped by their ontology object's title."""
    found: dict[str, list[ObjectInstance]] = {}
    for instance in row.get_object_instances():
        found.setdefault(instance.ontology_item.title, []).append(instance)
    return found

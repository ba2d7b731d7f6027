"""What a file is matched against: the target project's data units and ontology, read once per file."""

from __future__ import annotations

from dataclasses import dataclass

from encord.objects import Object, OntologyStructure
from encord.objects.skeleton_template import SkeletonTemplate

from label_importer.model.data_units import DataUnitIndex


@dataclass(frozen=True)
class ProjectView:
    units: DataUnitIndex
    ontology: OntologyStructure


def skeleton_template_of(ontology: OntologyStructure, skeleton: Object) -> SkeletonTemplate | None:
    """The template whose feature hash is the skeleton object's (that is how Encord links them), or None: an
    ontology may hold a skeleton object whose template was deleted or never linked."""
    return next(
        (
            template
            for template in ontology.skeleton_templates.values()
            if template.feature_node_hash == skeleton.feature_node_hash
        ),
        None,
    )

"""Check the importer against the real Encord API: import every label kind the project's ontology has onto one
of its images, read it back, compare, roll back, and check the image is as it was.

    ENCORD_SSH_KEY_FILE=~/.ssh/encord ENCORD_PROJECT_HASH=<project> python -m local.live_check

The AWS side runs in this process on moto (as `label-importer import` does); Encord is real, and
the import is `append`, so labels already on the image stay and the rollback removes only the check's own.
Optional: ENCORD_DATA_HASH (the image to use; default the project's first image), ENCORD_DOMAIN. Prints a
JSON report and exits non-zero if anything differs. `pytest -m live` runs it (tests/live/).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import Any

import orjson
from encord import Project
from encord.common.bitmask_operations import serialise_bitmask
from encord.objects.attributes import ChecklistAttribute, RadioAttribute, TextAttribute

from label_importer.model.data_units import DataUnit
from label_importer.model.project import skeleton_template_of
from label_importer.runtime.settings import ENCORD_PUBLIC_API
from local.stack import POWERTOOLS_ENVIRONMENT, EncordTarget, local_stack

_SHAPES = {
    "bounding_box": {"bounding_box": {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2}},
    "rotatable_bounding_box": {"rotatable_bounding_box": {"x": 0.3, "y": 0.3, "w": 0.2, "h": 0.1, "theta": 30.0}},
    "polygon": {"polygon": [[0.5, 0.5], [0.7, 0.5], [0.6, 0.7]]},
    "polyline": {"polyline": [[0.1, 0.9], [0.4, 0.8], [0.6, 0.9]]},
    "point": {"point": [0.25, 0.75]},
}


def labels_for(project: Project, unit: DataUnit) -> dict[str, Any]:
    """One object of every ontology object whose shape the format has, and an answer to every classification."""
    objects = []
    for obj in project.ontology_structure.objects:
        shape = obj.shape.value
        if shape in _SHAPES:
            objects.append({"feature_hash": obj.feature_node_hash, **_SHAPES[shape]})
        elif shape == "bitmask" and unit.width and unit.height:
            pixels = unit.width * unit.height
            mask = bytes(pixels // 2) + bytes([1]) * (pixels - pixels // 2)  # the lower half of the image
            bitmask = {"rle": serialise_bitmask(mask), "width": unit.width, "height": unit.height}
            objects.append({"feature_hash": obj.feature_node_hash, "bitmask": bitmask})
        elif shape == "skeleton" and (template := skeleton_template_of(project.ontology_structure, obj)) is not None:
            vertices = template.skeleton.values()
            skeleton = {vertex.name: [vertex.x, vertex.y] for vertex in vertices}
            objects.append({"feature_hash": obj.feature_node_hash, "skeleton": skeleton})
    classifications = []
    for classification in project.ontology_structure.classifications:
        question = classification.attributes[0]
        if isinstance(question, TextAttribute):
            answer: Any = "live check"
        elif isinstance(question, ChecklistAttribute | RadioAttribute) and question.options:
            first = question.options[0].title
            answer = [first] if isinstance(question, ChecklistAttribute) else first
        else:
            continue
        classifications.append({"feature_hash": classification.feature_node_hash, "answer": answer})
    return {"data_hash": unit.data_hash, "objects": objects, "classifications": classifications}


def _hashes(row: Any) -> set[str]:
    if not row.is_labelling_initialised:  # never labelled: read_back leaves it uninitialised
        return set()
    return {o.object_hash for o in row.get_object_instances()} | {
        c.classification_hash for c in row.get_classification_instances()
    }


def run(target: EncordTarget, data_hash: str | None) -> dict[str, Any]:
    os.environ.update(POWERTOOLS_ENVIRONMENT)  # before the handlers' code loads, as the template sets it
    from label_importer.runtime.deadline import Deadline
    from label_importer.runtime.settings import settings
    from label_importer.runtime.world import World
    from label_importer.services.rollback import roll_back
    from local.pipeline import Pipeline

    with local_stack(target=target) as stack:
        project = stack.encord_project()
        rows = project.list_label_rows_v2(data_hashes=[data_hash] if data_hash else None)
        row = rows[0] if data_hash else next(r for r in rows if r.data_type.value == "image")
        record = labels_for(project, DataUnit.from_label_row(row))
        before = _hashes(stack.read_back([row.data_hash])[row.data_hash])
        pipeline = Pipeline.on(stack)
        with contextlib.redirect_stdout(io.StringIO()):
            job = pipeline.run(f"incoming/{target.project_hash}/live-check.jsonl", orjson.dumps(record) + b"\n")
        imported = stack.read_back([row.data_hash])[row.data_hash]
        added = _hashes(imported) - before
        features_read = sorted(
            [o.ontology_item.feature_node_hash for o in imported.get_object_instances() if o.object_hash in added]
            + [
                c.ontology_item.feature_node_hash
                for c in imported.get_classification_instances()
                if c.classification_hash in added
            ]
        )
        features_sent = sorted(label["feature_hash"] for label in record["objects"] + record["classifications"])
        undone = roll_back(job.job_id, World.from_settings(settings()), Deadline.in_seconds(300))
        after = _hashes(stack.read_back([row.data_hash])[row.data_hash])
        return {
            "data_hash": row.data_hash,
            "job_status": str(job.status),
            "labels_in_file": len(features_sent),
            "labels_added": job.labels_added,
            "labels_read_back": len(added),
            "ontology_features_read_back_as_sent": features_read == features_sent,
            "rollback_status": str(undone.status),
            "labels_left_after_rollback": sorted(added & after),
            "labels_before_kept": before <= after,
            "ok": str(job.status) == "COMPLETED"
            and job.labels_added == len(features_sent) == len(added)
            and features_read == features_sent
            and str(undone.status) == "COMPLETED"
            and not (added & after)
            and before <= after,
        }


def main() -> int:
    key_file, project_hash = os.environ.get("ENCORD_SSH_KEY_FILE"), os.environ.get("ENCORD_PROJECT_HASH")
    if not key_file or not project_hash:
        print("set ENCORD_SSH_KEY_FILE and ENCORD_PROJECT_HASH", file=sys.stderr)
        return 2
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    domain = os.environ.get("ENCORD_DOMAIN", ENCORD_PUBLIC_API)
    with open(os.path.expanduser(key_file)) as key:
        target = EncordTarget(domain, project_hash, key.read())
    result = run(target, os.environ.get("ENCORD_DATA_HASH"))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

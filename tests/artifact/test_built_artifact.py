"""What `sam build` produced, run as Lambda runs it: Python 3.13, the runtime interface client, the emulator.

The same events as tests/integration/test_events.py, and whole imports (JSON Lines, COCO, a rollback) as a user
runs them, read back through the SDK: a dependency missing from the layer, a wheel for another platform or a
handler that fails under the real runtime interface fails here, where the source-tree tests cannot see it.
"""

from __future__ import annotations

import orjson
import pytest
from event_feeds import EVENT_FILES, FEEDS
from sam_template import ROLLBACK

from label_importer.model.jobs import JobStatus
from local.lambda_runtime import LambdaContext
from local.pipeline import Pipeline
from local.sample_labels import coco_document, image_records, jsonl


@pytest.mark.parametrize("name", EVENT_FILES)
def test_each_event_file_through_the_built_function(pipeline: Pipeline, name: str) -> None:
    FEEDS[name](pipeline)


def test_a_json_lines_file_imports_end_to_end_and_rolls_back(pipeline: Pipeline) -> None:
    titles = [f"built_{i}.jpg" for i in range(12)]
    hashes = [pipeline.stack.encord.add_image(title) for title in titles]

    job = pipeline.run("incoming/built.jsonl", jsonl(image_records(titles)))

    assert (job.status, job.rows_imported, job.rows_failed) == (JobStatus.COMPLETED, 12, 0)
    rows = pipeline.stack.read_back(hashes)
    assert {len(row.get_object_instances()) for row in rows.values()} == {4}  # two boxes, a polygon, a point
    assert {len(row.get_classification_instances()) for row in rows.values()} == {2}

    answer = pipeline.rollback({"job_id": job.job_id}, LambdaContext(ROLLBACK, timeout_seconds=900))

    assert (answer["status"], answer["rows_rolled_back"]) == ("COMPLETED", 12)
    assert all(row.get_object_instances() == [] for row in pipeline.stack.read_back(hashes).values())
    assert pipeline.job(job.job_id).status is JobStatus.ROLLED_BACK


def test_a_coco_file_imports_end_to_end(pipeline: Pipeline) -> None:
    titles = [f"built_coco_{i}.jpg" for i in range(5)]
    hashes = [pipeline.stack.encord.add_image(title) for title in titles]

    document = coco_document(titles, annotations_per_image=3)

    job = pipeline.run("incoming/built.json", orjson.dumps(document))

    annotations = len(document["annotations"])
    assert (job.status, job.total_records, job.rows_imported) == (JobStatus.COMPLETED, annotations, 5)
    rows = pipeline.stack.read_back(hashes)
    assert sum(len(row.get_object_instances()) for row in rows.values()) == annotations

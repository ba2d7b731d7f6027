"""What each file in `events/` is fed with, and what its handler must then have done: one feed per file.

Shared by tests/integration/test_events.py (the handlers in this process, from the source tree) and
tests/artifact/ (the built artifact behind the Lambda runtime emulator), so both hold the same events to the
same outcomes. A feed takes a `Pipeline`, whose four handlers say which of the two runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from encord.objects.coordinates import BoundingBoxCoordinates
from sam_template import FAILURES, IMPORTER, ROLLBACK, VALIDATOR

from label_importer.model.jobs import Job, JobStatus, RowOutcome, RowStatus
from label_importer.model.label_format import Mode
from label_importer.store.chunk_register import ChunkDigest, ChunkRegister, chunk_digest
from label_importer.store.jobs import JobStore
from label_importer.store.s3_objects import label_files
from local.lambda_runtime import EVENTS_DIR, LambdaContext
from local.pipeline import Pipeline
from local.sample_labels import image_records, jsonl
from local.stack import BUCKET, TABLE

PLACEHOLDER = "REPLACE-with-"


def filled(name: str, values: dict[str, str]) -> dict[str, Any]:
    """The event with every placeholder replaced; a placeholder left over fails the test that uses it."""
    text = (EVENTS_DIR / name).read_text()
    for placeholder, value in values.items():
        assert placeholder in text, f"{name} has no {placeholder}"
        text = text.replace(placeholder, value)
    assert PLACEHOLDER not in text, f"{name} has a placeholder this test does not fill"
    return json.loads(text)


def queued_job(pipeline: Pipeline, event: dict[str, Any], total_rows: int) -> JobStore:
    """The job of the event's chunk as the validator leaves it once its chunks are queued (the chunk's digest
    recorded), with its label file in the bucket."""
    chunk = body_of(event)["chunk"]
    job_id = chunk["job_id"]
    ChunkRegister(TABLE).record([ChunkDigest(job_id, chunk["chunk_index"], chunk_digest(chunk))])
    jobs = JobStore(TABLE)
    key = f"incoming/{job_id}.jsonl"
    version = pipeline.stack.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"")["VersionId"]
    project_hash = pipeline.stack.encord.project_hash
    jobs.create(Job(job_id, JobStatus.VALIDATING, BUCKET, key, version, "", None, 0))
    jobs.set_plan(
        Job(
            job_id,
            JobStatus.VALIDATING,
            BUCKET,
            key,
            version,
            project_hash,
            Mode.APPEND,
            0,
            total_records=total_rows,
            total_rows=total_rows,
            total_chunks=total_rows,
        )
    )
    assert jobs.transition(job_id, JobStatus.QUEUED)
    return jobs


def body_of(event: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(event["Records"][0]["body"])


def s3_object_created(pipeline: Pipeline) -> None:
    """A key with a space and a non-ASCII character arrives URL-encoded; the file is found and queued."""
    pipeline.stack.encord.add_image("image_00000.jpg")
    key = "incoming/orchard labels café.jsonl"
    stored = pipeline.stack.client("s3").put_object(
        Bucket=BUCKET, Key=key, Body=jsonl(image_records(["image_00000.jpg"]))
    )
    event = filled(
        "s3-object-created.json",
        {"REPLACE-with-your-LabelBucketName": BUCKET, "REPLACE-with-the-object-version-id": stored["VersionId"]},
    )

    response = pipeline.validate(event, LambdaContext(VALIDATOR))

    [job] = response["jobs"]
    assert (job["key"], job["status"]) == (key, "QUEUED")
    pipeline.drain()
    assert pipeline.job(job["job_id"]).status is JobStatus.COMPLETED


def sqs_chunk(pipeline: Pipeline) -> None:
    image = pipeline.stack.encord.add_image("cherry.jpg")
    project = pipeline.stack.encord.project_hash
    event = filled("sqs-chunk.json", {"REPLACE-with-your-project-hash": project, "REPLACE-with-a-data-hash": image})
    job_id = body_of(event)["job_id"]
    queued_job(pipeline, event, total_rows=1)

    response = pipeline.import_labels(event, LambdaContext(IMPORTER))

    assert response == {"batchItemFailures": []}
    assert pipeline.job(job_id).status is JobStatus.COMPLETED
    [cherry] = pipeline.stack.read_back([image])[image].get_object_instances()
    assert cherry.get_annotation(0).coordinates == BoundingBoxCoordinates(
        height=0.2, width=0.3, top_left_x=0.1, top_left_y=0.2
    )


def sqs_redriven_chunk(pipeline: Pipeline) -> None:
    """A chunk moved back from the dead-letter queue after one of its rows was imported: only the other one
    is imported now, and the job finishes."""
    done, waiting = pipeline.stack.encord.add_image("done.jpg"), pipeline.stack.encord.add_image("waiting.jpg")
    project = pipeline.stack.encord.project_hash
    event = filled(
        "sqs-redriven-chunk.json",
        {
            "REPLACE-with-your-project-hash": project,
            "REPLACE-with-a-data-hash": done,
            "REPLACE-with-another-data-hash": waiting,
        },
    )
    job_id = body_of(event)["job_id"]
    jobs = queued_job(pipeline, event, total_rows=2)
    jobs.transition(job_id, JobStatus.IMPORTING, allowed_from=[JobStatus.QUEUED])
    chunk_index = body_of(event)["chunk_index"]
    imported = [RowOutcome(done, RowStatus.IMPORTED, [1], labels_added=1)]
    jobs.record_rows(job_id, chunk_index, imported, attempts=1, encord_requests=3, chunk_rows_count=2)
    error = "Encord stayed unavailable"
    jobs.note_retry(job_id, chunk_index, {waiting: [2]}, attempts=5, error=error, encord_requests=5, chunk_rows_count=2)

    response = pipeline.import_labels(event, LambdaContext(IMPORTER))

    assert response == {"batchItemFailures": []}
    job = pipeline.job(job_id)
    assert (job.status, job.rows_imported) == (JobStatus.COMPLETED, 2)
    rows = pipeline.stack.read_back([done, waiting])
    assert rows[done].label_hash is None  # recorded as imported before: not imported again
    [cherry] = rows[waiting].get_object_instances()
    assert cherry.get_annotation(0).confidence == pytest.approx(0.8)
    assert [row.attempts for row in jobs.rows(job_id, RowStatus.IMPORTED) if row.data_hash == waiting] == [6]


def rollback(pipeline: Pipeline) -> None:
    """`{"job_id": ...}` for the rollback function: the import's labels are gone afterwards."""
    image = pipeline.stack.encord.add_image("undo.jpg")
    record = {"data_title": "undo.jpg", "objects": [{"name": "Pedicel", "point": [0.5, 0.5]}]}
    job = pipeline.run("incoming/undo.jsonl", jsonl([record]))
    event = filled("rollback.json", {"REPLACE-with-an-import-job-id": job.job_id})

    response = pipeline.rollback(event, LambdaContext(ROLLBACK, timeout_seconds=900))

    assert (response["status"], response["rows_rolled_back"]) == ("COMPLETED", 1)
    assert pipeline.job(job.job_id).status is JobStatus.ROLLED_BACK
    assert pipeline.stack.read_back([image])[image].get_object_instances() == []
    assert response["report"] == f"s3://{BUCKET}/reports/{response['rollback_job_id']}/summary.txt"


def sqs_validation_failure(pipeline: Pipeline) -> None:
    """The record Lambda sends to the validator's on-failure destination: the file's job ends FAILED."""
    key = "incoming/orchard labels café.jsonl"
    stored = pipeline.stack.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"{}\n")
    event = filled(
        "sqs-validation-failure.json",
        {
            "REPLACE-with-your-LabelBucketName": BUCKET,
            "REPLACE-with-the-object-version-id": stored["VersionId"],
            "REPLACE-with-your-ValidationFailuresQueue": "validation-failures",
        },
    )
    body = orjson.loads(event["Records"][0]["body"])

    response = pipeline.validation_failures(event, LambdaContext(FAILURES))

    assert response == {"batchItemFailures": []}
    [ref] = label_files(body["requestPayload"])
    job = pipeline.job(ref.job_id)
    assert (job.status, job.key) == (JobStatus.FAILED, key)
    assert job.failure is not None and job.failure.startswith("VALIDATOR_STOPPED: ")


FEEDS: dict[str, Callable[[Pipeline], None]] = {
    "rollback.json": rollback,
    "s3-object-created.json": s3_object_created,
    "sqs-chunk.json": sqs_chunk,
    "sqs-redriven-chunk.json": sqs_redriven_chunk,
    "sqs-validation-failure.json": sqs_validation_failure,
}
EVENT_FILES = sorted(path.name for path in EVENTS_DIR.glob("*.json") if path.name != "env.json")

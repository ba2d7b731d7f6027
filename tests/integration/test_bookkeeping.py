"""The import function's own AWS work per chunk: six requests whatever the chunk, the next chunk's bookkeeping
done while one talks to Encord (which only one chunk of a container does at a time), and the shortcuts that make
it cheap kept exactly-once: a delivery that read the chunk before another recorded it imports nothing again, and
rows recorded twice count once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import boto3
import botocore.client
import pytest
from botocore.exceptions import ClientError

from label_importer.model.jobs import Job, JobStatus, RowOutcome, RowStatus
from label_importer.runtime.deadline import Deadline
from label_importer.runtime.settings import settings
from label_importer.runtime.world import World
from label_importer.services.import_chunk import import_chunk
from label_importer.store.chunk_queue import load_chunk
from label_importer.store.jobs import JobStore
from local.lambda_runtime import LambdaContext, _sqs_record, drain_queue
from local.pipeline import Pipeline
from local.sample_labels import image_records, jsonl
from local.stack import TABLE

pytestmark = pytest.mark.integration

HARNESS_SQS = {"ReceiveMessage", "DeleteMessage", "DeleteMessageBatch", "GetQueueAttributes", "ChangeMessageVisibility"}
"""What the test's consumer loop asks SQS, as the event source mapping does on AWS: not the function's requests."""


@contextmanager
def aws_requests() -> Iterator[Counter[str]]:
    """Every AWS request made meanwhile, from any thread, by service and operation."""
    counts: Counter[str] = Counter()
    make_api_call = botocore.client.BaseClient._make_api_call

    def counting(client: Any, operation: str, params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        if not (service == "sqs" and operation in HARNESS_SQS):
            counts[f"{service}.{operation}"] += 1
        return make_api_call(client, operation, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
        yield counts


def images(pipeline: Pipeline, prefix: str, count: int) -> list[str]:
    titles = [f"{prefix}_{i}.jpg" for i in range(count)]
    for title in titles:
        pipeline.stack.encord.add_image(title)
    return titles


def imported(pipeline: Pipeline, titles: list[str]) -> tuple[Counter[str], Job]:
    """The import function's AWS requests for a file of these images, and the job it ended."""
    job_id = pipeline.drop(f"incoming/{titles[0]}.jsonl", jsonl(image_records(titles)))
    with aws_requests() as counts:
        drain_queue(pipeline.stack, pipeline.import_labels)
    return counts, pipeline.ended_with_reports(job_id)


def test_a_chunk_costs_six_aws_requests(redeployed: Callable[..., Pipeline]) -> None:
    """The requests a job of 6 chunks makes beyond one of 2, per chunk: the job, digest and rows read together;
    the leases taken; the data units read under them; the journal; the leases given back with the histories;
    the outcomes with the job's counters. No status update, no lease renewal before a save a whole lease ahead.

    One chunk in flight, so that the job's own requests are the same in both jobs: with two, both chunks of the
    first batch may find the job QUEUED and try to move it to IMPORTING, one UpdateItem more per job."""
    pipeline = redeployed(BUNDLE_SIZE="4", CHUNKS_IN_FLIGHT="1")
    imported(pipeline, images(pipeline, "warm", 1))  # the secret and the connections, once per container
    small, small_job = imported(pipeline, images(pipeline, "small", 8))
    big, big_job = imported(pipeline, images(pipeline, "big", 24))
    assert (small_job.status, big_job.status) == (JobStatus.COMPLETED, JobStatus.COMPLETED)
    assert (small_job.total_chunks, big_job.total_chunks) == (2, 6)

    per_chunk = {operation: (big[operation] - small[operation]) / 4 for operation in big | small}
    assert {operation: count for operation, count in per_chunk.items() if count} == {
        "dynamodb.BatchGetItem": 2,
        "dynamodb.TransactWriteItems": 3,
        "s3.PutObject": 1,
    }


def test_the_next_chunk_of_a_batch_leases_while_the_first_talks_to_encord(redeployed: Callable[..., Pipeline]) -> None:
    """Two chunks in one batch: while the fake holds the answer to the first one's listing, the second takes its
    leases; Encord never answers two of them at once. (With one chunk at a time the second waits for the first,
    and the leases never appear while the answer is held.)"""
    pipeline = redeployed(BUNDLE_SIZE="2")
    encord = pipeline.stack.encord
    titles = images(pipeline, "overlap", 4)
    job_id = pipeline.drop("incoming/overlap.jsonl", jsonl(image_records(titles)))
    encord.reset_counts()
    held = encord.hold_next("list_label_rows")
    consumer = threading.Thread(target=drain_queue, args=(pipeline.stack, pipeline.import_labels))
    consumer.start()
    try:
        assert held.arrived.wait(timeout=300)
        assert leases_taken(pipeline, deadline=time.monotonic() + 300) == 4
    finally:
        held.release()
        consumer.join(timeout=600)
    assert not consumer.is_alive()
    assert pipeline.ended_with_reports(job_id).status is JobStatus.COMPLETED
    assert encord.most_in_flight == 1


def leases_taken(pipeline: Pipeline, *, deadline: float) -> int:
    """How many data-unit leases are held once all four are (or when the deadline passes: the test fails)."""
    table = boto3.resource("dynamodb").Table(TABLE)
    while True:
        held = [item for item in table.scan()["Items"] if item["pk"].startswith("UNIT#") and "holder" in item]
        if len(held) == 4 or time.monotonic() > deadline:
            return len(held)
        time.sleep(0.05)


def test_a_delivery_that_read_the_chunk_before_another_recorded_it_imports_nothing_again(
    redeployed: Callable[..., Pipeline],
) -> None:
    """Two deliveries of one chunk at once (a visibility timeout passed under a slow answer): the second read the
    chunk's rows before the first recorded them. Under the leases it finds its job among the data units'
    recorders, looks the outcomes up, and neither saves nor counts anything."""
    pipeline = redeployed(BUNDLE_SIZE="2")
    encord = pipeline.stack.encord
    job_id = pipeline.drop("incoming/twice.jsonl", jsonl(image_records(images(pipeline, "twice", 4))))
    sqs = pipeline.stack.client("sqs")
    queue_url = pipeline.stack.queue_url
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    [message] = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, AttributeNames=["All"])["Messages"]
    world = World.from_settings(settings())
    chunk = load_chunk(message["Body"], world.s3)
    read_before = world.jobs.chunk(job_id, chunk.chunk_index)
    assert read_before.outcomes == {}

    response = pipeline.import_labels({"Records": [_sqs_record(message, arn)]}, LambdaContext("ImportLabelsFunction"))
    assert not (response or {}).get("batchItemFailures")
    first = pipeline.job(job_id)
    assert first.rows_imported == 2
    writes = encord.write_requests()

    import_chunk(chunk, read_before, world, Deadline.in_seconds(300), delivery=2)

    assert encord.write_requests() == writes
    again = pipeline.job(job_id)
    assert (again.rows_imported, again.rows_failed, again.labels_added) == (2, 0, first.labels_added)


def outcome(data_hash: str) -> RowOutcome:
    return RowOutcome(data_hash, RowStatus.IMPORTED, [1], labels_added=1)


def planned_job(pipeline: Pipeline, job_id: str, total_rows: int) -> JobStore:
    jobs = JobStore(TABLE)
    job = Job(job_id, JobStatus.IMPORTING, "bucket", "key", None, "p", None, int(time.time()), total_rows=total_rows)
    jobs.create(job)
    jobs.set_plan(job)
    return jobs


def test_rows_recorded_twice_count_once_and_only_the_last_rows_may_finish_the_job(
    redeployed: Callable[..., Pipeline],
) -> None:
    jobs = planned_job(redeployed(), "twice-recorded", total_rows=3)

    assert (
        jobs.record_rows("twice-recorded", 0, [outcome("a")], attempts=1, encord_requests=2, chunk_rows_count=3)
        is False
    )
    # Another delivery recorded "a" already: only "b" is written and counted.
    assert (
        jobs.record_rows(
            "twice-recorded", 0, [outcome("a"), outcome("b")], attempts=1, encord_requests=2, chunk_rows_count=3
        )
        is False
    )
    job = jobs.get("twice-recorded")
    assert job is not None and (job.rows_imported, job.labels_added, job.encord_requests) == (2, 2, 4)
    assert (
        jobs.record_rows("twice-recorded", 1, [outcome("c")], attempts=1, encord_requests=0, chunk_rows_count=1) is True
    )
    job = jobs.get("twice-recorded")
    assert job is not None and job.rows_done == job.total_rows == 3
    assert sorted(row.data_hash for row in jobs.rows("twice-recorded", RowStatus.IMPORTED)) == ["a", "b", "c"]


def test_a_transaction_conflict_on_the_job_is_tried_again(
    redeployed: Callable[..., Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = planned_job(redeployed(), "conflicted", total_rows=2)
    client = jobs._resource.meta.client
    transact = client.transact_write_items
    conflicts = [1]

    def conflicting_once(**request: Any) -> Any:
        if conflicts:
            conflicts.pop()
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
                },
                "TransactWriteItems",
            )
        return transact(**request)

    monkeypatch.setattr(client, "transact_write_items", conflicting_once)
    jobs.record_rows("conflicted", 0, [outcome("a")], attempts=1, encord_requests=0, chunk_rows_count=2)
    assert not conflicts
    job = jobs.get("conflicted")
    assert job is not None and job.rows_imported == 1


def test_a_job_recorded_before_rows_left_existed_is_finished_by_reading_it(redeployed: Callable[..., Pipeline]) -> None:
    pipeline = redeployed()
    jobs = planned_job(pipeline, "older", total_rows=2)
    table = boto3.resource("dynamodb").Table(TABLE)
    table.update_item(Key={"pk": "JOB#older", "sk": "JOB"}, UpdateExpression="REMOVE rows_left")

    assert jobs.record_rows("older", 0, [outcome("a")], attempts=1, encord_requests=0, chunk_rows_count=2) is True
    job = jobs.get("older")
    assert job is not None and replace(job).rows_imported == 1

"""Exactly once under faults: every fault the product promises to survive, injected for real.

Faults come from the fake Encord server (HTTP errors with Retry-After, dropped connections before and after
the change is made, answers later than the client's timeout, a row Encord refuses), from SQS (every message
twice, consumers racing on one queue) and from consumers that die holding data-unit leases. Each test then
checks the same promise: the job reached its terminal state, its counters equal its per-row records, and every
input label is in Encord exactly once when read back through the SDK.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import orjson
import pytest

from label_importer.model.jobs import JobStatus, RowStatus
from label_importer.runtime.settings import settings
from label_importer.store.jobs import JobStore
from label_importer.store.leases import DataUnitLeases
from local.lambda_runtime import duplicate_queued_messages
from local.pipeline import Pipeline
from local.sample_labels import image_records, jsonl
from local.stack import TABLE

pytestmark = pytest.mark.integration

OBJECTS, CLASSIFICATIONS = 4, 2
"""What `image_records` puts on each image."""


def images(pipeline: Pipeline, count: int, prefix: str) -> tuple[list[str], list[str]]:
    titles = [f"{prefix}_{i:04d}.jpg" for i in range(count)]
    return titles, [pipeline.stack.encord.add_image(title) for title in titles]


def assert_exactly_once(
    pipeline: Pipeline,
    job_id: str,
    hashes: list[str],
    *,
    objects: int = OBJECTS,
    classifications: int = CLASSIFICATIONS,
    failed: int = 0,
) -> None:
    jobs = JobStore(TABLE)
    job = pipeline.job(job_id)
    assert job.status is (JobStatus.COMPLETED_WITH_ERRORS if failed else JobStatus.COMPLETED)
    imported, failures = jobs.rows(job_id, RowStatus.IMPORTED), jobs.rows(job_id, RowStatus.FAILED)
    assert (job.rows_imported, job.rows_failed) == (len(imported), len(failures)) == (len(hashes) - failed, failed)
    assert jobs.rows(job_id, RowStatus.RETRYING) == []
    assert all(row.attempts >= 1 for row in imported + failures)
    report = orjson.loads(pipeline.report(job_id, "report.json"))
    assert (report["rows"]["imported"], report["rows"]["failed"]) == (len(imported), len(failures))
    assert report["encord_requests"] == job.encord_requests > 0
    succeeded = {row.data_hash for row in imported}
    for data_hash, row in pipeline.stack.read_back(hashes).items():
        if data_hash not in succeeded:
            continue
        instances = row.get_object_instances()
        assert len(instances) == objects, data_hash
        assert len({instance.object_hash for instance in instances}) == objects
        assert len(row.get_classification_instances()) == classifications, data_hash


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("list_label_rows", 503),
        ("create_label_rows", 500),
        ("create_label_rows", 503),
        ("save_label_rows", 500),
        ("save_label_rows", 503),
    ],
)
def test_a_server_error_is_retried_within_the_invocation(pipeline: Pipeline, kind: str, status: int) -> None:
    titles, hashes = images(pipeline, 30, f"error_{kind}_{status}")
    job_id = pipeline.drop("incoming/errors.jsonl", jsonl(image_records(titles)))
    pipeline.stack.encord.fail_next(kind, status=status, times=2)

    stats = pipeline.drain()

    assert stats.failures == 0
    assert_exactly_once(pipeline, job_id, hashes)
    assert {row.attempts for row in JobStore(TABLE).rows(job_id, RowStatus.IMPORTED)} == {3}


def test_a_server_error_while_validating_is_retried(pipeline: Pipeline) -> None:
    titles, hashes = images(pipeline, 5, "validating")
    pipeline.stack.encord.fail_next("list_label_rows", status=503, times=2)  # the validator's listing

    job_id = pipeline.run("incoming/validating.jsonl", jsonl(image_records(titles))).job_id

    assert_exactly_once(pipeline, job_id, hashes)


def test_a_server_error_fetching_existing_label_rows_is_retried(pipeline: Pipeline) -> None:
    titles, hashes = images(pipeline, 30, "refetch")
    body = jsonl(image_records(titles))
    pipeline.run("incoming/first.jsonl", body)
    job_id = pipeline.drop("incoming/second.jsonl", body)  # the rows now exist: initialise fetches them
    pipeline.stack.encord.fail_next("get_label_rows", status=503, times=2)

    assert pipeline.drain().failures == 0
    assert_exactly_once(pipeline, job_id, hashes)
    assert pipeline.job(job_id).labels_added == 0


def test_a_429_burst_waits_as_long_as_retry_after_asks(pipeline: Pipeline) -> None:
    titles, hashes = images(pipeline, 20, "throttled")
    job_id = pipeline.drop("incoming/throttled.jsonl", jsonl(image_records(titles)))
    pipeline.stack.encord.fail_next("save_label_rows", status=429, times=2, retry_after=1)

    started = time.monotonic()
    stats = pipeline.drain()

    assert time.monotonic() - started >= 2.0  # two waits of Retry-After: 1, not the millisecond backoff
    assert stats.failures == 0
    assert_exactly_once(pipeline, job_id, hashes)


def test_retrying_stops_early_when_the_invocation_is_short_of_time(pipeline: Pipeline) -> None:
    """One attempt may take `attempt_seconds` (3 requests, each up to ENCORD_TIMEOUT_SECONDS); an invocation
    only 10 s longer than that cannot wait out a Retry-After of 30 s and still make one: the message goes back
    to the queue at once, marked with why. (A Retry-After of 1 s would be waited for, as the 429 test shows.)

    The invocation's length follows from the setting rather than a number of seconds, so the test makes the
    same decision whatever the timeout is and however long the machine takes to get to the 429.
    """
    retry_after = 30
    titles, hashes = images(pipeline, 10, "short")
    job_id = pipeline.drop("incoming/short.jsonl", jsonl(image_records(titles)))
    pipeline.stack.encord.fail_next("save_label_rows", status=429, retry_after=retry_after)
    jobs = JobStore(TABLE)

    started = time.monotonic()
    stats = pipeline.drain(timeout_seconds=settings().attempt_seconds + 10)

    assert time.monotonic() - started < retry_after  # it never slept out the Retry-After
    assert (stats.messages, stats.failures) == (2, 1)
    assert_exactly_once(pipeline, job_id, hashes)
    assert {row.attempts for row in jobs.rows(job_id, RowStatus.IMPORTED)} == {2}


@pytest.mark.parametrize(
    ("kind", "after_commit"),
    [("create_label_rows", False), ("create_label_rows", True), ("save_label_rows", False), ("save_label_rows", True)],
)
def test_a_dropped_connection_before_or_after_the_change_duplicates_nothing(
    pipeline: Pipeline, kind: str, after_commit: bool
) -> None:
    titles, hashes = images(pipeline, 25, f"drop_{kind}_{after_commit}")
    job_id = pipeline.drop("incoming/drop.jsonl", jsonl(image_records(titles)))
    pipeline.stack.encord.drop_next(kind, after_commit=after_commit)

    assert pipeline.drain().failures == 0
    assert_exactly_once(pipeline, job_id, hashes)


SHORT_TIMEOUT_SECONDS = 5
"""A client timeout an injected slow answer can exceed without slowing the suite much, yet far above what any
other request of the test takes on a busy machine (its bundles have 15 rows)."""


def test_an_answer_slower_than_the_client_timeout_duplicates_nothing(
    redeployed: Callable[..., Pipeline],
) -> None:
    pipeline = redeployed(ENCORD_TIMEOUT_SECONDS=str(SHORT_TIMEOUT_SECONDS))
    encord = pipeline.stack.encord
    titles, hashes = images(pipeline, 15, "slow")
    job_id = pipeline.drop("incoming/slow.jsonl", jsonl(image_records(titles)))
    encord.slow_next("save_label_rows", seconds=SHORT_TIMEOUT_SECONDS + 3)  # saved, but answered after the timeout

    assert pipeline.drain().failures == 0
    assert_exactly_once(pipeline, job_id, hashes)
    encord.wait_until_idle()  # the late answer is written (to nobody) after the retry has finished
    # Two saves reached Encord; the importer saw the answer to one: the first timed out, then was retried.
    assert (encord.request_counts["save_label_rows"], encord.answered_counts["save_label_rows"]) == (2, 1)


def test_a_row_encord_refuses_fails_alone_and_the_rest_of_its_bundle_lands(pipeline: Pipeline) -> None:
    titles, hashes = images(pipeline, 40, "refused")
    pipeline.stack.encord.refuse_saves(hashes[7])
    job_id = pipeline.run("incoming/refused.jsonl", jsonl(image_records(titles))).job_id

    assert_exactly_once(pipeline, job_id, hashes, failed=1)
    [failure] = JobStore(TABLE).rows(job_id, RowStatus.FAILED)
    assert (failure.data_hash, failure.lines) == (hashes[7], [8])
    assert failure.reason is not None and "Encord rejected the labels" in failure.reason
    assert pipeline.stack.read_back([hashes[7]])[hashes[7]].get_object_instances() == []


def test_every_sqs_message_delivered_twice_imports_once(pipeline: Pipeline) -> None:
    titles, hashes = images(pipeline, 300, "twice")
    job_id = pipeline.drop("incoming/twice.jsonl", jsonl(image_records(titles)))
    assert duplicate_queued_messages(pipeline.stack) == 3

    stats = pipeline.drain(consumers=4)

    assert stats.messages == 6
    assert_exactly_once(pipeline, job_id, hashes)


def test_a_duplicated_s3_event_handled_by_two_validators_at_once_imports_once(pipeline: Pipeline) -> None:
    titles, hashes = images(pipeline, 150, "racing")
    event = pipeline.upload("incoming/racing.jsonl", jsonl(image_records(titles)))
    job_ids: list[str] = []
    validators = [threading.Thread(target=lambda: job_ids.append(pipeline.validate_event(event))) for _ in range(2)]
    for validator in validators:
        validator.start()
    for validator in validators:
        validator.join()

    pipeline.drain(consumers=4)

    assert len(set(job_ids)) == 1
    assert_exactly_once(pipeline, job_ids[0], hashes)


def test_eight_consumers_draining_one_job(pipeline: Pipeline) -> None:
    titles, hashes = images(pipeline, 800, "eight")
    job_id = pipeline.drop("incoming/eight.jsonl", jsonl(image_records(titles)))

    stats = pipeline.drain(consumers=8)

    assert stats.failures == 0
    assert_exactly_once(pipeline, job_id, hashes)
    answered = pipeline.stack.encord.answered_counts  # the bundles Encord served, one create and one save per chunk
    assert (answered["create_label_rows"], answered["save_label_rows"]) == (8, 8)


def test_consumers_in_separate_processes_import_once(pipeline: Pipeline) -> None:
    """As Lambda containers are: no shared memory, only the queue, the table and Encord between them."""
    titles, hashes = images(pipeline, 300, "processes")
    job_id = pipeline.drop("incoming/processes.jsonl", jsonl(image_records(titles)))

    stats = pipeline.drain(consumers=3, processes=True)

    assert (stats.messages, stats.failures) == (3, 0)
    assert_exactly_once(pipeline, job_id, hashes)


def test_two_jobs_on_the_same_data_units_keep_each_others_labels(pipeline: Pipeline) -> None:
    """save() replaces a whole label row: without a lease per data unit, one job's save erases the other's."""
    titles, hashes = images(pipeline, 200, "shared")
    branches = [
        {"data_title": title, "objects": [{"name": "Branch", "polyline": [[0.1, 0.1], [0.4, 0.5], [0.9, 0.6]]}]}
        for title in titles
    ]
    first = pipeline.drop("incoming/fruit.jsonl", jsonl(image_records(titles)))
    second = pipeline.drop("incoming/branches.jsonl", jsonl(branches))

    pipeline.drain(consumers=8)

    for job_id in (first, second):
        job = pipeline.job(job_id)
        assert (job.status, job.rows_imported) == (JobStatus.COMPLETED, 200)
    for row in pipeline.stack.read_back(hashes).values():
        titles_on_row = sorted(instance.ontology_item.title for instance in row.get_object_instances())
        assert titles_on_row == ["Branch", "Cherry", "Cherry", "Pedicel", "Persimmon"]
        assert len(row.get_classification_instances()) == CLASSIFICATIONS


def test_a_lease_left_by_a_dead_consumer_is_waited_for_then_taken(pipeline: Pipeline) -> None:
    titles, hashes = images(pipeline, 10, "orphaned")
    job_id = pipeline.drop("incoming/orphaned.jsonl", jsonl(image_records(titles)))
    DataUnitLeases(TABLE, lease_seconds=2).acquire(hashes[:3], holder="a consumer that was killed", branch="main")

    started = time.monotonic()
    stats = pipeline.drain()

    assert stats.failures == 0 and time.monotonic() - started >= 1.5  # waited in the invocation, not failed
    assert_exactly_once(pipeline, job_id, hashes)


def test_a_data_unit_leased_past_the_last_delivery_fails_its_row_with_the_reason(pipeline: Pipeline) -> None:
    """The delivery SQS will not repeat records what blocks the chunk, instead of leaving the job unfinished."""
    titles, hashes = images(pipeline, 10, "dead")
    job_id = pipeline.drop("incoming/dead.jsonl", jsonl(image_records(titles)))
    DataUnitLeases(TABLE, lease_seconds=600).acquire(hashes[:1], holder="stuck", branch="main")

    stats = pipeline.drain(timeout_seconds=10)  # too short to wait: each delivery but the last hands it back

    assert stats.failures == 4  # maxReceiveCount is 5: the fifth delivery ends the row
    job = pipeline.ended_with_reports(job_id)
    assert (job.status, job.rows_imported, job.rows_failed) == (JobStatus.COMPLETED_WITH_ERRORS, 9, 1)
    [failed] = JobStore(TABLE).rows(job_id, RowStatus.FAILED)
    assert failed.data_hash == hashes[0]
    assert "another import holds this data unit's lease" in (failed.reason or "")
    assert (
        pipeline.stack.client("sqs").receive_message(QueueUrl=pipeline.stack.dead_letter_queue_url).get("Messages", [])
        == []
    )


def test_a_chunk_that_cannot_be_recorded_waits_in_the_dlq_and_redrive_finishes_it(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What still reaches the dead-letter queue: a chunk whose outcome cannot be written (here a throttled table),
    operated as a user would: `status` shows the job unfinished, `redrive` replays the dead chunk."""
    from botocore.exceptions import ClientError

    from label_importer_cli.commands import main

    titles, hashes = images(pipeline, 10, "dead")
    job_id = pipeline.drop("incoming/dead.jsonl", jsonl(image_records(titles)))

    def throttled(*args: object, **kwargs: object) -> None:
        error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "the table is throttled"}}
        raise ClientError(error, "TransactWriteItems")

    with monkeypatch.context() as patch:
        patch.setattr(JobStore, "record_rows", throttled)
        stats = pipeline.drain()

    assert stats.failures == 5  # maxReceiveCount, then SQS moves it to the dead-letter queue
    capsys.readouterr()  # the handlers' own log lines
    assert main(["status", job_id, "--table", TABLE]) == 0
    shown = capsys.readouterr().out
    assert f"job {job_id}: IMPORTING" in shown
    assert "rows: 0/10 done (0 imported, 0 failed), 0 skipped as invalid, 0 waiting to be retried" in shown

    queues = ["--dead-letter-queue-url", pipeline.stack.dead_letter_queue_url, "--queue-url", pipeline.stack.queue_url]
    assert main(["redrive", *queues]) == 0
    assert capsys.readouterr().out == "moved 1 chunk messages back to the import queue\n"
    pipeline.drain()

    assert_exactly_once(pipeline, job_id, hashes)
    capsys.readouterr()
    assert main(["status", job_id, "--table", TABLE, "--json"]) == 0
    status = orjson.loads(capsys.readouterr().out)
    assert (status["job"]["status"], status["failed_rows"], status["waiting_rows"]) == ("COMPLETED", [], [])

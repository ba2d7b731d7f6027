"""The import function imports only chunks the validator queued, whatever else is put on its queue.

Anyone allowed sqs:SendMessage on the import queue (or a bug, or a message replayed from an old job) can put a
message there. Each test drops a real file, takes its chunk messages off the queue before any consumer sees
them, puts forged variants back and runs the real import handler on them: a forged message touches nothing in
Encord, changes no job counter, is logged at ERROR with the reason, counted as ChunksRefused, and consumed at
its first delivery (no retry can make it a queued chunk). The genuine messages still import.
"""

from __future__ import annotations

import copy
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from botocore.client import BaseClient

from label_importer.encord_target.retries import RetryPolicy
from label_importer.model.jobs import JobStatus, RowStatus
from label_importer.runtime.observability import CHUNKS_FAILED, CHUNKS_IMPORTED, CHUNKS_REFUSED
from label_importer.runtime.settings import settings
from label_importer.store.chunk_register import ChunkDigest, ChunkRegister, chunk_digest, chunk_key
from label_importer.store.jobs import JobStore
from local.pipeline import Pipeline
from local.sample_labels import image_records, jsonl
from local.stack import BUCKET, TABLE

pytestmark = pytest.mark.integration

OBJECTS, CLASSIFICATIONS = 4, 2
"""What `image_records` puts on each image."""
RING = [[round(0.5 + 0.2 * (i % 2), 6), round(i / 1000, 6)] for i in range(1000)]
"""A polygon long enough that 30 of them make a chunk too big for a message: it travels by claim check."""


def take_queued(pipeline: Pipeline) -> list[str]:
    """Every message on the import queue, taken off it unread by any consumer."""
    sqs = pipeline.stack.client("sqs")
    bodies = []
    while messages := sqs.receive_message(QueueUrl=pipeline.stack.queue_url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=pipeline.stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def send(pipeline: Pipeline, body: str) -> str:
    """Put a message on the import queue as anyone allowed sqs:SendMessage can; returns its message id."""
    sent = pipeline.stack.client("sqs").send_message(QueueUrl=pipeline.stack.queue_url, MessageBody=body)
    return str(sent["MessageId"])


def encoded(envelope: dict[str, Any]) -> str:
    return orjson.dumps(envelope).decode()


def emitted(out: str, name: str) -> float:
    """The total of metric `name` in the EMF documents Powertools printed."""
    total = 0.0
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            value = orjson.loads(line).get(name, 0)
            total += sum(value) if isinstance(value, list) else value
    return total


def recorded_rows(job_id: str) -> list[Any]:
    jobs = JobStore(TABLE)
    return [row for status in RowStatus for row in jobs.rows(job_id, status)]


def label_counts(pipeline: Pipeline, hashes: list[str]) -> dict[str, tuple[int, int]]:
    return {
        data_hash: (len(row.get_object_instances()), len(row.get_classification_instances()))
        for data_hash, row in pipeline.stack.read_back(hashes).items()
    }


@dataclass
class Refusal:
    body: str
    job_id: str | None
    chunk_index: int | None
    reason: str
    """A fragment of the reason the importer must log."""


@pytest.fixture
def s3_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(bucket, key) of every S3 GetObject made in this process from now on."""
    reads: list[tuple[str, str]] = []
    original = BaseClient._make_api_call

    def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name == "s3" and operation == "GetObject":
            reads.append((params["Bucket"], params["Key"]))
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return reads


def assert_refused(
    pipeline: Pipeline,
    refusals: list[Refusal],
    jobs: list[str],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Send the forged messages, drain the queue, and check that each was refused and nothing happened."""
    encord = pipeline.stack.encord
    assert encord is not None
    before = {job_id: pipeline.job(job_id) for job_id in jobs}
    rows_before = {job_id: recorded_rows(job_id) for job_id in jobs}
    encord.reset_counts()
    capsys.readouterr()
    caplog.clear()
    sent = {send(pipeline, refusal.body): refusal for refusal in refusals}

    stats = pipeline.drain()

    assert (stats.messages, stats.failures) == (len(refusals), 0)  # consumed at their first delivery
    assert pipeline.queued_messages() == 0
    dead = pipeline.stack.client("sqs").receive_message(QueueUrl=pipeline.stack.dead_letter_queue_url)
    assert dead.get("Messages", []) == []
    assert sum(encord.request_counts.values()) == 0, dict(encord.request_counts)
    assert {job_id: pipeline.job(job_id) for job_id in jobs} == before
    assert {job_id: recorded_rows(job_id) for job_id in jobs} == rows_before
    out = capsys.readouterr().out
    assert emitted(out, CHUNKS_REFUSED) == len(refusals)
    assert emitted(out, CHUNKS_IMPORTED) == emitted(out, CHUNKS_FAILED) == 0
    errors = {
        record.__dict__.get("message_id"): record.__dict__
        for record in caplog.records
        if record.levelno == logging.ERROR and "refused" in record.getMessage()
    }
    for message_id, refusal in sent.items():
        logged = errors.get(message_id)
        assert logged is not None, f"no ERROR log for the refused message {message_id}: {refusal.reason}"
        assert (logged["job_id"], logged["chunk_index"]) == (refusal.job_id, refusal.chunk_index)
        assert refusal.reason in logged["reason"], logged["reason"]


# ---------------------------------------------------------------- chunks that travel in the message


@dataclass
class Scene:
    pipeline: Pipeline
    job_id: str
    """A replace-mode file over `hashes`, queued and not imported yet."""
    body: str
    """Its one chunk message, taken off the queue."""
    hashes: list[str]
    earlier_job_id: str
    earlier_body: str
    """An earlier job that labelled the victims, and its chunk message (imported)."""
    victims: list[str]
    """Data units with labels the replace-mode file never names."""

    @property
    def envelope(self) -> dict[str, Any]:
        return dict(orjson.loads(self.body))

    def with_chunk(self, change: Callable[[dict[str, Any]], None], **envelope: Any) -> str:
        forged = copy.deepcopy(self.envelope)
        change(forged["chunk"])
        forged.update(envelope)
        return encoded(forged)


@pytest.fixture
def scene(pipeline: Pipeline) -> Scene:
    encord = pipeline.stack.encord
    assert encord is not None
    victim_titles = [f"forged_victim_{i}.jpg" for i in range(2)]
    titles = [f"forged_target_{i}.jpg" for i in range(3)]
    victims = [encord.add_image(title) for title in victim_titles]
    hashes = [encord.add_image(title) for title in titles]
    earlier = pipeline.drop("incoming/earlier.jsonl", jsonl(image_records(victim_titles)))
    [earlier_body] = take_queued(pipeline)
    send(pipeline, earlier_body)
    pipeline.drain()
    assert pipeline.job(earlier).status is JobStatus.COMPLETED
    assert set(label_counts(pipeline, victims).values()) == {(OBJECTS, CLASSIFICATIONS)}

    job_id = pipeline.drop("incoming/target.jsonl", jsonl(image_records(titles, seed=11), header={"mode": "replace"}))
    [body] = take_queued(pipeline)
    assert pipeline.job(job_id).mode == "replace"
    return Scene(pipeline, job_id, body, hashes, earlier, earlier_body, victims)


def _victims_instead(scene: Scene) -> Callable[[dict[str, Any]], None]:
    def change(chunk: dict[str, Any]) -> None:
        chunk["rows"] = chunk["rows"][: len(scene.victims)]
        for row, victim in zip(chunk["rows"], scene.victims, strict=True):
            row["data_hash"] = victim

    return change


def _set(**values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda chunk: chunk.update(values)


INLINE_FORGERIES: dict[str, Callable[[Scene], Refusal]] = {
    # Two data units the file never touched, in replace mode: imported, this would wipe their labels.
    "forged data units": lambda s: Refusal(s.with_chunk(_victims_instead(s)), s.job_id, 0, "content differs"),
    "forged mode": lambda s: Refusal(s.with_chunk(_set(mode="append")), s.job_id, 0, "mode 'append'"),
    # The job's labels onto another branch (here `main`, where annotators' work is): the job names its branch.
    "forged branch": lambda s: Refusal(s.with_chunk(_set(branch="annotators")), s.job_id, 0, "branch 'annotators'"),
    "forged project": lambda s: Refusal(
        s.with_chunk(_set(project_hash=str(uuid.UUID(int=7)))), s.job_id, 0, "names project"
    ),
    "unknown job": lambda s: Refusal(
        s.with_chunk(_set(job_id="no-such-job"), job_id="no-such-job"), "no-such-job", 0, "no such job"
    ),
    "truncated body": lambda s: Refusal(s.body[: len(s.body) // 2], None, None, "not JSON"),
    "a field no message has": lambda s: Refusal(
        encoded({**s.envelope, "priority": 1}), s.job_id, 0, "not a chunk message"
    ),
    "neither chunk nor claim check": lambda s: Refusal(
        encoded({"job_id": s.job_id, "chunk_index": 0}), s.job_id, 0, "either the chunk or a claim check"
    ),
    "a chunk index never queued": lambda s: Refusal(
        s.with_chunk(_set(chunk_index=1), chunk_index=1), s.job_id, 1, "queued no such chunk"
    ),
    # The job's own chunk object named, though the chunk went inline: were it missing, the job would fail.
    "a claim check for a chunk sent inline": lambda s: Refusal(
        encoded(
            {"job_id": s.job_id, "chunk_index": 0, "claim_check": {"bucket": BUCKET, "key": chunk_object(s.job_id)}}
        ),
        s.job_id,
        0,
        "sent this chunk inline",
    ),
    "another job's chunk under this job's name": lambda s: Refusal(
        encoded({**s.envelope, "chunk": orjson.loads(s.earlier_body)["chunk"]}),
        s.job_id,
        0,
        f"carries chunk 0 of job {s.earlier_job_id}",
    ),
}


@pytest.mark.parametrize("forgery", list(INLINE_FORGERIES))
def test_a_forged_message_is_refused_and_touches_nothing(
    scene: Scene, forgery: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    refusal = INLINE_FORGERIES[forgery](scene)

    assert_refused(scene.pipeline, [refusal], [scene.job_id, scene.earlier_job_id], capsys, caplog)

    assert set(label_counts(scene.pipeline, scene.victims).values()) == {(OBJECTS, CLASSIFICATIONS)}


def test_the_genuine_message_still_imports_among_forged_ones(scene: Scene, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = scene.pipeline
    forged = [INLINE_FORGERIES[name](scene).body for name in INLINE_FORGERIES]
    capsys.readouterr()
    for body in [*forged[:4], scene.body, *forged[4:]]:
        send(pipeline, body)

    stats = pipeline.drain()

    assert stats.failures == 0
    job = pipeline.ended_with_reports(scene.job_id)
    assert (job.status, job.rows_imported, job.rows_failed) == (JobStatus.COMPLETED, 3, 0)
    out = capsys.readouterr().out
    assert (emitted(out, CHUNKS_REFUSED), emitted(out, CHUNKS_IMPORTED)) == (len(forged), 1)
    assert set(label_counts(pipeline, scene.hashes).values()) == {(OBJECTS, CLASSIFICATIONS)}
    assert set(label_counts(pipeline, scene.victims).values()) == {(OBJECTS, CLASSIFICATIONS)}
    earlier = pipeline.job(scene.earlier_job_id)
    assert (earlier.status, earlier.rows_imported) == (JobStatus.COMPLETED, 2)


def test_a_replayed_message_of_a_finished_job_imports_nothing_again(scene: Scene) -> None:
    """The validator's own message, delivered again after its job finished: genuine, so not refused, and
    dropped by the importer because the job is no longer importing."""
    encord = scene.pipeline.stack.encord
    assert encord is not None
    before = scene.pipeline.job(scene.earlier_job_id)
    encord.reset_counts()
    send(scene.pipeline, scene.earlier_body)

    assert scene.pipeline.drain().failures == 0

    assert encord.write_requests() == 0
    assert scene.pipeline.job(scene.earlier_job_id) == before


def test_a_failure_that_is_not_about_the_message_is_logged_counted_and_retried(
    scene: Scene, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = scene.pipeline
    encord = pipeline.stack.encord
    assert encord is not None
    encord.fail_next("save_label_rows", status=503, times=RetryPolicy(attempt_seconds=0).max_attempts)
    capsys.readouterr()
    send(pipeline, scene.body)

    stats = pipeline.drain()

    assert stats.failures >= 1  # given back to the queue, then imported
    assert pipeline.ended_with_reports(scene.job_id).status is JobStatus.COMPLETED
    out = capsys.readouterr().out
    assert emitted(out, CHUNKS_FAILED) == stats.failures
    assert emitted(out, CHUNKS_REFUSED) == 0
    failures = [
        record.__dict__
        for record in caplog.records
        if record.levelno == logging.ERROR and record.__dict__.get("error_class")
    ]
    assert len(failures) == stats.failures
    assert all((logged["job_id"], logged["chunk_index"]) == (scene.job_id, 0) for logged in failures)
    assert all(logged["message_id"] and logged["error"] for logged in failures)


# ---------------------------------------------------------------- chunks that travel by claim check


@dataclass
class ClaimChecks:
    pipeline: Pipeline
    first: str
    first_body: str
    second: str
    second_body: str


def big_file(titles: list[str]) -> bytes:
    return jsonl([{"data_title": title, "objects": [{"name": "Persimmon", "polygon": RING}]} for title in titles])


@pytest.fixture
def claim_checks(pipeline: Pipeline) -> ClaimChecks:
    encord = pipeline.stack.encord
    assert encord is not None
    jobs, bodies = [], []
    for name in ("first", "second"):
        titles = [f"forged_{name}_{i}.jpg" for i in range(30)]
        for title in titles:
            encord.add_image(title)
        jobs.append(pipeline.drop(f"incoming/{name}.jsonl", big_file(titles)))
        [body] = take_queued(pipeline)
        assert "claim_check" in orjson.loads(body)
        bodies.append(body)
    return ClaimChecks(pipeline, jobs[0], bodies[0], jobs[1], bodies[1])


def chunk_object(job_id: str) -> str:
    return f"chunks/{job_id}/0.json"


def test_a_claim_check_naming_another_jobs_chunk_is_refused_without_reading_it(
    claim_checks: ClaimChecks,
    s3_reads: list[tuple[str, str]],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = claim_checks.first, claim_checks.second
    pointer = {"bucket": BUCKET, "key": chunk_object(first)}
    refusals = [
        Refusal(
            encoded({"job_id": second, "chunk_index": 0, "claim_check": pointer}),
            second,
            0,
            f"points at s3://{BUCKET}/{chunk_object(first)}",
        ),
        Refusal(
            encoded({**orjson.loads(claim_checks.second_body), "claim_check": {**pointer, "bucket": "someone-else"}}),
            second,
            0,
            f"points at s3://someone-else/{chunk_object(first)}",
        ),
    ]

    assert_refused(claim_checks.pipeline, refusals, [first, second], capsys, caplog)

    assert [read for read in s3_reads if read[1].startswith("chunks/")] == []


def test_a_queued_chunk_whose_claim_check_object_is_gone_fails_its_job(claim_checks: ClaimChecks) -> None:
    """Its rows can never be imported: the job ends FAILED with the reason, at the first delivery."""
    pipeline = claim_checks.pipeline
    pipeline.stack.client("s3").delete_object(Bucket=BUCKET, Key=chunk_object(claim_checks.first))
    pipeline.stack.encord.reset_counts()
    send(pipeline, claim_checks.first_body)

    assert pipeline.drain().failures == 0

    job = pipeline.ended_with_reports(claim_checks.first)
    assert job.status is JobStatus.FAILED
    assert job.failure == (
        f"OBJECT_UNAVAILABLE: chunk 0 was queued but its claim-check object "
        f"s3://{BUCKET}/{chunk_object(claim_checks.first)} cannot be read (NoSuchKey)"
    )
    assert pipeline.stack.encord.request_counts.total() == 0


def test_a_claim_check_object_rewritten_after_queueing_is_refused(
    claim_checks: ClaimChecks, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    s3 = claim_checks.pipeline.stack.client("s3")
    key = chunk_object(claim_checks.first)
    document = orjson.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    document["rows"] = document["rows"][:1]
    s3.put_object(Bucket=BUCKET, Key=key, Body=orjson.dumps(document))
    refusal = Refusal(claim_checks.first_body, claim_checks.first, 0, "content differs")

    assert_refused(claim_checks.pipeline, [refusal], [claim_checks.first], capsys, caplog)


def test_genuine_claim_checks_import(claim_checks: ClaimChecks, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = claim_checks.pipeline
    capsys.readouterr()
    send(pipeline, claim_checks.first_body)
    send(pipeline, claim_checks.second_body)

    assert pipeline.drain().failures == 0

    for job_id in (claim_checks.first, claim_checks.second):
        job = pipeline.ended_with_reports(job_id)
        assert (job.status, job.rows_imported) == (JobStatus.COMPLETED, 30)
    assert emitted(capsys.readouterr().out, CHUNKS_REFUSED) == 0


# ---------------------------------------------------------------- the register the validator writes


def test_the_validator_records_each_chunks_digest_before_sending_it(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    encord = pipeline.stack.encord
    assert encord is not None
    titles = [f"registered_{i}.jpg" for i in range(3)]
    for title in titles:
        encord.add_image(title)
    calls: list[str] = []
    original = BaseClient._make_api_call

    def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        calls.append(operation)
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    started = int(time.time())
    job_id = pipeline.drop("incoming/registered.jsonl", jsonl(image_records(titles)))
    finished = int(time.time())
    monkeypatch.undo()

    assert calls.index("BatchWriteItem") < calls.index("SendMessageBatch")
    [body] = take_queued(pipeline)
    table = pipeline.stack.client("dynamodb")
    item = table.get_item(TableName=TABLE, Key={k: {"S": v} for k, v in chunk_key(job_id, 0).items()})["Item"]
    assert chunk_key(job_id, 0)["sk"] == "CHUNK#000000"
    assert item["digest"]["S"] == chunk_digest(orjson.loads(body)["chunk"])
    ttl = settings().record_ttl_days * 86_400
    assert started + ttl <= int(item["expires_at"]["N"]) <= finished + ttl


def test_the_digest_survives_the_trip_through_json() -> None:
    document = {
        "job_id": "j",
        "chunk_index": 3,
        "rows": [{"records": [{"line": 2, "objects": [{"point": [0.1, 1e-7, 0.30000000000000004, 5e20, -0.0]}]}]}],
        "mode": "append",
        "project_hash": "p",
        "title": "café ✓",
    }
    sent = orjson.dumps({"job_id": "j", "chunk_index": 3, "chunk": document})
    assert chunk_digest(orjson.loads(sent)["chunk"]) == chunk_digest(document)
    assert chunk_digest({**document, "mode": "replace"}) != chunk_digest(document)


class _FlakyTable:
    """A DynamoDB resource whose BatchWriteItem leaves items unprocessed the first `times` calls."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.requests: list[dict[str, Any]] = []

    def Table(self, name: str) -> Any:
        return None

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(RequestItems)
        if len(self.requests) <= self.times:
            return {"UnprocessedItems": {name: items[:1] for name, items in RequestItems.items()}}
        return {"UnprocessedItems": {}}


def _digests(count: int) -> Iterator[ChunkDigest]:
    return (ChunkDigest("job", index, f"digest-{index}") for index in range(count))


def test_digests_dynamodb_leaves_unprocessed_are_written_again() -> None:
    resource = _FlakyTable(times=2)
    ChunkRegister("jobs", resource=resource, sleep=lambda _: None).record(_digests(30))

    sizes = [len(request["jobs"]) for request in resource.requests]
    assert sizes == [25, 1, 1, 5]  # 25 per batch; the item left unprocessed twice is sent again alone


def test_digests_dynamodb_keeps_unprocessed_fail_the_queueing() -> None:
    resource = _FlakyTable(times=1000)
    with pytest.raises(RuntimeError, match="unprocessed"):
        ChunkRegister("jobs", resource=resource, sleep=lambda _: None).record(_digests(3))

"""Every job ends in a terminal state with a report that tells the truth, whatever the file, the key or AWS do.

Each test runs the real handlers on moto and the fake Encord, and ends by checking the job's status and
that its report.json, summary.txt and errors.jsonl exist and agree with the job record.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from botocore.client import BaseClient

from label_importer.encord_target.retries import RetryPolicy
from label_importer.model.jobs import JobStatus
from label_importer.sources.bounded_reading import WRAP_UP_SECONDS
from label_importer.store.jobs import JobStore
from label_importer.store.s3_objects import label_files
from local.destinations import failed_invocation_record, sqs_event
from local.lambda_runtime import LambdaContext, cold_start, load_handler, s3_object_created_event
from local.pipeline import Pipeline
from local.sample_labels import image_records, jsonl
from local.stack import BUCKET, SECRET, TABLE

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TITLES = [f"terminal_{i}.jpg" for i in range(3)]


@pytest.fixture
def project(pipeline: Pipeline) -> Pipeline:
    for title in TITLES:
        pipeline.stack.encord.add_image(title)  # type: ignore[union-attr]
    return pipeline


def errors(pipeline: Pipeline, job_id: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in pipeline.report(job_id, "errors.jsonl").splitlines()]


def failure_code(pipeline: Pipeline, job_id: str) -> str:
    job = pipeline.ended_with_reports(job_id)
    assert job.status is JobStatus.FAILED
    [problem] = errors(pipeline, job_id)
    assert job.failure == f"{problem['code']}: {problem['message']}"
    assert f"Failed: {job.failure}" in pipeline.report(job_id, "summary.txt").decode()
    return str(problem["code"])


# ---------------------------------------------------------------- the system cannot process the file: FAILED


def test_a_version_purged_before_it_is_read_fails_the_job(project: Pipeline) -> None:
    event = project.upload("incoming/purged.jsonl", jsonl(image_records(TITLES)))
    version = event["Records"][0]["s3"]["object"]["versionId"]
    project.stack.client("s3").delete_object(Bucket=BUCKET, Key="incoming/purged.jsonl", VersionId=version)

    job_id = project.validate_event(event)

    assert failure_code(project, job_id) == "OBJECT_UNAVAILABLE"
    assert project.stack.encord.write_requests() == 0  # type: ignore[union-attr]


@pytest.fixture
def broken_secret(project: Pipeline) -> Iterator[str]:
    """The deployment's secret holds something that is not a private key (here: a public key line)."""
    secrets = project.stack.client("secretsmanager")
    good = secrets.get_secret_value(SecretId=SECRET)["SecretString"]
    bad = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNlY3JldC1tYXJrZXItdGhhdC1tdXN0LW5vdC1sZWFr me@laptop"
    secrets.put_secret_value(SecretId=SECRET, SecretString=bad)
    cold_start()
    try:
        yield bad
    finally:
        secrets.put_secret_value(SecretId=SECRET, SecretString=good)
        cold_start()


def test_a_secret_that_is_not_a_key_fails_the_job_without_showing_it(
    broken_secret: str, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh = Pipeline.on(pipeline.stack)

    job_id = fresh.drop("incoming/with-bad-secret.jsonl", jsonl(image_records(TITLES)))

    assert failure_code(fresh, job_id) == "ENCORD_KEY_UNUSABLE"
    secret_part = broken_secret.split()[1]
    for name in ("report.json", "summary.txt", "errors.jsonl"):
        assert secret_part not in fresh.report(job_id, name).decode()
    assert secret_part not in capsys.readouterr().out  # nor in the logs


def test_encord_down_through_every_retry_fails_the_job(project: Pipeline) -> None:
    project.stack.encord.fail_next(  # type: ignore[union-attr]
        "list_label_rows", status=503, times=RetryPolicy(attempt_seconds=0).max_attempts
    )

    job_id = project.drop("incoming/encord-down.jsonl", jsonl(image_records(TITLES)))

    assert failure_code(project, job_id) == "ENCORD_UNAVAILABLE"
    assert project.queued_messages() == 0


def test_a_validator_short_of_time_fails_the_job_before_it_is_killed(project: Pipeline) -> None:
    event = project.upload("incoming/no-time.jsonl", jsonl(image_records(TITLES)))
    almost_over = LambdaContext("ValidateAndChunkFunction", timeout_seconds=WRAP_UP_SECONDS - 1)

    job_id = project.validate(event, almost_over)["jobs"][0]["job_id"]

    assert failure_code(project, job_id) == "OUT_OF_TIME"
    assert "split the file" in errors(project, job_id)[0]["message"]
    assert project.queued_messages() == 0


def test_an_unexpected_error_fails_the_job_with_its_report(project: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the validator did not foresee (here SQS refusing the chunks) still ends the job."""
    original = BaseClient._make_api_call

    def refuse_sends(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation == "SendMessageBatch":
            raise RuntimeError("SQS is having a bad day")
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", refuse_sends)
    job_id = project.drop("incoming/unforeseen.jsonl", jsonl(image_records(TITLES)))
    monkeypatch.undo()

    assert failure_code(project, job_id) == "INTERNAL_ERROR"
    assert "RuntimeError: SQS is having a bad day" in errors(project, job_id)[0]["message"]


_KILLABLE_VALIDATOR = """
import json, sys
from local.lambda_runtime import LambdaContext, load_handler
event = json.loads(sys.argv[1])
load_handler("validate_and_chunk")(event, LambdaContext("ValidateAndChunkFunction"))
"""


def test_a_killed_validator_ends_failed_through_its_failure_destination(project: Pipeline) -> None:
    """SIGKILL stands for Lambda killing the validator (memory, a timeout): the job is left VALIDATING until the
    record Lambda sends to the on-failure destination reaches the failures function."""
    event = project.upload("incoming/killed.jsonl", jsonl(image_records(TITLES)))
    [ref] = label_files(event)
    project.stack.encord.slow_next("list_label_rows", seconds=20)  # type: ignore[union-attr]
    validator = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE_VALIDATOR, json.dumps(event)], cwd=ROOT, stdout=subprocess.DEVNULL
    )
    jobs = JobStore(TABLE)
    try:
        while jobs.get(ref.job_id) is None or not project.stack.encord.request_counts["list_label_rows"]:  # type: ignore[union-attr]
            assert validator.poll() is None, "the validator ended before it could be killed"
            time.sleep(0.05)
    finally:
        os.kill(validator.pid, signal.SIGKILL)
        validator.wait()
    assert jobs.get(ref.job_id).status is JobStatus.VALIDATING  # type: ignore[union-attr]

    failures = load_handler("validation_failures")
    response = failures(sqs_event(failed_invocation_record(event)), LambdaContext("ValidationFailuresFunction"))

    assert response == {"batchItemFailures": []}
    assert failure_code(project, ref.job_id) == "VALIDATOR_STOPPED"
    assert "Task timed out" in errors(project, ref.job_id)[0]["message"]


def test_a_failure_record_cannot_touch_a_job_that_was_queued_or_forge_anything(project: Pipeline) -> None:
    event = project.upload("incoming/queued.jsonl", jsonl(image_records(TITLES)))
    job_id = project.validate_event(event)
    failures = load_handler("validation_failures")

    response = failures(
        sqs_event(failed_invocation_record(event), '{"not": "a record"}', "not even JSON"),
        LambdaContext("ValidationFailuresFunction"),
    )

    assert response == {"batchItemFailures": []}  # nothing to retry: a bad record is dropped, not redriven
    assert project.job(job_id).status is JobStatus.QUEUED
    project.drain()
    assert project.ended_with_reports(job_id).status is JobStatus.COMPLETED


def test_chunks_of_a_job_that_is_no_longer_importing_are_dropped(project: Pipeline) -> None:
    """A replayed chunk of a rolled-back import must not put its labels back."""
    job_id = project.drop("incoming/replayed.jsonl", jsonl(image_records(TITLES)))
    sqs = project.stack.client("sqs")
    [message] = sqs.receive_message(QueueUrl=project.stack.queue_url, VisibilityTimeout=0)["Messages"]
    project.drain()
    rollback = load_handler("rollback")
    assert rollback({"job_id": job_id}, LambdaContext("RollbackFunction"))["status"] == "COMPLETED"
    writes = project.stack.encord.write_requests()  # type: ignore[union-attr]

    sqs.send_message(QueueUrl=project.stack.queue_url, MessageBody=message["Body"])
    project.drain()

    assert project.stack.encord.write_requests() == writes  # type: ignore[union-attr]
    assert project.job(job_id).status is JobStatus.ROLLED_BACK


# ---------------------------------------------------------------- reports: written, complete, true


def test_a_repeated_event_for_a_finished_job_writes_its_missing_report(project: Pipeline) -> None:
    rejected_event = project.upload("incoming/bad.jsonl", jsonl([{"data_title": "nope.jpg", "objects": []}]))
    rejected = project.validate_event(rejected_event)
    completed = project.run("incoming/good.jsonl", jsonl(image_records(TITLES))).job_id
    s3 = project.stack.client("s3")
    for job_id in (rejected, completed):
        for name in ("report.json", "summary.txt"):
            s3.delete_object(Bucket=BUCKET, Key=f"reports/{job_id}/{name}")

    assert project.validate_event(rejected_event) == rejected
    assert project.validate_event(s3_object_created_event(project.stack, "incoming/good.jsonl")) == completed

    assert project.ended_with_reports(rejected).status is JobStatus.REJECTED
    assert orjson.loads(project.report(rejected, "report.json"))["problems"]["first"][0]["code"] == "UNKNOWN_DATA_UNIT"
    assert project.ended_with_reports(completed).status is JobStatus.COMPLETED


def test_a_rejection_whose_report_upload_failed_is_reported_by_the_retry(
    project: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = BaseClient._make_api_call

    def fail_report_upload(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation == "PutObject" and str(params.get("Key", "")).endswith("/report.json"):
            raise ConnectionError("S3 went away")
        return original(client, operation, params)

    event = project.upload("incoming/unlucky.jsonl", jsonl([{"data_title": "nope.jpg", "objects": []}]))
    monkeypatch.setattr(BaseClient, "_make_api_call", fail_report_upload)
    with pytest.raises(ConnectionError):
        project.validate_event(event)  # the invocation fails: Lambda retries the event
    monkeypatch.undo()
    [ref] = label_files(event)
    assert project.job(ref.job_id).status is JobStatus.VALIDATING

    project.validate_event(event)

    assert project.ended_with_reports(ref.job_id).status is JobStatus.REJECTED


def test_a_skip_invalid_job_reports_the_problems_its_errors_list(project: Pipeline) -> None:
    records = [*image_records(TITLES[:2]), {"data_title": "nope.jpg", "objects": []}, {"data_title": 7}]
    job = project.run("incoming/skip.jsonl", jsonl(records, header={"on_error": "skip-invalid"}))

    project.ended_with_reports(job.job_id)
    report = orjson.loads(project.report(job.job_id, "report.json"))
    assert (job.status, job.rows_imported, report["problems"]["count"]) == (JobStatus.COMPLETED, 2, 2)
    assert [problem["line"] for problem in report["problems"]["first"]] == [4, 5]  # the header is line 1
    assert "Problems in the file: 2" in project.report(job.job_id, "summary.txt").decode()


def test_a_file_level_problem_is_listed_first_however_many_came_before(project: Pipeline) -> None:
    """5001 records (MAX_RECORDS is 5000 here), the first 1500 invalid: more than MAX_REPORTED_ERRORS (1000)."""
    body = jsonl([{"data_title": "nope.jpg"}] * 1500 + [{"data_title": TITLES[0]}] * 3501)

    job_id = project.drop("incoming/crowded.jsonl", body)

    assert project.ended_with_reports(job_id).status is JobStatus.REJECTED
    listed = errors(project, job_id)
    assert listed[0]["code"] == "TOO_MANY_RECORDS"
    assert len(listed) == 1001  # the file's problem and the first 1000 of the records'


def test_labels_added_counts_a_save_that_was_applied_then_answered_with_an_error(project: Pipeline) -> None:
    project.stack.encord.drop_next("save_label_rows", after_commit=True)  # type: ignore[union-attr]

    job = project.run("incoming/applied-twice.jsonl", jsonl(image_records(TITLES)))

    rows = project.stack.read_back([unit.data_hash for unit in project.stack.encord_project().list_label_rows_v2()])
    on_encord = sum(len(row.get_object_instances()) + len(row.get_classification_instances()) for row in rows.values())
    assert project.ended_with_reports(job.job_id).status is JobStatus.COMPLETED
    assert job.labels_added == on_encord > 0


# ---------------------------------------------------------------- bounded work


def test_a_data_unit_over_the_chunk_bytes_is_invalid_and_chunks_are_cut_by_bytes(project: Pipeline) -> None:
    """MAX_CHUNK_BYTES is 1 MiB here: the first data unit's lines cross it at line `over`; the others take just
    over half of it each."""
    ring = [[round(0.1 + 0.8 * i / 1999, 6), round(0.5 + 0.4 * (i % 2), 6)] for i in range(1999)]
    heavy = {"objects": [{"name": "Persimmon", "polygon": ring} for _ in range(5)]}
    line_bytes = len(orjson.dumps({"data_title": TITLES[0], **heavy}))
    over = (1 << 20) // line_bytes + 1
    half = (1 << 19) // line_bytes + 1
    records = [{"data_title": TITLES[0], **heavy} for _ in range(over)]
    records += [{"data_title": title, **heavy} for title in TITLES[1:] for _ in range(half)]

    rejected = project.drop("incoming/too-heavy.jsonl", jsonl(records))
    skipped = project.drop("incoming/too-heavy-skip.jsonl", jsonl(records, header={"on_error": "skip-invalid"}))

    assert project.ended_with_reports(rejected).status is JobStatus.REJECTED
    assert {(e["line"], e["code"]) for e in errors(project, rejected)} == {(over, "DATA_UNIT_TOO_LARGE")}
    project.drain()
    job = project.ended_with_reports(skipped)
    # No two of the three rows fit one 1 MiB chunk, though BundleSize would allow 100 rows.
    assert (job.status, job.total_rows, job.total_chunks, job.rows_imported) == (JobStatus.COMPLETED, 3, 3, 3)


def test_a_header_naming_a_folder_that_is_not_a_project_is_refused(project: Pipeline) -> None:
    job_id = project.drop("incoming/team-a/labels.jsonl", jsonl(image_records(TITLES)))

    assert project.ended_with_reports(job_id).status is JobStatus.REJECTED
    [problem] = errors(project, job_id)
    assert (problem["field"], problem["code"]) == ("key", "INVALID_VALUE")
    assert project.stack.encord.request_counts["get_project"] == 0  # type: ignore[union-attr]


def test_every_failure_code_in_the_readme_is_produced_by_a_test_here() -> None:
    readme = (ROOT / "docs" / "operations.md").read_text()
    table = readme[readme.index("| failure code |") : readme.index("The validator keeps `WRAP_UP_SECONDS`")]
    documented = set(re.findall(r"^\| `([A-Z][A-Z_]+)`", table, flags=re.MULTILINE))
    here = Path(__file__).read_text()
    assert len(documented) == 6
    tested = {code for code in documented if re.search(rf'\) == "{code}"', here)}
    assert tested == documented

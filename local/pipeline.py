"""The product as a user meets it, on the local stack: drop a file, the Lambdas run, read job and reports.

Shared by the demo, the integration tests and the benchmarks, so all three exercise the same path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from label_importer.model.jobs import TERMINAL, Job
from label_importer.store.jobs import JobStore
from label_importer.store.s3_objects import DRY_RUN_METADATA
from local.lambda_runtime import (
    DrainStats,
    Handler,
    LambdaContext,
    drain_concurrently,
    drain_in_processes,
    drain_queue,
    load_handler,
    s3_object_created_event,
)
from local.stack import BUCKET, TABLE, LocalStack


@dataclass
class Pipeline:
    stack: LocalStack
    validate: Handler
    import_labels: Handler
    rollback: Handler = field(default_factory=lambda: load_handler("rollback"))
    validation_failures: Handler = field(default_factory=lambda: load_handler("validation_failures"))
    """The four functions: in this process by default, or the built artifact behind the runtime emulator."""

    @classmethod
    def on(cls, stack: LocalStack) -> Pipeline:
        # Loaded only once the stack is up: the handlers read the environment it sets when first used.
        return cls(stack, load_handler("validate_and_chunk"), load_handler("import_labels"))

    def upload(self, key: str, body: bytes, *, dry_run: bool = False) -> dict[str, Any]:
        """Put the file in the bucket (with `dry-run: true` metadata, a dry run whatever its options); return the S3
        event Lambda would receive for it."""
        metadata = {DRY_RUN_METADATA: "true"} if dry_run else {}
        self.stack.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body, Metadata=metadata)
        return s3_object_created_event(self.stack, key)

    def validate_event(self, event: dict[str, Any]) -> str:
        return self.validate(event, LambdaContext("ValidateAndChunkFunction"))["jobs"][0]["job_id"]

    def drop(self, key: str, body: bytes, *, dry_run: bool = False) -> str:
        """Upload and run the validator on the S3 event; return the job id."""
        return self.validate_event(self.upload(key, body, dry_run=dry_run))

    def drain(self, *, consumers: int = 1, processes: bool = False, timeout_seconds: float = 300.0) -> DrainStats:
        """Run the import function on queued chunks until none is left, with `consumers` concurrent
        containers (threads, or `processes`), each invocation given `timeout_seconds`."""
        if processes:
            return drain_in_processes(self.stack, consumers, timeout_seconds=timeout_seconds)
        if consumers == 1:
            return drain_queue(self.stack, self.import_labels, timeout_seconds=timeout_seconds)
        handlers = [load_handler("import_labels", container=i) for i in range(1, consumers + 1)]
        return drain_concurrently(self.stack, handlers, timeout_seconds=timeout_seconds)

    def run(self, key: str, body: bytes) -> Job:
        """Drop the file, drain the queue; return the job, which must have ended with its reports."""
        job_id = self.drop(key, body)
        self.drain()
        return self.ended_with_reports(job_id)

    def ended_with_reports(self, job_id: str) -> Job:
        """The job, checked to be in a terminal status with report.json, summary.txt and (given problems)
        errors.jsonl that agree with its record: status, rows, labels, failure and problem count."""
        job = self.job(job_id)
        assert job.status in TERMINAL, f"job {job_id} is {job.status}, not finished"
        report = orjson.loads(self.report(job_id, "report.json"))
        summary = self.report(job_id, "summary.txt").decode()
        assert report["status"] == job.status and summary.startswith(f"Import job {job_id}: {job.status}\n")
        rows = {"total": job.total_rows, "imported": job.rows_imported, "rolled_back": job.rows_rolled_back}
        rows |= {"failed": job.rows_failed, "skipped": job.rows_skipped, "superseded": job.rows_superseded}
        assert report["rows"] == rows
        assert len(report["superseded_rows"]) == job.rows_superseded
        labels = (report["labels_added"], report["labels_removed"], report["failure"])
        assert labels == (job.labels_added, job.labels_removed, job.failure)
        count = report["problems"]["count"]
        assert count == job.problem_count
        if count:
            listed = self.report(job_id, "errors.jsonl").splitlines()
            truncated = (
                self.stack.client("s3")
                .list_objects_v2(Bucket=BUCKET, Prefix=f"reports/{job_id}/errors-truncated.txt")
                .get("KeyCount", 0)
            )
            unlisted = int(self.report(job_id, "errors-truncated.txt").split()[0]) if truncated else 0
            assert len(listed) + unlisted == count
            shown = report["problems"]["first"]
            assert shown == [orjson.loads(line) for line in listed[: len(shown)]]
        return job

    def save_then_die(self, job_id: str) -> None:
        """Be a consumer that takes the job's first queued chunk, journals and saves it to Encord as the import
        function does, then dies before recording anything: the message comes back after its visibility timeout.

        It holds no lease (nothing else imports meanwhile) and knows no upload history, as a first import has none.
        """
        from functools import partial

        from label_importer.model.upload_order import Upload
        from label_importer.services.import_chunk import ChunkImporter
        from label_importer.store.chunk_queue import load_chunk
        from label_importer.store.rollback_journal import write_entry

        sqs, s3 = self.stack.client("sqs"), self.stack.client("s3")
        [message] = sqs.receive_message(QueueUrl=self.stack.queue_url, VisibilityTimeout=0)["Messages"]
        chunk = load_chunk(message["Body"], s3)
        job = self.job(job_id)
        journal = partial(write_entry, s3, BUCKET, job_id, chunk.chunk_index)
        upload = Upload(job_id, job.upload_order, chunk.mode, job.branch)
        importer = ChunkImporter(self.stack.encord_project(), 100, upload, {}, lambda data_hashes: None)
        importer.import_rows(chunk.rows, journal)

    def job(self, job_id: str) -> Job:
        job = JobStore(TABLE).get(job_id)
        if job is None:
            raise LookupError(f"no job {job_id}")
        return job

    def report(self, job_id: str, name: str) -> bytes:
        return self.stack.client("s3").get_object(Bucket=BUCKET, Key=f"reports/{job_id}/{name}")["Body"].read()

    def queued_messages(self) -> int:
        attributes = self.stack.client("sqs").get_queue_attributes(
            QueueUrl=self.stack.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

"""`label-importer import FILE --project HASH`: import a label file from this machine, without AWS.

The same validator and import function run as in the deployed pipeline, in this process: the bucket, queue
and table they use are moto's, in memory, and disappear when the command ends; only Encord is real. So a
file gets exactly the checks, chunks, bundled requests, exactly-once records and reports it would get in
AWS. The reports are copied to `--out/<job-id>/` (`report.json`, `summary.txt`, and `errors.jsonl` when the
file has problems), the Lambda logs to `lambda-logs.jsonl` beside them. Meant for small jobs and for trying
the format; a rollback needs the journal of a deployed stack, so jobs imported here cannot be rolled back.

Before any of that, the key and the project are checked (`encord_key.key_problem`, `check_target`): deployed, a wrong
key or project ends a job FAILED or REJECTED minutes later; here the person who typed the command is waiting,
and a bad key file, an unreachable domain or a project the key cannot open is answered in a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from encord import EncordUserClient
from encord.http.constants import RequestsSettings

from label_importer.model.jobs import Job, RowOutcome, RowStatus
from label_importer.store.jobs import JobStore
from label_importer.store.reports import REPORTS_PREFIX
from label_importer_cli.progress import watch
from local.pipeline import Pipeline
from local.stack import BUCKET, TABLE, EncordTarget, local_stack

POLL_SECONDS = 0.5
DEFAULT_TIMEOUT_SECONDS = 30
"""How long the check waits for Encord, unless ENCORD_TIMEOUT_SECONDS says otherwise (as for the functions)."""


@dataclass(frozen=True)
class LocalImport:
    """How a local import ended: the job, and, when it did not finish, what is left of it."""

    job: Job
    reports: Path
    """`<out>/<job-id>/`: the reports (once the job finished) and the functions' logs."""
    dead_lettered: int = 0
    """Chunks in the dead-letter queue: Encord kept failing them past maxReceiveCount, so the job cannot finish."""
    waiting_rows: list[RowOutcome] = field(default_factory=list)
    """Rows not imported because their chunk kept failing, each with the last error."""


def check_target(target: EncordTarget) -> None:
    """Open the project once, as the validator will: raises the SDK's own error when Encord cannot be reached,
    refuses the key, or has no such project for it (the command turns each into one line and exit code 5).

    Two requests (the project and its ontology), no retries: a user runs the command again.
    """
    try:
        timeout = int(os.environ.get("ENCORD_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT_SECONDS)
    except ValueError:
        timeout = DEFAULT_TIMEOUT_SECONDS
    client = EncordUserClient.create_with_ssh_private_key(
        ssh_private_key=target.ssh_private_key,
        domain=target.domain,
        requests_settings=RequestsSettings(
            max_retries=0,
            connection_retries=0,
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
        ),
    )
    client.get_project(target.project_hash)


def import_file(label_file: Path, target: EncordTarget, out: Path, *, dry_run: bool = False) -> LocalImport:
    """Run the file through the pipeline into `target`'s project; return how the job ended, finished or not.
    `dry_run` makes it a dry run whatever the file's options say: its diff is read, nothing is written."""
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "lambda-logs.jsonl"
    with local_stack(target=target) as stack:
        pipeline = Pipeline.on(stack)
        key = f"incoming/{target.project_hash}/{label_file.name}"
        consumer: _Consumer | None = None
        # Closed only once the consumer has stopped writing to it: after Ctrl-C it may still log a line while
        # the process winds down, and logging to a closed file prints a traceback.
        log = logs.open("w")
        try:
            with _functions_output_to(log):
                job_id = pipeline.drop(key, label_file.read_bytes(), dry_run=dry_run)
                jobs = JobStore(TABLE)
                job = jobs.get(job_id)
                assert job is not None
                consumer = _Consumer(pipeline)
                consumer.start()
                job = watch(jobs, job, POLL_SECONDS, as_json=False, stop=consumer.drained.is_set)
                consumer.finish()
        finally:
            if consumer is None or not consumer.is_alive():
                log.close()
        dead_lettered = _messages(stack.client("sqs"), stack.dead_letter_queue_url)
        waiting = jobs.rows(job_id, RowStatus.RETRYING) if dead_lettered else []
        _copy_reports(stack.client("s3"), job_id, out / job_id)
        logs.replace(out / job_id / "lambda-logs.jsonl")
        return LocalImport(job, out / job_id, dead_lettered, waiting)


@contextlib.contextmanager
def _functions_output_to(log: TextIO) -> Iterator[None]:
    """Everything the functions write goes to `log`, none of it to the terminal: their prints (EMF metrics) and
    the Powertools logger, whose handler holds the stdout it was created with (redirecting sys.stdout misses
    it), and which may log a stack trace.

    Left pointing at `log` when the block fails, for the consumer thread still running after a Ctrl-C.
    """
    from label_importer.runtime.observability import logger  # loaded with the handlers, once POWERTOOLS_* are set

    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(log)
    with contextlib.redirect_stdout(log):
        yield
    if previous is not None:
        handler.setStream(previous)


class _Consumer(threading.Thread):
    """The import function draining the queue, beside the progress bar; its failure is raised by `finish`, on
    the command's thread, so it is reported like any other (a thread's own traceback would reach the terminal).
    """

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(daemon=True)  # a Ctrl-C must not wait for the chunk in hand
        self._pipeline = pipeline
        self.drained = threading.Event()
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._pipeline.drain()
        except BaseException as error:  # kept for finish(); after a Ctrl-C nobody asks
            self._error = error
        finally:
            self.drained.set()

    def finish(self) -> None:
        self.join()
        if self._error is not None:
            raise self._error


def _messages(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _copy_reports(s3: Any, job_id: str, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    prefix = f"{REPORTS_PREFIX}{job_id}/"
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    for entry in listed.get("Contents", []):
        body = s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read()
        (into / entry["Key"].removeprefix(prefix)).write_bytes(body)

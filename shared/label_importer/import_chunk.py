"""Import one chunk: list once, initialise in one bundle, apply, save in one bundle, record every row.

That is three Encord round trips per chunk (four when it mixes labelled and unlabelled data units: the
bundle creates the new label rows and fetches the existing ones in separate requests) instead of two per
data unit. Only on the failure path does it spend more: a bundle Encord rejects is saved again row by
row, so one bad row fails alone and the rest of the chunk lands; a transient fault repeats the whole
attempt (fresh label rows, so nothing half-applied is saved) while the invocation has time.

Around it: rows this job already recorded are skipped, and each data unit is leased for the duration
(leases.py) so two jobs never save over each other's labels. Rows whose data unit another consumer holds
wait for it inside the invocation, and go back to the queue with the message if time runs short.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from encord import Project
from encord.exceptions import LabelRowError
from encord.objects import LabelRowV2

from label_importer.chunk_queue import load_chunk
from label_importer.encord_gateway import is_transient, open_project
from label_importer.job_endings import write_final_report
from label_importer.job_store import FINISHED_ROW, TERMINAL, Job, JobStatus, JobStore, RowOutcome, RowStatus
from label_importer.label_builder import LabelBuilder, RowConflict
from label_importer.label_format import Mode
from label_importer.leases import DataUnitLeases
from label_importer.messages import Chunk, ChunkRow
from label_importer.observability import (
    CHUNKS_IMPORTED,
    ENCORD_REQUEST_LATENCY,
    JOBS_COMPLETED,
    JOBS_COMPLETED_WITH_ERRORS,
    LEASE_WAITS,
    ROWS_FAILED,
    ROWS_IMPORTED,
    logger,
    metrics,
)
from label_importer.ontology_resolver import OntologyResolver, UnresolvedLabel
from label_importer.reports import ReportWriter
from label_importer.retries import Deadline, RetryPolicy
from label_importer.rollback_journal import RowChanges, added_by_earlier_attempts, write_entry
from label_importer.settings import Settings

Journal = Callable[[dict[str, RowChanges]], None]

ROW_ERRORS = (UnresolvedLabel, RowConflict, LabelRowError, ValueError)
"""Problems with one row's labels found while applying them: the row fails, the chunk goes on."""


@contextmanager
def _timed_encord_call() -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics.add_metric(
            name=ENCORD_REQUEST_LATENCY, unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
        )


def _failed(row: ChunkRow, reason: str) -> RowOutcome:
    return RowOutcome(row.data_hash, RowStatus.FAILED, row.lines, reason=reason)


class ChunkImporter:
    def __init__(self, project: Project, bundle_size: int, journaled: dict[str, set[str]] | None = None) -> None:
        self._project = project
        self._bundle_size = bundle_size
        self._builder = LabelBuilder(OntologyResolver(project.ontology_structure))
        self._journaled = {} if journaled is None else journaled
        """Per row, the label hashes this job's attempts journaled as theirs (earlier ones included, shared
        between attempts): a row's `labels_added` are those of them present once it is saved."""
        self.requests = 0
        """Encord requests sent so far (counted before sending, so failed ones count too)."""

    def import_rows(self, rows: list[ChunkRow], mode: Mode, journal: Journal) -> list[RowOutcome]:
        """Outcomes for every row; raises only on transient Encord faults (the chunk is then retried).
        `journal` hears what will change on each row before anything is saved (rollback_journal.py)."""
        self.requests += 1
        with _timed_encord_call():
            listed = self._project.list_label_rows_v2(data_hashes=[row.data_hash for row in rows])
        label_rows = {label_row.data_hash: label_row for label_row in listed}
        outcomes = [
            _failed(row, "the data unit is no longer in the project") for row in rows if row.data_hash not in label_rows
        ]
        present = [row for row in rows if row.data_hash in label_rows]

        # A bundle creates missing label rows and fetches existing ones: one request for each kind present.
        self.requests += len({label_rows[row.data_hash].label_hash is None for row in present})
        with _timed_encord_call(), self._project.create_bundle(bundle_size=self._bundle_size) as bundle:
            for row in present:
                label_rows[row.data_hash].initialise_labels(bundle=bundle)

        to_save: list[tuple[ChunkRow, LabelRowV2, set[str]]] = []
        changes: dict[str, RowChanges] = {}
        for row in present:
            label_row = label_rows[row.data_hash]
            if not label_row.is_labelling_initialised:
                # A bundle silently skips rows the server left out of its answer; never save those empty.
                outcomes.append(_failed(row, "Encord did not return this label row when it was initialised"))
                continue
            objects, classifications = label_hashes(label_row)
            before = label_row.to_encord_dict() if mode is Mode.REPLACE else None
            try:
                self._builder.apply(label_row, row, mode)
            except ROW_ERRORS as error:
                outcomes.append(_failed(row, f"labels could not be applied: {error}"))
                continue
            objects_now, classifications_now = label_hashes(label_row)
            changes[row.data_hash] = RowChanges(objects_now - objects, classifications_now - classifications, before)
            to_save.append((row, label_row, objects_now | classifications_now))
        if changes:
            journal(changes)
            for data_hash, change in changes.items():
                self._journaled.setdefault(data_hash, set()).update(change.objects | change.classifications)
        return outcomes + self._save(to_save)

    def _save(self, to_save: list[tuple[ChunkRow, LabelRowV2, set[str]]]) -> list[RowOutcome]:
        if not to_save:
            return []
        try:
            self._save_bundle([label_row for _, label_row, _ in to_save])
        except Exception as error:
            if is_transient(error):
                raise
            if len(to_save) == 1:
                row, _, _ = to_save[0]
                return [_failed(row, f"Encord rejected the labels: {error}")]
            logger.warning("bundled save rejected; saving rows one by one", extra={"error": str(error)})
            return [outcome for item in to_save for outcome in self._save([item])]
        return [
            RowOutcome(
                row.data_hash,
                RowStatus.IMPORTED,
                row.lines,
                labels_added=len(self._journaled.get(row.data_hash, set()) & saved),
            )
            for row, _, saved in to_save
        ]

    def _save_bundle(self, label_rows: list[LabelRowV2]) -> None:
        self.requests += 1
        with _timed_encord_call(), self._project.create_bundle(bundle_size=self._bundle_size) as bundle:
            for label_row in label_rows:
                label_row.save(bundle=bundle)


def label_hashes(label_row: LabelRowV2) -> tuple[set[str], set[str]]:
    return (
        {instance.object_hash for instance in label_row.get_object_instances()},
        {instance.classification_hash for instance in label_row.get_classification_instances()},
    )


class DataUnitsBusy(Exception):
    """Other consumers held some of the chunk's data units until the invocation ran short of time."""


@dataclass(frozen=True)
class Collaborators:
    """The import function's outside world, built once per container (handlers) or per test."""

    s3: Any
    jobs: JobStore
    leases: DataUnitLeases
    reports: ReportWriter
    open_project: Callable[[str], Project]
    bundle_size: int
    retry_policy: RetryPolicy

    @classmethod
    def from_settings(cls, settings: Settings) -> Collaborators:
        # A session of its own: boto3's default session is not thread-safe, and local runs drive several
        # containers from threads of one process.
        session = boto3.session.Session()
        s3, dynamodb = session.client("s3"), session.resource("dynamodb")
        return cls(
            s3=s3,
            jobs=JobStore(settings.jobs_table_name, ttl_days=settings.record_ttl_days, resource=dynamodb),
            leases=DataUnitLeases(settings.jobs_table_name, settings.lease_seconds, resource=dynamodb),
            reports=ReportWriter(s3),
            open_project=lambda project_hash: open_project(settings, project_hash),
            bundle_size=settings.bundle_size,
            retry_policy=RetryPolicy.from_settings(settings),
        )


def import_message(body: str, world: Collaborators, deadline: Deadline, *, delivery: int = 1) -> None:
    """Import the chunk an SQS message carries (inline or by claim check); `delivery` is SQS's receive count."""
    chunk = load_chunk(body, world.s3)
    logger.set_correlation_id(chunk.job_id)
    import_chunk(chunk, world, deadline, delivery=delivery)


_IMPORTING = (JobStatus.VALIDATING, JobStatus.QUEUED, JobStatus.IMPORTING)
"""Jobs whose chunks may be imported: the validator sends chunks before it marks the job QUEUED."""


def import_chunk(chunk: Chunk, world: Collaborators, deadline: Deadline, *, delivery: int = 1) -> None:
    """Import the rows of `chunk` this job has not recorded yet, then finish the job if it is done.

    Raises (so the message is delivered again) when Encord stays unavailable or data units stay leased
    until too little of the invocation is left; whatever was recorded by then is kept and skipped next time.
    """
    job = world.jobs.get(chunk.job_id)
    if job is None or job.status not in _IMPORTING:
        # Failed, rejected, rolled back or finished: nothing of it may be imported (again).
        logger.warning(
            "chunk of a job that is not importing; dropped",
            extra={"chunk_index": chunk.chunk_index, "status": str(job.status) if job else None},
        )
        return
    statuses = world.jobs.row_statuses(chunk.job_id, [row.data_hash for row in chunk.rows])
    remaining = [row for row in chunk.rows if statuses.get(row.data_hash) not in FINISHED_ROW]
    journaled: dict[str, set[str]] = {}
    if not remaining:
        logger.info("chunk already imported; redelivery skipped", extra={"chunk_index": chunk.chunk_index})
    else:
        world.jobs.transition(chunk.job_id, JobStatus.IMPORTING, allowed_from=[JobStatus.QUEUED])
        if delivery > 1 or RowStatus.RETRYING in statuses.values():  # an earlier attempt may have saved
            journaled = added_by_earlier_attempts(world.s3, job.bucket, chunk.job_id, chunk.chunk_index)
        journal: Journal = partial(write_entry, world.s3, job.bucket, chunk.job_id, chunk.chunk_index)
    holder = f"{chunk.job_id}/{chunk.chunk_index}/{uuid.uuid4().hex}"
    waits = 0
    while remaining:
        leased = world.leases.acquire([row.data_hash for row in remaining], holder)
        try:
            leased_rows = [row for row in remaining if row.data_hash in leased]
            _import_leased(leased_rows, chunk, world, deadline, journal, journaled)
        finally:
            world.leases.release(leased, holder)
        remaining = [row for row in remaining if row.data_hash not in leased]
        if remaining:
            waits += 1
            metrics.add_metric(name=LEASE_WAITS, unit=MetricUnit.Count, value=1)
            pause = random.uniform(0.5, 1.0) * min(2.0**waits, 10.0) * world.retry_policy.backoff_seconds
            if deadline.remaining() - pause < world.retry_policy.attempt_seconds:
                world.jobs.note_retry(
                    chunk.job_id,
                    {row.data_hash: row.lines for row in remaining},
                    attempts=0,
                    error="another import holds this data unit's lease; waiting for it to finish",
                    encord_requests=0,
                )
                raise DataUnitsBusy(f"{len(remaining)} data units stayed leased by other imports; retrying later")
            world.retry_policy.sleep(pause)
    finish_if_done(chunk.job_id, world.jobs, world.reports)


def _import_leased(
    rows: list[ChunkRow],
    chunk: Chunk,
    world: Collaborators,
    deadline: Deadline,
    journal: Journal,
    journaled: dict[str, set[str]],
) -> None:
    """Import and record rows whose data units this consumer holds."""
    if not rows:
        return
    # Checked again under the lease: another delivery of this chunk may have recorded them while we waited.
    finished = world.jobs.finished_rows(chunk.job_id, [row.data_hash for row in rows])
    todo = [row for row in rows if row.data_hash not in finished]
    if not todo:
        return
    attempts = requests = 0

    def attempt() -> list[RowOutcome]:
        nonlocal attempts, requests
        attempts += 1
        importer = ChunkImporter(world.open_project(chunk.project_hash), world.bundle_size, journaled)
        try:
            return importer.import_rows(todo, chunk.mode, journal)
        finally:
            requests += importer.requests

    try:
        outcomes = world.retry_policy.call(attempt, deadline)
    except Exception as error:
        if is_transient(error):
            world.jobs.note_retry(
                chunk.job_id,
                {row.data_hash: row.lines for row in todo},
                attempts=attempts,
                error=f"{type(error).__name__}: {error}",
                encord_requests=requests,
            )
        raise
    world.jobs.record_rows(chunk.job_id, outcomes, attempts=attempts, encord_requests=requests)
    imported = sum(1 for outcome in outcomes if outcome.status is RowStatus.IMPORTED)
    metrics.add_metric(name=ROWS_IMPORTED, unit=MetricUnit.Count, value=imported)
    metrics.add_metric(name=ROWS_FAILED, unit=MetricUnit.Count, value=len(outcomes) - imported)
    metrics.add_metric(name=CHUNKS_IMPORTED, unit=MetricUnit.Count, value=1)


def finish_if_done(job_id: str, jobs: JobStore, reports: ReportWriter) -> Job | None:
    """Whichever consumer records the last row finishes the job: report, status, tag, exactly once.

    The report is written before the status flips, so a crash in between leaves a job that the next
    delivery finishes again (writing the same report) rather than a finished job without a report.
    """
    job = jobs.get(job_id)
    if job is None or job.status in TERMINAL:
        return None
    if job.rows_done < job.total_rows:
        logger.info("job progress", extra={"job_id": job_id, "status": str(job.status), **job.progress()})
        return None
    status = JobStatus.COMPLETED if job.rows_failed == 0 else JobStatus.COMPLETED_WITH_ERRORS
    finished = replace(job, status=status, finished_at=int(time.time()))
    write_final_report(finished, jobs, reports)
    if not jobs.transition(job_id, status):
        return None
    reports.tag_source(finished)
    counted = JOBS_COMPLETED if status is JobStatus.COMPLETED else JOBS_COMPLETED_WITH_ERRORS
    metrics.add_metric(name=counted, unit=MetricUnit.Count, value=1)
    logger.info("job finished", extra={"job_id": job_id, "status": str(status), **finished.progress()})
    return finished

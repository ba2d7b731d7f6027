"""Import one chunk: list once, initialise in one bundle, apply, save in one bundle, record every row.

That is three Encord round trips per chunk (four when it mixes labelled and unlabelled data units: the
bundle creates the new label rows and fetches the existing ones in separate requests) instead of two per
data unit. Only on the failure path does it spend more: a bundle Encord rejects is saved again row by
row, so one bad row fails alone and the rest of the chunk lands; a transient fault repeats the whole
attempt (fresh label rows, so nothing half-applied is saved) while the invocation has time.

Around it: rows this job already recorded are skipped, and each data unit is leased for the duration
(leases.py) so two jobs never save over each other's labels; the leases are renewed before every retry and
every save, and an attempt whose lease was lost saves nothing. Rows whose data unit another consumer holds
wait for it inside the invocation, and go back to the queue with the message if time runs short. Each row is
judged against its data unit's upload history (upload_order.py), so the final labels follow the order the
files were uploaded in, not the order consumers happened to run.

Failures end somewhere: a key Encord refuses (after one fresh read of the secret) fails the job; Encord
refusing the chunk, or the last delivery SQS will make, fails its rows with the reason.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from aws_lambda_powertools.metrics import MetricUnit
from encord import Project
from encord.exceptions import AuthenticationError, AuthorisationError, EncordException
from encord.objects import LabelRowV2

from label_importer.checks.ontology_resolver import OntologyResolver
from label_importer.encord_target.bundles import LabelRowBundles
from label_importer.encord_target.gateway import (
    EncordKeyUnusable,
    is_transient,
    retried_with_a_rotated_key,
)
from label_importer.encord_target.label_builder import ROW_ERRORS, LabelBuilder, label_hashes
from label_importer.model.jobs import IN_FLIGHT, Job, JobStatus, RowOutcome, RowStatus
from label_importer.model.label_format import Mode
from label_importer.model.leases import DataUnitsBusy, LeaseLost
from label_importer.model.messages import Chunk, ChunkRow
from label_importer.model.problems import ErrorCode
from label_importer.model.upload_order import UnitHistory, Upload
from label_importer.runtime.deadline import Deadline
from label_importer.runtime.observability import (
    CHUNKS_IMPORTED,
    LEASE_WAITS,
    ROWS_FAILED,
    ROWS_IMPORTED,
    ROWS_SUPERSEDED,
    logger,
    metrics,
)
from label_importer.runtime.world import World
from label_importer.services.job_lifecycle import fail_import, finish_if_done
from label_importer.store.jobs import ChunkState
from label_importer.store.leases import DataUnitRecord
from label_importer.store.rollback_journal import RowChanges, added_by_earlier_attempts, write_entry

Journal = Callable[[dict[str, RowChanges]], None]


NOT_IN_PROJECT = "the data unit is no longer in the project"
NOT_RETURNED = "Encord did not return this label row when it was initialised"


def not_applied(error: Exception) -> str:
    """Why a row fails whose labels the builder refused (ROW_ERRORS): the import's words, and a dry run's."""
    return f"labels could not be applied: {error}"


def _failed(row: ChunkRow, reason: str) -> RowOutcome:
    return RowOutcome(row.data_hash, RowStatus.FAILED, row.lines, reason=reason)


class ChunkImporter:
    def __init__(
        self,
        project: Project,
        bundle_size: int,
        upload: Upload,
        histories: dict[str, UnitHistory],
        renew: Callable[[list[str]], None],
        journaled: dict[str, set[str]] | None = None,
    ) -> None:
        self._bundles = LabelRowBundles(project, upload.branch, bundle_size, renew)
        self._upload = upload
        self._histories = histories
        self._builder = LabelBuilder(OntologyResolver(project.ontology_structure))
        self._journaled = {} if journaled is None else journaled
        """Per row, the label hashes this job's attempts journaled as theirs (earlier ones included, shared
        between attempts): a row's `labels_added` are those of them present once it is saved."""
        self.saved_histories: dict[str, UnitHistory] = {}
        """The upload history of each row saved, to be recorded with its outcome."""

    @property
    def requests(self) -> int:
        """Encord requests sent so far (counted before sending, so failed ones count too)."""
        return self._bundles.requests

    def import_rows(self, rows: list[ChunkRow], journal: Journal) -> list[RowOutcome]:
        """Outcomes for every row; raises on transient Encord faults (the chunk is then retried) and LeaseLost.
        `journal` hears what will change on each row before anything is saved (rollback_journal.py)."""
        upload = self._upload
        outcomes: list[RowOutcome] = []
        current = []
        for row in rows:
            later = self._histories.get(row.data_hash, UnitHistory()).superseded_by(upload.order)
            if later is None:
                current.append(row)
            else:
                reason = f"superseded by job {later}: a file uploaded later replaced this data unit's labels"
                outcomes.append(RowOutcome(row.data_hash, RowStatus.SKIPPED, row.lines, reason=reason))
        if not current:
            return outcomes
        label_rows = self._bundles.read([row.data_hash for row in current])
        outcomes += [_failed(row, NOT_IN_PROJECT) for row in current if row.data_hash not in label_rows]
        present = [row for row in current if row.data_hash in label_rows]

        to_save: list[tuple[ChunkRow, LabelRowV2, set[str]]] = []
        changes: dict[str, RowChanges] = {}
        histories: dict[str, UnitHistory] = {}
        for row in present:
            label_row = label_rows[row.data_hash]
            if not label_row.is_labelling_initialised:
                # A bundle silently skips rows the server left out of its answer; never save those empty.
                outcomes.append(_failed(row, NOT_RETURNED))
                continue
            history = self._histories.get(row.data_hash, UnitHistory())
            replacing = upload.mode is Mode.REPLACE
            objects, classifications = label_hashes(label_row)
            before = label_row.to_encord_dict() if replacing else None
            keep = frozenset(history.newer_append_labels(upload.order)) if replacing else frozenset()
            try:
                own = self._builder.apply(label_row, row, upload.mode, keep=keep)
            except ROW_ERRORS as error:
                outcomes.append(_failed(row, not_applied(error)))
                continue
            objects_now, classifications_now = label_hashes(label_row)
            after = row.after_save
            changes[row.data_hash] = RowChanges(
                objects_now - objects,
                classifications_now - classifications,
                before,
                history.to_dict() if replacing else None,  # what a rollback of the replace puts back with `before`
                priority_before=label_row.priority if after and after.priority is not None else None,
                completed=bool(after and after.move == "complete"),
            )
            histories[row.data_hash] = history.with_applied(upload.job_id, upload.order, upload.mode, own)
            to_save.append((row, label_row, objects_now | classifications_now))
        if changes:
            journal(changes)
            for data_hash, change in changes.items():
                self._journaled.setdefault(data_hash, set()).update(change.objects | change.classifications)
        rejected = self._bundles.save([label_row for _, label_row, _ in to_save])
        acting = [(row, label_row) for row, label_row, _ in to_save if row.data_hash not in rejected and row.after_save]
        refused = self._bundles.act([(label_row, row.after_save) for row, label_row in acting if row.after_save])
        acted = {row.data_hash: row.after_save for row, _ in acting if refused is None}
        saved = [
            _failed(row, rejected[row.data_hash])
            if row.data_hash in rejected
            else RowOutcome(
                row.data_hash,
                RowStatus.IMPORTED,
                row.lines,
                reason=f"labels saved, but Encord refused the workflow actions: {refused}"
                if refused and row.after_save
                else None,
                labels_added=len(self._journaled.get(row.data_hash, set()) & saved_hashes),
                actions=after.kinds if (after := acted.get(row.data_hash)) else (),
            )
            for row, _, saved_hashes in to_save
        ]
        self.saved_histories = {
            outcome.data_hash: histories[outcome.data_hash] for outcome in saved if outcome.status is RowStatus.IMPORTED
        }
        return outcomes + saved


class KeyRefused(Exception):
    """Encord refused the key (authentication or authorisation), and the secret holds no other key to try."""


def import_chunk(chunk: Chunk, state: ChunkState, world: World, deadline: Deadline, *, delivery: int = 1) -> None:
    """Import the rows of `chunk` this job has not recorded yet, then finish the job if it is done.

    `state` is what the table held about the chunk when its message was verified: the job record (not the
    message) says which project, mode and branch. Raises (so the message is delivered again) when Encord stays
    unavailable or data units stay leased until too little of the invocation is left; whatever was recorded by
    then is kept and skipped next time.
    """
    job = state.job
    if job is None or job.status not in IN_FLIGHT:
        # Failed, rejected, rolled back or finished: nothing of it may be imported (again).
        logger.warning(
            "chunk of a job that is not importing; dropped",
            extra={"chunk_index": chunk.chunk_index, "status": str(job.status) if job else None},
        )
        return
    recorded: list[RowOutcome] = []
    try:
        finishing = _import_remaining(job, chunk, state, world, deadline, delivery, recorded)
    except KeyRefused as error:
        fail_import(
            job, f"{ErrorCode.ENCORD_KEY_UNUSABLE}: the Encord key was refused: {error}", world.jobs, world.reports
        )
        return
    if finishing:
        finish_if_done(chunk.job_id, world.jobs, world.reports)
    elif recorded:
        _log_progress(job, recorded)


def _log_progress(job: Job, recorded: list[RowOutcome]) -> None:
    """The job's progress for the dashboard: as read with the chunk, plus the rows this delivery recorded (other
    consumers may have recorded more meanwhile; the dashboard takes the highest figure), without reading the job
    again."""
    now = int(time.time())
    counts = Counter(outcome.status for outcome in recorded)
    progressed = replace(
        job,
        status=JobStatus.IMPORTING if job.status is JobStatus.QUEUED else job.status,
        rows_imported=job.rows_imported + counts[RowStatus.IMPORTED],
        rows_failed=job.rows_failed + counts[RowStatus.FAILED],
        rows_superseded=job.rows_superseded + counts[RowStatus.SKIPPED],
        import_started_at=job.import_started_at or now,
        updated_at=now,
    )
    logger.info("job progress", extra={"job_id": job.job_id, "status": str(progressed.status), **progressed.progress()})


def _import_remaining(
    job: Job,
    chunk: Chunk,
    state: ChunkState,
    world: World,
    deadline: Deadline,
    delivery: int,
    recorded: list[RowOutcome],
) -> bool:
    """Import the chunk's unrecorded rows, adding the outcomes recorded to `recorded`; True when the job may be
    done now (or was already, its finisher perhaps gone before it wrote the report)."""
    remaining = [row for row in chunk.rows if row.data_hash not in state.outcomes]
    if not remaining:
        logger.info("chunk already imported; redelivery skipped", extra={"chunk_index": chunk.chunk_index})
        return True
    if job.status is JobStatus.QUEUED:
        world.jobs.transition(job.job_id, JobStatus.IMPORTING, allowed_from=[JobStatus.QUEUED])
    journaled: dict[str, set[str]] = {}
    if delivery > 1 or state.waiting:  # an earlier attempt may have saved
        journaled = added_by_earlier_attempts(world.s3, job.bucket, job.job_id, chunk.chunk_index)
    attempt = _ChunkAttempt(
        upload=Upload.of(job),
        project_hash=job.project_hash,
        chunk_index=chunk.chunk_index,
        chunk_rows=len(chunk.rows),
        earlier_attempts={data_hash: row.attempts for data_hash, row in state.waiting.items()},
        journal=partial(write_entry, world.s3, job.bucket, job.job_id, chunk.chunk_index),
        journaled=journaled,
        holder=f"{job.job_id}/{chunk.chunk_index}/{uuid.uuid4().hex}",
        last_delivery=delivery >= world.max_deliveries,
        recorded=recorded,
    )
    finishing = False
    waits = 0
    while remaining:
        leased = world.leases.acquire([row.data_hash for row in remaining], attempt.holder, branch=job.branch)
        if leased:
            done, finished_job = attempt.import_leased(
                [row for row in remaining if row.data_hash in leased], world, deadline
            )
            finishing = finishing or finished_job
            remaining = [row for row in remaining if row.data_hash not in done]
        if remaining:
            waits += 1
            metrics.add_metric(name=LEASE_WAITS, unit=MetricUnit.Count, value=1)
            pause = world.retry_policy.backoff.seconds(waits)
            if deadline.remaining() - pause < world.retry_policy.attempt_seconds:
                busy = "another import holds this data unit's lease; waiting for it to finish"
                if attempt.last_delivery:
                    reason = f"{busy} took longer than {world.max_deliveries} deliveries"
                    return attempt.give_up(remaining, world, reason) or finishing
                attempt.note_retry(world, {row.data_hash: row.lines for row in remaining}, busy)
                raise DataUnitsBusy(f"{len(remaining)} data units stayed leased by other imports; retrying later")
            world.retry_policy.sleep(pause)
    return finishing


_KEY_ERRORS = (AuthenticationError, AuthorisationError, EncordKeyUnusable)


@dataclass
class _ChunkAttempt:
    """One delivery of a chunk: what every batch of leased rows is imported with."""

    upload: Upload
    project_hash: str
    chunk_index: int
    chunk_rows: int
    earlier_attempts: dict[str, int]
    """Attempts of earlier deliveries at each row they left RETRYING."""
    journal: Journal
    journaled: dict[str, set[str]]
    holder: str
    last_delivery: bool
    recorded: list[RowOutcome]
    """Every outcome this delivery recorded."""

    def import_leased(self, rows: list[ChunkRow], world: World, deadline: Deadline) -> tuple[set[str], bool]:
        """Import and record rows whose data units this consumer holds, and give the data units back; returns the
        data hashes recorded (none when a lease was lost under slow work: those rows wait for the data unit
        again) and whether the job may be done."""
        branch = self.upload.branch
        hashes = [row.data_hash for row in rows]
        given_back = False
        try:
            units = world.leases.read(hashes, branch=branch)
            finished = self._recorded_meanwhile(rows, units, world)
            todo = [row for row in rows if row.data_hash not in finished]
            if not todo:
                return finished, False
            histories = {row.data_hash: units[row.data_hash].history for row in todo}
            imported = self._import(todo, histories, world, deadline)
            if imported is None:
                return finished, False
            outcomes, saved, attempts, requests = imported
            records = {
                outcome.data_hash: DataUnitRecord(
                    saved.get(outcome.data_hash, units[outcome.data_hash].history),
                    units[outcome.data_hash].recorded_by,
                ).recorded(self.upload.job_id)
                for outcome in outcomes
            }
            written = world.leases.release(hashes, self.holder, branch=branch, records=records)
            given_back = True
            lost = {outcome.data_hash: outcome.lines for outcome in outcomes if outcome.data_hash not in written}
            if lost:  # saved, but the next holder may not know: imported again (changing nothing) under a lease
                self.note_retry(world, lost, "the lease ran out before the outcome could be recorded", attempts)
            kept = [outcome for outcome in outcomes if outcome.data_hash in written]
            finishing = self._record(kept, world, attempts=attempts, requests=requests)
            return finished | {outcome.data_hash for outcome in kept}, finishing
        finally:
            if not given_back:
                world.leases.release(hashes, self.holder, branch=branch)

    def _recorded_meanwhile(self, rows: list[ChunkRow], units: dict[str, DataUnitRecord], world: World) -> set[str]:
        """Rows another delivery of this chunk recorded since it was read: only a data unit that names this job in
        `recorded_by` can be one, and only then is the chunk's record read again."""
        job_id = self.upload.job_id
        if not any(job_id in units[row.data_hash].recorded_by for row in rows):
            return set()
        return set(world.jobs.chunk_outcomes(job_id, self.chunk_index)) & {row.data_hash for row in rows}

    def _import(
        self, todo: list[ChunkRow], histories: dict[str, UnitHistory], world: World, deadline: Deadline
    ) -> tuple[list[RowOutcome], dict[str, UnitHistory], int, int] | None:
        """The rows' outcomes, the upload histories of those saved, and the attempts and Encord requests made;
        None when a lease was lost (nothing saved; the rows were noted RETRYING)."""
        branch = self.upload.branch
        attempts = requests = 0

        def import_once() -> tuple[list[RowOutcome], dict[str, UnitHistory]]:
            nonlocal requests
            with world.encord_gate:  # one of the container's chunks in flight talks to Encord at a time
                importer = ChunkImporter(
                    world.open_project(self.project_hash),
                    world.bundle_size,
                    self.upload,
                    histories,
                    partial(world.leases.renew, holder=self.holder, branch=branch, if_due=True),
                    self.journaled,
                )
                try:
                    return importer.import_rows(todo, self.journal), importer.saved_histories
                finally:
                    requests += importer.requests

        def attempt() -> tuple[list[RowOutcome], dict[str, UnitHistory]]:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # a retry, after backing off: the leases taken for the first attempt may run out
                world.leases.renew([row.data_hash for row in todo], self.holder, branch=branch)
            return retried_with_a_rotated_key(import_once, world.key_refused)

        lines = {row.data_hash: row.lines for row in todo}
        try:
            outcomes, saved = world.retry_policy.call(attempt, deadline)
        except LeaseLost as error:
            logger.warning("lease lost under slow work; nothing saved, the rows wait", extra={"error": str(error)})
            self.note_retry(world, lines, str(error), attempts, requests)
            return None
        except _KEY_ERRORS as error:
            raise KeyRefused(str(error)) from None
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            permanent = isinstance(error, EncordException) and not is_transient(error)
            if not (permanent or self.last_delivery):
                self.note_retry(world, lines, reason, attempts, requests)
                raise
            logger.error("rows failed for good", extra={"rows": len(todo), "reason": reason})
            suffix = "" if permanent else f" (still failing on delivery {world.max_deliveries}, the last)"
            failure = f"Encord refused the chunk: {reason}" if permanent else reason + suffix
            return [_failed(row, failure) for row in todo], {}, attempts, requests
        return outcomes, saved, attempts, requests

    def _record(self, outcomes: list[RowOutcome], world: World, *, attempts: int, requests: int) -> bool:
        finishing = world.jobs.record_rows(
            self.upload.job_id,
            self.chunk_index,
            outcomes,
            attempts=attempts,
            encord_requests=requests,
            chunk_rows_count=self.chunk_rows,
            earlier_attempts=self.earlier_attempts,
        )
        self.recorded.extend(outcomes)
        imported = sum(1 for outcome in outcomes if outcome.status is RowStatus.IMPORTED)
        superseded = sum(1 for outcome in outcomes if outcome.status is RowStatus.SKIPPED)
        metrics.add_metric(name=ROWS_IMPORTED, unit=MetricUnit.Count, value=imported)
        metrics.add_metric(name=ROWS_SUPERSEDED, unit=MetricUnit.Count, value=superseded)
        metrics.add_metric(name=ROWS_FAILED, unit=MetricUnit.Count, value=len(outcomes) - imported - superseded)
        if outcomes:
            metrics.add_metric(name=CHUNKS_IMPORTED, unit=MetricUnit.Count, value=1)
        return finishing

    def note_retry(
        self, world: World, lines: dict[str, list[int]], error: str, attempts: int = 0, requests: int = 0
    ) -> None:
        world.jobs.note_retry(
            self.upload.job_id,
            self.chunk_index,
            lines,
            attempts=attempts,
            error=error,
            encord_requests=requests,
            chunk_rows_count=self.chunk_rows,
            earlier_attempts=self.earlier_attempts,
        )

    def give_up(self, rows: list[ChunkRow], world: World, reason: str) -> bool:
        """Record rows whose data units stayed leased FAILED with `reason`: retrying cannot help, and a
        dead-lettered chunk would leave its job unfinished. True when the job may be done."""
        logger.error("rows failed for good", extra={"rows": len(rows), "reason": reason})
        return self._record([_failed(row, reason) for row in rows], world, attempts=0, requests=0)

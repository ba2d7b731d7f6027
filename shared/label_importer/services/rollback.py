"""Undo one finished import: remove exactly what it added (`append`), or put back what it replaced (`replace`).

What an import changed comes from its journal (rollback_journal.py), limited to the rows it recorded as
IMPORTED. An `append` rollback removes only the objects and classifications whose hashes the import added,
so labels anyone else put on the data unit stay; a `replace` rollback sets each row back to the labels it had
before the import, so edits made to that row after the import are lost with it (docs/operations.md says so).

Rows a later upload changed since (their upload history says so, upload_order.py) are left as they are,
SKIPPED with the later jobs named: undoing one file never takes what another put there.

A rollback is a job of its own, with a job id derived from the import's (running it again finds it), row
records, counters and a report. It works like an import: data units leased (renewed before every attempt
and save; a lease lost under a slow answer saves nothing and asks for the rollback to be run again), one
list, one bundled initialise and one bundled save per bundle of rows, transient faults retried, and rows
already recorded skipped, so a rollback interrupted anywhere is finished by running it again.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, replace
from functools import partial

from encord.objects import LabelRowV2

from label_importer.encord_target.bundles import LabelRowBundles
from label_importer.encord_target.label_builder import ROW_ERRORS, label_hashes
from label_importer.model.jobs import TERMINAL, Job, JobStatus, RowOutcome, RowStatus
from label_importer.model.label_format import AfterSave, Mode
from label_importer.model.leases import DataUnitsBusy, LeaseLost
from label_importer.model.upload_order import UnitHistory, Upload
from label_importer.runtime.deadline import Deadline
from label_importer.runtime.observability import logger
from label_importer.runtime.world import World
from label_importer.services.job_lifecycle import write_final_report
from label_importer.store.leases import DataUnitRecord
from label_importer.store.rollback_journal import RowChanges, read_journal

_UNDOABLE = (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS)


class CannotRollBack(Exception):
    """The job is not one that can be rolled back (yet); the message says why."""


def rollback_job_id(job_id: str) -> str:
    return hashlib.sha256(f"rollback\x1f{job_id}".encode()).hexdigest()[:32]


def roll_back(job_id: str, world: World, deadline: Deadline) -> Job:
    """Roll the import back (or finish an interrupted rollback) and return the rollback job."""
    original = world.jobs.get(job_id)
    if original is None:
        raise CannotRollBack(f"there is no job {job_id}")
    if original.mode is Mode.ROLLBACK:
        raise CannotRollBack(f"job {job_id} is itself a rollback; import the file again instead")
    job = Job(
        job_id=rollback_job_id(job_id),
        status=JobStatus.IMPORTING,
        bucket=original.bucket,
        key=original.key,
        version_id=original.version_id,
        project_hash=original.project_hash,
        mode=Mode.ROLLBACK,
        created_at=int(time.time()),
        branch=original.branch,
    )
    existing = world.jobs.get(job.job_id)
    if existing is not None and existing.status in TERMINAL:
        return existing
    if original.status not in _UNDOABLE and existing is None:
        raise CannotRollBack(f"job {job_id} is {original.status}: only a finished import can be rolled back")
    world.jobs.create(job)

    imported = {row.data_hash for row in world.jobs.rows(job_id, RowStatus.IMPORTED)}
    journal = read_journal(world.s3, original.bucket, job_id)
    changes = {data_hash: row for data_hash, row in journal.items() if data_hash in imported}
    world.jobs.set_plan(replace(job, total_records=len(changes), total_rows=len(changes)))
    done = world.jobs.recorded(job.job_id)
    ordered = list(changes)
    undo = _Undo(Upload.of(original), original.project_hash, job.job_id)
    for start in range(0, len(ordered), world.bundle_size):
        # Each bundle of rows is recorded as one chunk of the rollback job, the same one on every run.
        todo = [data_hash for data_hash in ordered[start : start + world.bundle_size] if data_hash not in done]
        if todo:
            undo.leased(start // world.bundle_size, todo, changes, world, deadline)
    return _finish(job.job_id, original, world)


@dataclass(frozen=True)
class _Undo:
    original: Upload
    project_hash: str
    rollback_id: str

    def leased(
        self,
        chunk_index: int,
        data_hashes: list[str],
        changes: dict[str, RowChanges],
        world: World,
        deadline: Deadline,
    ) -> None:
        """Undo the rows whose data units are free, under leases renewed before every attempt and every save."""
        holder, branch = f"{self.rollback_id}/{uuid.uuid4().hex}", self.original.branch
        leased = world.leases.acquire(data_hashes, holder, branch=branch)
        given_back = False
        try:
            held = [data_hash for data_hash in data_hashes if data_hash in leased]
            if held:
                units = world.leases.read(held, branch=branch)
                histories = {data_hash: unit.history for data_hash, unit in units.items()}
                renew = partial(world.leases.renew, holder=holder, branch=branch)
                attempts = requests = 0

                def attempt() -> tuple[list[RowOutcome], dict[str, UnitHistory]]:
                    nonlocal attempts, requests
                    attempts += 1
                    if attempts > 1:  # a retry, after backing off: the leases may be running out
                        renew(held)
                    project = world.open_project(self.project_hash)
                    bundles = LabelRowBundles(project, branch, world.bundle_size, renew)
                    try:
                        return self._undo(bundles, held, changes, histories)
                    finally:
                        requests += bundles.requests

                outcomes, after = world.retry_policy.call(attempt, deadline)
                records = {
                    outcome.data_hash: DataUnitRecord(
                        after.get(outcome.data_hash, histories[outcome.data_hash]),
                        units[outcome.data_hash].recorded_by,
                    ).recorded(self.rollback_id)
                    for outcome in outcomes
                }
                written = world.leases.release(leased, holder, branch=branch, records=records)
                given_back = True
                world.jobs.record_rows(
                    self.rollback_id,
                    chunk_index,
                    [outcome for outcome in outcomes if outcome.data_hash in written],
                    attempts=attempts,
                    encord_requests=requests,
                    chunk_rows_count=len(data_hashes),
                )
                if len(written) < len(outcomes):
                    lost = len(outcomes) - len(written)
                    raise LeaseLost(f"{lost} data-unit leases ran out before the rows were recorded")
        except LeaseLost as error:
            raise DataUnitsBusy(f"{error}; run the rollback again") from None
        finally:
            if not given_back:
                world.leases.release(leased, holder, branch=branch)
        if len(leased) < len(data_hashes):
            raise DataUnitsBusy(
                f"{len(data_hashes) - len(leased)} data units are being imported; run the rollback again"
            )

    def _undo(
        self,
        bundles: LabelRowBundles,
        data_hashes: list[str],
        changes: dict[str, RowChanges],
        histories: dict[str, UnitHistory],
    ) -> tuple[list[RowOutcome], dict[str, UnitHistory]]:
        """Read, undo and save in bundles, as an import does. Returns the outcomes and the upload history of each
        data unit undone."""
        outcomes: list[RowOutcome] = []
        undoable = []
        for data_hash in data_hashes:
            later = self._changed_since(histories[data_hash])
            if later:
                reason = f"left as it is: changed since by later uploads (jobs {', '.join(later)})"
                outcomes.append(RowOutcome(data_hash, RowStatus.SKIPPED, [], reason=reason))
            else:
                undoable.append(data_hash)
        if not undoable:
            return outcomes, {}
        rows = bundles.read(undoable)
        to_save: list[LabelRowV2] = []
        undone: dict[str, int] = {}
        for data_hash in undoable:
            row = rows.get(data_hash)
            if row is None or not row.is_labelling_initialised:
                outcomes.append(_failed(data_hash, "the data unit's labels could not be read from Encord"))
                continue
            try:
                undone[data_hash] = self._restore(row, changes[data_hash], histories[data_hash])
            except ROW_ERRORS as error:
                outcomes.append(_failed(data_hash, f"the labels could not be put back: {error}"))
                continue
            to_save.append(row)
        rejected = bundles.save(to_save)
        saved = [row for row in to_save if row.data_hash not in rejected]
        undoing = {row.data_hash: _undoing_actions(changes[row.data_hash]) for row in saved}
        refused = bundles.act([(row, actions) for row in saved if (actions := undoing[row.data_hash])])
        after = {}
        for row in to_save:
            if row.data_hash in rejected:
                outcomes.append(_failed(row.data_hash, rejected[row.data_hash]))
                continue
            after[row.data_hash] = self._history_after(changes[row.data_hash], histories[row.data_hash])
            actions = undoing[row.data_hash]
            outcomes.append(
                RowOutcome(
                    row.data_hash,
                    RowStatus.ROLLED_BACK,
                    [],
                    reason=f"labels put back, but Encord refused to undo the workflow actions: {refused}"
                    if refused and actions
                    else None,
                    labels_removed=undone[row.data_hash],
                    actions=actions.kinds if actions and not refused else (),
                )
            )
        return outcomes, after

    def _changed_since(self, history: UnitHistory) -> list[str]:
        """Later uploads whose labels undoing this row would take: a `replace` puts back the whole row as it
        was, so any later upload counts; an `append` takes off only its own labels, so only a later
        `replace` (which already took them) does."""
        if self.original.mode is Mode.REPLACE:
            return history.newer_than(self.original.order)
        superseding = history.superseded_by(self.original.order)
        return [superseding] if superseding else []

    def _restore(self, row: LabelRowV2, changes: RowChanges, history: UnitHistory) -> int:
        """Undo one row's changes; returns how many of the import's labels were taken off."""
        if self.original.mode is Mode.REPLACE and changes.before is not None:
            objects, classifications = label_hashes(row)
            row.from_labels_dict(changes.before, preserve_identity=True)
            return len(objects) + len(classifications)
        others = history.labels_of_others(self.original.job_id)
        removed = 0
        for instance in row.get_object_instances():
            if instance.object_hash in changes.objects and instance.object_hash not in others:
                row.remove_object(instance)
                removed += 1
        for classification in row.get_classification_instances():
            label = classification.classification_hash
            if label in changes.classifications and label not in others:
                row.remove_classification(classification)
                removed += 1
        return removed

    def _history_after(self, changes: RowChanges, history: UnitHistory) -> UnitHistory:
        if self.original.mode is Mode.REPLACE:
            return UnitHistory.from_dict(changes.history)
        return history.without_append(self.original.job_id)


def _undoing_actions(changes: RowChanges) -> AfterSave | None:
    """What undoes the import's workflow actions, as far as Encord allows: the priority the task had, and a
    completed task reopened (to the first annotation stage: Encord keeps no record of the stage it left). A task
    the import reopened stays open, as nothing moves a task back to a stage it had."""
    if changes.priority_before is None and not changes.completed:
        return None
    return AfterSave(priority=changes.priority_before, reopen=changes.completed or None)


def _failed(data_hash: str, reason: str) -> RowOutcome:
    return RowOutcome(data_hash, RowStatus.FAILED, [], reason=reason)


def _finish(rollback_id: str, original: Job, world: World) -> Job:
    job = world.jobs.get(rollback_id)
    assert job is not None
    clean = job.rows_failed == 0 and job.rows_actions_refused == 0
    status = JobStatus.COMPLETED if clean else JobStatus.COMPLETED_WITH_ERRORS
    finished = replace(job, status=status, finished_at=int(time.time()))
    write_final_report(finished, world.jobs, world.reports)
    world.jobs.transition(rollback_id, status)
    if status is JobStatus.COMPLETED and world.jobs.transition(
        original.job_id, JobStatus.ROLLED_BACK, allowed_from=_UNDOABLE
    ):
        world.reports.tag_source(replace(original, status=JobStatus.ROLLED_BACK))
    logger.info(
        "rollback finished", extra={"job_id": original.job_id, "rollback_job_id": rollback_id, **finished.progress()}
    )
    return world.jobs.get(rollback_id) or finished

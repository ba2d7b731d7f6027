"""Jobs and their rows' outcomes in DynamoDB: the record of what happened, and the guard against doing it twice.

One table; under the job's partition (beside the chunk digests, chunk_register.py):
  pk = JOB#<job id>, sk = JOB                 the job: status, options, totals and atomic counters
  pk = JOB#<job id>, sk = ROWS#<chunk index>  the chunk's rows: each RETRYING (attempts, last error) until its
                                              outcome, IMPORTED, FAILED or SKIPPED with a reason, is written
                                              (row_outcomes.py)
An outcome is written once, in the same transaction that bumps the job's counters, so a redelivered chunk
can neither lose a row nor count it twice. Every item carries `expires_at`, which the table's TTL uses to
delete old jobs. Data units' leases and upload histories are items of their own (leases.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from label_importer.model.jobs import (
    DEFAULT_TTL_DAYS,
    FINISHED_ROW,
    IN_FLIGHT,
    TERMINAL,
    Job,
    JobStatus,
    RowOutcome,
    RowStatus,
)
from label_importer.model.label_format import Mode
from label_importer.runtime.backoff import Backoff
from label_importer.store.chunk_register import ChunkDigest, chunk_key, recorded_digest
from label_importer.store.row_outcomes import (
    OUTCOME,
    WAITING,
    chunk_rows,
    decoded_rows,
    encoded,
    rows_key,
)

_DONE = (RowStatus.IMPORTED, RowStatus.ROLLED_BACK)
"""Rows whose labels were changed: a reason on one of them is why Encord refused its workflow actions."""


def _job_from_item(item: dict[str, Any]) -> Job:
    # Every number in a job is a count or a timestamp; DynamoDB hands them back as Decimal.
    values: dict[str, Any] = {
        name: int(item[name]) if isinstance(item[name], Decimal) else item[name]
        for name in Job.__dataclass_fields__
        if name in item
    }
    values["labels_not_imported"] = {why: int(count) for why, count in item.get("labels_not_imported", {}).items()}
    values["status"] = JobStatus(values["status"])
    values["mode"] = Mode(values["mode"]) if values.get("mode") else None
    if values["mode"] is Mode.ROLLBACK and "rows_rolled_back" not in item:
        # Recorded before rollbacks had counters of their own: they counted into the import's.
        values["rows_rolled_back"] = values.pop("rows_imported", 0)
        values["labels_removed"] = values.pop("labels_added", 0)
    return Job(**values)


def _job_key(job_id: str) -> dict[str, str]:
    return {"pk": f"JOB#{job_id}", "sk": "JOB"}


_ROWS_PER_TRANSACTION = 100
"""Rows written with one transaction: each row's attribute costs about 30 characters of the condition, and an
expression may be 4 KB."""
_CONFLICT_ATTEMPTS = 6
_CONFLICT_BACKOFF = Backoff(0.02, 1.0)
"""Consumers recording at once update the same job item; DynamoDB cancels one of two colliding transactions."""


@dataclass(frozen=True)
class ChunkState:
    """What the table holds about one chunk of a job, read together (`JobStore.chunk`)."""

    job: Job | None
    digest: ChunkDigest | None
    """What the validator queued; None when it queued no such chunk."""
    outcomes: dict[str, RowOutcome]
    waiting: dict[str, RowOutcome]
    """Rows earlier deliveries left RETRYING, with their attempts so far."""


class JobStore:
    def __init__(self, table_name: str, *, ttl_days: int = DEFAULT_TTL_DAYS, resource: Any | None = None) -> None:
        self._resource = resource or boto3.resource("dynamodb")
        self._table = self._resource.Table(table_name)
        self._table_name = table_name
        self._ttl_seconds = ttl_days * 86_400

    def _expires_at(self, now: int) -> int:
        return now + self._ttl_seconds

    def create(self, job: Job) -> Job | None:
        """Create the job; return the existing job instead if this S3 object version already has one."""
        item = {**_job_key(job.job_id), **asdict(job), "expires_at": self._expires_at(job.created_at)}
        try:
            self._table.put_item(Item=item, ConditionExpression=Attr("pk").not_exists())
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return self.get(job.job_id)
        return None

    def get(self, job_id: str) -> Job | None:
        item = self._table.get_item(Key=_job_key(job_id), ConsistentRead=True).get("Item")
        return _job_from_item(item) if item else None

    def set_plan(self, job: Job) -> None:
        """Totals go in before the first chunk is sent, so any consumer can tell when the job is done (and a
        rejected job keeps what was found)."""
        self._table.update_item(
            Key=_job_key(job.job_id),
            UpdateExpression="SET project_hash = :p, #mode = :m, branch = :b, total_records = :r, "
            "invalid_records = :i, records_left_out = :l, labels_not_imported = :w, problem_count = :e, "
            "total_rows = :t, total_chunks = :c, rows_skipped = :s, rows_left = if_not_exists(rows_left, :t)",
            ExpressionAttributeNames={"#mode": "mode"},
            ExpressionAttributeValues={
                ":p": job.project_hash,
                ":m": job.mode,
                ":b": job.branch,
                ":r": job.total_records,
                ":i": job.invalid_records,
                ":l": job.records_left_out,
                ":w": job.labels_not_imported,
                ":e": job.problem_count,
                ":t": job.total_rows,
                ":c": job.total_chunks,
                ":s": job.rows_skipped,
            },
        )

    def transition(self, job_id: str, to: JobStatus, *, allowed_from: Iterable[JobStatus] = IN_FLIGHT) -> bool:
        """Move the job to `to` if it is in one of `allowed_from`; False when another writer got there first."""
        expression = "SET #status = :to, updated_at = :now"
        if to in TERMINAL:
            expression += ", finished_at = :now"
        if to is JobStatus.IMPORTING:
            expression += ", import_started_at = :now"
        return self._move(job_id, expression, {":to": str(to)}, allowed_from)

    def fail(
        self,
        job_id: str,
        failure: str,
        *,
        allowed_from: Iterable[JobStatus] = (JobStatus.VALIDATING,),
        problem_count: int | None = 1,
    ) -> bool:
        """-> FAILED with the reason, from one of `allowed_from`; False when the job was elsewhere.

        A job failed in validation counts its failure as its one problem; one failed while importing keeps the
        problems its file had (`problem_count=None`)."""
        expression = "SET #status = :to, failure = :why, updated_at = :now, finished_at = :now"
        values: dict[str, Any] = {":to": str(JobStatus.FAILED), ":why": failure}
        if problem_count is not None:
            expression += ", problem_count = :problems"
            values[":problems"] = problem_count
        return self._move(job_id, expression, values, allowed_from)

    def _move(self, job_id: str, expression: str, values: dict[str, Any], allowed_from: Iterable[JobStatus]) -> bool:
        """Apply `expression` (`:now` is supplied) if the job's status is one of `allowed_from`."""
        try:
            self._table.update_item(
                Key=_job_key(job_id),
                UpdateExpression=expression,
                ConditionExpression=Attr("status").is_in([str(status) for status in allowed_from]),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={**values, ":now": int(time.time())},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def chunk(self, job_id: str, chunk_index: int) -> ChunkState:
        """The job, the chunk's digest and the chunk's recorded rows, in one read: all a consumer needs to know
        before it leases anything."""
        keys = [_job_key(job_id), chunk_key(job_id, chunk_index), rows_key(job_id, chunk_index)]
        items: dict[str, dict[str, Any]] = {}
        request: dict[str, Any] = {self._table_name: {"Keys": keys, "ConsistentRead": True}}
        while request:
            response = self._resource.batch_get_item(RequestItems=request)
            items.update((item["sk"], item) for item in response["Responses"][self._table_name])
            request = response.get("UnprocessedKeys") or {}
        job, digest, rows = (items.get(key["sk"]) for key in keys)
        outcomes, waiting = chunk_rows(rows) if rows else ({}, {})
        return ChunkState(
            job=_job_from_item(job) if job else None,
            digest=recorded_digest(job_id, chunk_index, digest) if digest else None,
            outcomes=outcomes,
            waiting=waiting,
        )

    def chunk_outcomes(self, job_id: str, chunk_index: int) -> dict[str, RowOutcome]:
        """The chunk's recorded outcomes, by data hash."""
        item = self._table.get_item(Key=rows_key(job_id, chunk_index), ConsistentRead=True).get("Item")
        return chunk_rows(item)[0] if item else {}

    def record_rows(
        self,
        job_id: str,
        chunk_index: int,
        outcomes: list[RowOutcome],
        *,
        attempts: int,
        encord_requests: int,
        chunk_rows_count: int,
        earlier_attempts: Mapping[str, int] | None = None,
    ) -> bool:
        """Write row outcomes on the chunk's rows item and bump the job's counters in the same transaction, 100
        rows at a time; returns True when they may have finished the job (`job_lifecycle.finish_if_done` then
        decides), so the other chunks finish without reading the job again.

        Each outcome is written once: a row another delivery of the same chunk recorded meanwhile cancels the
        transaction, and it is written again without that row, which is then neither recorded twice nor
        counted twice. The job's counters take `rows_left` down and, until the last rows, on the condition that
        some are left after these. A transaction conflict with another consumer's (on the job item) is tried
        again. A row's attempts are `attempts` (this delivery's) plus `earlier_attempts` (those of earlier
        deliveries, from its RETRYING record).
        """
        earlier = earlier_attempts or {}
        finishing = False
        for start in range(0, len(outcomes), _ROWS_PER_TRANSACTION):
            batch = outcomes[start : start + _ROWS_PER_TRANSACTION]
            conflicts = 0
            while batch:
                now = int(time.time())
                values = {
                    outcome.data_hash: encoded(
                        outcome, attempts=earlier.get(outcome.data_hash, 0) + attempts, chunk_rows=chunk_rows_count
                    )
                    for outcome in batch
                }
                items = [
                    {"Update": self._rows_update(job_id, chunk_index, OUTCOME, values, now, once=True)},
                    {"Update": self._counters_update(job_id, batch, encord_requests, now, last=finishing)},
                ]
                try:
                    self._resource.meta.client.transact_write_items(TransactItems=items)
                except ClientError as error:
                    if error.response["Error"]["Code"] != "TransactionCanceledException":
                        raise
                    rows_check, counters_check = (
                        reason.get("Code") for reason in error.response.get("CancellationReasons", [{}, {}])
                    )
                    if rows_check == "ConditionalCheckFailed":
                        recorded = self.chunk_outcomes(job_id, chunk_index)
                        batch = [outcome for outcome in batch if outcome.data_hash not in recorded]
                    elif counters_check == "ConditionalCheckFailed":
                        finishing = True
                    elif conflicts < _CONFLICT_ATTEMPTS and "TransactionConflict" in (rows_check, counters_check):
                        conflicts += 1
                        time.sleep(_CONFLICT_BACKOFF.seconds(conflicts))
                    else:
                        raise
                    continue
                encord_requests = 0  # counted once, with the first rows
                break
        return finishing

    def _rows_update(
        self, job_id: str, chunk_index: int, prefix: str, values: dict[str, str], now: int, *, once: bool
    ) -> dict[str, Any]:
        """Set one attribute per row on the chunk's rows item; with `once`, only if none of them has one yet."""
        names = {f"#r{number}": prefix + data_hash for number, data_hash in enumerate(values)}
        update: dict[str, Any] = {
            "TableName": self._table_name,
            "Key": rows_key(job_id, chunk_index),
            "UpdateExpression": "SET expires_at = :exp, " + ", ".join(f"{name} = :r{name[2:]}" for name in names),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {
                ":exp": self._expires_at(now),
                **{f":r{number}": value for number, value in enumerate(values.values())},
            },
        }
        if once:
            update["ConditionExpression"] = " AND ".join(f"attribute_not_exists({name})" for name in names)
        return update

    def _counters_update(
        self, job_id: str, batch: list[RowOutcome], encord_requests: int, now: int, *, last: bool
    ) -> dict[str, Any]:
        imported = sum(1 for outcome in batch if outcome.status is RowStatus.IMPORTED)
        rolled_back = sum(1 for outcome in batch if outcome.status is RowStatus.ROLLED_BACK)
        superseded = sum(1 for outcome in batch if outcome.status is RowStatus.SKIPPED)
        update: dict[str, Any] = {
            "TableName": self._table_name,
            "Key": _job_key(job_id),
            "UpdateExpression": "ADD rows_imported :i, rows_rolled_back :b, rows_failed :f, rows_superseded :s, "
            "labels_added :l, labels_removed :x, encord_requests :r, rows_left :left, "
            "tasks_prioritised :tp, tasks_completed :tc, tasks_reopened :tr, rows_actions_refused :ta "
            "SET updated_at = :now",
            "ExpressionAttributeValues": {
                ":i": imported,
                ":b": rolled_back,
                ":f": len(batch) - imported - rolled_back - superseded,
                ":s": superseded,
                ":l": sum(outcome.labels_added for outcome in batch),
                ":x": sum(outcome.labels_removed for outcome in batch),
                ":r": encord_requests,
                ":left": -len(batch),
                ":tp": sum("priority" in outcome.actions for outcome in batch),
                ":tc": sum("complete" in outcome.actions for outcome in batch),
                ":tr": sum("reopen" in outcome.actions for outcome in batch),
                ":ta": sum(outcome.status in _DONE and outcome.reason is not None for outcome in batch),
                ":now": now,
            },
        }
        if not last:
            # Not the job's last rows: some are left after these. A job recorded before `rows_left` existed
            # fails this too, and is then finished the way it always was, by reading it.
            update["ConditionExpression"] = "rows_left > :n"
            update["ExpressionAttributeValues"][":n"] = len(batch)
        return update

    def note_retry(
        self,
        job_id: str,
        chunk_index: int,
        lines_by_hash: dict[str, list[int]],
        *,
        attempts: int,
        error: str,
        encord_requests: int,
        chunk_rows_count: int,
        earlier_attempts: Mapping[str, int] | None = None,
    ) -> None:
        """Mark rows RETRYING with the error that stopped this delivery, so `status` can say why they wait.

        A row another delivery finished meanwhile keeps its outcome (an outcome wins over a RETRYING record).
        """
        now = int(time.time())
        earlier = earlier_attempts or {}
        self._table.update_item(
            Key=_job_key(job_id),
            UpdateExpression="ADD encord_requests :r SET updated_at = :now",
            ExpressionAttributeValues={":r": encord_requests, ":now": now},
        )
        waiting = [
            (data_hash, RowOutcome(data_hash, RowStatus.RETRYING, lines, reason=error))
            for data_hash, lines in lines_by_hash.items()
        ]
        for start in range(0, len(waiting), _ROWS_PER_TRANSACTION):
            values = {
                data_hash: encoded(row, attempts=earlier.get(data_hash, 0) + attempts, chunk_rows=chunk_rows_count)
                for data_hash, row in waiting[start : start + _ROWS_PER_TRANSACTION]
            }
            update = self._rows_update(job_id, chunk_index, WAITING, values, now, once=False)
            update.pop("TableName")
            self._table.update_item(**update)

    def recorded(self, job_id: str) -> set[str]:
        """The data hashes of the job's rows that have an outcome."""
        return {row.data_hash for row in self._all_rows(job_id) if row.status in FINISHED_ROW}

    def rows(self, job_id: str, status: RowStatus) -> list[RowOutcome]:
        """The job's rows in `status`, in file order; a RETRYING row's reason is the error it last met."""
        return sorted((row for row in self._all_rows(job_id) if row.status is status), key=lambda row: row.lines)

    def _all_rows(self, job_id: str) -> Iterator[RowOutcome]:
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(f"JOB#{job_id}") & Key("sk").begins_with("ROW"),
        }
        while True:
            page = self._table.query(**query)
            for item in page["Items"]:
                yield from decoded_rows(item)
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

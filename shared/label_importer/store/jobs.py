"""Jobs and per-row outcomes in DynamoDB: the record of what happened, and the guard against doing it twice.

One table, two item kinds under the job's partition (and data-unit leases, see leases.py):
  pk = JOB#<job id>, sk = JOB            the job: status, options, totals and atomic counters
  pk = JOB#<job id>, sk = ROW#<hash>     one label row: RETRYING (attempts, last error) until its outcome,
                                         IMPORTED, FAILED or SKIPPED with a reason, is written
An outcome is written once, in the same transaction that bumps the job's counters, so a redelivered chunk
can neither lose a row nor count it twice. Every item carries `expires_at`, which the table's TTL uses to
delete old jobs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from decimal import Decimal
from typing import Any

import boto3
import orjson
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


def _row_key(job_id: str, data_hash: str) -> dict[str, str]:
    return {"pk": f"JOB#{job_id}", "sk": f"ROW#{data_hash}"}


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_TRANSACTION_BYTES = 3 << 20
"""Below DynamoDB's 4 MB per transaction, with room for the row records and attribute names."""


def _transactions(
    outcomes: list[RowOutcome], with_rows: dict[str, dict[str, Any]], most_items: int
) -> Iterator[list[RowOutcome]]:
    """The outcomes in batches that fit one transaction each: at most `most_items` items (a row, and the item
    written with it, count one each) and, with those items, at most _TRANSACTION_BYTES."""
    batch: list[RowOutcome] = []
    items = size = 0
    for outcome in outcomes:
        extra = with_rows.get(outcome.data_hash)
        extra_size = len(orjson.dumps(extra)) if extra else 0
        needed = 2 if extra else 1
        if batch and (items + needed > most_items or size + extra_size > _TRANSACTION_BYTES):
            yield batch
            batch, items, size = [], 0, 0
        batch.append(outcome)
        items += needed
        size += extra_size
    if batch:
        yield batch


class JobStore:
    _TRANSACTION_ROWS = 99
    """DynamoDB allows 100 items per transaction; one slot is the job's counter update."""

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
            "total_rows = :t, total_chunks = :c, rows_skipped = :s",
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

    def finished_rows(self, job_id: str, data_hashes: list[str]) -> set[str]:
        """The rows of this job that already have an outcome (a redelivered chunk skips them)."""
        return {
            data_hash for data_hash, status in self.row_statuses(job_id, data_hashes).items() if status in FINISHED_ROW
        }

    def row_statuses(self, job_id: str, data_hashes: list[str]) -> dict[str, RowStatus]:
        """The status of each of these rows that has a record (finished, or RETRYING after a fault)."""
        statuses: dict[str, RowStatus] = {}
        for batch in _chunks(data_hashes, 100):
            request: dict[str, Any] = {
                self._table_name: {
                    "Keys": [_row_key(job_id, data_hash) for data_hash in batch],
                    "ProjectionExpression": "sk, #status",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ConsistentRead": True,
                }
            }
            while request:
                response = self._resource.batch_get_item(RequestItems=request)
                statuses.update(
                    (item["sk"].removeprefix("ROW#"), RowStatus(item["status"]))
                    for item in response["Responses"][self._table_name]
                )
                request = response.get("UnprocessedKeys") or {}
        return statuses

    def record_rows(
        self,
        job_id: str,
        outcomes: list[RowOutcome],
        *,
        attempts: int,
        encord_requests: int,
        with_rows: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Write row outcomes and bump the job's counters in the same transactions (all or nothing each).

        A row that already has an outcome cancels the transaction: another delivery of the same chunk
        recorded it first, and this delivery must be retried (it will then skip that row), not counted.
        `attempts` (import attempts this delivery made) adds to those of earlier deliveries. `with_rows`
        holds a transaction item per data hash to write with that row's outcome (its upload history).
        """
        now = int(time.time())
        with_rows = with_rows or {}
        for number, batch in enumerate(_transactions(outcomes, with_rows, self._TRANSACTION_ROWS)):
            imported = sum(1 for outcome in batch if outcome.status is RowStatus.IMPORTED)
            rolled_back = sum(1 for outcome in batch if outcome.status is RowStatus.ROLLED_BACK)
            superseded = sum(1 for outcome in batch if outcome.status is RowStatus.SKIPPED)
            items: list[dict[str, Any]] = [
                {"Update": self._row_update(job_id, outcome, attempts, now)} for outcome in batch
            ]
            items.extend(with_rows[outcome.data_hash] for outcome in batch if outcome.data_hash in with_rows)
            items.append(
                {
                    "Update": {
                        "TableName": self._table_name,
                        "Key": _job_key(job_id),
                        "UpdateExpression": "ADD rows_imported :i, rows_rolled_back :b, rows_failed :f, "
                        "rows_superseded :s, labels_added :l, labels_removed :x, encord_requests :r, "
                        "tasks_prioritised :tp, tasks_completed :tc, tasks_reopened :tr, rows_actions_refused :ta "
                        "SET updated_at = :now",
                        "ExpressionAttributeValues": {
                            ":i": imported,
                            ":b": rolled_back,
                            ":f": len(batch) - imported - rolled_back - superseded,
                            ":s": superseded,
                            ":l": sum(outcome.labels_added for outcome in batch),
                            ":x": sum(outcome.labels_removed for outcome in batch),
                            ":r": encord_requests if number == 0 else 0,
                            ":tp": sum("priority" in outcome.actions for outcome in batch),
                            ":tc": sum("complete" in outcome.actions for outcome in batch),
                            ":tr": sum("reopen" in outcome.actions for outcome in batch),
                            ":ta": sum(outcome.status in _DONE and outcome.reason is not None for outcome in batch),
                            ":now": now,
                        },
                    }
                }
            )
            self._resource.meta.client.transact_write_items(TransactItems=items)

    def _row_update(self, job_id: str, outcome: RowOutcome, attempts: int, now: int) -> dict[str, Any]:
        values: dict[str, Any] = {
            ":s": str(outcome.status),
            ":lines": outcome.lines,
            ":added": outcome.labels_added,
            ":removed": outcome.labels_removed,
            ":actions": list(outcome.actions),
            ":n": attempts,
            ":now": now,
            ":exp": self._expires_at(now),
            ":retrying": str(RowStatus.RETRYING),
        }
        expression = (
            "SET #status = :s, #lines = :lines, labels_added = :added, labels_removed = :removed, recorded_at = :now, "
            "updated_at = :now, actions = :actions, "
            "first_attempt_at = if_not_exists(first_attempt_at, :now), expires_at = :exp"
        )
        if outcome.reason:
            expression += ", reason = :reason"
            values[":reason"] = outcome.reason
        return {
            "TableName": self._table_name,
            "Key": _row_key(job_id, outcome.data_hash),
            "UpdateExpression": expression + " ADD attempts :n",
            "ConditionExpression": "attribute_not_exists(pk) OR #status = :retrying",
            "ExpressionAttributeNames": {"#status": "status", "#lines": "lines"},
            "ExpressionAttributeValues": values,
        }

    def note_retry(
        self, job_id: str, lines_by_hash: dict[str, list[int]], *, attempts: int, error: str, encord_requests: int
    ) -> None:
        """Mark rows RETRYING with the error that stopped this delivery, so `status` can say why they wait.

        A row another delivery finished meanwhile keeps its outcome.
        """
        now = int(time.time())
        self._table.update_item(
            Key=_job_key(job_id),
            UpdateExpression="ADD encord_requests :r SET updated_at = :now",
            ExpressionAttributeValues={":r": encord_requests, ":now": now},
        )
        for data_hash, lines in lines_by_hash.items():
            try:
                self._table.update_item(
                    Key=_row_key(job_id, data_hash),
                    UpdateExpression="SET #status = :retrying, #lines = :lines, last_error = :e, updated_at = :now, "
                    "first_attempt_at = if_not_exists(first_attempt_at, :now), expires_at = :exp ADD attempts :n",
                    ConditionExpression="attribute_not_exists(pk) OR #status = :retrying",
                    ExpressionAttributeNames={"#status": "status", "#lines": "lines"},
                    ExpressionAttributeValues={
                        ":lines": lines,
                        ":retrying": str(RowStatus.RETRYING),
                        ":e": error,
                        ":now": now,
                        ":exp": self._expires_at(now),
                        ":n": attempts,
                    },
                )
            except ClientError as failure:
                if failure.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise

    def rows(self, job_id: str, status: RowStatus) -> list[RowOutcome]:
        """The job's rows in `status`, in file order; a RETRYING row's reason is the error it last met."""
        rows: list[RowOutcome] = []
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(f"JOB#{job_id}") & Key("sk").begins_with("ROW#"),
            "FilterExpression": Attr("status").eq(str(status)),
        }
        while True:
            page = self._table.query(**query)
            rows.extend(
                RowOutcome(
                    data_hash=item["sk"].removeprefix("ROW#"),
                    status=status,
                    lines=[int(line) for line in item["lines"]],
                    reason=item.get("reason") or item.get("last_error"),
                    labels_added=int(item.get("labels_added", 0)),
                    labels_removed=int(item.get("labels_removed", 0)),
                    attempts=int(item.get("attempts", 0)),
                    actions=tuple(item.get("actions", ())),
                )
                for item in page["Items"]
            )
            if "LastEvaluatedKey" not in page:
                return sorted(rows, key=lambda row: row.lines)
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

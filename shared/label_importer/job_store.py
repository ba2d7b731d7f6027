"""Jobs and per-row outcomes in DynamoDB: the record of what happened, and the guard against doing it twice.

One table, two item kinds under the job's partition:
  pk = JOB#<job id>, sk = JOB            the job: status, options, totals and atomic counters
  pk = JOB#<job id>, sk = ROW#<hash>     one label row's outcome (IMPORTED / FAILED with a reason)
A row item is written once, in the same transaction that bumps the job's counters, so a redelivered
chunk can neither lose a row nor count it twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError


class JobStatus(StrEnum):
    VALIDATING = "VALIDATING"
    QUEUED = "QUEUED"
    IMPORTING = "IMPORTING"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
    REJECTED = "REJECTED"
    VALIDATED = "VALIDATED"
    """Terminal status of a dry run: the file is valid and nothing was queued."""


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS, JobStatus.REJECTED, JobStatus.VALIDATED})
_IN_FLIGHT = [JobStatus.VALIDATING, JobStatus.QUEUED, JobStatus.IMPORTING]


class RowStatus(StrEnum):
    IMPORTED = "IMPORTED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class RowOutcome:
    data_hash: str
    status: RowStatus
    lines: list[int]
    reason: str | None = None
    labels_added: int = 0


@dataclass(frozen=True)
class Job:
    job_id: str
    status: JobStatus
    bucket: str
    key: str
    version_id: str | None
    project_hash: str
    mode: str
    created_at: int
    total_records: int = 0
    invalid_records: int = 0
    problem_count: int = 0
    total_rows: int = 0
    total_chunks: int = 0
    rows_imported: int = 0
    rows_failed: int = 0
    rows_skipped: int = 0
    labels_added: int = 0
    finished_at: int | None = None

    @property
    def rows_done(self) -> int:
        return self.rows_imported + self.rows_failed

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Job:
        # Every number in a job is a count or a timestamp; DynamoDB hands them back as Decimal.
        values = {
            name: int(item[name]) if isinstance(item[name], Decimal) else item[name]
            for name in cls.__dataclass_fields__
            if name in item
        }
        values["status"] = JobStatus(values["status"])
        return cls(**values)


def _job_key(job_id: str) -> dict[str, str]:
    return {"pk": f"JOB#{job_id}", "sk": "JOB"}


def _row_key(job_id: str, data_hash: str) -> dict[str, str]:
    return {"pk": f"JOB#{job_id}", "sk": f"ROW#{data_hash}"}


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class JobStore:
    _TRANSACTION_ROWS = 99
    """DynamoDB allows 100 items per transaction; one slot is the job's counter update."""

    def __init__(self, table_name: str, resource: Any | None = None) -> None:
        self._resource = resource or boto3.resource("dynamodb")
        self._table = self._resource.Table(table_name)
        self._table_name = table_name

    def create(self, job: Job) -> Job | None:
        """Create the job; return the existing job instead if this S3 object version already has one."""
        item = {**_job_key(job.job_id), **asdict(job)}
        try:
            self._table.put_item(Item=item, ConditionExpression=Attr("pk").not_exists())
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return self.get(job.job_id)
        return None

    def get(self, job_id: str) -> Job | None:
        item = self._table.get_item(Key=_job_key(job_id), ConsistentRead=True).get("Item")
        return Job.from_item(item) if item else None

    def set_plan(self, job: Job) -> None:
        """Totals go in before the first chunk is sent, so any consumer can tell when the job is done (and a
        rejected job keeps what was found)."""
        self._table.update_item(
            Key=_job_key(job.job_id),
            UpdateExpression="SET project_hash = :p, #mode = :m, total_records = :r, invalid_records = :i, "
            "problem_count = :e, total_rows = :t, total_chunks = :c, rows_skipped = :s",
            ExpressionAttributeNames={"#mode": "mode"},
            ExpressionAttributeValues={
                ":p": job.project_hash,
                ":m": job.mode,
                ":r": job.total_records,
                ":i": job.invalid_records,
                ":e": job.problem_count,
                ":t": job.total_rows,
                ":c": job.total_chunks,
                ":s": job.rows_skipped,
            },
        )

    def transition(self, job_id: str, to: JobStatus, *, allowed_from: Iterable[JobStatus] = _IN_FLIGHT) -> bool:
        """Move the job to `to` if it is in one of `allowed_from`; False when another writer got there first."""
        now = int(time.time())
        expression = "SET #status = :to, updated_at = :now"
        if to in TERMINAL:
            expression += ", finished_at = :now"
        try:
            self._table.update_item(
                Key=_job_key(job_id),
                UpdateExpression=expression,
                ConditionExpression=Attr("status").is_in([str(status) for status in allowed_from]),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":to": str(to), ":now": now},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def finished_rows(self, job_id: str, data_hashes: list[str]) -> set[str]:
        """The rows of this job that already have an outcome (a redelivered chunk skips them)."""
        done: set[str] = set()
        for batch in _chunks(data_hashes, 100):
            request: dict[str, Any] = {
                self._table_name: {
                    "Keys": [_row_key(job_id, data_hash) for data_hash in batch],
                    "ProjectionExpression": "sk",
                    "ConsistentRead": True,
                }
            }
            while request:
                response = self._resource.batch_get_item(RequestItems=request)
                done.update(item["sk"].removeprefix("ROW#") for item in response["Responses"][self._table_name])
                request = response.get("UnprocessedKeys") or {}
        return done

    def record_rows(self, job_id: str, outcomes: list[RowOutcome]) -> None:
        """Write row outcomes and bump the job's counters in the same transactions (all or nothing each).

        A row that already has an outcome cancels the transaction: another delivery of the same chunk
        recorded it first, and this delivery must be retried (it will then skip that row), not counted.
        """
        now = int(time.time())
        for batch in _chunks(outcomes, self._TRANSACTION_ROWS):
            imported = sum(1 for outcome in batch if outcome.status is RowStatus.IMPORTED)
            items: list[dict[str, Any]] = [
                {
                    "Put": {
                        "TableName": self._table_name,
                        "Item": {
                            **_row_key(job_id, outcome.data_hash),
                            "status": str(outcome.status),
                            "lines": outcome.lines,
                            "labels_added": outcome.labels_added,
                            "recorded_at": now,
                            **({"reason": outcome.reason} if outcome.reason else {}),
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
                for outcome in batch
            ]
            items.append(
                {
                    "Update": {
                        "TableName": self._table_name,
                        "Key": _job_key(job_id),
                        "UpdateExpression": "ADD rows_imported :i, rows_failed :f, labels_added :l "
                        "SET updated_at = :now",
                        "ExpressionAttributeValues": {
                            ":i": imported,
                            ":f": len(batch) - imported,
                            ":l": sum(outcome.labels_added for outcome in batch),
                            ":now": now,
                        },
                    }
                }
            )
            self._resource.meta.client.transact_write_items(TransactItems=items)

    def failed_rows(self, job_id: str) -> list[RowOutcome]:
        rows = []
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(f"JOB#{job_id}") & Key("sk").begins_with("ROW#"),
            "FilterExpression": Attr("status").eq(str(RowStatus.FAILED)),
        }
        while True:
            page = self._table.query(**query)
            rows.extend(
                RowOutcome(
                    data_hash=item["sk"].removeprefix("ROW#"),
                    status=RowStatus.FAILED,
                    lines=[int(line) for line in item["lines"]],
                    reason=item.get("reason"),
                )
                for item in page["Items"]
            )
            if "LastEvaluatedKey" not in page:
                return sorted(rows, key=lambda row: row.lines)
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

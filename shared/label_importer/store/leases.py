"""Each data unit's record per branch in the jobs table: its lease, its upload history and the jobs that recorded
an outcome for it, on one item, so that taking, reading and giving back a chunk's data units is a request each.

  pk = UNIT#<data hash>[#<branch>], sk = ORDER
      holder, lease_until (epoch ms)    the lease, while one is held
      history                           the latest `replace` applied and the appends after it (model/upload_order.py)
      recorded_by                       the last jobs that gave the data unit back with an outcome to record
      expires_at                        DynamoDB TTL clean-up, as for the job's own items

**Leases: one writer per data unit and branch across jobs**, held from initialise_labels until the outcome is
recorded. Encord's save() replaces the whole label row: two jobs importing into the same data unit at once (say,
one file per class, dropped together) would each read the row, add their own labels and save, and the later
save would erase the earlier one's labels. A consumer therefore imports only the data units it holds a lease on
and hands the rest back for later. A lease expires, so a consumer that died holding one delays the others by
`lease_seconds` at most and never blocks them for good.

Expiry must never let two writers overlap, however slowly Encord answers. So a save starts only with at least
half a lease ahead of it (`renew(..., if_due=True)` renews when less is left), which is longer than one request
may take (the SDK's timeout), and the holder renews before every retry: the renewal succeeds only while the lease
is still this holder's. A holder that finds a lease gone saves nothing: someone else may have written the data
unit since it was read.

**Giving a data unit back** writes its new history and adds the job to `recorded_by` in the same conditional
write that ends the lease, before the job records the row's outcome (jobs.py). So whoever leases the data unit
next reads the history with this upload in it, and a later delivery of the same chunk that finds its job in
`recorded_by` knows an earlier one got this far: it looks the outcome up rather than import the row again.

Each branch of a data unit is its own label row, saved on its own, so each has its own item (`main`'s key has no
branch part, as before branches existed: model/branches.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from label_importer.model.branches import on_branch
from label_importer.model.jobs import DEFAULT_TTL_DAYS
from label_importer.model.leases import LeaseLost
from label_importer.model.upload_order import UnitHistory
from label_importer.runtime.backoff import Backoff
from label_importer.runtime.observability import logger

_TRANSACTION_ITEMS = 100
"""DynamoDB's most items per TransactWriteItems: a chunk's leases are taken (and given back) in one request."""
_RELEASE_ATTEMPTS = 4
_RELEASE_BACKOFF = Backoff(0.2, 2.0)
_CONFLICT_ATTEMPTS = 4
_CONFLICT_BACKOFF = Backoff(0.05, 1.0)
"""A transaction that collides with another one on the same item is cancelled as a whole; tried again."""
RECORDED_BY_KEPT = 16
"""Jobs kept in `recorded_by`: a redelivery of a chunk comes within the queue's retention, long before 16 other
jobs have imported into the same data unit and branch."""


def _key(data_hash: str, branch: str) -> dict[str, str]:
    return {"pk": on_branch(f"UNIT#{data_hash}", branch), "sk": "ORDER"}


@dataclass(frozen=True)
class DataUnitRecord:
    history: UnitHistory = field(default_factory=UnitHistory)
    recorded_by: tuple[str, ...] = ()

    def recorded(self, job_id: str) -> DataUnitRecord:
        """This record once `job_id` gave the data unit back with an outcome to record."""
        kept = tuple(job for job in self.recorded_by if job != job_id)[-(RECORDED_BY_KEPT - 1) :]
        return DataUnitRecord(self.history, (*kept, job_id))


class DataUnitLeases:
    def __init__(
        self, table_name: str, lease_seconds: int, resource: Any | None = None, *, ttl_days: int = DEFAULT_TTL_DAYS
    ) -> None:
        self._resource = resource or boto3.resource("dynamodb")
        self._client = self._resource.meta.client
        self._table_name = table_name
        self._lease_ms = lease_seconds * 1000
        self._ttl_seconds = ttl_days * 86_400
        self._extended_at: dict[str, float] = {}
        """By holder: when (monotonic) its leases were last taken or renewed, measured before the request."""

    def acquire(self, data_hashes: Iterable[str], holder: str, *, branch: str) -> set[str]:
        """Lease every data unit's `branch` that is free, expired, or already `holder`'s; return those now held."""
        self._extended_at[holder] = time.monotonic()
        now_ms = int(time.time() * 1000)
        values = {":now": now_ms, ":me": holder, ":until": now_ms + self._lease_ms, ":expires": self._expires_at()}

        def take(data_hash: str) -> dict[str, Any]:
            return {
                "Update": {
                    "TableName": self._table_name,
                    "Key": _key(data_hash, branch),
                    "UpdateExpression": "SET holder = :me, lease_until = :until, expires_at = :expires",
                    "ConditionExpression": "attribute_not_exists(holder) OR lease_until < :now OR holder = :me",
                    "ExpressionAttributeValues": values,
                }
            }

        return self._write_each(data_hashes, take)

    def read(self, data_hashes: list[str], *, branch: str) -> dict[str, DataUnitRecord]:
        """The data units' records, read under their leases so no other writer changes them before they are given
        back."""
        records = {data_hash: DataUnitRecord() for data_hash in data_hashes}
        by_key = {_key(data_hash, branch)["pk"]: data_hash for data_hash in data_hashes}
        for start in range(0, len(data_hashes), 100):
            request: dict[str, Any] = {
                self._table_name: {
                    "Keys": [_key(data_hash, branch) for data_hash in data_hashes[start : start + 100]],
                    "ProjectionExpression": "pk, history, recorded_by",
                    "ConsistentRead": True,
                }
            }
            while request:
                response = self._resource.batch_get_item(RequestItems=request)
                for item in response["Responses"][self._table_name]:
                    records[by_key[item["pk"]]] = DataUnitRecord(
                        UnitHistory.from_dict(item.get("history")), tuple(item.get("recorded_by", ()))
                    )
                request = response.get("UnprocessedKeys") or {}
        return records

    def renew(self, data_hashes: Iterable[str], holder: str, *, branch: str, if_due: bool = False) -> None:
        """Extend the leases by a whole lease from now; raise LeaseLost if any is no longer `holder`'s. With
        `if_due`, only when less than half a lease is left of the last extension: what a save needs ahead of it.

        Still `holder`'s even if expired: nobody can have written a data unit whose lease nobody else took.
        """
        started = time.monotonic()
        if if_due and started - self._extended_at.get(holder, float("-inf")) < self._lease_ms / 2000:
            return
        self._extended_at[holder] = started
        values = {":me": holder, ":until": int(time.time() * 1000) + self._lease_ms}

        def extend(data_hash: str) -> dict[str, Any]:
            return {
                "Update": {
                    "TableName": self._table_name,
                    "Key": _key(data_hash, branch),
                    "UpdateExpression": "SET lease_until = :until",
                    "ConditionExpression": "holder = :me",
                    "ExpressionAttributeValues": values,
                }
            }

        wanted = set(data_hashes)
        lost = wanted - self._write_each(wanted, extend)
        if lost:
            raise LeaseLost(f"{len(lost)} data-unit leases expired and went to another import before the save")

    def release(
        self,
        data_hashes: Iterable[str],
        holder: str,
        *,
        branch: str,
        records: Mapping[str, DataUnitRecord] | None = None,
    ) -> set[str]:
        """Give the leases back, writing `records` (new history, the job in `recorded_by`) where given; returns the
        data units whose record was written. A lease that expired and went to another holder meanwhile is left
        alone, and so is its record: the outcome of that row must not be recorded from this attempt.

        Tried a few times (a throttled table must not hold data units a whole lease after a job finished); if it
        still fails the leases simply expire, which is logged and not an error of the import.
        """
        records = records or {}
        expires = self._expires_at()

        def give_back(data_hash: str) -> dict[str, Any]:
            update: dict[str, Any] = {
                "TableName": self._table_name,
                "Key": _key(data_hash, branch),
                "UpdateExpression": "REMOVE holder, lease_until",
                "ConditionExpression": "holder = :me",
                "ExpressionAttributeValues": {":me": holder},
            }
            record = records.get(data_hash)
            if record is not None:
                update["UpdateExpression"] = (
                    "SET history = :h, recorded_by = :r, expires_at = :e " + (update["UpdateExpression"])
                )
                update["ExpressionAttributeValues"] = {
                    ":me": holder,
                    ":h": record.history.to_dict(),
                    ":r": list(record.recorded_by),
                    ":e": expires,
                }
            return {"Update": update}

        held = list(data_hashes)
        self._extended_at.pop(holder, None)
        for attempt in range(_RELEASE_ATTEMPTS):
            try:
                return self._write_each(held, give_back) & set(records)
            except ClientError as error:
                if attempt == _RELEASE_ATTEMPTS - 1:
                    logger.warning(
                        "leases not released; they expire on their own",
                        extra={"leases": len(held), "error": str(error), "lease_seconds": self._lease_ms // 1000},
                    )
                    return set()
                time.sleep(_RELEASE_BACKOFF.seconds(attempt + 1))
        return set()

    def _expires_at(self) -> int:
        return int(time.time()) + self._ttl_seconds

    def _write_each(self, data_hashes: Iterable[str], write: Callable[[str], dict[str, Any]]) -> set[str]:
        """Make each conditional write whose condition holds; return the data units written.

        Up to 100 writes go in one transaction. A transaction is all or nothing, but its cancellation says
        which writes failed their condition: those data units are left out and the others written again, so
        one busy data unit never holds up the rest. Data units still unwritten after repeated conflicts with
        other transactions count as not written (their rows wait for a later attempt).
        """
        unique = list(dict.fromkeys(data_hashes))
        written: set[str] = set()
        for start in range(0, len(unique), _TRANSACTION_ITEMS):
            pending = unique[start : start + _TRANSACTION_ITEMS]
            for attempt in range(_CONFLICT_ATTEMPTS):
                if not pending:
                    break
                try:
                    self._client.transact_write_items(TransactItems=[write(data_hash) for data_hash in pending])
                except ClientError as error:
                    if error.response["Error"]["Code"] != "TransactionCanceledException":
                        raise
                    reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
                    if len(reasons) != len(pending):
                        raise
                    pending = [h for h, code in zip(pending, reasons, strict=True) if code != "ConditionalCheckFailed"]
                    if "ConditionalCheckFailed" not in reasons:  # only conflicts: let the other transaction finish
                        time.sleep(_CONFLICT_BACKOFF.seconds(attempt + 1))
                    continue
                written.update(pending)
                break
        return written

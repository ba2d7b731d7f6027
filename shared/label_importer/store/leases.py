"""One writer per data unit and branch across jobs: a lease in the jobs table, held from initialise_labels until
the save is recorded.

Encord's save() replaces the whole label row. Two jobs importing into the same data unit at once (say, one
file per class, dropped together) would each read the row, add their own labels and save, and the later save
would erase the earlier one's labels. A consumer therefore imports only the data units it holds a lease on and
hands the rest back for later. A lease expires, so a consumer that died holding one delays the others by
`lease_seconds` at most and never blocks them for good.

Expiry must never let two writers overlap, however slowly Encord answers. So the holder renews its leases
before every retry and again just before every save (`renew`): the renewal succeeds only while the lease is
still this holder's, and a save starts only after one did, with a whole lease ahead of it, longer than one
request may take (the SDK's timeout). A holder that finds a lease gone saves nothing: someone else may have
written the data unit since it was read.

  pk = LEASE#<data hash>[#<branch>], sk = LEASE    holder, lease_until (epoch ms), expires_at (DynamoDB TTL clean-up)

Each branch of a data unit is its own label row, saved on its own, so each has its own lease (`main`'s key has
no branch part, as before branches existed: model/branches.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import boto3
from botocore.exceptions import ClientError

from label_importer.model.branches import on_branch
from label_importer.model.leases import LeaseLost
from label_importer.runtime.backoff import Backoff
from label_importer.runtime.observability import logger

_CLEAN_UP_AFTER_SECONDS = 86_400
_TRANSACTION_ITEMS = 100
"""DynamoDB's most items per TransactWriteItems: a chunk's leases are taken (and given back) in one request."""
_RELEASE_ATTEMPTS = 4
_RELEASE_BACKOFF = Backoff(0.2, 2.0)
_CONFLICT_ATTEMPTS = 4
_CONFLICT_BACKOFF = Backoff(0.05, 1.0)
"""A transaction that collides with another one on the same item is cancelled as a whole; tried again."""


def _key(data_hash: str, branch: str) -> dict[str, str]:
    return {"pk": on_branch(f"LEASE#{data_hash}", branch), "sk": "LEASE"}


class DataUnitLeases:
    def __init__(self, table_name: str, lease_seconds: int, resource: Any | None = None) -> None:
        self._client = (resource or boto3.resource("dynamodb")).meta.client
        self._table_name = table_name
        self._lease_ms = lease_seconds * 1000

    def acquire(self, data_hashes: Iterable[str], holder: str, *, branch: str) -> set[str]:
        """Lease every data unit's `branch` that is free, expired, or already `holder`'s; return those now held."""
        now_ms = int(time.time() * 1000)
        until_ms = now_ms + self._lease_ms

        def take(data_hash: str) -> dict[str, Any]:
            return {
                "Put": {
                    "TableName": self._table_name,
                    "Item": {
                        **_key(data_hash, branch),
                        "holder": holder,
                        "lease_until": until_ms,
                        "expires_at": until_ms // 1000 + _CLEAN_UP_AFTER_SECONDS,
                    },
                    "ConditionExpression": "attribute_not_exists(pk) OR lease_until < :now OR holder = :me",
                    "ExpressionAttributeValues": {":now": now_ms, ":me": holder},
                }
            }

        return self._write_each(data_hashes, take)

    def renew(self, data_hashes: Iterable[str], holder: str, *, branch: str) -> None:
        """Extend the leases by a whole lease from now; raise LeaseLost if any is no longer `holder`'s.

        Still `holder`'s even if expired: nobody can have written a data unit whose lease nobody else took.
        """
        now_ms = int(time.time() * 1000)
        until_ms = now_ms + self._lease_ms

        def extend(data_hash: str) -> dict[str, Any]:
            return {
                "Update": {
                    "TableName": self._table_name,
                    "Key": _key(data_hash, branch),
                    "UpdateExpression": "SET lease_until = :until, expires_at = :expires",
                    "ConditionExpression": "holder = :me",
                    "ExpressionAttributeValues": {
                        ":me": holder,
                        ":until": until_ms,
                        ":expires": until_ms // 1000 + _CLEAN_UP_AFTER_SECONDS,
                    },
                }
            }

        wanted = set(data_hashes)
        lost = wanted - self._write_each(wanted, extend)
        if lost:
            raise LeaseLost(f"{len(lost)} data-unit leases expired and went to another import before the save")

    def release(self, data_hashes: Iterable[str], holder: str, *, branch: str) -> None:
        """Give the leases back; one that expired and went to another holder meanwhile is left alone.

        Tried a few times (a throttled table must not hold data units a whole lease after a job finished);
        if it still fails the leases simply expire, which is logged and not an error of the import.
        """

        def give_back(data_hash: str) -> dict[str, Any]:
            return {
                "Delete": {
                    "TableName": self._table_name,
                    "Key": _key(data_hash, branch),
                    "ConditionExpression": "holder = :me",
                    "ExpressionAttributeValues": {":me": holder},
                }
            }

        held = list(data_hashes)
        for attempt in range(_RELEASE_ATTEMPTS):
            try:
                self._write_each(held, give_back)
                return
            except ClientError as error:
                if attempt == _RELEASE_ATTEMPTS - 1:
                    logger.warning(
                        "leases not released; they expire on their own",
                        extra={"leases": len(held), "error": str(error), "lease_seconds": self._lease_ms // 1000},
                    )
                    return
                time.sleep(_RELEASE_BACKOFF.seconds(attempt + 1))

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

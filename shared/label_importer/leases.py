"""One writer per data unit across jobs: a lease in the jobs table, held from initialise_labels until the save
is recorded.

Encord's save() replaces the whole label row. Two jobs importing into the same data unit at once (say, one
file per class, dropped together) would each read the row, add their own labels and save, and the later save
would erase the earlier one's labels. A consumer therefore imports only the data units it holds a lease on and
hands the rest back for later. A lease expires after a fixed time, longer than any invocation, so a consumer
that died holding one delays the others by that much at most and never blocks them for good.

  pk = LEASE#<data hash>, sk = LEASE    holder, lease_until (epoch ms), expires_at (DynamoDB TTL clean-up)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import boto3
from botocore.exceptions import ClientError

_TRANSACTION_ITEMS = 100
_CLEAN_UP_AFTER_SECONDS = 86_400


def _key(data_hash: str) -> dict[str, str]:
    return {"pk": f"LEASE#{data_hash}", "sk": "LEASE"}


class DataUnitLeases:
    def __init__(self, table_name: str, lease_seconds: int, resource: Any | None = None) -> None:
        self._client = (resource or boto3.resource("dynamodb")).meta.client
        self._table_name = table_name
        self._lease_ms = lease_seconds * 1000

    def acquire(self, data_hashes: Iterable[str], holder: str) -> set[str]:
        """Lease every data unit that is free, expired, or already `holder`'s; return those now held."""
        now_ms = int(time.time() * 1000)
        until_ms = now_ms + self._lease_ms

        def put(data_hash: str) -> dict[str, Any]:
            return {
                "Put": {
                    "TableName": self._table_name,
                    "Item": {
                        **_key(data_hash),
                        "holder": holder,
                        "lease_until": until_ms,
                        "expires_at": until_ms // 1000 + _CLEAN_UP_AFTER_SECONDS,
                    },
                    "ConditionExpression": "attribute_not_exists(pk) OR lease_until < :now OR holder = :me",
                    "ExpressionAttributeValues": {":now": now_ms, ":me": holder},
                }
            }

        return self._each(data_hashes, put)

    def release(self, data_hashes: Iterable[str], holder: str) -> None:
        """Give the leases back; one that expired and went to another holder meanwhile is left alone."""

        def delete(data_hash: str) -> dict[str, Any]:
            return {
                "Delete": {
                    "TableName": self._table_name,
                    "Key": _key(data_hash),
                    "ConditionExpression": "holder = :me",
                    "ExpressionAttributeValues": {":me": holder},
                }
            }

        self._each(data_hashes, delete)

    def _each(self, data_hashes: Iterable[str], operation: Callable[[str], dict[str, Any]]) -> set[str]:
        """Apply `operation` to every data unit whose condition holds, one transaction per 100 when none fails.

        A transaction is all or nothing, so the data units whose condition failed (or that another transaction
        was writing at that moment) are dropped and the rest tried again: the common case stays one round trip.
        """
        done: set[str] = set()
        pending = list(dict.fromkeys(data_hashes))
        for start in range(0, len(pending), _TRANSACTION_ITEMS):
            candidates = pending[start : start + _TRANSACTION_ITEMS]
            while candidates:
                try:
                    self._client.transact_write_items(TransactItems=[operation(h) for h in candidates])
                except ClientError as error:
                    if error.response["Error"]["Code"] != "TransactionCanceledException":
                        raise
                    reasons = error.response.get("CancellationReasons") or []
                    refused = {h for h, reason in zip(candidates, reasons, strict=False) if reason["Code"] != "None"}
                    if not refused:
                        raise
                    candidates = [h for h in candidates if h not in refused]
                    continue
                done.update(candidates)
                break
        return done

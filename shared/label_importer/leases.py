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
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.exceptions import ClientError

_CLEAN_UP_AFTER_SECONDS = 86_400
PARALLEL_WRITES = 16
"""Leases are single-item conditional writes, sent in parallel (boto3 clients are thread-safe): a chunk's
100 take about as long as a few round trips, and one data unit being taken never holds up the others, as it
would in an all-or-nothing transaction. The client needs as many pooled connections (botocore keeps 10)."""


def _key(data_hash: str) -> dict[str, str]:
    return {"pk": f"LEASE#{data_hash}", "sk": "LEASE"}


def _conditional(write: Any, **request: Any) -> bool:
    """Whether a conditional write was made; False when its condition did not hold."""
    try:
        write(**request)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


class DataUnitLeases:
    def __init__(self, table_name: str, lease_seconds: int, resource: Any | None = None) -> None:
        self._table = (resource or boto3.resource("dynamodb")).Table(table_name)
        self._lease_ms = lease_seconds * 1000

    def acquire(self, data_hashes: Iterable[str], holder: str) -> set[str]:
        """Lease every data unit that is free, expired, or already `holder`'s; return those now held."""
        now_ms = int(time.time() * 1000)
        until_ms = now_ms + self._lease_ms

        def take(data_hash: str) -> bool:
            return _conditional(
                self._table.put_item,
                Item={
                    **_key(data_hash),
                    "holder": holder,
                    "lease_until": until_ms,
                    "expires_at": until_ms // 1000 + _CLEAN_UP_AFTER_SECONDS,
                },
                ConditionExpression="attribute_not_exists(pk) OR lease_until < :now OR holder = :me",
                ExpressionAttributeValues={":now": now_ms, ":me": holder},
            )

        return self._each(data_hashes, take)

    def release(self, data_hashes: Iterable[str], holder: str) -> None:
        """Give the leases back; one that expired and went to another holder meanwhile is left alone."""

        def give_back(data_hash: str) -> bool:
            return _conditional(
                self._table.delete_item,
                Key=_key(data_hash),
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":me": holder},
            )

        self._each(data_hashes, give_back)

    @staticmethod
    def _each(data_hashes: Iterable[str], write: Any) -> set[str]:
        unique = list(dict.fromkeys(data_hashes))
        if not unique:
            return set()
        with ThreadPoolExecutor(max_workers=min(PARALLEL_WRITES, len(unique))) as pool:
            return {data_hash for data_hash, done in zip(unique, pool.map(write, unique), strict=True) if done}

"""What each chunk of a job may contain: a digest the validator records before the chunk is sent.

Items in the jobs table, beside the job (jobs.py):
  pk = JOB#<job id>, sk = CHUNK#<index:06d>     digest: sha256 of the chunk's canonical JSON, claim_check: whether
                                                it went as an S3 object (else inline), expires_at
The import function reads it with the job and the chunk's rows in one request (JobStore.chunk), recomputes the
digest of the chunk a message carries and imports it only if the two agree
(chunk_queue.verified_chunk), so a message nobody queued (forged, or from a bug) cannot import anything, and a
message can only carry exactly the chunk the validator queued under its job and index.

The canonical JSON is `orjson.dumps(chunk_document, option=OPT_SORT_KEYS)`: the validator hashes the document it
sends, the importer the same document parsed back with orjson, which round-trips every JSON value (floats
included) to the same bytes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import orjson

from label_importer.model.jobs import DEFAULT_TTL_DAYS
from label_importer.runtime.backoff import Backoff

CHUNK_SK_PREFIX = "CHUNK#"
_BATCH_WRITE_ITEMS = 25
"""DynamoDB's limit per BatchWriteItem."""
WRITE_ATTEMPTS = 8
_WRITE_BACKOFF = Backoff(0.05, 2.0)
"""BatchWriteItem requests per batch before items DynamoDB keeps leaving unprocessed fail the queueing."""


def chunk_digest(document: Any) -> str:
    """The sha256 (hex) of a chunk document's canonical JSON."""
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def chunk_key(job_id: str, chunk_index: int) -> dict[str, str]:
    return {"pk": f"JOB#{job_id}", "sk": f"{CHUNK_SK_PREFIX}{chunk_index:06d}"}


@dataclass(frozen=True)
class ChunkDigest:
    job_id: str
    chunk_index: int
    digest: str
    claim_check: bool = False
    """Sent as an S3 object: only then may a message point at one, and only then is a missing object a lost chunk."""


def recorded_digest(job_id: str, chunk_index: int, item: dict[str, Any]) -> ChunkDigest:
    """The digest a chunk's register item holds (JobStore.chunk reads it with the job and the chunk's rows)."""
    return ChunkDigest(job_id, chunk_index, str(item["digest"]), bool(item.get("claim_check", False)))


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ChunkRegister:
    """The digests of a job's queued chunks: written by the validator, read by the import function."""

    def __init__(
        self,
        table_name: str,
        *,
        ttl_days: int = DEFAULT_TTL_DAYS,
        resource: Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._resource = resource or boto3.resource("dynamodb")
        self._table = self._resource.Table(table_name)
        self._table_name = table_name
        self._ttl_seconds = ttl_days * 86_400  # as JobStore: every item of a job expires with the same rule
        self._sleep = sleep

    def record(self, digests: Iterable[ChunkDigest]) -> None:
        """Write these digests (overwriting those of an earlier attempt at the same job) before their chunks are
        sent; raises if DynamoDB keeps some unprocessed, so no chunk goes out without its digest."""
        expires_at = int(time.time()) + self._ttl_seconds
        items = [
            {
                "PutRequest": {
                    "Item": {
                        **chunk_key(one.job_id, one.chunk_index),
                        "digest": one.digest,
                        "claim_check": one.claim_check,
                        "expires_at": expires_at,
                    }
                }
            }
            for one in digests
        ]
        for batch in _batches(items, _BATCH_WRITE_ITEMS):
            request: dict[str, Any] = {self._table_name: batch}
            for attempt in range(WRITE_ATTEMPTS):
                unprocessed = self._resource.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
                if not unprocessed:
                    break
                request = unprocessed
                self._sleep(_WRITE_BACKOFF.seconds(attempt + 1))
            else:
                left = sum(len(requests) for requests in request.values())
                raise RuntimeError(f"DynamoDB left {left} chunk digests unprocessed after {WRITE_ATTEMPTS} attempts")

"""Chunks on SQS: batched sends, and a claim check in S3 for a chunk too big to travel as a message.

SQS takes messages and batches up to 1 MiB; a chunk of 100 rows with many polygons can exceed that, so
anything over INLINE_LIMIT goes to `chunks/<job-id>/<n>.json` and the message carries the pointer.
"""

from __future__ import annotations

from typing import Any

import boto3
import orjson

from label_importer.messages import Chunk, ChunkMessage, S3Location

INLINE_LIMIT = 256 * 1024
BATCH_LIMIT_BYTES = 900 * 1024
"""Below SQS's 1 MiB per SendMessageBatch, leaving room for attributes and encoding overhead."""
BATCH_LIMIT_ENTRIES = 10
SEND_ATTEMPTS = 3
CHUNKS_PREFIX = "chunks/"


class ChunkQueue:
    def __init__(self, queue_url: str, bucket: str, *, sqs: Any | None = None, s3: Any | None = None) -> None:
        self._queue_url = queue_url
        self._bucket = bucket
        self._sqs = sqs or boto3.client("sqs")
        self._s3 = s3 or boto3.client("s3")
        self._pending: list[dict[str, str]] = []
        self._pending_bytes = 0

    def add(self, chunk: dict[str, Any]) -> None:
        """Queue one chunk document (see `messages.chunk_document`), inline or by claim check."""
        job_id, chunk_index = chunk["job_id"], chunk["chunk_index"]
        body = orjson.dumps({"job_id": job_id, "chunk_index": chunk_index, "chunk": chunk}).decode()
        if len(body) > INLINE_LIMIT:
            location = S3Location(bucket=self._bucket, key=f"{CHUNKS_PREFIX}{job_id}/{chunk_index}.json")
            self._s3.put_object(
                Bucket=location.bucket, Key=location.key, Body=orjson.dumps(chunk), ContentType="application/json"
            )
            body = ChunkMessage(job_id=job_id, chunk_index=chunk_index, claim_check=location).model_dump_json(
                exclude_none=True
            )
        size = len(body.encode())
        if len(self._pending) == BATCH_LIMIT_ENTRIES or self._pending_bytes + size > BATCH_LIMIT_BYTES:
            self.flush()
        self._pending.append({"Id": f"chunk-{chunk_index}", "MessageBody": body})
        self._pending_bytes += size

    def flush(self) -> None:
        entries, self._pending, self._pending_bytes = self._pending, [], 0
        for _ in range(SEND_ATTEMPTS):
            if not entries:
                return
            response = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            failed = {failure["Id"] for failure in response.get("Failed", [])}
            entries = [entry for entry in entries if entry["Id"] in failed]
        if entries:
            raise RuntimeError(f"SQS refused {len(entries)} chunk messages after {SEND_ATTEMPTS} attempts")


def load_chunk(body: str, s3: Any) -> Chunk:
    message = ChunkMessage.model_validate_json(body)
    if message.chunk is not None:
        return message.chunk
    if message.claim_check is None:
        raise ValueError(f"chunk message {message.job_id}/{message.chunk_index} has neither chunk nor claim check")
    stored = s3.get_object(Bucket=message.claim_check.bucket, Key=message.claim_check.key)
    return Chunk.model_validate_json(stored["Body"].read())

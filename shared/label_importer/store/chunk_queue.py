"""Chunks on SQS: batched sends, a claim check in S3 for a chunk too big to travel as a message, and on the
receiving side the check that a message carries exactly a chunk the validator queued.

SQS takes messages and batches up to 1 MiB; a chunk of 100 rows with many polygons can exceed that, so
anything over INLINE_LIMIT goes to `chunks/<job-id>/<n>.json` and the message carries the pointer.

Anyone allowed to send to the queue (or a bug, or a message replayed from an old job) could put a message on
it, so the import function trusts no part of one: before a chunk's digest is in the register
(chunk_register.py) its message is not sent, and `verified_chunk` imports nothing whose job, index, pointer,
content, project, mode or branch differ from what the validator recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import boto3
import orjson
from botocore.exceptions import ClientError
from pydantic import ValidationError

from label_importer.model.jobs import Job
from label_importer.model.messages import Chunk, ChunkMessage, S3Location
from label_importer.runtime.backoff import Backoff
from label_importer.store.chunk_register import ChunkDigest, ChunkRegister, chunk_digest
from label_importer.store.jobs import ChunkState, JobStore

INLINE_LIMIT = 256 * 1024
BATCH_LIMIT_BYTES = 900 * 1024
"""Below SQS's 1 MiB per SendMessageBatch, leaving room for attributes and encoding overhead."""
BATCH_LIMIT_ENTRIES = 10
SEND_ATTEMPTS = 3
_SEND_BACKOFF = Backoff(0.1, 1.0)
CHUNKS_PREFIX = "chunks/"


def claim_check_location(bucket: str, job_id: str, chunk_index: int) -> S3Location:
    """Where the validator puts a chunk too big for a message: the only place a claim check may point."""
    return S3Location(bucket=bucket, key=f"{CHUNKS_PREFIX}{job_id}/{chunk_index}.json")


class ChunkQueue:
    def __init__(
        self, queue_url: str, bucket: str, register: ChunkRegister, *, sqs: Any | None = None, s3: Any | None = None
    ) -> None:
        self._queue_url = queue_url
        self._bucket = bucket
        self._register = register
        self._sqs = sqs or boto3.client("sqs")
        self._s3 = s3 or boto3.client("s3")
        self._pending: list[tuple[dict[str, str], ChunkDigest]] = []
        self._pending_bytes = 0

    def add(self, chunk: dict[str, Any]) -> None:
        """Queue one chunk document (see `messages.chunk_document`), inline or by claim check."""
        job_id, chunk_index = chunk["job_id"], chunk["chunk_index"]
        body = orjson.dumps({"job_id": job_id, "chunk_index": chunk_index, "chunk": chunk}).decode()
        by_claim_check = len(body) > INLINE_LIMIT
        digest = ChunkDigest(job_id, chunk_index, chunk_digest(chunk), by_claim_check)
        if by_claim_check:
            location = claim_check_location(self._bucket, job_id, chunk_index)
            self._s3.put_object(
                Bucket=location.bucket, Key=location.key, Body=orjson.dumps(chunk), ContentType="application/json"
            )
            body = ChunkMessage(job_id=job_id, chunk_index=chunk_index, claim_check=location).model_dump_json(
                exclude_none=True
            )
        size = len(body.encode())
        if len(self._pending) == BATCH_LIMIT_ENTRIES or self._pending_bytes + size > BATCH_LIMIT_BYTES:
            self.flush()
        self._pending.append(({"Id": f"chunk-{chunk_index}", "MessageBody": body}, digest))
        self._pending_bytes += size

    def flush(self) -> None:
        """Record the pending chunks' digests, then send their messages."""
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        if not pending:
            return
        self._register.record(digest for _, digest in pending)  # before any of them can be received
        entries = [entry for entry, _ in pending]
        for attempt in range(SEND_ATTEMPTS):
            if not entries:
                return
            if attempt:
                time.sleep(_SEND_BACKOFF.seconds(attempt))
            response = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            failed = {failure["Id"] for failure in response.get("Failed", [])}
            entries = [entry for entry in entries if entry["Id"] in failed]
        if entries:
            raise RuntimeError(f"SQS refused {len(entries)} chunk messages after {SEND_ATTEMPTS} attempts")


class ChunkRefused(Exception):
    """A message that does not carry a chunk the validator queued: consumed without importing anything, since
    no redelivery can make it one. `job_id` and `chunk_index` are what the message claims, when it says."""

    def __init__(self, reason: str, job_id: str | None = None, chunk_index: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.job_id = job_id
        self.chunk_index = chunk_index


class ChunkLost(ChunkRefused):
    """The message is the chunk the validator queued by claim check, but its S3 object cannot be read (deleted,
    or not readable by this function): its rows can never be imported, so the job must end."""


def _problems(error: ValidationError) -> str:
    shown = [
        f"{'.'.join(map(str, problem['loc'])) or 'body'}: {problem['msg']}"
        for problem in error.errors(include_input=False, include_url=False)[:3]
    ]
    more = error.error_count() - len(shown)
    return "; ".join(shown) + (f" (and {more} more)" if more > 0 else "")


def claimed_ids(body: str) -> tuple[str | None, int | None]:
    """The job id and chunk index a message body says it carries, as far as it says (for logs only)."""
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(envelope, dict):
        return None, None
    job_id, chunk_index = envelope.get("job_id"), envelope.get("chunk_index")
    return (
        job_id if isinstance(job_id, str) else None,
        chunk_index if isinstance(chunk_index, int) and not isinstance(chunk_index, bool) else None,
    )


def verified_chunk(body: str, jobs: JobStore, s3: Any) -> tuple[Chunk, Job, ChunkState]:
    """The chunk a message carries, its job and what is recorded of it, if it is exactly a chunk the validator
    queued for that job.

    Raises ChunkRefused when the body is not a chunk message, the job is unknown, the job has no such chunk,
    the claim check points anywhere but the job's own chunk object (which is then not read) or that object is
    gone, the chunk inside is another one, its content differs from what was queued, or its project, mode or branch
    are not the job's. Other exceptions (AWS unavailable) are not about the message: they propagate.

    What is checked and what is imported are the same parsed value: the model is validated from the
    document the digest is computed over, so no JSON oddity (a repeated key) can show one thing to each.
    """
    try:
        envelope = orjson.loads(body)
        message = ChunkMessage.model_validate_json(orjson.dumps(envelope))
    except orjson.JSONDecodeError as error:
        raise ChunkRefused(f"the body is not JSON (truncated?): {error}", *claimed_ids(body)) from None
    except ValidationError as error:
        raise ChunkRefused(f"the body is not a chunk message: {_problems(error)}", *claimed_ids(body)) from None
    job_id, chunk_index = message.job_id, message.chunk_index

    def refused(reason: str) -> ChunkRefused:
        return ChunkRefused(reason, job_id, chunk_index)

    state = jobs.chunk(job_id, chunk_index)
    job = state.job
    if job is None:
        raise refused("no such job: never created, or expired")
    own = claim_check_location(job.bucket, job_id, chunk_index)
    if message.claim_check is not None and message.claim_check != own:
        pointed = f"s3://{message.claim_check.bucket}/{message.claim_check.key}"
        raise refused(f"the claim check points at {pointed}, not at s3://{own.bucket}/{own.key}")
    recorded = state.digest
    if recorded is None:
        raise refused("the validator queued no such chunk for this job")
    if (message.claim_check is not None) != recorded.claim_check:
        sent = "by claim check" if recorded.claim_check else "inline"
        raise refused(f"the validator sent this chunk {sent}, and the message does not carry it that way")
    if message.chunk is not None:
        document, chunk = envelope["chunk"], message.chunk
    else:  # by claim check, read only from the job's own chunk object
        document = _stored_document(s3, own, refused, lambda reason: ChunkLost(reason, job_id, chunk_index))
        try:
            chunk = Chunk.model_validate_json(orjson.dumps(document))
        except ValidationError as error:
            raise refused(f"the claim-check object is not a chunk: {_problems(error)}") from None
    if (chunk.job_id, chunk.chunk_index) != (job_id, chunk_index):
        raise refused(f"the message carries chunk {chunk.chunk_index} of job {chunk.job_id}")
    if chunk.project_hash != job.project_hash:
        raise refused(f"the chunk names project {chunk.project_hash!r}, the job {job.project_hash!r}")
    if chunk.mode != job.mode:
        raise refused(f"the chunk names mode {str(chunk.mode)!r}, the job {str(job.mode)!r}")
    if chunk.branch != job.branch:
        raise refused(f"the chunk names branch {chunk.branch!r}, the job {job.branch!r}")
    if chunk_digest(document) != recorded.digest:
        raise refused("the chunk is not the one the validator queued: its content differs")
    return chunk, job, state


def _stored_document(
    s3: Any, location: S3Location, refused: Callable[[str], ChunkRefused], lost: Callable[[str], ChunkLost]
) -> Any:
    try:
        stored = s3.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
    except ClientError as error:
        code = error.response["Error"]["Code"]
        # Without s3:ListBucket on chunks/, S3 answers a missing key with AccessDenied rather than NoSuchKey.
        if code in ("NoSuchKey", "AccessDenied"):
            raise lost(
                f"its claim-check object s3://{location.bucket}/{location.key} cannot be read ({code})"
            ) from None
        raise
    try:
        return orjson.loads(stored)
    except orjson.JSONDecodeError as error:
        raise refused(f"the claim-check object is not JSON: {error}") from None


def load_chunk(body: str, s3: Any) -> Chunk:
    """The chunk a message carries, unverified: for tests and tools reading a message they took off the queue
    themselves. The import function reads messages with `verified_chunk`."""
    message = ChunkMessage.model_validate_json(body)
    if message.chunk is not None:
        return message.chunk
    assert message.claim_check is not None
    stored = s3.get_object(Bucket=message.claim_check.bucket, Key=message.claim_check.key)
    return Chunk.model_validate_json(stored["Body"].read())

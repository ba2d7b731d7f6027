"""One SQS message into the import: verified, then imported; refused when it is not a chunk the validator
queued, so that nothing it names is touched.

A refused message is consumed (logged at ERROR, counted as ChunksRefused): no redelivery can turn it into a
chunk that was queued, so retrying it would only fail it again until the dead-letter queue. A chunk that was
queued but whose S3 object can no longer be read fails its job: its rows can never be imported. Any other
failure is logged and counted as ChunksFailed, and raised so SQS delivers the message again.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from label_importer.model.leases import DataUnitsBusy
from label_importer.model.problems import ErrorCode
from label_importer.runtime.deadline import Deadline
from label_importer.runtime.observability import CHUNKS_FAILED, CHUNKS_REFUSED, logger, metrics
from label_importer.runtime.world import World
from label_importer.services.import_chunk import import_chunk
from label_importer.services.job_lifecycle import fail_import
from label_importer.store.chunk_queue import ChunkLost, ChunkRefused, claimed_ids, verified_chunk


def import_message(body: str, world: World, deadline: Deadline, *, message_id: str, delivery: int = 1) -> None:
    """Import the chunk an SQS message carries (inline or by claim check) once it is verified to be one the
    validator queued; `delivery` is SQS's receive count. Returns (the message is done) when it is refused."""
    # Per thread: chunks of one batch may be imported at once (pipelined_batch.py), and none of the batch's
    # previous messages applies to this one.
    logger.thread_safe_remove_keys(["correlation_id"])
    try:
        chunk, job, state = verified_chunk(body, world.jobs, world.s3)
    except ChunkLost as lost:
        _lose(lost, message_id, world)
        return
    except ChunkRefused as refused:
        logger.error(
            "chunk message refused: nothing imported, and it will not be retried",
            extra={
                "message_id": message_id,
                "job_id": refused.job_id,
                "chunk_index": refused.chunk_index,
                "reason": refused.reason,
            },
        )
        metrics.add_metric(name=CHUNKS_REFUSED, unit=MetricUnit.Count, value=1)
        return
    except Exception as error:
        _failed(error, message_id, *claimed_ids(body))
        raise
    logger.thread_safe_append_keys(correlation_id=job.job_id)
    try:
        import_chunk(chunk, state, world, deadline, delivery=delivery)
    except DataUnitsBusy as busy:  # waiting its turn, not failing: the rows say which import holds them
        logger.warning(
            "chunk waits for data units other imports hold; delivered again later",
            extra={"message_id": message_id, "chunk_index": chunk.chunk_index, "reason": str(busy)},
        )
        raise
    except Exception as error:
        _failed(error, message_id, chunk.job_id, chunk.chunk_index)
        raise


def _lose(lost: ChunkLost, message_id: str, world: World) -> None:
    """A chunk the validator queued that can no longer be read: its rows cannot be imported, so its job fails."""
    logger.error(
        "queued chunk lost: its job fails",
        extra={"message_id": message_id, "job_id": lost.job_id, "chunk_index": lost.chunk_index, "reason": lost.reason},
    )
    metrics.add_metric(name=CHUNKS_FAILED, unit=MetricUnit.Count, value=1)
    job = world.jobs.get(lost.job_id) if lost.job_id else None
    if job is not None:
        failure = f"{ErrorCode.OBJECT_UNAVAILABLE}: chunk {lost.chunk_index} was queued but {lost.reason}"
        fail_import(job, failure, world.jobs, world.reports)


def _failed(error: Exception, message_id: str, job_id: str | None, chunk_index: int | None) -> None:
    logger.exception(
        "chunk import failed; the message will be delivered again",
        extra={
            "message_id": message_id,
            "job_id": job_id,
            "chunk_index": chunk_index,
            "error_class": type(error).__name__,
            "error": str(error),
        },
    )
    metrics.add_metric(name=CHUNKS_FAILED, unit=MetricUnit.Count, value=1)

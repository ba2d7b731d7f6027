"""The chunks of one SQS batch imported a few at a time, so that one chunk's DynamoDB and S3 bookkeeping (checking
its message, leasing, recording) overlaps another's Encord calls.

Encord is still asked by one chunk at a time (`World.encord_gate`), so a container puts no more load on Encord
than one importing chunk after chunk, and the Encord concurrency stays what the template allows (one per
container, `ImportMaxConcurrency` containers). Each record is handled, and fails or succeeds, exactly as alone:
only the order in which the records' Encord turns come differs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType


class PipelinedBatchProcessor(BatchProcessor):
    def __init__(self, in_flight: int) -> None:
        super().__init__(event_type=EventType.SQS)
        self._in_flight = in_flight

    def process(self) -> list[tuple]:  # type: ignore[type-arg]  # Powertools' own annotation
        if self._in_flight == 1 or len(self.records) < 2:
            return super().process()
        with ThreadPoolExecutor(max_workers=min(self._in_flight, len(self.records))) as pool:
            return list(pool.map(self._process_record, self.records))

"""One way to wait before trying again, for everything that retries: Encord requests, data units another import
holds, DynamoDB transactions that collided, items DynamoDB left unprocessed, messages SQS refused.

Exponential and capped, so a fault that lasts is not hammered; jittered between half and all of that, so
consumers that failed together do not retry together, and never so short that a retry is wasted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base_seconds: float
    max_seconds: float

    def seconds(self, retry: int) -> float:
        """How long to wait before retry number `retry` (1 for the first)."""
        ceiling = min(self.max_seconds, self.base_seconds * 2.0 ** min(retry - 1, 60))
        return random.uniform(ceiling / 2, ceiling)

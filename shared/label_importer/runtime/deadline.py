"""When the invocation ends: every wait, retry and read of a file stops in time to record its outcome."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Deadline:
    """When the invocation ends, on the monotonic clock."""

    at: float

    @classmethod
    def in_seconds(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

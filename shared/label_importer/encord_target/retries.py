"""Retrying Encord inside one invocation, within the time Lambda has left.

The SDK's own retries are switched off (see gateway.py): urllib3 would sleep out a Retry-After of
any length and knows nothing of the invocation's deadline. Here a 429 waits what Encord asks for, other
transient faults back off exponentially with jitter (runtime/backoff.py: consumers that failed together must
not retry together), and retrying stops while there is still time to give the message back: the caller then
raises, the message becomes a batch-item failure and SQS delivers it again later.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aws_lambda_powertools.metrics import MetricUnit
from encord.exceptions import RateLimitExceededError
from tenacity import RetryCallState, Retrying, retry_if_exception

from label_importer.encord_target.gateway import is_transient
from label_importer.runtime.backoff import Backoff
from label_importer.runtime.deadline import Deadline
from label_importer.runtime.observability import ENCORD_RETRIES, ENCORD_THROTTLES, logger, metrics
from label_importer.runtime.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempt_seconds: float
    """How long one more attempt may take; a retry is only started if it still fits before the deadline."""
    max_attempts: int = 6
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    @property
    def backoff(self) -> Backoff:
        """Also how long an import waits for a data unit another import holds."""
        return Backoff(self.backoff_seconds, self.max_backoff_seconds)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(attempt_seconds=settings.attempt_seconds, backoff_seconds=settings.retry_backoff_seconds)

    def call(self, attempt: Callable[[], T], deadline: Deadline) -> T:
        """`attempt()`, retried on transient Encord faults; the last fault is raised when retrying stops."""

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, RateLimitExceededError) and error.retry_after:
                return error.retry_after + random.uniform(0, self.backoff_seconds)
            return self.backoff.seconds(state.attempt_number)

        def stop(state: RetryCallState) -> bool:
            out_of_time = deadline.remaining() - state.upcoming_sleep < self.attempt_seconds
            return state.attempt_number >= self.max_attempts or out_of_time

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            throttled = isinstance(error, RateLimitExceededError)
            metrics.add_metric(name=ENCORD_THROTTLES if throttled else ENCORD_RETRIES, unit=MetricUnit.Count, value=1)
            logger.warning(
                "transient Encord fault; retrying",
                extra={"error": str(error), "attempt": state.attempt_number, "wait_seconds": state.upcoming_sleep},
            )

        retrying = Retrying(
            retry=retry_if_exception(lambda error: isinstance(error, Exception) and is_transient(error)),
            wait=wait,
            stop=stop,
            before_sleep=before_sleep,
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(attempt)

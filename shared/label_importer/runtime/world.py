"""Everything the services use outside themselves, built from the settings in one place, once per container.

Each handler builds one `World` (cached for the container's life) and passes it down; tests build their own.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from encord import Project

from label_importer.encord_target.gateway import key_refused, open_project
from label_importer.encord_target.retries import RetryPolicy
from label_importer.runtime.settings import Settings
from label_importer.store.aws import AwsClients
from label_importer.store.chunk_register import ChunkRegister
from label_importer.store.jobs import JobStore
from label_importer.store.leases import DataUnitLeases
from label_importer.store.reports import ReportWriter


@dataclass(frozen=True)
class World:
    s3: Any
    sqs: Any
    jobs: JobStore
    leases: DataUnitLeases
    chunks: ChunkRegister
    """Where the validator records what it queues: every message is checked against that before anything is
    imported (JobStore.chunk reads it back)."""
    reports: ReportWriter
    open_project: Callable[[str], Project]
    key_refused: Callable[[], bool]
    """Re-reads the Encord key after Encord refused it: True when the secret now holds another key."""
    bundle_size: int
    retry_policy: RetryPolicy
    max_deliveries: int
    """SQS's maxReceiveCount: the delivery that may not fail again, lest the chunk go to the dead-letter queue."""
    encord_gate: AbstractContextManager[Any] = field(default_factory=nullcontext)
    """Held while a chunk talks to Encord: shared by the Worlds of one container's chunks in flight, so that only
    one of them does at a time."""

    @classmethod
    def from_settings(cls, settings: Settings, *, encord_gate: AbstractContextManager[Any] | None = None) -> World:
        aws = AwsClients.connect()
        table, ttl_days = settings.jobs_table_name, settings.record_ttl_days
        return cls(
            s3=aws.s3,
            sqs=aws.sqs,
            jobs=JobStore(table, ttl_days=ttl_days, resource=aws.dynamodb),
            leases=DataUnitLeases(table, settings.lease_seconds, resource=aws.dynamodb, ttl_days=ttl_days),
            chunks=ChunkRegister(table, ttl_days=ttl_days, resource=aws.dynamodb),
            reports=ReportWriter(aws.s3),
            open_project=lambda project_hash: open_project(settings, project_hash),
            key_refused=lambda: key_refused(settings),
            bundle_size=settings.bundle_size,
            retry_policy=RetryPolicy.from_settings(settings),
            max_deliveries=settings.max_receive_count,
            encord_gate=encord_gate or nullcontext(),
        )


class Worlds:
    """A World for each chunk a container imports at once: boto3 resources are not safe to share between
    threads, so each chunk in flight takes one of its own, built once and reused by later invocations. They share
    the one Encord gate."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.in_flight = settings.chunks_in_flight
        """How many of a batch's chunks the container imports at once (runtime/pipelined_batch.py)."""
        self._gate = threading.Lock()
        self._free: queue.SimpleQueue[World] = queue.SimpleQueue()

    @contextmanager
    def one(self) -> Iterator[World]:
        try:
            world = self._free.get_nowait()
        except queue.Empty:
            world = World.from_settings(self._settings, encord_gate=self._gate)
        try:
            yield world
        finally:
            self._free.put(world)

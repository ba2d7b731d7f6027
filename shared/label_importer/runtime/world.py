"""Everything the services use outside themselves, built from the settings in one place, once per container.

Each handler builds one `World` (cached for the container's life) and passes it down; tests build their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
from label_importer.store.upload_histories import UploadHistories


@dataclass(frozen=True)
class World:
    s3: Any
    sqs: Any
    jobs: JobStore
    leases: DataUnitLeases
    histories: UploadHistories
    chunks: ChunkRegister
    """What the validator queued: every message is checked against it before anything is imported."""
    reports: ReportWriter
    open_project: Callable[[str], Project]
    key_refused: Callable[[], bool]
    """Re-reads the Encord key after Encord refused it: True when the secret now holds another key."""
    bundle_size: int
    retry_policy: RetryPolicy
    max_deliveries: int
    """SQS's maxReceiveCount: the delivery that may not fail again, lest the chunk go to the dead-letter queue."""

    @classmethod
    def from_settings(cls, settings: Settings) -> World:
        aws = AwsClients.connect()
        table, ttl_days = settings.jobs_table_name, settings.record_ttl_days
        return cls(
            s3=aws.s3,
            sqs=aws.sqs,
            jobs=JobStore(table, ttl_days=ttl_days, resource=aws.dynamodb),
            leases=DataUnitLeases(table, settings.lease_seconds, resource=aws.dynamodb),
            histories=UploadHistories(table, aws.dynamodb, ttl_days=ttl_days),
            chunks=ChunkRegister(table, ttl_days=ttl_days, resource=aws.dynamodb),
            reports=ReportWriter(aws.s3),
            open_project=lambda project_hash: open_project(settings, project_hash),
            key_refused=lambda: key_refused(settings),
            bundle_size=settings.bundle_size,
            retry_policy=RetryPolicy.from_settings(settings),
            max_deliveries=settings.max_receive_count,
        )

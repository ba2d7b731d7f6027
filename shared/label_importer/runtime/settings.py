"""Configuration from the Lambda environment, read once per container and checked up front.

A missing or malformed variable fails the first invocation with a message naming the variable, instead
of a KeyError deep inside an import.
"""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from label_importer.model.jobs import DEFAULT_TTL_DAYS
from label_importer.model.label_format import PROJECT_HASH_PATTERN
from label_importer.model.limits import Limits

ENCORD_PUBLIC_API = "https://api.encord.com"


class ConfigurationError(Exception):
    pass


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    jobs_table_name: str = Field(min_length=1)
    encord_secret_id: str = Field(min_length=1)
    encord_domain: str = ENCORD_PUBLIC_API
    default_project_hash: str = Field(default="", pattern=f"^$|{PROJECT_HASH_PATTERN}")
    import_queue_url: str = ""
    bundle_size: int = Field(default=100, ge=1, le=1000)
    """Label rows per chunk = per Encord bundle; Encord caps a bundle at 1000 operations."""
    max_reported_errors: int = Field(default=1000, ge=1)
    encord_timeout_seconds: int = Field(default=30, ge=1)
    """The SDK waits 180 s by default; one hung request must not eat a whole invocation."""
    retry_backoff_seconds: float = Field(default=1.0, gt=0)
    """Scale of the jittered exponential backoff between attempts (retries.py)."""
    lease_seconds: int = Field(default=360, ge=1)
    """How long a data-unit lease lasts from its last renewal (leases.py): longer than one attempt (three
    requests of up to `encord_timeout_seconds`), so a live consumer renewing before each attempt and save keeps
    it, and short enough that a crashed one blocks others only briefly."""
    chunks_in_flight: int = Field(default=2, ge=1, le=10)
    """Chunks of one SQS batch a container imports at once (runtime/pipelined_batch.py): one talks to Encord while
    the other does its DynamoDB and S3 bookkeeping, so Encord is still asked one request at a time."""
    max_receive_count: int = Field(default=5, ge=1)
    """The import queue's maxReceiveCount: on that delivery a failing chunk records its rows FAILED instead of
    going to the dead-letter queue and leaving its job unfinished."""
    record_ttl_days: int = Field(default=DEFAULT_TTL_DAYS, ge=1)
    """Jobs and row records are deleted by DynamoDB's TTL this long after they were last written."""
    max_file_bytes: int = Field(default=Limits.max_file_bytes, ge=1)
    max_line_bytes: int = Field(default=Limits.max_line_bytes, ge=1024)
    max_records: int = Field(default=Limits.max_records, ge=1)
    max_objects_per_data_unit: int = Field(default=Limits.max_objects_per_data_unit, ge=1)
    max_polygon_points: int = Field(default=Limits.max_polygon_points, ge=3)
    max_bitmask_pixels: int = Field(default=Limits.max_bitmask_pixels, ge=1)
    max_answer_depth: int = Field(default=Limits.max_answer_depth, ge=1)
    max_compression_ratio: int = Field(default=Limits.max_compression_ratio, ge=2)
    max_chunk_bytes: int = Field(default=Limits.max_chunk_bytes, ge=1024)
    max_coco_images: int = Field(default=Limits.max_coco_images, ge=1)
    max_coco_categories: int = Field(default=Limits.max_coco_categories, ge=1)
    max_archive_entries: int = Field(default=Limits.max_archive_entries, ge=1)

    @property
    def attempt_seconds(self) -> float:
        """The longest one import attempt can take: list, initialise and save, each up to the timeout."""
        return 3.0 * self.encord_timeout_seconds

    @property
    def limits(self) -> Limits:
        return Limits(**{name: getattr(self, name) for name in Limits.__dataclass_fields__})


def settings_from(environ: dict[str, str]) -> Settings:
    values = {name: environ[name.upper()] for name in Settings.model_fields if name.upper() in environ}
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(f"{str(e['loc'][0]).upper()}: {e['msg']}" for e in error.errors(include_url=False))
        raise ConfigurationError(f"invalid environment: {problems}") from None


@cache
def settings() -> Settings:
    return settings_from(dict(os.environ))

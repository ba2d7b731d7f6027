"""A job and its rows as the services see them: statuses, outcomes, counters and progress.

How they are stored is store/jobs.py's business; what they mean is here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from label_importer.model.branches import MAIN_BRANCH
from label_importer.model.label_format import Mode

DEFAULT_TTL_DAYS = 90
"""How long a job's records (job, rows, chunk digests) are kept before DynamoDB expires them."""


class JobStatus(StrEnum):
    VALIDATING = "VALIDATING"
    QUEUED = "QUEUED"
    IMPORTING = "IMPORTING"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
    REJECTED = "REJECTED"
    """The file has problems under the `strict` policy (or problems no policy can skip): nothing was queued."""
    FAILED = "FAILED"
    """The system could not process the file or the job: the object version is gone, the secret or key is
    unusable, Encord stayed unreachable, or the validator ran out of time. The report says which."""
    VALIDATED = "VALIDATED"
    """Terminal status of a dry run: the file is valid and nothing was queued."""
    ROLLED_BACK = "ROLLED_BACK"
    """An import whose rollback completed: what it added is gone, what it replaced is back."""


TERMINAL = frozenset(
    {
        JobStatus.COMPLETED,
        JobStatus.COMPLETED_WITH_ERRORS,
        JobStatus.REJECTED,
        JobStatus.FAILED,
        JobStatus.VALIDATED,
        JobStatus.ROLLED_BACK,
    }
)
IN_FLIGHT = (JobStatus.VALIDATING, JobStatus.QUEUED, JobStatus.IMPORTING)
"""Jobs whose chunks may still be imported: the validator sends chunks before it marks the job QUEUED."""


class RowStatus(StrEnum):
    IMPORTED = "IMPORTED"
    FAILED = "FAILED"
    RETRYING = "RETRYING"
    """Not finished: Encord failed transiently and the chunk went back to the queue."""
    SKIPPED = "SKIPPED"
    """Left as it is: a file uploaded later already replaced this data unit's labels (upload_order.py)."""
    ROLLED_BACK = "ROLLED_BACK"
    """A rollback's row: what its import added is gone, what it replaced is back."""


FINISHED_ROW = (RowStatus.IMPORTED, RowStatus.FAILED, RowStatus.SKIPPED, RowStatus.ROLLED_BACK)


@dataclass(frozen=True)
class RowOutcome:
    data_hash: str
    status: RowStatus
    lines: list[int]
    reason: str | None = None
    labels_added: int = 0
    labels_removed: int = 0
    """A rolled-back row: the labels its import had added that the rollback took off."""
    attempts: int = 0
    """Import attempts over all deliveries; known once read back from the store."""
    actions: tuple[str, ...] = ()
    """The workflow actions applied to the data unit's task once its labels were saved: priority, complete,
    reopen. An imported row with `after_save` and none applied has the reason Encord refused them."""


@dataclass(frozen=True)
class Job:
    job_id: str
    status: JobStatus
    bucket: str
    key: str
    version_id: str | None
    project_hash: str
    mode: Mode | None
    """None until the file's options are read (or when they never could be)."""
    created_at: int
    branch: str = MAIN_BRANCH
    """The label branch the file's labels go to: the validator records it, and every chunk must name it."""
    total_records: int = 0
    invalid_records: int = 0
    records_left_out: int = 0
    """Records the file asks to leave out (COCO: a category mapped to null, crowd regions under "skip"), and those
    whose labels are all of kinds Encord has no place for."""
    labels_not_imported: dict[str, int] = field(default_factory=dict)
    """Labels of kinds Encord has no place for (a CVAT cuboid), by the reason the file's format gave."""
    problem_count: int = 0
    total_rows: int = 0
    total_chunks: int = 0
    rows_imported: int = 0
    rows_rolled_back: int = 0
    """A rollback job's rows whose import was undone; an import job's are `rows_imported`."""
    rows_failed: int = 0
    rows_skipped: int = 0
    """Rows the validator left out under the `skip-invalid` policy (not queued, not in `total_rows`)."""
    rows_superseded: int = 0
    """Queued rows left alone because a later upload already replaced their data unit (RowStatus.SKIPPED)."""
    labels_added: int = 0
    labels_removed: int = 0
    """Labels a rollback took off."""
    tasks_prioritised: int = 0
    tasks_completed: int = 0
    tasks_reopened: int = 0
    """Workflow actions (`after_save`) applied to the tasks of imported rows; a rollback counts those it undid."""
    rows_actions_refused: int = 0
    """Imported rows whose workflow actions Encord refused: their labels are saved, their tasks were not moved."""
    encord_requests: int = 0
    failure: str | None = None
    """Why a FAILED job failed: its code and message."""
    upload_order: str = ""
    """Where the file stands in the order S3 received uploads (upload_order.py); later uploads win."""
    import_started_at: int | None = None
    """When the first chunk started importing; with `updated_at` (the last recorded row), the rate."""
    updated_at: int | None = None
    finished_at: int | None = None

    @classmethod
    def starting(cls, job_id: str, bucket: str, key: str, version_id: str | None, upload_order: str) -> Job:
        """A file's job as first recorded, before anything is known of its content (validator, failures)."""
        return cls(
            job_id,
            JobStatus.VALIDATING,
            bucket,
            key,
            version_id,
            project_hash="",
            mode=None,
            created_at=int(time.time()),
            upload_order=upload_order,
        )

    @property
    def rows_done(self) -> int:
        return self.rows_imported + self.rows_rolled_back + self.rows_failed + self.rows_superseded

    @property
    def rows_per_second(self) -> float | None:
        """Rows recorded per second since the import started; None until there is a second to measure."""
        end = self.finished_at or self.updated_at
        if self.import_started_at is None or end is None or end <= self.import_started_at:
            return None
        return self.rows_done / (end - self.import_started_at)

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the rate so far; 0 when every row is done, None while there is no rate."""
        if self.total_rows and self.rows_done >= self.total_rows:
            return 0.0
        rate = self.rows_per_second
        return (self.total_rows - self.rows_done) / rate if rate else None

    def progress(self) -> dict[str, Any]:
        """What the CLI's progress bar and `status --json` show and the importer logs after each chunk (the dashboard's
        query reads those lines), in one place."""
        return {
            "rows_done": self.rows_done,
            "rows_failed": self.rows_failed,
            "rows_total": self.total_rows,
            "rows_per_second": self.rows_per_second,
            "eta_seconds": self.eta_seconds,
        }

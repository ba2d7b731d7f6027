"""What each import changed, written to S3 before it saves: the record a rollback undoes.

An import attempt writes one entry per chunk, just before its bundled save: for every row, the hashes of
the objects and classifications it is about to add and, in `replace` mode, the row's labels as they were
(Encord's own label row dict), with the data unit's upload history as it was. Written before the save, so a
crash between save and record cannot lose it; an attempt that never saved leaves an entry whose hashes are
simply not there to remove. A retry after a saved-but-unrecorded attempt sees those labels already present
and does not list them again, so the journal is read as the union of all entries, and a row's labels "as
they were" come from its earliest entry (a later one would have captured the import's own save).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

JOURNAL_PREFIX = "rollback/"


@dataclass
class RowChanges:
    objects: set[str] = field(default_factory=set)
    classifications: set[str] = field(default_factory=set)
    before: dict[str, Any] | None = None
    """In `replace` mode: the label row dict the import replaced."""
    history: dict[str, Any] | None = None
    """In `replace` mode: the data unit's upload history before the import (upload_order.py), put back with
    `before` by a rollback."""
    priority_before: float | None = None
    """The task's priority before the import set another (`after_save`): what a rollback sets back."""
    completed: bool = False
    """The import completes the task (`after_save`): a rollback reopens it."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "objects": sorted(self.objects),
            "classifications": sorted(self.classifications),
            "before": self.before,
            "history": self.history,
            "priority_before": self.priority_before,
            "completed": self.completed,
        }


def _prefix(job_id: str) -> str:
    return f"{JOURNAL_PREFIX}{job_id}/"


def _chunk_prefix(job_id: str, chunk_index: int) -> str:
    return f"{_prefix(job_id)}{chunk_index:06d}/"


def write_entry(s3: Any, bucket: str, job_id: str, chunk_index: int, rows: dict[str, RowChanges]) -> None:
    """One object per attempt, named so that listing returns a chunk's attempts in the order they were made (a
    data unit is in one chunk of a job, so that is the order of its entries too)."""
    key = f"{_chunk_prefix(job_id, chunk_index)}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
    body = orjson.dumps({data_hash: changes.to_dict() for data_hash, changes in rows.items()})
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def added_by_earlier_attempts(s3: Any, bucket: str, job_id: str, chunk_index: int) -> dict[str, set[str]]:
    """Per row, the label hashes earlier attempts at this chunk journaled as theirs to add.

    An attempt whose save was applied but never recorded (answered with an error, or its consumer died) left
    its labels on Encord; the next attempt finds them present and adds nothing, yet the job did put them
    there. The union of what the attempts journaled, kept where the labels are present, is what it added.
    """
    return {
        data_hash: changes.objects | changes.classifications
        for data_hash, changes in _read(s3, bucket, _chunk_prefix(job_id, chunk_index)).items()
    }


def read_journal(s3: Any, bucket: str, job_id: str) -> dict[str, RowChanges]:
    """Every row the job may have changed: the union of its added hashes, and its earliest `before`."""
    return _read(s3, bucket, _prefix(job_id))


def _read(s3: Any, bucket: str, prefix: str) -> dict[str, RowChanges]:
    rows: dict[str, RowChanges] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for listed in sorted(page.get("Contents", []), key=lambda item: item["Key"]):
            entry = orjson.loads(s3.get_object(Bucket=bucket, Key=listed["Key"])["Body"].read())
            for data_hash, changes in entry.items():
                row = rows.setdefault(data_hash, RowChanges())
                row.objects.update(changes["objects"])
                row.classifications.update(changes["classifications"])
                if row.before is None:
                    row.before = changes["before"]
                if row.history is None:
                    row.history = changes.get("history")
                if row.priority_before is None:
                    row.priority_before = changes.get("priority_before")
                row.completed = row.completed or bool(changes.get("completed"))
    return rows

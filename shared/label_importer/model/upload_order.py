"""Upload order: files touching the same data unit end as if applied one after another, in the order S3 got them.

Chunks of different jobs reach consumers in any order, so without a rule a `replace` file uploaded first could
be applied last and erase a later file's labels, or an `append` could land on top of a later `replace`. Each
data unit therefore keeps a short history of the uploads applied to it, in the jobs table:

  pk = UNIT#<data hash>, sk = ORDER    replaced_by: the latest `replace` applied (job id, order, labels)
                                       appends: each `append` applied that is later than it (the same)

The sequential result of a data unit is the latest `replace`'s labels plus the labels of every later `append`.
So a row arriving late is judged against that history, under the data unit's lease:
- any row older than the latest `replace` applied is superseded: the later file already decided the labels;
- a `replace` newer than it removes everything except the labels of the appends newer than itself;
- an `append` newer than it adds its labels, as always.
The history is written in the same transaction as the row's outcome, so it always describes what was saved;
a rollback reads it too, so undoing one upload never takes off what another one put there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from label_importer.model.branches import MAIN_BRANCH
from label_importer.model.jobs import Job
from label_importer.model.label_format import Mode

_SEQUENCER_WIDTH = 32
_MAX_KEPT_LABELS = 20_000
"""Label hashes a history keeps (about 240 KB, under DynamoDB's 400 KB per item; a data unit holds at most
MAX_OBJECTS_PER_DATA_UNIT objects a file). Beyond that the oldest appends are forgotten: a `replace` arriving
after more newer labels than that removes the oldest of them."""


def upload_order(event_time: str, sequencer: str, job_id: str) -> str:
    """A key that sorts uploads in the order S3 received them.

    S3's event time (ISO 8601, milliseconds) orders uploads of different keys; its sequencer orders two
    uploads of the same key within a millisecond, compared as S3 says: right-padded with zeros, then as
    strings. The job id only makes the order total.
    """
    return f"{event_time}|{sequencer.upper().ljust(_SEQUENCER_WIDTH, '0')}|{job_id}"


@dataclass(frozen=True)
class Upload:
    """The job whose rows are imported, with what upload_order.py judges its rows by."""

    job_id: str
    order: str
    mode: Mode
    branch: str = MAIN_BRANCH
    """Histories are per (data unit, branch): an upload to one branch never supersedes another branch's."""

    @classmethod
    def of(cls, job: Job) -> Upload:
        """An import job's, which has a mode once its file was read (every job with chunks or rows)."""
        if job.mode is None:
            raise ValueError(f"job {job.job_id} has no mode: its file was never read")
        return cls(job.job_id, job.upload_order, job.mode, job.branch)


@dataclass(frozen=True)
class Applied:
    job_id: str
    order: str
    labels: frozenset[str] = frozenset()
    """The hashes of the labels its file gives the data unit (added or already there)."""


@dataclass(frozen=True)
class UnitHistory:
    replaced_by: Applied | None = None
    appends: tuple[Applied, ...] = field(default_factory=tuple)

    def superseded_by(self, order: str) -> str | None:
        """The job whose later `replace` already decided this data unit's labels, if there is one."""
        if self.replaced_by is not None and self.replaced_by.order > order:
            return self.replaced_by.job_id
        return None

    def newer_append_labels(self, order: str) -> set[str]:
        """What a `replace` at `order` must leave in place: the labels of the appends uploaded after it."""
        return {label for applied in self.appends if applied.order > order for label in applied.labels}

    def newer_than(self, order: str) -> list[str]:
        """Jobs applied to this data unit that were uploaded after `order`."""
        later = [applied.job_id for applied in self.appends if applied.order > order]
        superseding = self.superseded_by(order)
        return [superseding, *later] if superseding else later

    def labels_of_others(self, job_id: str) -> set[str]:
        """Labels other uploads gave the data unit: undoing `job_id` must leave them, even where it added the
        same label first."""
        applied = [self.replaced_by, *self.appends] if self.replaced_by else list(self.appends)
        return {label for entry in applied if entry.job_id != job_id for label in entry.labels}

    def with_applied(self, job_id: str, order: str, mode: Mode, labels: Iterable[str]) -> UnitHistory:
        if mode is Mode.REPLACE:
            newer = tuple(a for a in self.appends if a.order > order)
            return UnitHistory(Applied(job_id, order, frozenset(labels)), newer)
        appends = [a for a in self.appends if a.job_id != job_id] + [Applied(job_id, order, frozenset(labels))]
        appends.sort(key=lambda applied: applied.order)
        replaced = self.replaced_by
        kept = len(replaced.labels) if replaced else 0
        while len(appends) > 1 and kept + sum(len(a.labels) for a in appends) > _MAX_KEPT_LABELS:
            appends.pop(0)
        return UnitHistory(replaced, tuple(appends))

    def without_append(self, job_id: str) -> UnitHistory:
        return UnitHistory(self.replaced_by, tuple(a for a in self.appends if a.job_id != job_id))

    def to_dict(self) -> dict[str, Any]:
        def applied(a: Applied) -> dict[str, Any]:
            return {"job_id": a.job_id, "order": a.order, "labels": sorted(a.labels)}

        return {
            "replaced_by": applied(self.replaced_by) if self.replaced_by else None,
            "appends": [applied(a) for a in self.appends],
        }

    @classmethod
    def from_dict(cls, item: dict[str, Any] | None) -> UnitHistory:
        if not item:
            return cls()

        def applied(value: dict[str, Any]) -> Applied:
            return Applied(value["job_id"], value["order"], frozenset(value.get("labels", [])))

        replaced_by = item.get("replaced_by")
        return cls(applied(replaced_by) if replaced_by else None, tuple(applied(a) for a in item.get("appends", [])))

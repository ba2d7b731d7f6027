"""What a dry run predicts an import of the file would do, per data unit: the lines of `diff.jsonl`, and their totals
for `report.json` and `summary.txt`.

Kept apart from the engine (services/dry_run_diff.py) so the reports can show a diff without importing Encord code.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from label_importer.model.jobs import RowStatus


@dataclass(frozen=True)
class LabelRef:
    """One label instance, said so a person recognises it: its hash on the data unit, object or classification,
    and its ontology title."""

    hash: str
    kind: str
    name: str

    def to_dict(self) -> dict[str, str]:
        return {"hash": self.hash, "kind": self.kind, "name": self.name}


@dataclass(frozen=True)
class UnitDiff:
    """One data unit: what the import would add, find already there, refuse and take off, and how its row would end."""

    data_hash: str
    title: str | None
    """The data unit's title, as Encord lists it; None for a data unit no longer in the project."""
    lines: list[int]
    outcome: RowStatus
    """IMPORTED or FAILED: what the import would record for the row."""
    reason: str | None = None
    """Why the row would fail, in the words the import would record."""
    add: list[LabelRef] = field(default_factory=list)
    """Labels the import would add (new instances)."""
    no_op: list[LabelRef] = field(default_factory=list)
    """The file's labels already on the data unit (a re-upload, say): the import leaves them as they are."""
    conflict: list[str] = field(default_factory=list)
    """Where the file contradicts labels already there (`append` never overwrites): the row would fail."""
    remove: list[LabelRef] = field(default_factory=list)
    """Labels on the data unit now that would be gone afterwards (`replace`)."""
    workflow_actions: list[str] = field(default_factory=list)
    """The workflow actions (`after_save`) that would apply to the data unit's task once its labels are saved."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "data_hash": self.data_hash,
            "title": self.title,
            "lines": self.lines,
            "outcome": str(self.outcome),
            "reason": self.reason,
            "counts": {
                "add": len(self.add),
                "no_op": len(self.no_op),
                "conflict": len(self.conflict),
                "remove": len(self.remove),
            },
            "add": [label.to_dict() for label in self.add],
            "no_op": [label.to_dict() for label in self.no_op],
            "conflict": self.conflict,
            "remove": [label.to_dict() for label in self.remove],
            "workflow_actions": self.workflow_actions,
        }


@dataclass
class DiffTotals:
    """The diff of the whole file, summed over its data units."""

    rows: int = 0
    would_import: int = 0
    would_fail: int = 0
    add: int = 0
    no_op: int = 0
    conflict: int = 0
    remove: int = 0
    workflow_actions: Counter[str] = field(default_factory=Counter)

    def count(self, diff: UnitDiff) -> None:
        self.rows += 1
        if diff.outcome is RowStatus.IMPORTED:
            self.would_import += 1
        else:
            self.would_fail += 1
        self.add += len(diff.add)
        self.no_op += len(diff.no_op)
        self.conflict += len(diff.conflict)
        self.remove += len(diff.remove)
        self.workflow_actions.update(action.split()[0] for action in diff.workflow_actions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "would_import": self.would_import,
            "would_fail": self.would_fail,
            "add": self.add,
            "no_op": self.no_op,
            "conflict": self.conflict,
            "remove": self.remove,
            "workflow_actions": dict(self.workflow_actions),
        }


@dataclass(frozen=True)
class DryRunDiff:
    """What the final report shows of a dry run: the totals and the first data units (all are in diff.jsonl)."""

    totals: DiffTotals
    first: list[UnitDiff]

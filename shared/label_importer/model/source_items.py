"""What every input source yields for the checks: the same three kinds of item, whatever the file format.

A source turns its file into label-format records, numbered so that problems and row outcomes can point back
into the file (a JSON Lines line, a COCO annotation's position). What it cannot turn into a record it reports
as rejected, with its problems already located in the file's own terms; what the file asks to leave out it
reports as left out, so counts add up. Nothing else needs to know how a format is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from label_importer.model.problems import Problem


class Record(NamedTuple):
    """One label record: its number in the file and its label-format JSON (one JSON Lines line, as written)."""

    number: int
    raw: bytes


@dataclass(frozen=True)
class Rejected:
    """A record the source could not read or convert (too long, not convertible)."""

    number: int
    data_hash: str | None
    """The data unit it was for, when the source knows it: under `skip-invalid` that unit is then incomplete."""
    problems: list[Problem]


@dataclass(frozen=True)
class LeftOut:
    """A record left out: the file itself asks (COCO: a category mapped to null, crowds under `skip`), or all its
    labels are of kinds Encord has no place for (then a NotImported says which)."""

    number: int


@dataclass(frozen=True)
class NotImported:
    """Labels of record `number` of kinds Encord has no place for (a CVAT cuboid, a Labelbox mask given as a URL),
    given before the record's own item (Record or LeftOut) so the report says what was not imported and why. Not a
    record: it does not count as one, and may share the number of the item after it."""

    number: int
    reasons: tuple[str, ...]
    """One of the source's fixed sentences per label (reports count labels by it), never text from the file."""


SourceItem = Record | Rejected | LeftOut | NotImported

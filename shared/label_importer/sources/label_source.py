"""What an input source is: one label file format, read as the stream of items the checks take.

A source knows its format and nothing else: where the file keeps its options, how its records become label
records, and how to say where in the file a problem is. It reads through a `LabelFile`, so it never knows
where the bytes come from (S3, a local file) or how they are bounded. Validation, chunking, import and
reports see only `LabelSource`; a new format is a new module with a class like `JsonLinesSource`, listed in
`formats.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from label_importer.model.label_format import Header
from label_importer.model.limits import Limits
from label_importer.model.problems import Problem
from label_importer.model.project import ProjectView
from label_importer.model.source_items import SourceItem
from label_importer.sources.label_file import LabelFile


class SourceRejected(Exception):
    """The file is not this format, or its options or own sections are wrong: it is rejected before any record
    is checked, whatever the error policy."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problems")
        self.problems = problems


class LabelSource(Protocol):
    records_noun: str
    """What the file's records are called, for a person: `label records`, `annotations`."""
    options_section: str
    """Where the file keeps its options, for a person: `header`, `encord`."""
    options_line: int
    """The number problems with the options carry: 1 for a header line, 0 where the options are not a line."""

    def options(self) -> Header:
        """The file's options (project, mode, error policy, dry run), reading no more than it must; raises
        SourceRejected."""
        ...

    def match(self, project: ProjectView) -> list[Problem]:
        """Tie what the file itself names to the project, once, before any record is read (COCO: images to
        data units, categories to ontology objects); the problems of the file's own sections."""
        ...

    def items(self) -> Iterator[SourceItem]:
        """Every record, rejection and leave-out, in file order with strictly increasing numbers, numbered the
        same on every call (a NotImported comes just before the item of its number, and is no record); each call
        reads the file from the start (validation reads it once, chunking again). Raises SourceRejected."""
        ...

    def locate(self, problem: Problem) -> Problem:
        """A problem the checks found in a record, placed in the file's own terms."""
        ...


class SourceFormat(Protocol):
    """A source class: which files it reads, and how to make a source for one."""

    def claims(self, file: LabelFile) -> bool:
        """By the key's suffix, and where formats share one (a `.zip`), by the archive's entry names; may raise
        FileRefused (an archive too unsafe to list)."""
        ...

    def __call__(self, file: LabelFile, limits: Limits) -> LabelSource: ...

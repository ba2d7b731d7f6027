"""A YOLO zip (`labels/**/*.txt`, `data.yaml` or `classes.txt`, `encord.json` at the root) as a label source.

The class list and the mapping are read in `options()`, because without them no line means anything; the label
files are then streamed line by line, in entry-name order, and their non-blank lines numbered 1, 2, … across
the archive, the same on every call of `items()`. A line names neither its image nor its format: the image is
the label file's stem (`labels/train/0001.txt` is data unit `0001.jpg`), tied to the project once per file in
`match()`. Problems are placed on the file and line they came from (`labels/train/0001.txt:4`).
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterator
from dataclasses import replace

from encord.objects import Object, Shape

from label_importer.model.limits import Limits
from label_importer.model.matching import Unmatched
from label_importer.model.problems import ErrorCode, Problem
from label_importer.model.project import ProjectView
from label_importer.model.source_items import Rejected, SourceItem
from label_importer.sources.json_lines import numbered_lines
from label_importer.sources.label_file import LabelFile
from label_importer.sources.label_source import SourceRejected
from label_importer.sources.mapping_option import MAPPING_FILE, MappingOption, archive_mapping
from label_importer.sources.name_matching import ObjectNames, UnitNames, stem, template_of
from label_importer.sources.yolo.classes import ClassList, ClassListRefused, class_entry, read_class_list
from label_importer.sources.yolo.lines import IMPORTABLE_SHAPES, ImageUnit, YoloClass, convert

_WHERE = f"{MAPPING_FILE} (at the root of the zip)"
LABELS_FOLDER = "labels"
"""Label files are the `.txt` entries under a folder of this name, at any depth (`labels/`, `train/labels/`)."""


def is_label_file(name: str) -> bool:
    folders = name.split("/")[:-1]
    return name.lower().endswith(".txt") and LABELS_FOLDER in (folder.lower() for folder in folders)


class YoloSource:
    records_noun = "label lines"
    options_section = MAPPING_FILE
    options_line = 0

    @staticmethod
    def claims(file: LabelFile) -> bool:
        """Every `.zip` without `.xml` entries (those are Pascal VOC's): a YOLO archive, or an error saying which
        layout was expected."""
        key = file.key.lower()
        return key.endswith(".zip") and not any(name.lower().endswith(".xml") for name in file.archive().names)

    def __init__(self, file: LabelFile, limits: Limits) -> None:
        self._file = file
        self._limits = limits
        self._options: MappingOption | None = None
        self._classes: ClassList | None = None
        self._entries: list[str] = []
        self._units: dict[str, ImageUnit | Unmatched] = {}
        self._objects: ObjectNames | None = None
        self._project: ProjectView | None = None
        self._resolved: dict[int, YoloClass | Unmatched | None] = {}
        self._file_starts: list[int] = []
        """The number of each label file's first record (in `_entries` order): which file a record is in."""
        self._lines = array("L")
        """Record number - 1 -> its line in its label file: four bytes a record, however many millions."""

    def options(self) -> MappingOption:
        if self._options is None:
            self._options, self._classes = self._read()
            self._entries = sorted(filter(is_label_file, self._file.archive().names))
        return self._options

    def match(self, project: ProjectView) -> list[Problem]:
        """Each label file to its data unit, by stem; classes are tied to objects as lines name them."""
        options = self.options()
        mapped = {**{stem(name): unit for name, unit in options.data_units.items()}, **options.data_units}
        units = UnitNames(project.units, mapped, where=f"'data_units' of {_WHERE}")
        problems = []
        for entry in self._entries:
            unit = units.image(stem(entry), by_stem=True)  # folders and .txt are not the image's
            if isinstance(unit, Unmatched):
                self._units[entry] = unit
                problems.append(Problem(0, entry, unit.code, f"{entry}: {unit.reason}"))
            else:
                assert unit.width is not None and unit.height is not None  # image() checked it is an image
                self._units[entry] = ImageUnit(unit.data_hash, unit.width, unit.height)
        self._project = project
        self._objects = ObjectNames(
            project.ontology,
            options.objects,
            shapes=IMPORTABLE_SHAPES,
            format_name="YOLO",
            where=f"'objects' of {_WHERE}",
        )
        return problems

    def items(self) -> Iterator[SourceItem]:
        if self._objects is None or self._classes is None:
            raise RuntimeError("match() ties label files to data units before lines are read")
        archive = self._file.archive()
        names = self._classes.names
        max_line_bytes = self._limits.max_line_bytes
        number = 0
        self._file_starts, self._lines = [], array("L")
        for entry in self._entries:
            unit = self._units[entry]
            self._file_starts.append(number + 1)
            for line in numbered_lines(archive.open(entry), max_line_bytes=max_line_bytes):
                number += 1
                where = f"{entry}:{line.number}"
                self._lines.append(line.number)
                if isinstance(line, Rejected):
                    problems = [replace(problem, line=number, field=where) for problem in line.problems]
                    yield Rejected(number, None if isinstance(unit, Unmatched) else unit.data_hash, problems)
                else:
                    yield convert(number, where, line.raw, names, self._resolve, unit)

    def locate(self, problem: Problem) -> Problem:
        """A problem the shared checks found in a converted line, placed on the label file and line."""
        if not 0 < problem.line <= len(self._lines):
            return problem
        entry = self._entries[bisect.bisect_right(self._file_starts, problem.line) - 1]
        where = f"{entry}:{self._lines[problem.line - 1]}"
        return problem if problem.field == where else replace(problem, field=where)

    def _resolve(self, class_id: int) -> YoloClass | Unmatched | None:
        """The class's ontology object, once per class id, with a skeleton's points in the template's order."""
        if class_id not in self._resolved:
            assert self._objects is not None and self._classes is not None and self._project is not None
            name = self._classes.names[class_id]
            found = self._objects.object(name)
            self._resolved[class_id] = (
                found if found is None or isinstance(found, Unmatched) else self._yolo(name, found)
            )
        return self._resolved[class_id]

    def _yolo(self, name: str, found: Object) -> YoloClass | Unmatched:
        assert self._project is not None and self._classes is not None
        if found.shape is not Shape.SKELETON:
            return YoloClass(name, found)
        template = template_of(self._project.ontology, found, f"class {name!r}")
        if isinstance(template, Unmatched):
            return template
        points = tuple(vertex.name for _, vertex in sorted(template.skeleton.items(), key=lambda item: int(item[0])))
        shape = self._classes.keypoints
        if shape is not None and shape[0] != len(points):
            return Unmatched(
                ErrorCode.SKELETON_POINTS_MISMATCH,
                f"{self._classes.entry} says kpt_shape {list(shape)} ({shape[0]} keypoints) but class {name!r} is "
                f"skeleton {template.name!r} of {len(points)} points {list(points)}",
            )
        return YoloClass(name, found, points, shape[1] if shape else None)

    def _read(self) -> tuple[MappingOption, ClassList]:
        archive = self._file.archive()
        max_bytes = self._limits.max_line_bytes
        options = archive_mapping(archive, max_bytes=max_bytes)
        entry = class_entry(archive.names)
        if entry is None:
            raise SourceRejected(
                [
                    Problem(
                        0,
                        "",
                        ErrorCode.UNKNOWN_FORMAT,
                        "the zip is neither CVAT (annotations.xml), Pascal VOC (Annotations/*.xml), PNG masks "
                        "(masks/*.png) nor YOLO: a YOLO zip holds data.yaml "
                        "(with 'names') or classes.txt (one class name per line), and label files "
                        "labels/**/*.txt (one object per line: class id, then normalised numbers); see "
                        "docs/format-yolo.md",
                    )
                ]
            )
        try:
            return options, read_class_list(entry, archive.read(entry, max_bytes=max_bytes))
        except ClassListRefused as refused:
            raise SourceRejected([refused.problem]) from None

"""A zip of PNG masks (`masks/**/<image name or stem>.png`, `encord.json` at the root) as a label source.

Each mask is one image's labels, so each is one record, numbered 1, 2, … in entry-name order, the same on every
call of `items()`. A mask is read whole (at most MaxLineBytes), its size taken from its header and checked
against the limit and the data unit before its pixels are decoded, and dropped once it is a record: memory holds
one mask at a time. Its image is its path below the `masks` folder without `.png` (`masks/val/0002.png` is
`val/0002`, so data unit `0002.jpg` by stem; `masks/0002.jpg.png` is `0002.jpg`). Problems name the mask
(`masks/0001.png`) and, where one value is at fault, the value (`masks/0001.png: value 3`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from encord.objects import Object

from label_importer.model.limits import Limits
from label_importer.model.matching import Unmatched
from label_importer.model.problems import Problem
from label_importer.model.project import ProjectView
from label_importer.model.source_items import Rejected, SourceItem
from label_importer.sources.label_file import LabelFile
from label_importer.sources.mapping_option import MAPPING_FILE, MappingOption, archive_mapping
from label_importer.sources.name_matching import ObjectNames, UnitNames, stem
from label_importer.sources.png_masks.decoding import MaskMisfit, decoded, open_png
from label_importer.sources.png_masks.records import MASK_SHAPES, convert
from label_importer.sources.yolo.classes import class_entry

_WHERE = f"{MAPPING_FILE} (at the root of the zip)"
MASKS_FOLDER = "masks"
"""Masks are the `.png` entries under a folder of this name, at any depth (`masks/`, `export/masks/train/`)."""


def is_mask_file(name: str) -> bool:
    folders = name.split("/")[:-1]
    return name.lower().endswith(".png") and MASKS_FOLDER in (folder.lower() for folder in folders)


def image_name(entry: str) -> str:
    """What a mask names: its path below the (first) `masks` folder, without `.png`."""
    parts = entry.split("/")
    below = [part.lower() for part in parts].index(MASKS_FOLDER) + 1
    return "/".join(parts[below:])[: -len(".png")]


class PngMasksSource:
    records_noun = "masks"
    options_section = MAPPING_FILE
    options_line = 0

    @staticmethod
    def claims(file: LabelFile) -> bool:
        """A `.zip` with a `.png` under a `masks` folder, and neither a YOLO class list nor `.xml` entries (Pascal
        VOC's): those are the other zip formats, whose exports may hold masks beside their own labels."""
        if not file.key.lower().endswith(".zip"):
            return False
        names = file.archive().names
        return (
            any(map(is_mask_file, names))
            and class_entry(names) is None
            and not any(name.lower().endswith(".xml") for name in names)
        )

    def __init__(self, file: LabelFile, limits: Limits) -> None:
        self._file = file
        self._limits = limits
        self._options: MappingOption | None = None
        self._entries: list[str] = []
        self._units: UnitNames | None = None
        self._names: ObjectNames | None = None
        self._objects: dict[str, Object | Unmatched | None] = {}
        """Each value, as written, decided once, not per mask."""

    def options(self) -> MappingOption:
        if self._options is None:
            archive = self._file.archive()
            self._options = archive_mapping(archive, max_bytes=self._limits.max_line_bytes)
            self._entries = sorted(filter(is_mask_file, archive.names))
        return self._options

    def match(self, project: ProjectView) -> list[Problem]:
        """Masks are tied to data units one by one as they are read: the size to check is in each PNG."""
        options = self.options()
        mapped = {**{stem(name): unit for name, unit in options.data_units.items()}, **options.data_units}
        self._units = UnitNames(project.units, mapped, where=f"'data_units' of {_WHERE}")
        self._names = ObjectNames(
            project.ontology,
            options.objects,
            shapes=MASK_SHAPES,
            format_name="a PNG mask",
            where=f"'objects' of {_WHERE}",
            noun="pixel value",
        )
        return []

    def items(self) -> Iterator[SourceItem]:
        if self._units is None:
            raise RuntimeError("match() ties the masks to the project before they are read")
        for number, entry in enumerate(self._entries, 1):
            yield self._item(number, entry)

    def locate(self, problem: Problem) -> Problem:
        """A problem the shared checks found in a record (too many objects or bytes for its data unit), placed on
        its mask. Its objects' own fields cannot be wrong there: each is a bitmask of a resolved object, sized as
        the data unit."""
        if not 0 < problem.line <= len(self._entries):
            return problem
        entry = self._entries[problem.line - 1]
        return problem if problem.field.startswith(entry) else replace(problem, field=entry)

    def _item(self, number: int, entry: str) -> SourceItem:
        assert self._units is not None  # items() checked
        options = self.options()
        data = self._file.archive().read(entry, max_bytes=self._limits.max_line_bytes)
        try:
            image = open_png(data, self._limits.max_bitmask_pixels)
        except MaskMisfit as misfit:
            return Rejected(number, None, [Problem(number, entry, misfit.code, f"{entry} {misfit.message}")])
        width, height = image.size
        unit = self._units.image(image_name(entry), width=width, height=height, by_stem=True)
        if isinstance(unit, Unmatched):
            image.close()
            return Rejected(number, None, [Problem(number, entry, unit.code, f"{entry}: {unit.reason}")])
        try:
            values = decoded(image)
        except MaskMisfit as misfit:
            problem = Problem(number, entry, misfit.code, f"{entry} {misfit.message}")
            return Rejected(number, unit.data_hash, [problem])
        return convert(number, entry, values, options.masks, options.objects, self._object, unit.data_hash)

    def _object(self, written: str) -> Object | Unmatched | None:
        if written not in self._objects:
            assert self._names is not None  # items() checked
            self._objects[written] = self._names.object(written)
        return self._objects[written]

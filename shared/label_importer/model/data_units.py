"""The project's data units, listed once per file, so each record is checked with a dict lookup.

Listing is one Encord request for the whole project (the SDK does not page it); checking per record
would cost one round trip per line and is what makes naive importers slow.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from encord import Project
from encord.constants.enums import DataType
from encord.objects import LabelRowV2

from label_importer.model.matching import Lookup, Unmatched, exactly_one
from label_importer.model.problems import ErrorCode


@dataclass(frozen=True)
class DataUnit:
    data_hash: str
    title: str
    number_of_frames: int
    width: int | None
    height: int | None
    image_sizes: tuple[tuple[int, int], ...] = ()
    """(width, height) of each image of an image group, by frame: its images may differ in size, and the group
    itself has none. Empty for every other data type."""
    data_type: DataType | None = None
    """What the data unit is (image, video, img_group, dicom, ...): checks go by frames and sizes, but a spec
    file of the project records it, and the fake Encord is seeded by it. None for a unit a test builds."""

    @classmethod
    def from_label_row(cls, row: LabelRowV2) -> DataUnit:
        """From a row listed with `include_images_data=True`, which is what carries an image group's sizes."""
        image_sizes: tuple[tuple[int, int], ...] = ()
        if row.data_type == DataType.IMG_GROUP:
            image_sizes = tuple((frame.width, frame.height) for frame in row.get_frames_metadata())
        return cls(
            data_hash=row.data_hash,
            title=row.data_title,
            # Images report 0 or 1 frames depending on the data type; both mean "frame 0 only".
            number_of_frames=max(row.number_of_frames or 1, 1),
            width=row.width,
            height=row.height,
            image_sizes=image_sizes,
            data_type=row.data_type,
        )


def list_data_units(project: Project) -> list[DataUnit]:
    """Every data unit of the project in one listing request, with what checks need of each (an image group's
    image sizes come only with `include_images_data`): what the validator reads, and what `export-spec` writes."""
    return [DataUnit.from_label_row(row) for row in project.list_label_rows_v2(include_images_data=True)]


class UnknownDataUnit(Exception):
    def __init__(self, field: str, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code
        self.message = message


class DataUnitIndex:
    def __init__(self, units: Iterable[DataUnit]) -> None:
        self._by_hash: dict[str, DataUnit] = {}
        self._by_title: dict[str, list[DataUnit]] = defaultdict(list)
        for unit in units:
            self._by_hash[unit.data_hash] = unit
            self._by_title[unit.title].append(unit)

    def __iter__(self) -> Iterator[DataUnit]:
        return iter(self._by_hash.values())

    def titled(self, title: str) -> list[DataUnit]:
        return self._by_title.get(title, [])

    def with_hash(self, data_hash: str) -> DataUnit | None:
        return self._by_hash.get(data_hash)

    def find(self, data_hash: str | None, data_title: str | None) -> DataUnit:
        if data_hash is not None:
            unit = self.with_hash(data_hash)
            if unit is None:
                raise UnknownDataUnit(
                    "data_hash", ErrorCode.UNKNOWN_DATA_UNIT, f"the project has no data unit {data_hash!r}"
                )
            return unit
        title = data_title or ""
        match = exactly_one(self.titled(title), _TITLES, f"titled {title!r}", lambda unit: unit.data_hash)
        if isinstance(match, Unmatched):
            raise UnknownDataUnit("data_title", match.code, match.reason)
        return match


_TITLES = Lookup(
    "the project", "data unit", ErrorCode.UNKNOWN_DATA_UNIT, ErrorCode.AMBIGUOUS_DATA_TITLE, "use 'data_hash'"
)

"""Which data unit an image name is, and which ontology object a class name is, for formats that name them.

COCO, YOLO and Pascal VOC files name images by file name and objects by class name, as their own tools wrote
them: `train2017/0001.jpg`, `cherry`. The rules are the same for all of them, so they live here once. An image
is the data unit titled exactly its name, or else the one with the same name without folders (`train2017/0001.jpg`
is the data unit `0001.jpg`, and `0001.jpg` is `orchard/0001.jpg`), or for formats that know only a stem (a YOLO
label file), the one with the same name without folders and extension. A class is the ontology object of the
same title ignoring case and runs of whitespace. The mapping option overrides either; whatever does not match,
or matches twice, is an `Unmatched` saying why.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict

from encord.objects import Object, OntologyStructure, Shape
from encord.objects.skeleton_template import SkeletonTemplate

from label_importer.model.data_units import DataUnit, DataUnitIndex
from label_importer.model.matching import Lookup, Unmatched, exactly_one
from label_importer.model.problems import ErrorCode, did_you_mean
from label_importer.model.project import skeleton_template_of

LEFT_OUT = None
"""A class the mapping maps to null: its labels are deliberately not imported."""


def folded(name: str) -> str:
    return " ".join(name.split()).casefold()


def stem(name: str) -> str:
    return posixpath.splitext(posixpath.basename(name))[0]


class UnitNames:
    def __init__(self, units: DataUnitIndex, mapped: dict[str, str], *, where: str) -> None:
        """`where` tells a person where to map a name instead (`the 'encord' section's 'data_units'`)."""
        self._units = units
        self._mapped = mapped
        self._where = where
        self._by_base_name: dict[str, list[DataUnit]] = defaultdict(list)
        self._by_stem: dict[str, list[DataUnit]] = defaultdict(list)
        for unit in units:
            self._by_base_name[posixpath.basename(unit.title)].append(unit)
            self._by_stem[stem(unit.title)].append(unit)
        self._lookup = Lookup(
            "the project",
            "data unit",
            ErrorCode.UNKNOWN_DATA_UNIT,
            ErrorCode.AMBIGUOUS_DATA_TITLE,
            f"map it to one data hash in {where}",
        )

    def image(
        self, name: str, *, width: int | None = None, height: int | None = None, by_stem: bool = False
    ) -> DataUnit | Unmatched:
        """The single image `name` is; when the file says its size, the data unit must have that size, or every
        coordinate would land in the wrong place."""
        unit, how = self._named(name, by_stem=by_stem)
        if isinstance(unit, Unmatched):
            return unit
        if unit.number_of_frames != 1 or unit.width is None:
            return Unmatched(
                ErrorCode.NOT_AN_IMAGE,
                f"{how} is data unit {unit.title!r}, which has {unit.number_of_frames} frames (a video, image "
                "group, image sequence or DICOM series); these labels are for a single image",
            )
        return _same_size(unit, how, "image", width, height)

    def video(self, name: str, *, width: int | None = None, height: int | None = None) -> DataUnit | Unmatched:
        """The data unit with frames of one size (a video, image sequence or DICOM series) a video's labels are
        for; each label's frames are checked against it. When the file says the frame size, it must be that."""
        unit, how = self._named(name, by_stem=False)
        if isinstance(unit, Unmatched):
            return unit
        if unit.number_of_frames == 1 or unit.width is None or unit.height is None:
            what = "a single image" if unit.number_of_frames == 1 else "an image group, whose images differ in size"
            return Unmatched(
                ErrorCode.INVALID_VALUE,
                f"{how} is data unit {unit.title!r}, {what}; these labels are a video's, frame by frame, on frames "
                "of one size",
            )
        return _same_size(unit, how, "video", width, height)

    def _named(self, name: str, *, by_stem: bool) -> tuple[DataUnit | Unmatched, str]:
        units = self._units
        named = self._mapped.get(name, self._mapped.get(stem(name)) if by_stem else None)
        if named is not None:
            by_hash = units.with_hash(named)
            candidates = units.titled(named) or ([by_hash] if by_hash else [])
            how = f"{named!r} (named in {self._where})"
        else:
            candidates = units.titled(name) or self._by_base_name.get(posixpath.basename(name), [])
            if by_stem and not candidates:
                candidates = self._by_stem.get(stem(name), [])
            how = f"{'the file stem' if by_stem else 'file name'} {name!r}"

        def suggest() -> str:
            hint = did_you_mean(posixpath.basename(name), (unit.title for unit in units))
            return f"{hint}; map it in {self._where}"

        unit = exactly_one(
            candidates, self._lookup, f"for {how}", lambda unit: f"{unit.title!r} ({unit.data_hash})", suggest
        )
        return unit, how


def _same_size(unit: DataUnit, how: str, what: str, width: int | None, height: int | None) -> DataUnit | Unmatched:
    if (
        width is not None
        and height is not None
        and unit.width is not None
        and (unit.width, unit.height)
        != (
            width,
            height,
        )
    ):
        return Unmatched(
            ErrorCode.IMAGE_SIZE_MISMATCH,
            f"the {what} is {width}x{height} here but data unit {unit.title!r} is {unit.width}x{unit.height}: "
            "the coordinates would land in the wrong place",
            field="width",
        )
    return unit


class ObjectNames:
    def __init__(
        self,
        ontology: OntologyStructure,
        mapped: dict[str, str | None],
        *,
        shapes: frozenset[Shape],
        format_name: str,
        where: str,
        noun: str = "class",
    ) -> None:
        """`shapes` are those the format has geometry for; `where` tells a person where to map a name; `noun` is
        what the format calls a class (`category`)."""
        self._ontology = ontology
        self._mapped = mapped
        self._shapes = shapes
        self._format_name = format_name
        self._where = where
        self._noun = noun
        self._by_folded: dict[str, list[Object]] = defaultdict(list)
        for obj in ontology.objects:
            self._by_folded[folded(obj.title)].append(obj)
        self._lookup = Lookup(
            "the ontology",
            "object",
            ErrorCode.UNKNOWN_OBJECT,
            ErrorCode.AMBIGUOUS_TITLE,
            f"map it to one feature hash in {where}",
        )

    def object(self, name: str) -> Object | Unmatched | None:
        """The object `name` is, or LEFT_OUT (None) when the mapping says to leave it out."""
        objects = self._ontology.objects
        if name in self._mapped:
            named = self._mapped[name]
            if named is LEFT_OUT:
                return LEFT_OUT
            candidates = [obj for obj in objects if obj.feature_node_hash == named] or self._by_folded.get(
                folded(named), []
            )
            how = f"{named!r} (named in {self._where})"
        else:
            candidates = self._by_folded.get(folded(name), [])
            how = f"{self._noun} {name!r}"

        def suggest() -> str:
            hint = did_you_mean(name, (obj.title for obj in objects))
            return f"{hint}; map it in {self._where} (null leaves it out)"

        def describe(obj: Object) -> str:
            return f"{obj.title!r} ({obj.shape.value}, {obj.feature_node_hash})"

        found = exactly_one(candidates, self._lookup, f"for {how}", describe, suggest)
        if isinstance(found, Unmatched) or found.shape in self._shapes:
            return found
        shapes = ", ".join(sorted(shape.value for shape in self._shapes))
        return Unmatched(
            ErrorCode.SHAPE_MISMATCH,
            f"{how} is ontology object {found.title!r}, a {found.shape.value}; {self._format_name} has geometry for "
            f"{shapes} only",
        )


def template_of(ontology: OntologyStructure, skeleton: Object, how: str) -> SkeletonTemplate | Unmatched:
    """A skeleton class's points attach to its template; an ontology can hold a skeleton that lost it."""
    template = skeleton_template_of(ontology, skeleton)
    if template is None:
        return Unmatched(
            ErrorCode.NO_SKELETON_TEMPLATE,
            f"{how} is ontology object {skeleton.title!r}, a skeleton whose template the ontology does not have; "
            "link a skeleton template to it in Encord",
        )
    return template

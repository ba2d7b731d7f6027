"""Each Labelbox data row (one NDJSON line) as one label record, so an export takes the same checks, chunks and
import path as a JSON Lines file.

Line N of the file is record N. Every label of every project in the row is read (`projects.<id>.labels[]`): a data
row labelled in two Labelbox projects gets both projects' labels. Objects keep Labelbox's `feature_id` as their
`id`, so one video object is one tracked object across frames, a relationship can point at it, and importing the
same export again adds nothing. Whatever cannot be converted is reported where it is in the row
(`projects.<id>.labels[0].annotations.objects[2].bounding_box`), and `locate` puts the shared checks' problems on a
converted record back there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from encord.objects import Object
from encord.objects.attributes import TextAttribute

from label_importer.model.data_units import DataUnit
from label_importer.model.limits import Limits
from label_importer.model.matching import Unmatched
from label_importer.model.problems import ErrorCode, Problem, shown_value
from label_importer.model.project import ProjectView
from label_importer.model.source_items import LeftOut, NotImported, Record, Rejected, SourceItem
from label_importer.sources.coco.geometry import ImageSize
from label_importer.sources.encord_export.ontology_map import OntologyMap
from label_importer.sources.json_values import Misfit, kind, mapping, sequence, text
from label_importer.sources.labelbox.answers import Answers
from label_importer.sources.labelbox.geometry import IMPORTABLE_SHAPES, geometry, unimportable
from label_importer.sources.mapping_option import MappingOption
from label_importer.sources.name_matching import LEFT_OUT, ObjectNames, UnitNames

UNHELD_RELATIONS = (
    "Labelbox relationships whose source object has no single text attribute titled '… #relation' to hold them"
)
WHERE = 'the {"encord": …} first line'
"""Where the mapping option lives, for messages telling a person where to map a name."""

OPTIONS_KEY = "encord"

_LABEL_FIELDS = {
    "bounding_box": "bounding_box",
    "rotatable_bounding_box": "bounding_box",
    "polygon": "polygon",
    "polyline": "line",
    "point": "point",
    "attributes": "classifications",
}
"""Label-format field of an object -> the Labelbox field it came from."""


@dataclass
class Places:
    """Where each converted object and classification of one record came from, for `locate`."""

    unit: str
    """The field that named the data unit (`data_row.global_key`)."""
    objects: list[str] = field(default_factory=list)
    classifications: list[str] = field(default_factory=list)
    relations: dict[int, str] = field(default_factory=dict)
    """Record object index -> the relationship that gave it its relation answer."""


@dataclass
class _Row:
    """One data row being converted."""

    unit: DataUnit
    places: Places
    objects: list[dict[str, Any]] = field(default_factory=list)
    classifications: list[dict[str, Any]] = field(default_factory=list)
    placed: dict[str, tuple[int, Object]] = field(default_factory=dict)
    """feature_id -> (index of its first placement in `objects`, its ontology object)."""
    left_out: bool = False
    not_imported: list[str] = field(default_factory=list)
    """Why each label Encord has no place for was not imported."""


class LabelboxRows:
    def __init__(self, project: ProjectView, option: MappingOption, limits: Limits) -> None:
        self._option = option
        self._units = UnitNames(project.units, option.data_units, where=f"'data_units' of {WHERE}")
        self._names = ObjectNames(
            project.ontology,
            option.objects,
            shapes=IMPORTABLE_SHAPES,
            format_name="Labelbox",
            where=f"'objects' of {WHERE}",
            noun="annotation name",
        )
        self._answers = Answers(OntologyMap(project.ontology, option), limits.max_answer_depth)
        self._objects: dict[str, Object | Unmatched | None] = {}
        """Each annotation name decided once, not per annotation."""
        self._places: dict[int, Places] = {}
        """The record last converted, and the relations of earlier ones: a problem is located while its record is
        checked, except a relation to an object no line places, which only the end of the file shows; so memory
        holds one record's places, not every object's of the export."""
        self._last = 0
        self._unit_hash: str | None = None

    def convert(self, number: int, raw: bytes) -> Iterator[SourceItem]:
        """The row's item, after a NotImported naming what of it Encord has no place for (if anything)."""
        self._unit_hash = None
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            message = f"the line is not valid JSON ({error}); each line of an NDJSON file is one JSON object"
            yield Rejected(number, None, [Problem(number, "", ErrorCode.INVALID_JSON, message)])
            return
        not_imported: list[str] = []
        try:
            item = self._convert(number, row, not_imported)
        except Misfit as misfit:
            yield Rejected(number, self._unit_hash, [Problem(number, misfit.where, misfit.code, misfit.message)])
            return
        if not_imported:
            yield NotImported(number, tuple(not_imported))
        yield item

    def locate(self, problem: Problem) -> Problem:
        """A problem the shared checks found in a converted record, placed on the Labelbox field it came from;
        problems of the rows themselves are located already."""
        places = self._places.get(problem.line)
        head, _, rest = problem.field.partition(".")
        name, _, index = head.partition("[")
        if places is None or name not in ("data_hash", "objects", "classifications"):
            return problem
        position = int(index.rstrip("]")) if index.rstrip("]").isdigit() else -1
        located = ""
        if name == "data_hash":
            located = places.unit
        elif name == "objects" and rest.startswith("attributes") and position in places.relations:
            located = places.relations[position]
        elif name == "objects" and 0 <= position < len(places.objects):
            labelbox = _LABEL_FIELDS.get(rest.partition(".")[0].partition("[")[0])
            located = f"{places.objects[position]}.{labelbox}" if labelbox else places.objects[position]
        elif name == "classifications" and 0 <= position < len(places.classifications):
            located = places.classifications[position]
        return replace(problem, field=located)

    def _convert(self, number: int, row: Any, not_imported: list[str]) -> SourceItem:
        if not isinstance(row, dict):
            raise Misfit("", ErrorCode.WRONG_TYPE, f"a data row is a JSON object, not {kind(row)}")
        if OPTIONS_KEY in row:
            raise Misfit(OPTIONS_KEY, ErrorCode.INVALID_VALUE, 'the {"encord": …} line must be the file\'s first')
        data_row = mapping(row.get("data_row"), "data_row")
        key = "global_key" if data_row.get("global_key") is not None else "external_id"
        if data_row.get(key) is None:
            raise Misfit(
                "data_row",
                ErrorCode.MISSING_FIELD,
                "a data row needs its global_key or external_id: the data unit is the one titled that",
            )
        name = text(data_row[key], f"data_row.{key}")
        media = mapping(row.get("media_attributes") or {}, "media_attributes")
        labels = self._labels(mapping(row.get("projects") or {}, "projects"))
        video = str(media.get("mime_type", "")).startswith("video/") or any("frames" in a for _, a in labels)
        width, height = (_size(media, side) for side in ("width", "height"))
        found = (self._units.video if video else self._units.image)(name, width=width, height=height)
        if isinstance(found, Unmatched):
            raise Misfit("media_attributes.width" if found.field else f"data_row.{key}", found.code, found.reason)
        self._unit_hash = found.data_hash
        converted = _Row(found, Places(f"data_row.{key}"), not_imported=not_imported)
        for where, content in labels:
            if video:
                self._video(converted, content, where)
            else:
                self._image(converted, content, where)
            self._relationships(converted, content, where)
        if converted.left_out and not converted.objects and not converted.classifications:
            return LeftOut(number)
        self._keep(number, converted.places)
        record = {"data_hash": found.data_hash, "objects": converted.objects}
        record["classifications"] = converted.classifications
        return Record(number, orjson.dumps(record))

    def _keep(self, number: int, places: Places) -> None:
        """The record's places; of the record before it only its relations, which the end of the file checks."""
        last = self._places.get(self._last)
        if last is not None:
            if last.relations:
                self._places[self._last] = Places(last.unit, relations=last.relations)
            else:
                del self._places[self._last]
        self._places[number], self._last = places, number

    def _labels(self, projects: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(path, annotations) of every label of every project."""
        found = []
        for project_id, project in projects.items():
            where = f"projects.{project_id}"
            labels = sequence(mapping(project, where).get("labels") or [], f"{where}.labels")
            for index, label in enumerate(labels):
                at = f"{where}.labels[{index}]"
                found.append((f"{at}.annotations", mapping(mapping(label, at).get("annotations") or {}, at)))
        return found

    def _image(self, row: _Row, annotations: dict[str, Any], where: str) -> None:
        assert row.unit.width is not None and row.unit.height is not None  # UnitNames.image checked it is an image
        size = ImageSize(row.unit.width, row.unit.height)
        for index, annotation in enumerate(sequence(annotations.get("objects") or [], f"{where}.objects")):
            at = f"{where}.objects[{index}]"
            annotation = mapping(annotation, at)
            target = self._target(row, annotation, at)
            if target is LEFT_OUT:
                row.left_out = True
                continue
            label = self._object(annotation, target, size, at)
            label["attributes"] = self._answers.attributes(
                target, annotation.get("classifications") or [], at + ".classifications"
            )
            self._place(row, label, target, at, annotation.get("feature_id"))
        self._classifications(row, annotations.get("classifications") or [], f"{where}.classifications", None)

    def _video(self, row: _Row, annotations: dict[str, Any], where: str) -> None:
        """Labelbox numbers frames from 1, Encord from 0. An export made without `interpolated_frames` holds key
        frames only, while `segments` say the object is on every frame between them: those frames are not in the
        file, so such a row is refused rather than imported with holes."""
        unit = row.unit
        assert unit.width is not None and unit.height is not None  # UnitNames.video checked its frames have a size
        size = ImageSize(unit.width, unit.height)
        key_frames = _key_frames(annotations.get("key_frame_feature_map") or {}, f"{where}.key_frame_feature_map")
        listed: dict[str, set[int]] = {}
        static: dict[str, dict[str, Any]] = {}
        per_frame: dict[tuple[str, bytes], tuple[dict[str, Any], list[int], str]] = {}
        frames = mapping(annotations.get("frames") or {}, f"{where}.frames")
        for key, content in frames.items():
            frame_where = f"{where}.frames.{key}"
            if not key.isdigit() or int(key) < 1:
                raise Misfit(
                    frame_where, ErrorCode.INVALID_VALUE, f"{shown_value(key)!r} is not a frame number (1, 2, …)"
                )
            frame = int(key) - 1
            content = mapping(content, frame_where)
            objects = mapping(content.get("objects") or {}, f"{frame_where}.objects")
            for feature_id, annotation in objects.items():
                at = f"{frame_where}.objects.{feature_id}"
                annotation = mapping(annotation, at)
                target = self._target(row, annotation, at)
                if target is LEFT_OUT:
                    row.left_out = True
                    continue
                label = self._object(annotation, target, size, at)
                label["frames"] = frame
                if feature_id in key_frames and not key_frames[feature_id].get(int(key), False):
                    label["manual_annotation"] = False  # drawn by Labelbox's interpolation, not by a person
                answers = self._answers.attributes(
                    target, annotation.get("classifications") or [], f"{at}.classifications"
                )
                label["attributes"] = self._frame_answers(target, answers, static.setdefault(feature_id, {}), frame, at)
                listed.setdefault(feature_id, set()).add(int(key))
                self._place(row, label, target, at, feature_id)
            classifications = sequence(content.get("classifications") or [], f"{frame_where}.classifications")
            for index, given in enumerate(classifications):
                at = f"{frame_where}.classifications[{index}]"
                answer = self._answers.classification(given, at)
                if answer is LEFT_OUT:
                    row.left_out = True
                    continue
                group = per_frame.setdefault(
                    (answer["feature_hash"], orjson.dumps(answer, option=orjson.OPT_SORT_KEYS)), (answer, [], at)
                )
                group[1].append(frame)
        for label, group_frames, at in per_frame.values():
            row.classifications.append({**label, "frames": _ranges(group_frames)})
            row.places.classifications.append(at)
        whole = [{"start": 0, "end": max(unit.number_of_frames - 1, 0)}]
        self._classifications(row, annotations.get("classifications") or [], f"{where}.classifications", whole)
        _check_segments(annotations.get("segments") or {}, listed, f"{where}.segments")

    def _frame_answers(
        self, target: Object, answers: dict[str, Any], static: dict[str, Any], frame: int, where: str
    ) -> dict[str, Any]:
        """A video object's answers on one frame: a dynamic attribute's answer holds on that frame; a static one is
        given once, and must be the same on every frame, since Encord keeps one answer for it."""
        tree = self._answers.tree(target)
        kept: dict[str, Any] = {}
        for key, value in answers.items():
            if tree.by_hash[key].attribute.dynamic:
                kept[key] = [{"answer": value, "frames": frame}]
            elif key not in static:
                static[key] = kept[key] = value
            elif static[key] != value:
                raise Misfit(
                    f"{where}.classifications",
                    ErrorCode.CONFLICTING_LABELS,
                    f"attribute {tree.by_hash[key].attribute.title!r} is answered differently on another frame; it is "
                    "not dynamic in the ontology, so Encord keeps one answer for the whole object",
                )
        return kept

    def _classifications(self, row: _Row, given: Any, where: str, frames: list[dict[str, int]] | None) -> None:
        for index, item in enumerate(sequence(given, where)):
            at = f"{where}[{index}]"
            label = self._answers.classification(item, at)
            if label is LEFT_OUT:
                row.left_out = True
                continue
            row.classifications.append(label if frames is None else {**label, "frames": frames})
            row.places.classifications.append(at)

    def _relationships(self, row: _Row, annotations: dict[str, Any], where: str) -> None:
        """Each relationship as the source object's `#relation` text attribute, pointing at the target object."""
        for index, given in enumerate(sequence(annotations.get("relationships") or [], f"{where}.relationships")):
            at = f"{where}.relationships[{index}]"
            relationship = mapping(given, at)
            name = relationship.get("name")
            if isinstance(name, str) and name in self._option.objects and self._option.objects[name] is LEFT_OUT:
                row.left_out = True
                continue
            source = text(relationship.get("source"), f"{at}.source")
            target = text(relationship.get("target"), f"{at}.target")
            if source not in row.placed:
                raise Misfit(
                    f"{at}.source",
                    ErrorCode.UNKNOWN_REFERENCE,
                    f"no imported object of this data row has feature_id {source!r}",
                )
            position, owner = row.placed[source]
            holders = [
                attribute
                for attribute in owner.attributes
                if isinstance(attribute, TextAttribute) and attribute.title.endswith("#relation")
            ]
            if len(holders) != 1:  # Encord keeps a relation as the answer of exactly one such attribute
                row.not_imported.append(UNHELD_RELATIONS)
                continue
            attributes = row.objects[position].setdefault("attributes", {})
            key = holders[0].feature_node_hash
            if key in attributes:
                raise Misfit(
                    at,
                    ErrorCode.CONFLICTING_LABELS,
                    f"object {source!r} is the source of another relationship already; its relation attribute "
                    f"{holders[0].title!r} holds one",
                )
            attributes[key] = {"relation_to": target}
            row.places.relations[position] = at

    def _target(self, row: _Row, annotation: dict[str, Any], where: str) -> Object | None:
        """The ontology object the annotation's name is; LEFT_OUT when the mapping leaves it out, or when Encord
        has no place for its kind (counted in the row's `not_imported`)."""
        name = text(annotation.get("name"), f"{where}.name")
        if name not in self._objects:
            self._objects[name] = self._names.object(name)
        found = self._objects[name]
        if found is LEFT_OUT:
            return LEFT_OUT
        why = unimportable(annotation)
        if why is not None:
            row.not_imported.append(why)
            return LEFT_OUT
        if isinstance(found, Unmatched):
            raise Misfit(f"{where}.name", found.code, found.reason)
        return found

    def _object(self, annotation: dict[str, Any], target: Object, size: ImageSize, where: str) -> dict[str, Any]:
        geometry_field, value = geometry(annotation, target, size, where)
        return {"feature_hash": target.feature_node_hash, geometry_field: value}

    def _place(self, row: _Row, label: dict[str, Any], target: Object, where: str, feature_id: Any) -> None:
        if not label.get("attributes"):
            label.pop("attributes", None)
        if isinstance(feature_id, str) and feature_id:
            label["id"] = feature_id
            row.placed.setdefault(feature_id, (len(row.objects), target))
        row.objects.append(label)
        row.places.objects.append(where)


def _size(media: dict[str, Any], side: str) -> int | None:
    value = media.get(side)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise Misfit(f"media_attributes.{side}", ErrorCode.WRONG_TYPE, f"the {side} in pixels, not {kind(value)}")
    return value


def _key_frames(given: Any, where: str) -> dict[str, dict[int, bool]]:
    """feature_id -> {frame: is a key frame}: Labelbox's `key_frame_feature_map`."""
    key_frames: dict[str, dict[int, bool]] = {}
    for feature_id, frames in mapping(given, where).items():
        at = f"{where}.{feature_id}"
        if isinstance(frames, list):
            frames = {str(frame): True for frame in frames}
        key_frames[feature_id] = {
            int(frame): flag is True for frame, flag in mapping(frames, at).items() if str(frame).isdigit()
        }
    return key_frames


def _check_segments(given: Any, listed: dict[str, set[int]], where: str) -> None:
    for feature_id, segments in mapping(given, where).items():
        at = f"{where}.{feature_id}"
        for index, segment in enumerate(sequence(segments, at)):
            if not (
                isinstance(segment, list)
                and len(segment) == 2
                and all(isinstance(end, int) and not isinstance(end, bool) for end in segment)
            ):
                raise Misfit(f"{at}[{index}]", ErrorCode.WRONG_TYPE, f"a segment is [first, last], not {kind(segment)}")
            start, end = segment
            if not 1 <= start <= end:
                raise Misfit(
                    f"{at}[{index}]",
                    ErrorCode.INVALID_VALUE,
                    f"a segment runs from frame 1 on, forwards, not {segment!r}",
                )
            frames = listed.get(feature_id)
            if frames is None or sum(1 for frame in frames if start <= frame <= end) == end - start + 1:
                continue
            missing: list[int] = []
            frame = start  # the first missing frames lie within len(frames) + 5 of the start: a bounded walk
            while frame <= end and len(missing) < 5:
                if frame not in frames:
                    missing.append(frame)
                frame += 1
            shown = ", ".join(map(str, missing)) + (", …" if len(missing) == 5 and frame <= end else "")
            raise Misfit(
                f"{at}[{index}]",
                ErrorCode.MISSING_FIELD,
                f"the segment covers frames {start} to {end} but the export has no geometry for frames {shown}; "
                "export with interpolated_frames set to true so that every frame of the object is in the file",
            )


def _ranges(frames: list[int]) -> list[dict[str, int]]:
    """Frame numbers as the fewest inclusive ranges."""
    ranges: list[dict[str, int]] = []
    for frame in sorted(set(frames)):
        if ranges and ranges[-1]["end"] == frame - 1:
            ranges[-1]["end"] = frame
        else:
            ranges.append({"start": frame, "end": frame})
    return ranges

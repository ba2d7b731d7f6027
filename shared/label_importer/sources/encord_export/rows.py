"""Each label row of an export as one label record, so an export takes the same checks, chunks and import path as
a JSON Lines file.

Element N of the list (1-based) is record N. Objects keep the export's `objectHash` as their `id`, so the
placements of one object on many frames stay one tracked object, relations (`#relation` text answers, which
hold an object hash) still point at it, and importing the same export again adds nothing. Ontology items are
written as target feature hashes, decided by `OntologyMap`; data units by hash when the project has it, else by
title. Whatever cannot be converted is reported where it is in the export (`[3].object_answers.<hash>`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from encord.objects import Classification
from encord.objects.attributes import Attribute, ChecklistAttribute, RadioAttribute

from label_importer.model.data_units import DataUnitIndex
from label_importer.model.matching import Unmatched
from label_importer.model.problems import ErrorCode, Problem
from label_importer.model.source_items import LeftOut, Record, Rejected, SourceItem
from label_importer.sources.encord_export.ontology_map import AttributeTree, OntologyMap
from label_importer.sources.json_values import Misfit, kind, mapping, sequence
from label_importer.sources.mapping_option import MappingOption
from label_importer.sources.name_matching import LEFT_OUT

READ_DATA_TYPES = ("image", "video", "img_group", "dicom")
"""What the label format can address: an image; frames of a video (an image sequence is one), a DICOM series'
slices, an image group's images."""
_DYNAMIC_ANSWER = re.compile(r"attributes\.[^.\[]+\[")
_VISIBILITY = {"visible": "visible", "invisible": "invisible", "occluded": "occluded", "selfOccluded": "self_occluded"}


@dataclass
class Places:
    """Where each converted object and classification of one record came from, for `locate`."""

    row: str
    objects: list[tuple[str, str]] = field(default_factory=list)
    """(placement path, object hash) of each record object."""
    classifications: list[str] = field(default_factory=list)
    checked_at_end: bool = False
    """It has relations or dynamic answers: only the end of the file shows whether what they need is placed."""


class ExportRows:
    def __init__(self, ontology: OntologyMap, units: DataUnitIndex, option: MappingOption) -> None:
        self._ontology = ontology
        self._units = units
        self._option = option
        self._places: dict[int, Places] = {}
        """The record last converted, and those the file-wide checks may still find a problem in: a problem is
        located while its record is checked, so only those are needed later, and memory does not grow with every
        object of the export."""
        self._last = 0
        self._checked_at_end = False

    def convert(self, number: int, row: Any) -> SourceItem:
        where = f"[{number - 1}]"
        try:
            return self._convert(number, where, row)
        except Misfit as misfit:
            data_hash = row.get("data_hash") if isinstance(row, dict) else None
            known = data_hash if isinstance(data_hash, str) and self._units.with_hash(data_hash) else None
            return Rejected(number, known, [Problem(number, misfit.where, misfit.code, misfit.message)])

    def _convert(self, number: int, where: str, row: Any) -> SourceItem:
        if not isinstance(row, dict):
            raise Misfit(where, ErrorCode.WRONG_TYPE, f"a label row is a JSON object, not {kind(row)}")
        if "encord" in row:
            raise Misfit(f"{where}.encord", ErrorCode.INVALID_VALUE, "the options element must be the list's first")
        data_type = row.get("data_type")
        if data_type is None:
            raise Misfit(f"{where}.data_type", ErrorCode.MISSING_FIELD, "a label row needs its data_type")
        if str(data_type).lower() not in READ_DATA_TYPES:
            raise Misfit(
                f"{where}.data_type",
                ErrorCode.INVALID_VALUE,
                f"data type {data_type!r} is not read yet: image, video, image group and DICOM label rows are",
            )
        data_hash, data_title = row.get("data_hash"), row.get("data_title")
        if not isinstance(data_hash, str) or not isinstance(data_title, str):
            raise Misfit(where, ErrorCode.MISSING_FIELD, "a label row needs its data_hash and data_title")
        record: dict[str, Any] = self._data_unit(data_hash, data_title)
        places = Places(where)
        self._checked_at_end = False
        objects, classifications = [], []
        left_out = False
        units = mapping(row.get("data_units", {}), f"{where}.data_units")
        answers = mapping(row.get("object_answers") or {}, f"{where}.object_answers")
        actions = mapping(row.get("object_actions") or {}, f"{where}.object_actions")
        answered: set[str] = set()
        for unit_hash, unit in units.items():
            unit_where = f"{where}.data_units.{unit_hash}"
            for frame, frame_where, frame_objects in _frames(mapping(unit, unit_where), unit_where):
                for index, frame_object in enumerate(frame_objects):
                    object_where = f"{frame_where}.objects[{index}]"
                    label = self._object(frame_object, frame, object_where, answers, actions, answered, where)
                    if label is LEFT_OUT:
                        left_out = True
                        continue
                    objects.append(label)
                    places.objects.append((object_where, label["id"]))
        classification_answers = mapping(row.get("classification_answers") or {}, f"{where}.classification_answers")
        for hash_, answer in classification_answers.items():
            answer_where = f"{where}.classification_answers.{hash_}"
            label = self._classification(answer, answer_where, str(data_type).lower() != "image")
            if label is LEFT_OUT:
                left_out = True
                continue
            classifications.append(label)
            places.classifications.append(answer_where)
        if left_out and not objects and not classifications:
            return LeftOut(number)
        record["objects"], record["classifications"] = objects, classifications
        places.checked_at_end = self._checked_at_end
        last = self._places.get(self._last)
        if last is not None and not last.checked_at_end:
            del self._places[self._last]
        self._places[number], self._last = places, number
        return Record(number, orjson.dumps(record))

    def _data_unit(self, data_hash: str, data_title: str) -> dict[str, Any]:
        named = self._option.data_units.get(data_hash, self._option.data_units.get(data_title))
        if named is not None:
            return {"data_hash": named} if self._units.with_hash(named) else {"data_title": named}
        if self._units.with_hash(data_hash):
            return {"data_hash": data_hash}
        return {"data_title": data_title}

    def _object(
        self,
        frame_object: Any,
        frame: int,
        where: str,
        answers: dict[str, Any],
        actions: dict[str, Any],
        answered: set[str],
        row_where: str,
    ) -> Any:
        frame_object = mapping(frame_object, where)
        object_hash = frame_object.get("objectHash")
        if not isinstance(object_hash, str) or not object_hash:
            raise Misfit(f"{where}.objectHash", ErrorCode.MISSING_FIELD, "an object needs its objectHash")
        target = self._ontology.object(str(frame_object.get("featureHash", "")), str(frame_object.get("name", "")))
        if target is LEFT_OUT:
            return LEFT_OUT
        if isinstance(target, Unmatched):
            raise Misfit(f"{where}.featureHash", target.code, target.reason)
        label: dict[str, Any] = {"feature_hash": target.feature_node_hash, "id": object_hash, "frames": frame}
        field_name, geometry = _geometry(frame_object, where)
        label[field_name] = geometry
        for source, name in (("confidence", "confidence"), ("manualAnnotation", "manual_annotation")):
            if frame_object.get(source) is not None:
                label[name] = frame_object[source]
        if object_hash not in answered:  # attributes once per object: on its first placement
            answered.add(object_hash)
            tree = self._ontology.tree(target)
            static = mapping(answers.get(object_hash) or {}, f"{row_where}.object_answers.{object_hash}")
            attributes = self._answers(
                tree, static.get("classifications") or [], f"{row_where}.object_answers.{object_hash}.classifications"
            )
            dynamic = mapping(actions.get(object_hash) or {}, f"{row_where}.object_actions.{object_hash}")
            attributes.update(
                self._dynamic(tree, dynamic.get("actions") or [], f"{row_where}.object_actions.{object_hash}.actions")
            )
            if attributes:
                label["attributes"] = attributes
        return label

    def _classification(self, answer: Any, where: str, has_frames: bool) -> Any:
        answer = mapping(answer, where)
        given = answer.get("classifications") or []
        if not isinstance(given, list) or not given or not isinstance(given[0], dict):
            raise Misfit(f"{where}.classifications", ErrorCode.MISSING_FIELD, "a classification needs its answer")
        target = self._ontology.classification(str(answer.get("featureHash", "")), str(given[0].get("name", "")))
        if target is LEFT_OUT:
            return LEFT_OUT
        if isinstance(target, Unmatched):
            raise Misfit(f"{where}.featureHash", target.code, target.reason)
        assert isinstance(target, Classification)
        built = self._answers(self._ontology.tree(target), given, f"{where}.classifications")
        if not target.attributes or target.attributes[0].feature_node_hash not in built:
            raise Misfit(f"{where}.classifications", ErrorCode.MISSING_FIELD, "the classification has no answer")
        label: dict[str, Any] = {
            "feature_hash": target.feature_node_hash,
            "answer": built[target.attributes[0].feature_node_hash],
        }
        ranges = answer.get("range") or []
        if has_frames and ranges:
            label["frames"] = [_frame_range(value, f"{where}.range") for value in ranges]
        for source, name in (("confidence", "confidence"), ("manualAnnotation", "manual_annotation")):
            if answer.get(source) is not None:
                label[name] = answer[source]
        return label

    def _answers(self, tree: AttributeTree, given: Any, where: str) -> dict[str, Any]:
        """The export's flat list of answers as the label format's nested `attributes`, keyed by feature hash."""
        if not isinstance(given, list):
            raise Misfit(where, ErrorCode.WRONG_TYPE, "answers are a list")
        values: dict[str, tuple[Attribute[Any], Any, str | None]] = {}
        for index, answer in enumerate(given):
            placed, value = self._answer(tree, answer, f"{where}[{index}]")
            if value is not None:
                values[placed.attribute.feature_node_hash] = (placed.attribute, value, placed.parent_option)

        def level(parent: str | None) -> dict[str, Any]:
            built: dict[str, Any] = {}
            for key, (attribute, value, under) in values.items():
                if under != parent:
                    continue
                if isinstance(attribute, RadioAttribute):
                    nested = level(value)
                    built[key] = {"option": value, "attributes": nested} if nested else value
                else:
                    built[key] = value
            return built

        return level(None)

    def _answer(self, tree: AttributeTree, answer: Any, where: str) -> tuple[Any, Any]:
        answer = mapping(answer, where)
        placed = self._ontology.attribute(tree, str(answer.get("featureHash", "")), str(answer.get("name", "")))
        if isinstance(placed, Unmatched):
            raise Misfit(f"{where}.featureHash", placed.code, placed.reason)
        return placed, self._value(placed.attribute, answer.get("answers"), where)

    def _value(self, attribute: Attribute[Any], given: Any, where: str) -> Any:
        if isinstance(attribute, (RadioAttribute, ChecklistAttribute)):
            chosen = given if isinstance(given, list) else []
            options = []
            for index, option in enumerate(chosen):
                option = mapping(option, f"{where}.answers[{index}]")
                found = self._ontology.option(
                    attribute, str(option.get("featureHash", "")), str(option.get("name", option.get("value", "")))
                )
                if isinstance(found, Unmatched):
                    raise Misfit(f"{where}.answers[{index}]", found.code, found.reason)
                options.append(found.feature_node_hash)
            if not options:
                return None
            return options[0] if isinstance(attribute, RadioAttribute) else options
        if not isinstance(given, str) or not given:
            return None
        if not attribute.title.endswith("#relation"):
            return given
        self._checked_at_end = True
        return {"relation_to": given}

    def _dynamic(self, tree: AttributeTree, actions: Any, where: str) -> dict[str, Any]:
        if not isinstance(actions, list):
            raise Misfit(where, ErrorCode.WRONG_TYPE, "actions are a list")
        built: dict[str, list[Any]] = {}
        for index, action in enumerate(actions):
            at = f"{where}[{index}]"
            placed, value = self._answer(tree, action, at)
            ranges = mapping(action, at).get("range") or []
            if value is None or not ranges:
                continue
            frames = [_frame_range(item, f"{at}.range") for item in ranges]
            built.setdefault(placed.attribute.feature_node_hash, []).append({"answer": value, "frames": frames})
            self._checked_at_end = True
        return built

    def locate(self, problem: Problem) -> Problem:
        """A problem the shared checks found in a converted record, placed on the export element it came from."""
        if problem.line == 0 or problem.field.startswith("["):
            return problem
        where = self._places.get(problem.line)
        row = where.row if where else f"[{problem.line - 1}]"
        head, _, rest = problem.field.partition(".")
        name, _, index = head.partition("[")
        position = int(index.rstrip("]")) if index.rstrip("]").isdigit() else None
        located = row
        if name in ("data_hash", "data_title"):
            located = f"{row}.{name}"
        elif where and name == "objects" and position is not None and position < len(where.objects):
            placement, object_hash = where.objects[position]
            located = placement
            if rest.startswith("attributes"):  # a dynamic answer is one of a list: `attributes.<hash>[2].frames`
                answers = "object_actions" if _DYNAMIC_ANSWER.match(rest) else "object_answers"
                located = f"{row}.{answers}.{object_hash}"
        elif where and name == "classifications" and position is not None and position < len(where.classifications):
            located = where.classifications[position]
        return replace(problem, field=located)


def _frames(unit: dict[str, Any], where: str) -> Iterator[tuple[int, str, list[Any]]]:
    """(frame, path, objects) of one data unit: an image's or an image group image's labels (`{objects}`, on the
    frame its `data_sequence` says) or a video's or DICOM series' (`{"<frame>": {objects}}`)."""
    image_number = unit.get("data_sequence", 0)
    if not str(image_number).isdigit():
        raise Misfit(f"{where}.data_sequence", ErrorCode.INVALID_VALUE, f"an image number, not {image_number!r}")
    labels_where = f"{where}.labels"
    labels = mapping(unit.get("labels") or {}, labels_where)
    if "objects" in labels or "classifications" in labels:
        yield int(image_number), labels_where, sequence(labels.get("objects") or [], f"{labels_where}.objects")
        return
    for key, frame_labels in labels.items():
        frame_where = f"{labels_where}.{key}"
        if not key.isdigit():
            raise Misfit(frame_where, ErrorCode.INVALID_VALUE, f"{key!r} is not a frame number")
        objects = mapping(frame_labels, frame_where).get("objects") or []
        yield int(key), frame_where, sequence(objects, f"{frame_where}.objects")


def _geometry(frame_object: dict[str, Any], where: str) -> tuple[str, Any]:
    shape = frame_object.get("shape")
    try:
        if shape == "bounding_box":
            box = frame_object["boundingBox"]
            return "bounding_box", {key: box[key] for key in ("x", "y", "w", "h")}
        if shape == "rotatable_bounding_box":
            box = frame_object["rotatableBoundingBox"]
            return "rotatable_bounding_box", {key: box[key] for key in ("x", "y", "w", "h", "theta")}
        if shape == "polygon":
            polygons = frame_object.get("polygons")
            if polygons:
                rings = [[_pairs(ring) for ring in polygon] for polygon in polygons]
                if len(rings) == 1 and len(rings[0]) == 1:
                    return "polygon", rings[0][0]
                return "polygon", {"polygons": [{"outer": outer, "holes": holes} for outer, *holes in rings]}
            return "polygon", _numbered(frame_object["polygon"])
        if shape == "polyline":
            return "polyline", _numbered(frame_object["polyline"])
        if shape == "point":
            return "point", _numbered(frame_object["point"])[0]
        if shape == "bitmask":
            mask = frame_object["bitmask"]
            return "bitmask", {"rle": mask["rleString"], "width": mask["width"], "height": mask["height"]}
        if shape == "skeleton":
            return "skeleton", {
                point["name"]: _skeleton_point(point) for _, point in sorted(frame_object["skeleton"].items())
            }
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as error:
        raise Misfit(where, ErrorCode.INVALID_VALUE, f"its {shape} coordinates cannot be read ({error!r})") from None
    raise Misfit(f"{where}.shape", ErrorCode.INVALID_VALUE, f"shape {shape!r} is not read yet")


def _numbered(points: dict[str, Any]) -> list[list[float]]:
    return [[point["x"], point["y"]] for _, point in sorted(points.items(), key=lambda item: int(item[0]))]


def _pairs(flat: list[float]) -> list[list[float]]:
    return [[flat[i], flat[i + 1]] for i in range(0, len(flat) - 1, 2)]


def _skeleton_point(point: dict[str, Any]) -> Any:
    visibility = next((name for key, name in _VISIBILITY.items() if point.get(key)), None)
    if visibility is None and isinstance(point.get("visibility"), str):
        visibility = _VISIBILITY.get(point["visibility"])
    xy = [point["x"], point["y"]]
    return {"x": xy[0], "y": xy[1], "visibility": visibility} if visibility else xy


def _frame_range(value: Any, where: str) -> dict[str, int]:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return {"start": value[0], "end": value[1]}
    raise Misfit(where, ErrorCode.INVALID_VALUE, f"a range is [start, end], not {value!r}")

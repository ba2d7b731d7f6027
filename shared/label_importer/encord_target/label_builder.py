"""Apply one data unit's labels from a chunk to an initialised Encord label row.

Every object and classification gets a hash derived from what it is, not from when it was imported:
(data unit, user id) for tracked objects, otherwise (data unit, canonical content, occurrence); an id that is
already the hash of an object on the data unit (an Encord export's `objectHash`) means that object. So a retry
after a save that succeeded but was not recorded, an SQS redelivery, or a re-upload of the same file in
`append` mode finds its labels already present and adds nothing twice.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from encord.exceptions import LabelRowError
from encord.objects import ClassificationInstance, LabelRowV2, ObjectInstance
from encord.objects.bitmask import BitmaskCoordinates
from encord.objects.coordinates import (
    BoundingBoxCoordinates,
    Coordinates,
    PointCoordinate,
    PolygonCoordinates,
    PolylineCoordinates,
    RotatableBoundingBoxCoordinates,
    SkeletonCoordinate,
    SkeletonCoordinates,
    Visibility,
)
from encord.objects.frames import Range
from encord.objects.options import Option
from encord.objects.skeleton_template import SkeletonTemplate
from pydantic import BaseModel

from label_importer.checks.ontology_resolver import (
    AnswerValue,
    LabelIssue,
    OntologyResolver,
    RelationTarget,
    ResolvedObject,
    UnresolvedLabel,
    answers_key,
)
from label_importer.model.label_format import (
    ClassificationLabel,
    Mode,
    ObjectLabel,
    Polygons,
    SkeletonPoint,
    frame_ranges,
)
from label_importer.model.messages import ChunkRow
from label_importer.model.problems import ErrorCode

SdkAnswer = str | Option | list[Option]
"""An AnswerValue as the SDK's `set_answer` takes it: a relation target is the related object's hash."""


class RowConflict(Exception):
    """The file contradicts labels already on the data unit; `append` never overwrites, so the row fails."""


def label_hash(data_hash: str, kind: str, identity: str) -> str:
    """An 8-character hash in the SDK's own format (base64 of 6 bytes), stable for the same identity."""
    digest = hashlib.sha256(f"{data_hash}\x1f{kind}\x1f{identity}".encode()).digest()
    return base64.b64encode(digest[:6]).decode("ascii")


def tracked_object_hash(data_hash: str, object_id: str) -> str:
    """The hash of the object a file calls `object_id` in this data unit, wherever and whenever it is imported."""
    return label_hash(data_hash, "object-id", object_id)


def _canonical(label: BaseModel) -> str:
    return orjson.dumps(label.model_dump(mode="json", exclude_none=True), option=orjson.OPT_SORT_KEYS).decode()


def _with_occurrence(labels: Sequence[BaseModel]) -> Iterator[tuple[BaseModel, str]]:
    """Pair each label with an identity that stays distinct when a file repeats a label verbatim."""
    seen: Counter[str] = Counter()
    for label in labels:
        canonical = _canonical(label)
        yield label, f"{canonical}#{seen[canonical]}"
        seen[canonical] += 1


def _ranges(ranges: list[tuple[int, int]]) -> list[Range]:
    return [Range(start=start, end=end) for start, end in ranges]


def _points(points: list[list[float]]) -> list[PointCoordinate]:
    return [PointCoordinate(x, y) for x, y in points]


def _skeleton(template: SkeletonTemplate, points: dict[str, list[float] | SkeletonPoint]) -> SkeletonCoordinates:
    """Each point tied to its template vertex by feature hash, as `SkeletonTemplate.create_instance` does; that
    helper drops visibility, so the coordinates are built here (validation already matched the names)."""
    feature_hashes = {vertex.name: vertex.feature_hash for vertex in template.skeleton.values()}
    values = []
    for name, point in points.items():
        if isinstance(point, SkeletonPoint):
            x, y, visibility = point.x, point.y, Visibility[point.visibility.name]
        else:
            (x, y), visibility = point, None
        values.append(SkeletonCoordinate(x=x, y=y, name=name, feature_hash=feature_hashes[name], visibility=visibility))
    return SkeletonCoordinates(values=values, name=template.name)


def _provenance(label: ObjectLabel | ClassificationLabel) -> dict[str, Any]:
    """Only what the file states: the SDK's own defaults apply to whatever it leaves out."""
    given = {"confidence": label.confidence, "manual_annotation": label.manual_annotation}
    return {key: value for key, value in given.items() if value is not None}


def _refused(field: str, code: ErrorCode, message: str) -> UnresolvedLabel:
    """A label the row cannot take, with the code the validator gives the same mistake, so the row's failure
    reason reads like the validation report would have."""
    return UnresolvedLabel([LabelIssue(field, code, message)])


ROW_ERRORS = (UnresolvedLabel, RowConflict, LabelRowError, ValueError)
"""Problems with one row's labels found while applying them: the row fails, the chunk goes on."""


def label_hashes(label_row: LabelRowV2) -> tuple[set[str], set[str]]:
    return (
        {instance.object_hash for instance in label_row.get_object_instances()},
        {instance.classification_hash for instance in label_row.get_classification_instances()},
    )


class _Row:
    """What every label of one row is checked against: the data unit's frames and the ids the row declares.

    The SDK checks a frame against the data unit only for an instance already on a label row, and instances are
    built before they are added, so frames past the end would be saved; a relation is text to the SDK, so one to
    an id nobody declares would be saved too. The validator rejects both; a chunk message is input all the same.
    """

    def __init__(self, label_row: LabelRowV2, data_hash: str, labels: list[ObjectLabel]) -> None:
        self.data_hash = data_hash
        self.frames = max(label_row.number_of_frames or 1, 1)  # images report 0 or 1: both mean frame 0 only
        self.ids = {label.id for label in labels if label.id is not None}
        self._hashes_on_unit = {instance.object_hash for instance in label_row.get_object_instances()}

    def tracked_hash(self, object_id: str) -> str:
        """The hash of the object the row calls `object_id`. Taken before `replace` clears the row, so an export
        of the project itself replaces each object under its own hash instead of adding a copy."""
        return object_id if object_id in self._hashes_on_unit else tracked_object_hash(self.data_hash, object_id)

    def check_frames(self, field: str, ranges: list[tuple[int, int]]) -> list[Range]:
        """The ranges as the SDK takes them, once they are known to be frames the data unit has."""
        last = max(end for _, end in ranges)
        if last >= self.frames:
            raise _refused(field, ErrorCode.FRAME_OUT_OF_RANGE, f"frame {last} is past the end: {self.frames} frames")
        return _ranges(ranges)

    def value(self, value: AnswerValue, field: str) -> SdkAnswer:
        """The answer as the SDK stores it: Encord keeps a related object's hash as the text."""
        if not isinstance(value, RelationTarget):
            return value
        if value.object_id not in self.ids:
            raise _refused(
                field, ErrorCode.UNKNOWN_OBJECT_ID, f"no object with id {value.object_id!r} in this data unit"
            )
        return self.tracked_hash(value.object_id)


class LabelBuilder:
    def __init__(self, resolver: OntologyResolver) -> None:
        self._resolver = resolver

    def apply(
        self, label_row: LabelRowV2, row: ChunkRow, mode: Mode, *, keep: frozenset[str] = frozenset()
    ) -> set[str]:
        """Add the row's labels (those already present are left as they are); `replace` first removes every label
        but those in `keep`. Returns the hashes of the row's labels on the data unit, added or already there (the
        upload history records them). Raises RowConflict or UnresolvedLabel.

        How many a job added is counted from its journal (import_chunk), not here: a retry finds its own labels."""
        objects = [label for record in row.records for label in record.objects]
        classifications = [label for record in row.records for label in record.classifications]
        context = _Row(label_row, row.data_hash, objects)
        if mode is Mode.REPLACE:
            for existing_object in label_row.get_object_instances():
                if existing_object.object_hash not in keep:
                    label_row.remove_object(existing_object)
            for existing_classification in label_row.get_classification_instances():
                if existing_classification.classification_hash not in keep:
                    label_row.remove_classification(existing_classification)
        return self._add_objects(label_row, context, objects) | self._add_classifications(
            label_row, context, classifications
        )

    def _add_objects(self, label_row: LabelRowV2, context: _Row, labels: list[ObjectLabel]) -> set[str]:
        data_hash = context.data_hash
        present = {instance.object_hash for instance in label_row.get_object_instances()}
        instances: dict[str, list[ObjectLabel]] = {}
        for label, identity in _with_occurrence([label for label in labels if label.id is None]):
            instances[label_hash(data_hash, "object", identity)] = [label]  # type: ignore[list-item]
        for label in labels:
            if label.id is not None:
                instances.setdefault(context.tracked_hash(label.id), []).append(label)
        for object_hash, placements in instances.items():
            if object_hash in present:
                continue
            resolved = [self._resolver.resolve_object(placement) for placement in placements]
            label_row.add_object_instance(self._object_instance(context, object_hash, resolved))
        return set(instances)

    def _object_instance(self, context: _Row, object_hash: str, placements: list[ResolvedObject]) -> ObjectInstance:
        ontology = placements[0].ontology
        if any(placement.ontology.feature_node_hash != ontology.feature_node_hash for placement in placements):
            raise _refused("id", ErrorCode.CONFLICTING_LABELS, f"id {placements[0].label.id!r} names two objects")
        instance = ObjectInstance(ontology, object_hash=object_hash)
        for placement in placements:
            instance.set_for_frames(
                self._coordinates(placement),
                frames=context.check_frames("frames", frame_ranges(placement.label.frames)),
                **_provenance(placement.label),
            )
        # Answers after all placements: a dynamic answer without frames covers the frames the object is on.
        for placement in placements:
            for answer in placement.answers:
                frames = None if answer.frames is None else context.check_frames(answer.field, answer.frames)
                instance.set_answer(
                    context.value(answer.value, answer.field), attribute=answer.attribute, frames=frames, overwrite=True
                )
        return instance

    def _coordinates(self, placement: ResolvedObject) -> Coordinates:
        label = placement.label
        if label.bounding_box is not None:
            box = label.bounding_box
            return BoundingBoxCoordinates(height=box.h, width=box.w, top_left_x=box.x, top_left_y=box.y)
        if label.rotatable_bounding_box is not None:
            rbox = label.rotatable_bounding_box
            return RotatableBoundingBoxCoordinates(
                height=rbox.h, width=rbox.w, top_left_x=rbox.x, top_left_y=rbox.y, theta=rbox.theta
            )
        if isinstance(label.polygon, Polygons):
            return PolygonCoordinates(
                polygons=[
                    [_points(ring) for ring in (polygon.outer, *polygon.holes)] for polygon in label.polygon.polygons
                ]
            )
        if label.polygon is not None:
            return PolygonCoordinates(values=_points(label.polygon))
        if label.polyline is not None:
            return PolylineCoordinates(values=_points(label.polyline))
        if label.point is not None:
            return PointCoordinate(*label.point)
        if label.bitmask is not None:
            mask = label.bitmask
            return BitmaskCoordinates(
                BitmaskCoordinates.EncodedBitmask(
                    top=0, left=0, height=mask.height, width=mask.width, rle_string=mask.rle
                )
            )
        assert label.skeleton is not None  # the model guarantees exactly one geometry
        return _skeleton(self._resolver.skeleton_template(placement.ontology), label.skeleton)

    def _add_classifications(self, label_row: LabelRowV2, context: _Row, labels: list[ClassificationLabel]) -> set[str]:
        """One classification has one answer per frame (per data unit if it is global), and the SDK refuses a
        second instance on a frame the first covers: where the same answer is already there, only the frames it
        does not cover yet are added (the instances already there count as the row's); a different answer is a
        conflict."""
        present = {instance.classification_hash for instance in label_row.get_classification_instances()}
        hashes: set[str] = set()
        for label, identity in _with_occurrence(labels):
            assert isinstance(label, ClassificationLabel)
            classification_hash = label_hash(context.data_hash, "classification", identity)
            hashes.add(classification_hash)
            if classification_hash in present:
                continue
            resolved = self._resolver.resolve_classification(label)
            frames = context.check_frames("frames", frame_ranges(label.frames))
            answers = [(answer.attribute, context.value(answer.value, answer.field)) for answer in resolved.answers]
            is_global = resolved.ontology.is_global
            overlapping = label_row.get_classification_instances(
                filter_ontology_classification=resolved.ontology, filter_frames=None if is_global else frames
            )
            if any(_answers_of(other) != answers_key(answers) for other in overlapping):
                raise RowConflict(
                    f"{resolved.ontology.title!r} already has a different answer on these frames; "
                    "use mode 'replace' to overwrite"
                )
            hashes.update(other.classification_hash for other in overlapping)
            missing = [] if is_global and overlapping else _uncovered(frame_ranges(label.frames), overlapping)
            if not missing:
                continue  # already there with the same answer: nothing to do
            instance = ClassificationInstance(resolved.ontology, classification_hash=classification_hash)
            instance.set_for_frames(frames=_ranges(missing), **_provenance(label))
            for attribute, value in answers:
                instance.set_answer(value, attribute=attribute, overwrite=True)
            label_row.add_classification_instance(instance)
        return hashes


def _answers_of(instance: ClassificationInstance) -> frozenset[tuple[str, object]]:
    """What the instance answers, every attribute included, in the terms of `answers_key`."""
    answered = [answer for answer in instance.get_all_static_answers() if answer.is_answered()]
    return answers_key((answer.ontology_attribute, answer.get()) for answer in answered)


def _uncovered(ranges: list[tuple[int, int]], instances: list[ClassificationInstance]) -> list[tuple[int, int]]:
    """The parts of `ranges` none of the instances is on, as inclusive ranges, without expanding any range."""
    covered = sorted((r.start, r.end) for instance in instances for r in instance.range_list)
    left: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        for covered_start, covered_end in covered:
            if covered_end < start or covered_start > end:
                continue
            if covered_start > start:
                left.append((start, covered_start - 1))
            start = max(start, covered_end + 1)
            if start > end:
                break
        if start <= end:
            left.append((start, end))
    return left

"""Records checked against the project's ontology and data units, without any network."""

from __future__ import annotations

import json

import pytest
from encord.objects import Object, Shape

from label_importer.checks.ontology_resolver import OntologyResolver, UnresolvedLabel
from label_importer.checks.validation import (
    DataUnitTracker,
    FileIndex,
    check_record,
    index_records,
    parse_record,
)
from label_importer.model.data_units import DataUnit, DataUnitIndex
from label_importer.model.label_format import LabelRecord, ObjectLabel
from label_importer.model.limits import Limits
from label_importer.model.problems import ErrorCode
from label_importer.model.source_items import Record
from local.fake_encord import build_ontology

RESOLVER = OntologyResolver(build_ontology())
UNITS = DataUnitIndex(
    [
        DataUnit("img-1", "cherry.jpg", 1, 640, 480),
        DataUnit("vid-1", "orchard.mp4", 10, 1280, 720),
        DataUnit("twin-a", "twin.jpg", 1, 640, 480),
        DataUnit("twin-b", "twin.jpg", 1, 640, 480),
        DataUnit("grp-1", "inspection", 3, None, None, image_sizes=((640, 480), (4, 3), (640, 480))),
    ]
)


def problems(record: dict) -> list[tuple[str, ErrorCode]]:
    _, found = check_record(4, LabelRecord.model_validate_json(json.dumps(record)), UNITS, RESOLVER)
    assert {problem.line for problem in found} <= {4}
    return [(problem.field, problem.code) for problem in found]


def box(**extra: object) -> dict:
    return {"name": "Cherry", "bounding_box": {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2}, **extra}


def test_a_valid_record_resolves_its_data_unit_and_has_no_problems() -> None:
    record = {
        "data_title": "cherry.jpg",
        "objects": [box(attributes={"Ripeness": "Ripe", "Defects": ["Bruise", "Crack"], "Description": "ok"})],
        "classifications": [{"name": "Many types of fruit?", "answer": ["Kiwi"]}, {"name": "Caption", "answer": "x"}],
    }
    unit, found = check_record(1, LabelRecord.model_validate_json(json.dumps(record)), UNITS, RESOLVER)
    assert unit is not None and unit.data_hash == "img-1"
    assert found == []


def test_a_repeated_label_shape_is_resolved_once_and_a_changed_one_again() -> None:
    """Resolution is remembered per shape (object, geometry kind, answers), never per coordinates."""
    resolver = OntologyResolver(build_ontology())

    def cherry(x: float, ripeness: str) -> ObjectLabel:
        record = {"data_title": "cherry.jpg", "objects": [box(attributes={"Ripeness": ripeness})]}
        record["objects"][0]["bounding_box"]["x"] = x
        return LabelRecord.model_validate_json(json.dumps(record)).objects[0]

    first = resolver.resolve_object(cherry(0.1, "Ripe"))
    again = resolver.resolve_object(cherry(0.5, "Ripe"))
    assert again.label.bounding_box is not None and again.label.bounding_box.x == 0.5
    assert again.answers is first.answers
    unripe = resolver.resolve_object(cherry(0.1, "Unripe"))
    assert [answer.value.title for answer in unripe.answers] == ["Unripe"]  # type: ignore[union-attr]
    with pytest.raises(UnresolvedLabel):
        resolver.resolve_object(cherry(0.1, "Rotten"))
    with pytest.raises(UnresolvedLabel):  # a failure is not remembered as a shape either
        resolver.resolve_object(cherry(0.1, "Rotten"))


def test_nested_and_dynamic_answers_resolve() -> None:
    whale = {
        "name": "Whale",
        "bounding_box": {"x": 0, "y": 0, "w": 0.5, "h": 0.5},
        "attributes": {"Colour": {"option": "Blue", "attributes": {"Any Other Colours?": "Pink"}}},
    }
    person = {
        "name": "Person",
        "frames": {"start": 0, "end": 3},
        "bounding_box": {"x": 0, "y": 0, "w": 0.1, "h": 0.1},
        "attributes": {
            "Position": [{"answer": "Standing", "frames": 0}, {"answer": "Walking", "frames": {"start": 1, "end": 3}}]
        },
    }
    assert problems({"data_hash": "vid-1", "objects": [whale, person]}) == []


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"data_title": "pear.jpg"}, [("data_title", ErrorCode.UNKNOWN_DATA_UNIT)]),
        ({"data_hash": "nope"}, [("data_hash", ErrorCode.UNKNOWN_DATA_UNIT)]),
        ({"data_title": "twin.jpg"}, [("data_title", ErrorCode.AMBIGUOUS_DATA_TITLE)]),
        (
            {"data_title": "cherry.jpg", "objects": [{"name": "Banana", "point": [0, 0]}]},
            [("objects[0].name", ErrorCode.UNKNOWN_OBJECT)],
        ),
        (
            {"data_title": "cherry.jpg", "objects": [{"feature_hash": "zzz", "point": [0, 0]}]},
            [("objects[0].feature_hash", ErrorCode.UNKNOWN_OBJECT)],
        ),
        (
            {"data_title": "cherry.jpg", "objects": [{"name": "Cherry", "point": [0, 0]}]},
            [("objects[0].point", ErrorCode.SHAPE_MISMATCH)],
        ),
        (
            {"data_title": "cherry.jpg", "objects": [box(attributes={"Colour": "Blue"})]},
            [("objects[0].attributes.Colour", ErrorCode.UNKNOWN_ATTRIBUTE)],
        ),
        (
            {"data_title": "cherry.jpg", "objects": [box(attributes={"Ripeness": "Rotten"})]},
            [("objects[0].attributes.Ripeness", ErrorCode.UNKNOWN_OPTION)],
        ),
        (
            {"data_title": "cherry.jpg", "objects": [box(attributes={"Ripeness": ["Ripe", "Unripe"]})]},
            [("objects[0].attributes.Ripeness", ErrorCode.WRONG_ANSWER_TYPE)],
        ),
        (
            {"data_title": "cherry.jpg", "objects": [box(attributes={"Defects": "Bruise"})]},
            [("objects[0].attributes.Defects", ErrorCode.WRONG_ANSWER_TYPE)],
        ),
        (
            {"data_title": "cherry.jpg", "objects": [box(attributes={"Ripeness": [{"answer": "Ripe", "frames": 0}]})]},
            [("objects[0].attributes.Ripeness", ErrorCode.DYNAMIC_NOT_ALLOWED)],
        ),
        (
            {"data_title": "cherry.jpg", "objects": [box(frames=1)]},
            [("objects[0].frames", ErrorCode.FRAME_OUT_OF_RANGE)],
        ),
        (
            {"data_hash": "vid-1", "objects": [box(frames={"start": 5, "end": 10})]},
            [("objects[0].frames", ErrorCode.FRAME_OUT_OF_RANGE)],
        ),
        (
            {"data_title": "cherry.jpg", "classifications": [{"name": "Blueberry or cherry?", "answer": "Grape"}]},
            [("classifications[0].answer", ErrorCode.UNKNOWN_OPTION)],
        ),
        (
            {"data_title": "cherry.jpg", "classifications": [{"name": "Is it ripe?", "answer": "yes"}]},
            [("classifications[0].name", ErrorCode.UNKNOWN_CLASSIFICATION)],
        ),
        (
            {
                "data_title": "cherry.jpg",
                "objects": [{"name": "Blueberry", "bitmask": {"rle": "x", "width": 10, "height": 10}}],
            },
            [("objects[0].bitmask", ErrorCode.BITMASK_SIZE_MISMATCH)],
        ),
        (
            {"data_title": "cherry.jpg", "objects": [{"name": "Strawberry", "skeleton": {"tip": [0.1, 0.1]}}]},
            [("objects[0].skeleton", ErrorCode.SKELETON_POINTS_MISMATCH)],
        ),
    ],
)
def test_each_mismatch_with_the_project_is_named(record: dict, expected: list[tuple[str, ErrorCode]]) -> None:
    assert problems(record) == expected


def test_messages_list_what_would_have_been_valid() -> None:
    record = {"data_title": "cherry.jpg", "objects": [box(attributes={"Ripeness": "Rotten"})]}
    _, [problem] = check_record(2, LabelRecord.model_validate_json(json.dumps(record)), UNITS, RESOLVER)
    assert problem.message == "'Ripeness' has no option titled 'Rotten'; expected one of 'Ripe', 'Unripe'"


def test_a_bitmask_in_an_image_group_must_fit_each_image_it_is_placed_on() -> None:
    def mask(frames: object) -> dict:
        return {"data_title": "inspection", "objects": [{"name": "Blueberry", "frames": frames, "bitmask": small}]}

    small = {"rle": "12", "width": 4, "height": 3}
    assert problems(mask(1)) == []
    _, [problem] = check_record(2, LabelRecord.model_validate_json(json.dumps(mask([1, 2]))), UNITS, RESOLVER)
    assert (problem.field, problem.code) == ("objects[0].bitmask", ErrorCode.BITMASK_SIZE_MISMATCH)
    assert problem.message == "the mask is 4x3 but image 2 of 'inspection' is 640x480"


def test_every_problem_in_a_record_is_reported_at_once() -> None:
    record = {"data_title": "pear.jpg", "objects": [{"name": "Banana", "point": [0, 0]}, box(frames=3)]}
    assert [code for _, code in problems(record)] == [ErrorCode.UNKNOWN_DATA_UNIT, ErrorCode.UNKNOWN_OBJECT]


def test_index_keeps_valid_lines_per_data_unit_and_caps_the_listed_problems() -> None:
    lines = [
        (1, b'{"data_title": "cherry.jpg"}'),
        (2, b'{"data_title": "nope.jpg"}'),
        (3, b"not json"),
        (5, b'{"data_hash": "vid-1"}'),
        (6, b'{"data_hash": "img-1", "objects": [{"name": "Cherry", "point": [0, 0]}]}'),
        (7, b'{"data_hash": "img-1"}'),
    ]
    index = index_records(map(Record._make, lines), UNITS, RESOLVER, FileIndex(max_problems=2), Limits())
    assert index.lines_by_unit == {"img-1": [1, 7], "vid-1": [5]}
    assert index.invalid_lines == {2, 3, 6}
    assert (index.records, index.problem_count, len(index.problems)) == (6, 3, 2)


def test_one_id_must_stay_one_object_across_lines() -> None:
    person = {"name": "Person", "id": "p1", "bounding_box": {"x": 0, "y": 0, "w": 0.1, "h": 0.1}}
    lines = [
        (1, json.dumps({"data_hash": "vid-1", "objects": [person]}).encode()),
        (2, json.dumps({"data_hash": "vid-1", "objects": [{**person, "frames": 2}]}).encode()),
        (3, json.dumps({"data_hash": "vid-1", "objects": [box(id="p1")]}).encode()),
        (4, json.dumps({"data_hash": "img-1", "objects": [box(id="p1")]}).encode()),  # another data unit: fine
    ]
    index = index_records(map(Record._make, lines), UNITS, RESOLVER, FileIndex(max_problems=10), Limits())
    assert [(p.line, p.field, p.code) for p in index.problems] == [(3, "objects[0].id", ErrorCode.CONFLICTING_LABELS)]
    assert "'Person' on line 1" in index.problems[0].message
    assert index.lines_by_unit == {"vid-1": [1, 2], "img-1": [4]}


def test_a_relation_must_name_an_id_of_the_same_data_unit_even_a_later_one() -> None:
    def whale(object_id: str, related: str) -> dict:
        return {
            "name": "Whale",
            "id": object_id,
            "bounding_box": {"x": 0, "y": 0, "w": 0.1, "h": 0.1},
            "attributes": {"Description #relation": {"relation_to": related}},
        }

    lines = [
        (1, json.dumps({"data_hash": "img-1", "objects": [whale("calf", "mother")]}).encode()),
        (2, json.dumps({"data_hash": "img-1", "objects": [whale("mother", "calf")]}).encode()),
        (3, json.dumps({"data_hash": "vid-1", "objects": [whale("lonely", "mother")]}).encode()),
    ]
    index = index_records(map(Record._make, lines), UNITS, RESOLVER, FileIndex(max_problems=10), Limits())
    assert [(p.line, p.field, p.code) for p in index.problems] == [
        (3, "objects[0].attributes.Description #relation", ErrorCode.UNKNOWN_OBJECT_ID)
    ]
    assert index.lines_by_unit == {"img-1": [1, 2]} and index.invalid_lines == {3}


def test_relation_answers_only_fit_relation_attributes() -> None:
    record = {"data_title": "cherry.jpg", "objects": [box(attributes={"Description": {"relation_to": "x"}})]}
    assert problems(record) == [("objects[0].attributes.Description", ErrorCode.WRONG_ANSWER_TYPE)]


def test_polygons_with_holes_validate_each_ring() -> None:
    square = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
    polygon = {"polygons": [{"outer": square, "holes": [[[0.4, 0.4], [0.6, 0.4]]]}]}
    record = {"data_title": "cherry.jpg", "objects": [{"name": "Persimmon", "polygon": polygon}]}
    parsed = parse_record((9, json.dumps(record).encode()))
    assert isinstance(parsed, list)
    assert [(p.field, p.code) for p in parsed] == [("objects[0].polygon.polygons[0].holes[0]", ErrorCode.INVALID_VALUE)]


def test_a_title_shared_by_two_siblings_needs_the_feature_hash() -> None:
    from encord.objects import OntologyStructure, RadioAttribute, Shape

    ontology = OntologyStructure()
    twins = [ontology.add_object("Fruit", Shape.BOUNDING_BOX, feature_node_hash=h) for h in ("fruitAAA", "fruitBBB")]
    size = twins[0].add_attribute(RadioAttribute, "Size", feature_node_hash="sizeAAAA")
    size.add_option("Big", feature_node_hash="bigAAAAA")
    size.add_option("Big", feature_node_hash="bigBBBBB")
    resolver = OntologyResolver(ontology)
    fruit = {"bounding_box": {"x": 0, "y": 0, "w": 0.1, "h": 0.1}}

    _, found = check_record(
        1, LabelRecord.model_validate({"data_hash": "img-1", "objects": [{"name": "Fruit", **fruit}]}), UNITS, resolver
    )
    assert [(p.field, p.code) for p in found] == [("objects[0].name", ErrorCode.AMBIGUOUS_TITLE)]
    assert "fruitAAA, fruitBBB" in found[0].message

    by_hash = {"feature_hash": "fruitAAA", **fruit, "attributes": {"Size": "Big"}}
    _, found = check_record(
        1, LabelRecord.model_validate({"data_hash": "img-1", "objects": [by_hash]}), UNITS, resolver
    )
    assert [(p.field, p.code) for p in found] == [("objects[0].attributes.Size", ErrorCode.AMBIGUOUS_TITLE)]
    assert "'Size' has 2 options titled 'Big': bigAAAAA, bigBBBBB; give the feature hash instead" in (found[0].message)

    exact = {**by_hash, "attributes": {"sizeAAAA": "bigBBBBB"}}
    _, found = check_record(1, LabelRecord.model_validate({"data_hash": "img-1", "objects": [exact]}), UNITS, resolver)
    assert found == []


SMALL = Limits(
    max_records=3, max_objects_per_data_unit=2, max_polygon_points=4, max_bitmask_pixels=100, max_answer_depth=1
)


def test_per_label_limits_name_the_setting_to_raise() -> None:
    deep = {"option": "Blue", "attributes": {"Any Other Colours?": {"option": "Pink", "attributes": {}}}}
    record = {
        "data_title": "cherry.jpg",
        "objects": [
            {"name": "Persimmon", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]]},
            {"name": "Blueberry", "bitmask": {"rle": "x", "width": 640, "height": 480}},
            {"name": "Whale", "bounding_box": {"x": 0, "y": 0, "w": 0.1, "h": 0.1}, "attributes": {"Colour": deep}},
        ],
    }
    _, found = check_record(5, LabelRecord.model_validate_json(json.dumps(record)), UNITS, RESOLVER, limits=SMALL)
    assert [(p.field, p.code) for p in found][:3] == [
        ("objects[0].polygon", ErrorCode.TOO_MANY_POINTS),
        ("objects[1].bitmask", ErrorCode.BITMASK_TOO_LARGE),
        ("objects[2].attributes.Colour", ErrorCode.NESTING_TOO_DEEP),
    ]
    assert "MAX_POLYGON_POINTS" in found[0].message


def test_objects_per_data_unit_are_counted_across_lines() -> None:
    point = {"name": "Pedicel", "point": [0.1, 0.1]}
    lines = [(n, json.dumps({"data_hash": "img-1", "objects": [point]}).encode()) for n in (1, 2, 3)]
    index = index_records(map(Record._make, lines), UNITS, RESOLVER, FileIndex(max_problems=10), SMALL)
    assert [(p.line, p.code) for p in index.problems] == [(3, ErrorCode.TOO_MANY_OBJECTS)]
    assert not index.fatal


def test_too_many_records_stops_reading_and_rejects_the_whole_file() -> None:
    lines = [(n, b'{"data_hash": "img-1"}') for n in range(1, 10)]
    index = index_records(map(Record._make, lines), UNITS, RESOLVER, FileIndex(max_problems=10), SMALL)
    assert [(p.line, p.code) for p in index.problems] == [(4, ErrorCode.TOO_MANY_RECORDS)]
    assert index.fatal and index.records == 4


def test_near_miss_names_get_a_suggestion() -> None:
    parsed = parse_record((2, b'{"data_title": "a", "objects": [{"name": "Cherry", "boundingbox": {}}]}'))
    assert isinstance(parsed, list)
    assert parsed[0].message == "unknown field; did you mean 'bounding_box'?"
    record = {"data_title": "cherry.jpg", "objects": [box(name="cherry", attributes={"ripeness": "ripe"})]}
    _, [problem] = check_record(2, LabelRecord.model_validate_json(json.dumps(record)), UNITS, RESOLVER)
    assert "the ontology has no object titled 'cherry'; did you mean 'Cherry'?" in problem.message
    record = {"data_title": "cherry.jpg", "objects": [box(attributes={"Ripenes": "Ripe"})]}
    _, [problem] = check_record(2, LabelRecord.model_validate_json(json.dumps(record)), UNITS, RESOLVER)
    assert problem.message.startswith("'Cherry' has no attribute titled 'Ripenes'; did you mean 'Ripeness'?")


def test_one_classification_has_one_answer_per_frame_across_lines() -> None:
    def radio(answer: str, frames: object) -> bytes:
        return json.dumps(
            {
                "data_hash": "vid-1",
                "classifications": [{"name": "Blueberry or cherry?", "answer": answer, "frames": frames}],
            }
        ).encode()

    lines = [
        (1, radio("Cherry", {"start": 0, "end": 3})),
        (2, radio("Cherry", {"start": 2, "end": 5})),  # same answer: agrees
        (3, radio("Blueberry", [6, {"start": 8, "end": 9}])),  # other frames: fine
        (4, radio("Blueberry", {"start": 3, "end": 4})),  # frames 3-4 are Cherry already
    ]
    index = index_records(map(Record._make, lines), UNITS, RESOLVER, FileIndex(max_problems=10), Limits())
    assert [(p.line, p.field, p.code) for p in index.problems] == [
        (4, "classifications[0].answer", ErrorCode.CONFLICTING_LABELS)
    ]
    assert "on line 1" in index.problems[0].message


# --- what the SDK refuses when labels are applied, found before anything is sent ------------------------------


def person(frames: object, position: object = None, **extra: object) -> dict:
    """A Person (dynamic radio 'Position') of the demo ontology, on the video."""
    label = {"name": "Person", "frames": frames, "bounding_box": {"x": 0, "y": 0, "w": 0.1, "h": 0.1}, **extra}
    if position is not None:
        label["attributes"] = {"Position": position}
    return label


def tracked(records: list[dict]) -> list[tuple[int, str, ErrorCode]]:
    """Problems of consecutive lines of one file, found as index_records finds them (one tracker, then dangling)."""
    tracker = DataUnitTracker()
    found = []
    for number, record in enumerate(records, 1):
        found += check_record(number, LabelRecord.model_validate(record), UNITS, RESOLVER, tracker)[1]
    found += tracker.dangling()
    return [(problem.line, problem.field, problem.code) for problem in found]


def test_a_dynamic_answer_must_be_on_frames_the_object_is_on() -> None:
    walking = [{"answer": "Standing", "frames": 0}, {"answer": "Walking", "frames": {"start": 2, "end": 4}}]
    _, found = check_record(
        3, LabelRecord.model_validate({"data_hash": "vid-1", "objects": [person([0, 2, 3], walking)]}), UNITS, RESOLVER
    )
    assert [(p.field, p.code) for p in found] == [
        ("objects[0].attributes.Position[1].frames", ErrorCode.FRAME_WITHOUT_OBJECT)
    ]
    assert found[0].message.startswith("frame 4 has an answer, but the object is only on frames 0, 2-3")


def test_a_tracked_object_may_be_placed_by_one_line_and_answered_on_another() -> None:
    """The object's frames are the union of its placements in the file, whichever line comes first."""
    answer_first = {"data_hash": "vid-1", "objects": [person(0, [{"answer": "Walking", "frames": 5}], id="p")]}
    placed_later = {"data_hash": "vid-1", "objects": [person(5, id="p")]}
    assert tracked([answer_first, placed_later]) == []
    assert tracked([answer_first]) == [(1, "objects[0].attributes.Position[0].frames", ErrorCode.FRAME_WITHOUT_OBJECT)]


def test_a_line_is_not_justified_by_a_line_that_is_rejected() -> None:
    """Line 3 is invalid, so p is not on frame 2; then line 2's answer on 2 goes, and with line 2 p is not on frame
    1 either, which line 1 answers: what is left valid must apply without the rejected lines."""
    lines = [
        {"data_hash": "vid-1", "objects": [person(0, [{"answer": "Walking", "frames": 1}], id="p")]},
        {"data_hash": "vid-1", "objects": [person(1, [{"answer": "Walking", "frames": 2}], id="p")]},
        {"data_hash": "vid-1", "objects": [person(2, "Running", id="p")]},
    ]
    assert tracked(lines) == [
        (3, "objects[0].attributes.Position", ErrorCode.UNKNOWN_OPTION),
        (1, "objects[0].attributes.Position[0].frames", ErrorCode.FRAME_WITHOUT_OBJECT),
        (2, "objects[0].attributes.Position[0].frames", ErrorCode.FRAME_WITHOUT_OBJECT),
    ]
    tracker = DataUnitTracker()
    for number, record in enumerate(lines[:2], 1):
        check_record(number, LabelRecord.model_validate(record), UNITS, RESOLVER, tracker)
    tracker.withdraw(2)  # accepted, then rejected by the caller (a limit): it justifies nothing any more
    [problem] = tracker.dangling()
    assert (problem.line, problem.code) == (1, ErrorCode.FRAME_WITHOUT_OBJECT)
    assert "line 2 places it there, but that line is invalid" in problem.message


def test_an_id_is_placed_at_most_once_on_a_frame() -> None:
    lines = [
        {"data_hash": "vid-1", "objects": [person({"start": 0, "end": 3}, id="p"), person(4, id="p")]},
        {"data_hash": "vid-1", "objects": [person([5, 3], id="p")]},
        {"data_hash": "vid-1", "objects": [person(6, id="q"), person(6, id="q")]},
    ]
    assert tracked(lines) == [
        (2, "objects[0].frames", ErrorCode.CONFLICTING_LABELS),
        (3, "objects[1].frames", ErrorCode.CONFLICTING_LABELS),
    ]


def test_an_id_naming_two_objects_of_one_title_is_a_conflict() -> None:
    """Titles need not be unique: the id stays with one ontology object, named by its feature hash."""
    stones = [
        {"feature_hash": h, "id": "s", "point": [0.5, 0.5], "frames": f} for h, f in (("obStoneA", 0), ("obStoneB", 1))
    ]
    assert tracked([{"data_hash": "vid-1", "objects": stones}]) == [(1, "objects[1].id", ErrorCode.CONFLICTING_LABELS)]


def test_answers_nested_under_a_dynamic_attribute_cannot_be_stored() -> None:
    nested = {"option": "Walking", "attributes": {"Speed": "fast"}}
    assert problems({"data_hash": "vid-1", "objects": [person(0, nested)]}) == [
        ("objects[0].attributes.Position.attributes.Speed", ErrorCode.UNANSWERABLE_ATTRIBUTE)
    ]
    per_frame = [{"answer": nested, "frames": 0}]
    assert problems({"data_hash": "vid-1", "objects": [person(0, per_frame)]}) == [
        ("objects[0].attributes.Position[0].answer.attributes.Speed", ErrorCode.UNANSWERABLE_ATTRIBUTE)
    ]


def test_an_ontology_the_sdk_cannot_label_gives_problems_not_crashes() -> None:
    """A skeleton whose template is gone, dynamic attributes where Encord takes none, a classification without a
    question: each label is a problem of its own line; nothing raises."""
    from encord.objects import ChecklistAttribute, OntologyStructure, RadioAttribute, Shape, TextAttribute

    ontology = OntologyStructure()
    ontology.add_object("Hand", Shape.SKELETON, feature_node_hash="obHand00")
    car = ontology.add_object("Car", Shape.BOUNDING_BOX, feature_node_hash="obCar000")
    colour = car.add_attribute(RadioAttribute, "Colour", feature_node_hash="atColour")
    shade = colour.add_option("Red", feature_node_hash="opRed000").add_nested_attribute(TextAttribute, "Shade")
    shade.dynamic = True
    tags = ontology.add_classification(feature_node_hash="clTags00").add_attribute(ChecklistAttribute, "Tags")
    tags.add_option("Wet")
    tags.dynamic = True
    ontology.add_classification(feature_node_hash="clEmpty0")
    resolver = OntologyResolver(ontology)
    record = {
        "data_hash": "img-1",
        "objects": [
            {"name": "Hand", "skeleton": {"thumb": [0.1, 0.1]}},
            {"name": "Car", "skeleton": {"thumb": [0.1, 0.1]}},
            {"name": "Car", "point": [0.1, 0.1]},
            {
                "name": "Car",
                "bounding_box": {"x": 0, "y": 0, "w": 0.1, "h": 0.1},
                "attributes": {"Colour": {"option": "Red", "attributes": {"Shade": "dark"}}},
            },
        ],
        "classifications": [{"name": "Tags", "answer": ["Wet"]}, {"feature_hash": "clEmpty0", "answer": "x"}],
    }
    _, found = check_record(1, LabelRecord.model_validate(record), UNITS, resolver)
    assert [(p.field, p.code) for p in found] == [
        ("objects[0].skeleton", ErrorCode.NO_SKELETON_TEMPLATE),
        ("objects[1].skeleton", ErrorCode.SHAPE_MISMATCH),
        ("objects[2].point", ErrorCode.SHAPE_MISMATCH),
        ("objects[3].attributes.Colour.attributes.Shade", ErrorCode.UNANSWERABLE_ATTRIBUTE),
        ("classifications[0].answer", ErrorCode.UNANSWERABLE_ATTRIBUTE),
        ("classifications[1].feature_hash", ErrorCode.UNANSWERABLE_ATTRIBUTE),
    ]
    assert "no skeleton template for it" in found[0].message
    with pytest.raises(UnresolvedLabel) as raised:  # callers that skip validation get a problem, not StopIteration
        resolver.skeleton_template(ontology.get_child_by_hash("obHand00", type_=Object))
    assert raised.value.problems[0].code is ErrorCode.NO_SKELETON_TEMPLATE


def test_a_global_classification_has_one_answer_for_the_whole_data_unit() -> None:
    from encord.objects import OntologyStructure, RadioAttribute
    from encord.objects.classification import OntologyClassificationLevel

    ontology = OntologyStructure()
    weather = ontology.add_classification(feature_node_hash="clWeathr", level=OntologyClassificationLevel.GLOBAL)
    sky = weather.add_attribute(RadioAttribute, "Weather")
    sky.add_option("Sunny")
    sky.add_option("Rainy")
    resolver = OntologyResolver(ontology)
    tracker = DataUnitTracker()

    def line(number: int, answer: str, frames: int) -> list[tuple[str, ErrorCode]]:
        record = {"data_hash": "vid-1", "classifications": [{"name": "Weather", "answer": answer, "frames": frames}]}
        _, found = check_record(number, LabelRecord.model_validate(record), UNITS, resolver, tracker)
        return [(p.field, p.code) for p in found]

    assert line(1, "Sunny", 0) == []
    assert line(2, "Sunny", 5) == []  # the same answer again: nothing to add
    assert line(3, "Rainy", 9) == [("classifications[0].answer", ErrorCode.CONFLICTING_LABELS)]


def test_a_classification_may_answer_with_a_relation_to_an_object_of_the_data_unit() -> None:
    from encord.objects import OntologyStructure, TextAttribute

    ontology = OntologyStructure()
    ontology.add_object("Car", Shape.BOUNDING_BOX)
    ontology.add_classification().add_attribute(TextAttribute, "Leader #relation")
    resolver = OntologyResolver(ontology)
    car = {"name": "Car", "id": "c1", "bounding_box": {"x": 0, "y": 0, "w": 0.1, "h": 0.1}}

    def found(related: str) -> list[tuple[int, str, ErrorCode]]:
        record = {
            "data_hash": "img-1",
            "objects": [car],
            "classifications": [{"name": "Leader #relation", "answer": {"relation_to": related}}],
        }
        tracker = DataUnitTracker()
        check_record(1, LabelRecord.model_validate(record), UNITS, resolver, tracker)
        return [(p.line, p.field, p.code) for p in tracker.dangling()]

    assert found("c1") == []
    assert found("c2") == [(1, "classifications[0].answer", ErrorCode.UNKNOWN_OBJECT_ID)]


def test_a_line_over_a_data_unit_limit_places_no_object_for_other_lines() -> None:
    """Line 2 would give line 1's relation its target, but it is rejected for a limit after its checks."""
    box = {"x": 0, "y": 0, "w": 0.1, "h": 0.1}
    relation = {"Description #relation": {"relation_to": "calf"}}
    lines = [
        (
            1,
            json.dumps(
                {
                    "data_hash": "img-1",
                    "objects": [{"name": "Whale", "id": "cub", "bounding_box": box, "attributes": relation}],
                }
            ).encode(),
        ),
        (
            2,
            json.dumps(
                {"data_hash": "img-1", "objects": [{"name": "Whale", "id": "calf", "bounding_box": box}]}
            ).encode(),
        ),
    ]

    index = index_records(
        map(Record._make, lines), UNITS, RESOLVER, FileIndex(max_problems=10), Limits(max_objects_per_data_unit=1)
    )

    assert {(p.line, p.code) for p in index.problems} == {
        (2, ErrorCode.TOO_MANY_OBJECTS),
        (1, ErrorCode.UNKNOWN_OBJECT_ID),
    }
    assert index.lines_by_unit == {}


def test_a_source_that_numbers_records_out_of_order_is_refused_before_anything_is_indexed() -> None:
    """The index and chunking find records by number in file order; a source that breaks that is a bug, not a
    file problem, so it fails loudly (the job ends FAILED) instead of queueing records in the wrong chunk."""
    lines = [Record(2, b'{"data_hash": "img-1"}'), Record(1, b'{"data_hash": "img-1"}')]
    with pytest.raises(ValueError, match="numbered record 1 after record 2"):
        index_records(lines, UNITS, RESOLVER, FileIndex(max_problems=10), Limits())

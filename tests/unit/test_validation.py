"""Records checked against the project's ontology and data units, without any network."""

from __future__ import annotations

import json

import pytest

from label_importer.data_units import DataUnit, DataUnitIndex
from label_importer.label_format import LabelRecord
from label_importer.ontology_resolver import OntologyResolver
from label_importer.problems import ErrorCode
from label_importer.validation import check_record, index_records
from local.fake_encord import build_ontology

RESOLVER = OntologyResolver(build_ontology())
UNITS = DataUnitIndex(
    [
        DataUnit("img-1", "cherry.jpg", 1, 640, 480),
        DataUnit("vid-1", "orchard.mp4", 10, 1280, 720),
        DataUnit("twin-a", "twin.jpg", 1, 640, 480),
        DataUnit("twin-b", "twin.jpg", 1, 640, 480),
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
    assert problem.message == "'Ripeness' has no option 'Rotten'; expected one of 'Ripe', 'Unripe'"


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
    index = index_records(lines, UNITS, RESOLVER, max_problems=2)
    assert index.lines_by_unit == {"img-1": [1, 7], "vid-1": [5]}
    assert index.invalid_lines == {2, 3, 6}
    assert (index.records, index.problem_count, len(index.problems)) == (6, 3, 2)

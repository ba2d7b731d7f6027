"""The file format's models: what they accept, and how each kind of mistake is reported."""

import json
from pathlib import Path

import pytest

from label_importer.checks.validation import parse_record
from label_importer.model.label_format import FrameRange, Header, LabelRecord, frame_ranges, json_schema
from label_importer.model.problems import ErrorCode, problems_from_pydantic

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "label-format.schema.json"


def problems_of(line: str) -> list[tuple[str, ErrorCode]]:
    parsed = parse_record((7, line.encode()))
    assert isinstance(parsed, list), f"expected problems, got {parsed!r}"
    assert {problem.line for problem in parsed} == {7}
    return [(problem.field, problem.code) for problem in parsed]


def test_a_record_with_every_geometry_and_answer_shape_parses() -> None:
    record = LabelRecord.model_validate_json(
        json.dumps(
            {
                "data_hash": "d1",
                "objects": [
                    {"name": "Cherry", "bounding_box": {"x": 0, "y": 0.5, "w": 1, "h": 0.25}, "confidence": 0.9},
                    {
                        "name": "Other type of fruit",
                        "rotatable_bounding_box": {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2, "theta": 45},
                    },
                    {"name": "Persimmon", "polygon": [[0, 0], [1, 0], [1, 1]]},
                    {"name": "Branch", "polyline": [[0, 0], [1, 1]]},
                    {"name": "Pedicel", "point": [0.5, 0.5]},
                    {"name": "Blueberry", "bitmask": {"rle": "abc", "width": 4, "height": 3}},
                    {"name": "Strawberry", "skeleton": {"tip": [0.1, 0.2]}},
                    {
                        "name": "Whale",
                        "bounding_box": {"x": 0, "y": 0, "w": 0.1, "h": 0.1},
                        "attributes": {"Colour": {"option": "Blue", "attributes": {"Any Other Colours?": "Pink"}}},
                    },
                    {
                        "name": "Person",
                        "id": "p1",
                        "frames": [0, {"start": 2, "end": 4}],
                        "bounding_box": {"x": 0, "y": 0, "w": 0.1, "h": 0.1},
                        "attributes": {
                            "Position": [
                                {"answer": "Standing", "frames": 0},
                                {"answer": "Walking", "frames": {"start": 2, "end": 4}},
                            ]
                        },
                    },
                ],
                "classifications": [
                    {"name": "Blueberry or cherry?", "answer": "Cherry"},
                    {"name": "Many types of fruit?", "answer": ["Apple", "Kiwi"], "frames": {"start": 0, "end": 3}},
                ],
            }
        )
    )
    assert [obj.geometry_field for obj in record.objects] == [
        "bounding_box",
        "rotatable_bounding_box",
        "polygon",
        "polyline",
        "point",
        "bitmask",
        "skeleton",
        "bounding_box",
        "bounding_box",
    ]
    assert frame_ranges(record.objects[8].frames) == [(0, 0), (2, 4)]


def test_unknown_field_is_named_with_its_path() -> None:
    line = '{"data_title": "a", "objects": [{"name": "Cherry", "point": [0.1, 0.2], "colour": "red"}]}'
    assert problems_of(line) == [("objects[0].colour", ErrorCode.UNKNOWN_FIELD)]


def test_strings_are_not_coerced_to_numbers() -> None:
    line = '{"data_title": "a", "objects": [{"name": "Cherry", "bounding_box": {"x": "0.1", "y": 0, "w": 1, "h": 1}}]}'
    assert problems_of(line) == [("objects[0].bounding_box.x", ErrorCode.WRONG_TYPE)]


@pytest.mark.parametrize("value", ["1.5", "-0.1", "NaN", "Infinity"])
def test_coordinates_must_be_finite_and_normalised(value: str) -> None:
    line = f'{{"data_title": "a", "objects": [{{"name": "C", "point": [{value}, 0.5]}}]}}'
    assert problems_of(line) == [("objects[0].point[0]", ErrorCode.OUT_OF_RANGE)]


def test_a_wrong_answer_type_gives_one_problem_not_one_per_union_member() -> None:
    line = '{"data_title": "a", "classifications": [{"name": "Blueberry or cherry?", "answer": 5}]}'
    assert problems_of(line) == [("classifications[0].answer", ErrorCode.WRONG_TYPE)]


def test_problems_inside_nested_answers_point_at_the_nested_field() -> None:
    line = (
        '{"data_title": "a", "objects": [{"name": "Person", "point": [0, 0], "attributes": '
        '{"Position": [{"answer": "Walking", "frames": {"start": 3, "end": 1}}]}}]}'
    )
    assert problems_of(line) == [("objects[0].attributes.Position[0].frames", ErrorCode.INVALID_VALUE)]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"objects": []}', [("", ErrorCode.INVALID_VALUE)]),
        ('{"data_hash": "h", "data_title": "t"}', [("", ErrorCode.INVALID_VALUE)]),
        ('{"data_title": "a", "objects": [{"name": "C"}]}', [("objects[0]", ErrorCode.INVALID_VALUE)]),
        (
            '{"data_title": "a", "objects": [{"name": "C", "point": [0, 0], "polyline": [[0, 0], [1, 1]]}]}',
            [("objects[0]", ErrorCode.INVALID_VALUE)],
        ),
        (
            '{"data_title": "a", "objects": [{"name": "C", "polygon": [[0, 0], [1, 1]]}]}',
            [("objects[0].polygon", ErrorCode.INVALID_VALUE)],
        ),
        (
            '{"data_title": "a", "objects": [{"name": "C", "point": [0, 0], "frames": -1}]}',
            [("objects[0].frames", ErrorCode.OUT_OF_RANGE)],
        ),
        (
            '{"data_title": "a", "objects": [{"name": "C", "point": [0, 0], "frames": []}]}',
            [("objects[0].frames", ErrorCode.INVALID_VALUE)],
        ),
        ('{"data_title": "a"', [("", ErrorCode.INVALID_JSON)]),
    ],
)
def test_structural_mistakes(line: str, expected: list[tuple[str, ErrorCode]]) -> None:
    assert problems_of(line) == expected


def test_non_utf8_line_is_reported_with_the_byte() -> None:
    parsed = parse_record((3, b'{"data_title": "caf\xe9"}'))
    assert isinstance(parsed, list)
    assert [(p.line, p.code) for p in parsed] == [(3, ErrorCode.NOT_UTF8)]
    assert "byte 20" in parsed[0].message


def test_header_defaults_and_rejects_unknown_modes() -> None:
    assert Header().mode == "append" and Header().on_error == "strict" and Header().dry_run is False
    with pytest.raises(ValueError) as raised:
        Header.model_validate_json('{"mode": "merge"}')
    problems = problems_from_pydantic(1, raised.value.errors())  # type: ignore[attr-defined]
    assert [(p.field, p.code) for p in problems] == [("mode", ErrorCode.INVALID_VALUE)]


def test_frame_ranges_are_never_expanded() -> None:
    assert frame_ranges(FrameRange(start=0, end=10**12)) == [(0, 10**12)]


def test_committed_json_schema_is_generated_from_the_models() -> None:
    """docs/label-format.schema.json must be regenerated (make schema) whenever the models change."""
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema()

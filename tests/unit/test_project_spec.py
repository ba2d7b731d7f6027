"""The spec files of a project (ontology.json, data-units.json or .csv): read strictly, every problem one line
that names the file, where in it and what was expected; written and read back unchanged; schemas published."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest
from encord.constants.enums import DataType

from label_importer.model.data_units import DataUnit
from label_importer_cli.commands import main
from label_importer_cli.exit_codes import ExitCode, UsageError
from label_importer_cli.project_spec import (
    CSV_COLUMNS,
    ProjectSpec,
    json_schemas,
    read_data_units,
    read_ontology,
    read_spec,
    write_spec,
)
from local.fake_encord import build_ontology

DOCS = Path(__file__).resolve().parents[2] / "docs"
PROJECT = "11111111-2222-3333-4444-555555555555"
IMAGE = {"data_hash": "h-image", "title": "cherry.jpg", "data_type": "image", "frames": 1, "width": 640, "height": 480}
GROUP = {"data_hash": "h-group", "title": "inspection", "data_type": "img_group", "frames": 2}
SIZES = {"image_sizes": [[640, 480], [4, 3]]}
HEADER = ",".join(CSV_COLUMNS)


def units_file(tmp_path: Path, document: object, name: str = "data-units.json") -> Path:
    path = tmp_path / name
    path.write_bytes(document if isinstance(document, bytes) else orjson.dumps(document))
    return path


def csv_file(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "units.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def refusal(path: Path) -> str:
    with pytest.raises(UsageError) as refused:
        read_data_units(path)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def test_what_export_spec_writes_reads_back_as_the_same_project(tmp_path: Path) -> None:
    units = [
        DataUnit("h-image", "cherry.jpg", 1, 640, 480, data_type=DataType.IMAGE),
        DataUnit("h-video", "orchard.mp4", 10, 1280, 720, data_type=DataType.VIDEO),
        DataUnit("h-group", "inspection", 2, None, None, ((640, 480), (4, 3)), DataType.IMG_GROUP),
        DataUnit("h-dicom", "CT chest", 6, 512, 512, data_type=DataType.DICOM),
    ]
    ontology = build_ontology()

    written = write_spec(ProjectSpec(ontology, units, PROJECT), tmp_path)
    spec = read_spec(*written)

    assert (spec.units, spec.project_hash) == (units, PROJECT)
    assert spec.ontology.to_dict() == ontology.to_dict()
    assert orjson.loads(written[0].read_bytes()) == ontology.to_dict()
    assert "image_sizes" not in orjson.loads(written[1].read_bytes())["data_units"][0]


def test_the_written_files_are_valid_under_the_published_schemas(tmp_path: Path) -> None:
    units = [DataUnit("h-group", "inspection", 2, None, None, ((640, 480), (4, 3)), DataType.IMG_GROUP)]
    ontology, data_units = write_spec(ProjectSpec(build_ontology(), units, PROJECT), tmp_path)
    schemas = {name: json.loads((DOCS / name).read_text()) for name in json_schemas()}

    jsonschema.Draft202012Validator(schemas["ontology.schema.json"]).validate(json.loads(ontology.read_text()))
    jsonschema.Draft202012Validator(schemas["data-units.schema.json"]).validate(json.loads(data_units.read_text()))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"data_units": [{**IMAGE, "frames": 0}]}, schemas["data-units.schema.json"])


def test_the_published_schemas_are_generated_from_the_models() -> None:
    """docs/ontology.schema.json and docs/data-units.schema.json must be regenerated (make schema) on a change."""
    for name, schema in json_schemas().items():
        assert json.loads((DOCS / name).read_text()) == schema, name


def test_a_units_file_that_is_not_json_says_where(tmp_path: Path) -> None:
    path = units_file(tmp_path, b'{"data_units": [\n  {"data_hash": "a",}\n]}')
    assert refusal(path).startswith("line 2, column ")


@pytest.mark.parametrize(
    ("document", "said"),
    [
        (
            {"data_units": [IMAGE, {**IMAGE, "data_hash": "b", "frames": 0}]},
            "data_units[1].frames: Input should be greater than or equal to 1",
        ),
        ({"data_units": [{**IMAGE, "frames": "1"}]}, "data_units[0].frames: Input should be a valid integer"),
        (
            {"data_units": [{**IMAGE, "data_type": "audio"}]},
            "data_units[0].data_type: Input should be 'image', 'video'",
        ),
        ({"data_units": [{**IMAGE, "colour": "red"}]}, "data_units[0].colour: Extra inputs are not permitted"),
        ({"data_units": [GROUP]}, "data_units[0]: Value error, an img_group needs image_sizes"),
        ({"data_units": [{**GROUP, "image_sizes": [[640, 480]]}]}, "needs 2 image_sizes, one per image, not 1"),
        (
            {"data_units": [{**GROUP, "image_sizes": [[640, 480], [0, 3]]}]},
            "data_units[0].image_sizes[1][0]: Input should be greater",
        ),
        ({"data_units": [{**IMAGE, **SIZES}]}, "data_units[0]: Value error, image_sizes is for an img_group only"),
        ({"project_hash": "not-a-uuid", "data_units": []}, "project_hash: String should match pattern"),
        ({"units": []}, "units: Extra inputs are not permitted, got [] (and 1 more problems)"),
        ({}, "data_units: Field required"),
        ([IMAGE], "(the document): Input should be an object"),
    ],
)
def test_a_units_file_against_the_schema_names_the_json_path_and_what_was_expected(
    tmp_path: Path, document: object, said: str
) -> None:
    assert said in refusal(units_file(tmp_path, document))


def test_a_data_unit_listed_twice_names_both_places(tmp_path: Path) -> None:
    path = units_file(tmp_path, {"data_units": [IMAGE, {**IMAGE, "title": "again.jpg"}]})
    assert (
        refusal(path)
        == "data_units[1].data_hash: 'h-image' is listed twice, first at data_units[0]; each data unit once"
    )


def test_a_csv_of_data_units_reads_as_the_json_file_does(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path, HEADER, "h-image,cherry.jpg,image,1,640,480,", "h-group,inspection,img_group,2,,,640x480;4x3"
    )
    json_path = units_file(tmp_path, {"data_units": [IMAGE, {**GROUP, **SIZES}]})

    assert read_data_units(path) == (read_data_units(json_path)[0], None)


@pytest.mark.parametrize(
    ("rows", "said"),
    [
        (["data_hash,title,frames"], f"line 1: expected the header {HEADER}, got 'data_hash,title,frames'"),
        ([HEADER, "h,cherry.jpg,image,1,640"], "line 2: expected 7 fields, got 5"),
        ([HEADER, "h,cherry.jpg,image,one,640,480,"], "line 2, frames: expected a whole number, got 'one'"),
        ([HEADER, "h,cherry.jpg,image,1,640,-480,"], "line 2, height: expected a whole number, got '-480'"),
        (
            [HEADER, "h,cherry.jpg,image,1,640,480,", "g,group,img_group,2,,,640x480;4by3"],
            "line 3, image_sizes: expected WIDTHxHEIGHT",
        ),
        ([HEADER, "h,cherry.jpg,picture,1,640,480,"], "line 2, data_type: Input should be 'image'"),
        ([HEADER, "h,cherry.jpg,image,,640,480,"], "line 2, frames: Field required"),
        (
            [HEADER, "h,a.jpg,image,1,640,480,", "i,b.jpg,image,1,640,480,", "h,c.jpg,image,1,640,480,"],
            "line 4.data_hash: 'h' is listed twice, first at line 2",
        ),
    ],
)
def test_a_csv_of_data_units_names_the_line_and_field(tmp_path: Path, rows: list[str], said: str) -> None:
    assert refusal(csv_file(tmp_path, *rows)).startswith(said)


def test_an_ontology_the_sdk_cannot_read_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ontology.json"
    document = build_ontology().to_dict()
    path.write_bytes(orjson.dumps({**document, "objects": [{**document["objects"][0], "shape": "hexagon"}]}))
    with pytest.raises(UsageError, match=r"ontology.json: objects\[0\]\.shape: Input should be 'bounding_box'"):
        read_ontology(path)

    document["objects"][0]["attributes"][0]["type"] = "dial"
    path.write_bytes(orjson.dumps(document))
    with pytest.raises(UsageError, match="not an ontology the encord SDK reads"):
        read_ontology(path)


def test_validate_with_a_bad_spec_file_exits_with_the_usage_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ontology = tmp_path / "ontology.json"
    ontology.write_bytes(orjson.dumps(build_ontology().to_dict()))
    data_units = units_file(tmp_path, {"data_units": [{**IMAGE, "frames": 0}]})
    label_file = tmp_path / "labels.jsonl"
    label_file.write_text('{"data_title": "cherry.jpg"}\n')

    code = main(
        [
            "validate",
            str(label_file),
            "--ontology",
            str(ontology),
            "--data-units",
            str(data_units),
            "--out",
            str(tmp_path / "out"),
        ]
    )

    assert code == ExitCode.USAGE
    assert (
        capsys.readouterr().err
        == f"{data_units}: data_units[0].frames: Input should be greater than or equal to 1, got 0\n"
    )
    assert not (tmp_path / "out").exists()

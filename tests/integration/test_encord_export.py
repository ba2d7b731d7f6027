"""Encord's own label export, read back in: labels of every kind imported, exported with the SDK's
`to_encord_dict()`, and that export imported into a project whose ontology has other feature hashes (the same
titles) and data units of the same titles. What lands there equals the original in everything but hashes:
geometry, frames, answers (nested, dynamic), confidence, tracked objects and relations."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from label_importer.model.jobs import JobStatus
from label_importer.model.label_format import Mode
from label_importer.model.limits import Limits
from label_importer.runtime.deadline import Deadline
from label_importer.sources.coco.source import CocoSource
from label_importer.sources.encord_export.source import ExportSource
from label_importer.sources.formats import source_for
from label_importer.sources.label_file import LabelFile
from label_importer_cli.commands import main
from local.fake_encord import build_ontology, rehashed_ontology
from local.lambda_runtime import cold_start
from local.pipeline import Pipeline

pytestmark = pytest.mark.integration

TITLES = ("fruit.jpg", "mask.png", "orchard.mp4", "inspection", "CT chest", "drone-pass")
SAMPLES = Path(__file__).parents[2] / "samples" / "kinds"

LABELS = [
    {
        "data_title": "fruit.jpg",
        "objects": [
            {
                "name": "Cherry",
                "bounding_box": {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.25},
                "confidence": 0.87,
                "manual_annotation": False,
                "attributes": {"Description": "ripe one", "Ripeness": "Unripe", "Defects": ["Bruise", "Crack"]},
            },
            {
                "name": "Other type of fruit",
                "rotatable_bounding_box": {"x": 0.4, "y": 0.3, "w": 0.2, "h": 0.1, "theta": 37.5},
            },
            {"name": "Persimmon", "polygon": [[0.2, 0.2], [0.6, 0.25], [0.45, 0.7]]},
            {
                "name": "Persimmon",
                "polygon": {
                    "polygons": [
                        {
                            "outer": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.5]],
                            "holes": [[[0.2, 0.2], [0.3, 0.2], [0.3, 0.3], [0.2, 0.3]]],
                        },
                        {"outer": [[0.6, 0.6], [0.9, 0.6], [0.75, 0.9]]},
                    ]
                },
            },
            {"name": "Branch", "polyline": [[0.05, 0.9], [0.3, 0.6], [0.55, 0.55], [0.8, 0.2]]},
            {"name": "Pedicel", "point": [0.42, 0.17]},
            {
                "name": "Strawberry",
                "skeleton": {
                    "calyx": [0.5, 0.2],
                    "tip": {"x": 0.5, "y": 0.8, "visibility": "occluded"},
                    "left": {"x": 0.3, "y": 0.5, "visibility": "visible"},
                    "right": {"x": 0.0, "y": 0.0, "visibility": "invisible"},
                },
            },
            {"name": "Whale", "id": "mother", "bounding_box": {"x": 0.1, "y": 0.1, "w": 0.5, "h": 0.4}},
            {
                "name": "Whale",
                "id": "calf",
                "bounding_box": {"x": 0.6, "y": 0.5, "w": 0.2, "h": 0.2},
                "attributes": {
                    "Description #relation": {"relation_to": "mother"},
                    "Colour": {"option": "Blue", "attributes": {"Any Other Colours?": "Pink"}},
                },
            },
        ],
        "classifications": [
            {"name": "Blueberry or cherry?", "answer": "Blueberry", "confidence": 0.6},
            {"name": "Many types of fruit?", "answer": ["Apple", "Persimmon"]},
            {"name": "Caption", "answer": "three cherries on a plate"},
        ],
    },
    {
        "data_title": "mask.png",
        "objects": [{"name": "Blueberry", "bitmask": {"rle": "12203", "width": 4, "height": 3}}],
    },
    {
        "data_title": "orchard.mp4",
        "objects": [
            {"name": "Cherry", "id": "cherry-7", "frames": 0, "bounding_box": {"x": 0.1, "y": 0.1, "w": 0.1, "h": 0.1}},
            {
                "name": "Cherry",
                "id": "cherry-7",
                "frames": {"start": 1, "end": 2},
                "bounding_box": {"x": 0.15, "y": 0.1, "w": 0.1, "h": 0.1},
            },
            {
                "name": "Person",
                "id": "picker",
                "frames": {"start": 0, "end": 3},
                "bounding_box": {"x": 0.1, "y": 0.2, "w": 0.1, "h": 0.3},
                "attributes": {
                    "Position": [
                        {"answer": "Standing", "frames": 0},
                        {"answer": "Walking", "frames": {"start": 1, "end": 3}},
                    ]
                },
            },
        ],
        "classifications": [
            {"name": "Blueberry or cherry?", "answer": "Cherry", "frames": [{"start": 0, "end": 2}, 4]},
            {"name": "Caption", "answer": "windy", "frames": 3},
        ],
    },
]
LABELS += [
    orjson.loads(SAMPLES.joinpath(f"{kind}.jsonl").read_bytes())
    for kind in ("image-group", "dicom-series", "image-sequence")
]
LABEL_COUNT = 24  # 9 + 3 on fruit.jpg, 1 on mask.png, 2 + 2 on orchard.mp4, 2 + 1 on the group, 1 + 1 on each other


def add_units(pipeline: Pipeline) -> dict[str, str]:
    encord = pipeline.stack.encord
    return {
        "fruit.jpg": encord.add_image("fruit.jpg", width=640, height=480),
        "mask.png": encord.add_image("mask.png", width=4, height=3),
        "orchard.mp4": encord.add_video("orchard.mp4", number_of_frames=5),
        "inspection": encord.add_image_group("inspection", [(640, 480), (4, 3), (640, 480)]),
        "CT chest": encord.add_dicom_series("CT chest", number_of_slices=6),
        "drone-pass": encord.add_image_sequence("drone-pass", number_of_images=4),
    }


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(record) + b"\n" for record in records)


def exported(pipeline: Pipeline, hashes: dict[str, str]) -> list[dict[str, Any]]:
    rows = pipeline.stack.read_back([hashes[title] for title in TITLES])
    return [rows[hashes[title]].to_encord_dict() for title in TITLES]


def completed(pipeline: Pipeline, key: str, body: bytes) -> Any:
    job = pipeline.run(key, body)
    assert (job.status, job.rows_failed) == (JobStatus.COMPLETED, 0), pipeline.report(job.job_id, "summary.txt")
    return job


_VOLATILE = {
    "featureHash", "objectHash", "classificationHash", "createdAt", "createdBy", "lastEditedAt", "lastEditedBy",
    "label_hash", "data_hash", "dataset_hash", "dataset_title", "data_link", "created_at", "last_edited_at",
    "label_status", "annotation_task_status", "workflow_graph_node", "is_shadow_data", "reviews",
}  # fmt: skip
_KEYED_BY_HASH = {"data_units", "object_answers", "classification_answers", "object_actions"}
_UNORDERED = {"objects", "classifications", "actions"}


def without_hashes(row: dict[str, Any]) -> Any:
    """The row with every hash taken out; an object hash used as a value (a relation) becomes the related
    object's name, first frame and geometry, so linkage still compares."""
    alias: dict[str, str] = {}
    for unit in row["data_units"].values():
        labels = unit["labels"]
        frames = [("0", labels)] if "objects" in labels else sorted(labels.items(), key=lambda kv: int(kv[0]))
        for frame, frame_labels in frames:
            for obj in frame_labels.get("objects", []):
                geometry = {k: v for k, v in obj.items() if k in ("boundingBox", "polygon", "point", "bitmask")}
                alias.setdefault(obj["objectHash"], f"{obj['name']}@{frame}:{orjson.dumps(geometry).decode()}")

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            items = {k: walk(v, k) for k, v in value.items() if k not in _VOLATILE}
            if key in _KEYED_BY_HASH:
                return sorted(items.values(), key=lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
            return items
        if isinstance(value, list):
            walked = [walk(v) for v in value]
            if key in _UNORDERED:
                walked.sort(key=lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
            return walked
        if isinstance(value, str) and value in alias:
            return alias[value]
        return value

    return walk(row)


@pytest.fixture
def another_project(pipeline: Pipeline) -> Iterator[Any]:
    """After the call: the fake serves the demo ontology with every feature hash replaced, and no data."""

    def switch() -> Pipeline:
        pipeline.stack.encord.reset()
        pipeline.stack.encord.use_ontology(rehashed_ontology())
        cold_start()  # the importer's warm project holds the old ontology
        return Pipeline.on(pipeline.stack)

    yield switch
    pipeline.stack.encord.use_ontology(build_ontology())
    cold_start()


def test_an_export_imports_into_a_project_with_another_ontology_equal_but_for_hashes(
    pipeline: Pipeline, another_project: Any
) -> None:
    first = add_units(pipeline)
    completed(pipeline, "incoming/every-kind.jsonl", jsonl(LABELS))
    export = exported(pipeline, first)
    assert {o["featureHash"] for r in export for u in r["data_units"].values() for o in u["labels"].get("objects", [])}

    target = another_project()
    second = add_units(target)
    assert not set(first.values()) & set(second.values())
    job = completed(target, "incoming/export.json", orjson.dumps(export))

    assert (job.total_records, job.rows_imported, job.labels_added) == (6, 6, LABEL_COUNT)
    again = exported(target, second)
    hashes = {o["featureHash"] for r in again for u in r["data_units"].values() for o in u["labels"].get("objects", [])}
    assert hashes and all(feature_hash.startswith("x") for feature_hash in hashes)  # the target ontology's
    expected = [without_hashes(row) for row in export]
    assert "Whale@0:" in orjson.dumps(expected[0]["object_answers"]).decode()  # the calf's relation, by what it is
    assert expected[2]["object_actions"] and len(expected[2]["data_units"][0]["labels"]) == 4  # frames 0-3 placed
    assert [without_hashes(row) for row in again] == expected

    repeat = completed(target, "incoming/export-again.json.gz", gzip.compress(orjson.dumps(export)))
    assert (repeat.rows_imported, repeat.labels_added) == (6, 0)
    assert [without_hashes(row) for row in exported(target, second)] == [without_hashes(row) for row in export]


def test_an_export_imported_into_its_own_project_adds_nothing(pipeline: Pipeline) -> None:
    hashes = add_units(pipeline)
    completed(pipeline, "incoming/every-kind.jsonl", jsonl(LABELS))

    export = exported(pipeline, hashes)
    job = completed(pipeline, "incoming/export.json", orjson.dumps(export))
    assert (job.rows_imported, job.labels_added) == (6, 0)

    replaced = completed(pipeline, "incoming/restore.json", orjson.dumps([{"encord": {"mode": "replace"}}, *export]))
    assert (replaced.mode, replaced.rows_imported) == (Mode.REPLACE, 6)
    again = exported(pipeline, hashes)
    assert [object_hashes(row) for row in again] == [object_hashes(row) for row in export]  # replaced in place
    assert [without_hashes(row) for row in again] == [without_hashes(row) for row in export]


def object_hashes(row: dict[str, Any]) -> set[str]:
    return set(row["object_answers"])


@pytest.mark.parametrize(
    ("key", "body", "format"),
    [
        ("a.json", b"\xef\xbb\xbf \n\t[{}]", ExportSource),
        ("a.json.gz", gzip.compress(b"  [] ", mtime=0), ExportSource),
        ("a.json", b' {"images": []}', CocoSource),
        ("a.json", b"", CocoSource),
        ("a.JSON", b"[]", ExportSource),
    ],
)
def test_a_json_list_is_an_export_and_a_json_object_coco(key: str, body: bytes, format: type) -> None:
    file = LabelFile.of_bytes(key, body, Limits(), Deadline.in_seconds(60))
    assert isinstance(source_for(file, Limits()), format)


def errors(pipeline: Pipeline, job_id: str) -> list[tuple[int, str, str]]:
    lines = pipeline.report(job_id, "errors.jsonl").splitlines()
    return [(e["line"], e["field"], e["code"]) for e in map(orjson.loads, lines)]


def test_the_mapping_option_leaves_objects_out_and_unknown_titles_are_located_in_the_export(
    pipeline: Pipeline, another_project: Any
) -> None:
    first = add_units(pipeline)
    completed(pipeline, "incoming/every-kind.jsonl", jsonl(LABELS))
    export = exported(pipeline, first)
    target = another_project()
    add_units(target)
    options = {"encord": {"on_error": "skip-invalid", "objects": {"Cherry": None, "Whale": None}}}
    mask = export[1]
    [mask_unit] = mask["data_units"]
    mask["data_units"][mask_unit]["labels"]["objects"][0]["name"] = "Blackberry"  # in neither ontology

    job = target.run("incoming/export-mapped.json", orjson.dumps([options, *export]))

    assert (job.status, job.total_records, job.invalid_records) == (JobStatus.COMPLETED, 6, 1)
    assert errors(target, job.job_id) == [
        (3, f"[2].data_units.{mask_unit}.labels.objects[0].featureHash", "UNKNOWN_OBJECT")
    ]
    assert job.labels_added == LABEL_COUNT - 1 - 4 - 2  # no mask, no Cherry (on four units), no Whale (two)


def test_what_only_the_end_of_the_export_shows_is_located_on_the_element_it_is_in(pipeline: Pipeline) -> None:
    """A relation to an object nowhere in the row and an answer on a frame the object is not on are found once
    the whole file is read, after later rows were converted."""
    hashes = add_units(pipeline)
    completed(pipeline, "incoming/every-kind.jsonl", jsonl(LABELS))
    export = exported(pipeline, hashes)
    fruit, orchard = export[0], export[2]
    [calf] = [
        h
        for h, a in fruit["object_answers"].items()
        if any(c["name"].endswith("#relation") for c in a["classifications"])
    ]
    for answer in fruit["object_answers"][calf]["classifications"]:
        if answer["name"].endswith("#relation"):
            answer["answers"] = "gone1234"
    [picker] = orchard["object_actions"]
    orchard["object_actions"][picker]["actions"][-1]["range"] = [[4, 4]]  # placed on frames 0-3

    job = pipeline.run("incoming/export-tampered.json", orjson.dumps(export))

    assert job.status is JobStatus.REJECTED
    assert errors(pipeline, job.job_id) == [
        (1, f"[0].object_answers.{calf}", "UNKNOWN_OBJECT_ID"),
        (3, f"[2].object_actions.{picker}", "FRAME_WITHOUT_OBJECT"),
    ]


def test_rolling_back_a_restore_puts_back_what_it_replaced(pipeline: Pipeline) -> None:
    """A `replace` of a project's own export, edited, then rolled back: the labels are as they were before it."""
    hashes = add_units(pipeline)
    completed(pipeline, "incoming/every-kind.jsonl", jsonl(LABELS))
    before = exported(pipeline, hashes)
    edited = orjson.loads(orjson.dumps(before))
    for unit in edited[1]["data_units"].values():
        unit["labels"]["objects"] = []  # the mask taken out
    edited[1]["object_answers"] = {}
    restore = completed(pipeline, "incoming/restore.json", orjson.dumps([{"encord": {"mode": "replace"}}, *edited]))
    assert not pipeline.stack.read_back([hashes["mask.png"]])[hashes["mask.png"]].get_object_instances()

    assert main(["rollback", restore.job_id]) == 0

    assert pipeline.job(restore.job_id).status is JobStatus.ROLLED_BACK
    after = exported(pipeline, hashes)
    assert [object_hashes(row) for row in after] == [object_hashes(row) for row in before]
    assert [without_hashes(row) for row in after] == [without_hashes(row) for row in before]

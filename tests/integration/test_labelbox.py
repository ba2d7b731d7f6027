"""Labelbox's NDJSON export through the whole pipeline: `.ndjson` -> validator -> queue -> importer -> fake Encord ->
SDK read-back.

`samples/labelbox/export.ndjson` (the example in docs/format-labelbox.md) is an image row with every geometry,
nested answers and a relationship, a video row with a box tracked over three frames, and a row whose only label is
a segmentation mask, which the sample's `{"encord": …}` line leaves out. Expected values are the sample's pixels
divided by the image size, worked out here from the file itself, so the test and the sample cannot drift apart.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from encord.objects import Classification, LabelRowV2, ObjectInstance
from encord.objects.attributes import ChecklistAttribute, RadioAttribute, TextAttribute
from read_back import by_title

from label_importer.model.jobs import JobStatus
from label_importer.sources.labelbox.geometry import MASK_URLS
from label_importer.sources.labelbox.rows import UNHELD_RELATIONS
from label_importer_cli.commands import main
from local.pipeline import Pipeline

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "labelbox" / "export.ndjson"
EPSILON = 1e-9
PROJECT = "clu1orchard0proj00000000"


def sample_lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SAMPLE.read_text().splitlines()]


def ndjson(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def annotations_of(row: dict[str, Any]) -> dict[str, Any]:
    """The sample row's one label's annotations (a reference into the row: tests change them in place)."""
    found: dict[str, Any] = row["projects"][PROJECT]["labels"][0]["annotations"]
    return found


class Orchard:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        encord = pipeline.stack.encord
        self.fruit = encord.add_image("fruit.jpg", width=640, height=480)
        self.video = encord.add_video("orchard.mp4", number_of_frames=5, width=640, height=480)
        self.mask = encord.add_image("masks/mask.png", width=4, height=3)

    def rows(self) -> dict[str, LabelRowV2]:
        return self.pipeline.stack.read_back([self.fruit, self.video])

    def errors(self, job_id: str) -> list[tuple[int, str, str]]:
        lines = self.pipeline.report(job_id, "errors.jsonl").splitlines()
        return [(error["line"], error["code"], error["field"]) for error in map(orjson.loads, lines)]


@pytest.fixture
def orchard(pipeline: Pipeline) -> Orchard:
    return Orchard(pipeline)


def approx(values: list[float]) -> Any:
    return pytest.approx(values, abs=EPSILON)


def box_of(instance: ObjectInstance, frame: int = 0) -> list[float]:
    c = instance.get_annotation(frame).coordinates
    return [c.top_left_x, c.top_left_y, c.width, c.height]


def expected_box(box: dict[str, float], width: int = 640, height: int = 480) -> Any:
    return approx([box["left"] / width, box["top"] / height, box["width"] / width, box["height"] / height])


def points_of(instance: ObjectInstance) -> list[list[float]]:
    return [[point.x, point.y] for point in instance.get_annotation(0).coordinates.values]


def expected_points(points: list[dict[str, float]]) -> Any:
    return [approx([point["x"] / 640, point["y"] / 480]) for point in points]


def answer_of(instance: ObjectInstance, attribute_title: str) -> Any:
    ontology = instance.ontology_item
    attribute = next(a for a in _attributes(ontology.attributes) if a.title == attribute_title)
    answer = instance.get_answer(attribute)
    if isinstance(attribute, RadioAttribute):
        return answer.title
    if isinstance(attribute, ChecklistAttribute):
        return sorted(option.title for option in answer)
    return answer


def _attributes(attributes: list[Any]) -> list[Any]:
    found = []
    for attribute in attributes:
        found.append(attribute)
        for option in getattr(attribute, "options", []):
            found += _attributes(getattr(option, "attributes", []))
    return found


def classifications_of(row: LabelRowV2) -> dict[str, tuple[Any, list[int]]]:
    """Question -> (answer, frames) of each classification instance."""
    found = {}
    for instance in row.get_classification_instances():
        ontology: Classification = instance.ontology_item
        attribute = ontology.attributes[0]
        answer = instance.get_answer(attribute)
        if isinstance(attribute, RadioAttribute):
            answer = answer.title
        elif isinstance(attribute, ChecklistAttribute):
            answer = sorted(option.title for option in answer)
        else:
            assert isinstance(attribute, TextAttribute)
        found[attribute.title] = (answer, sorted(annotation.frame for annotation in instance.get_annotations()))
    return found


def test_every_label_of_the_sample_reads_back_as_labelbox_wrote_it(orchard: Orchard) -> None:
    _, image, video, _ = sample_lines()

    job = orchard.pipeline.run("incoming/export.ndjson", SAMPLE.read_bytes())

    # The mask row is left out, as the sample's first line asks: counted, and its data unit is not touched.
    assert (job.status, job.total_records, job.records_left_out, job.rows_imported) == (JobStatus.COMPLETED, 3, 1, 2)
    rows = orchard.rows()
    objects = {o["feature_id"]: o for o in annotations_of(image)["objects"]}
    fruit = by_title(rows[orchard.fruit])
    mother, calf = sorted(fruit["Whale"], key=lambda whale: box_of(whale)[0])
    assert box_of(mother) == expected_box(objects["clu1whale0mother00000000"]["bounding_box"])
    assert box_of(calf) == expected_box(objects["clu1whale0calf0000000000"]["bounding_box"])
    assert answer_of(mother, "Colour") == "Blue"
    assert answer_of(mother, "Any Other Colours?") == "Pink"
    assert answer_of(mother, "Description") == "a humpback, breaching"
    assert answer_of(calf, "Description #relation") == mother.object_hash  # the relationship calf -> mother
    [cherry] = fruit["Cherry"]
    assert box_of(cherry) == expected_box(objects["clu1cherry0fruit00000000"]["bounding_box"])
    assert (answer_of(cherry, "Defects"), answer_of(cherry, "Ripeness")) == (["Bruise", "Crack"], "Unripe")
    [persimmon] = fruit["Persimmon"]
    assert points_of(persimmon) == expected_points(objects["clu1persimmon00000000000"]["polygon"][:-1])  # closed
    [branch] = fruit["Branch"]
    assert points_of(branch) == expected_points(objects["clu1branch0000000000000"]["line"])
    [pedicel] = fruit["Pedicel"]
    c = pedicel.get_annotation(0).coordinates
    assert [c.x, c.y] == expected_points([objects["clu1pedicel0000000000000"]["point"]])[0]
    assert classifications_of(rows[orchard.fruit]) == {
        "Blueberry or cherry?": ("Cherry", [0]),
        "Many types of fruit?": (["Apple", "Kiwi"], [0]),
        "Caption": ("two whales and a cherry", [0]),
    }

    [tracked] = by_title(rows[orchard.video])["Cherry"]  # one object across frames: one feature_id
    frames = annotations_of(video)["frames"]
    assert sorted(annotation.frame for annotation in tracked.get_annotations()) == [0, 1, 2]  # Labelbox's 1, 2, 3
    for frame in (1, 2, 3):
        box = frames[str(frame)]["objects"]["clu1cherry0tracked000000"]["bounding_box"]
        assert box_of(tracked, frame - 1) == expected_box(box)
    manual = {annotation.frame: annotation.manual_annotation for annotation in tracked.get_annotations()}
    assert manual == {0: True, 1: False, 2: True}  # frame 2 is no key frame: Labelbox interpolated it
    assert classifications_of(rows[orchard.video]) == {
        "Blueberry or cherry?": ("Cherry", [0, 1]),
        "Caption": ("windy", [0, 1, 2, 3, 4]),
    }


def test_importing_the_same_export_again_adds_nothing(orchard: Orchard) -> None:
    first = orchard.pipeline.run("incoming/export.ndjson", SAMPLE.read_bytes())
    again = orchard.pipeline.run("incoming/export.ndjson", SAMPLE.read_bytes())

    assert first.job_id != again.job_id
    assert first.labels_added > 0
    assert (again.status, again.labels_added) == (JobStatus.COMPLETED, 0)
    rows = orchard.rows()
    assert [len(rows[orchard.fruit].get_object_instances()), len(rows[orchard.video].get_object_instances())] == [6, 1]


def test_a_rollback_removes_the_imported_labels(orchard: Orchard) -> None:
    job = orchard.pipeline.run("incoming/export.ndjson", SAMPLE.read_bytes())
    assert job.labels_added > 0

    assert main(["rollback", job.job_id]) == 0

    for row in orchard.rows().values():
        assert not row.get_object_instances() and not row.get_classification_instances()
    assert orchard.pipeline.job(job.job_id).status is JobStatus.ROLLED_BACK


def test_the_mapping_overrides_names_and_leaves_a_class_out(pipeline: Pipeline) -> None:
    encord = pipeline.stack.encord
    fruit = encord.add_image("fruit.jpg", width=640, height=480)
    clip = encord.add_video("clips/2024/orchard-final.mp4", number_of_frames=5, width=640, height=480)
    encord.add_image("mask.png", width=4, height=3)
    _, image, video, mask = sample_lines()
    mapping = {
        "objects": {"Blueberry": None, "Pedicel": "obStoneB"},  # null leaves the mask out; a feature hash
        "data_units": {"orchard.mp4": clip},
        "options": {"Kiwi": "Persimmon"},
    }

    job = pipeline.run("incoming/export.ndjson", ndjson([{"encord": mapping}, image, video, mask]))

    assert (job.status, job.records_left_out, job.rows_imported) == (JobStatus.COMPLETED, 1, 2)
    rows = pipeline.stack.read_back([fruit, clip])
    [stone] = by_title(rows[fruit])["Stone"]
    assert stone.ontology_item.feature_node_hash == "obStoneB"
    assert "Pedicel" not in by_title(rows[fruit])
    assert classifications_of(rows[fruit])["Many types of fruit?"] == (["Apple", "Persimmon"], [0])
    assert len(by_title(rows[clip])["Cherry"]) == 1


def test_a_mask_url_is_not_imported_and_the_report_says_why(orchard: Orchard) -> None:
    _, image, video, mask = sample_lines()
    both = json.loads(json.dumps(image))
    annotations_of(both)["objects"].append(annotations_of(mask)["objects"][0])  # a row with boxes and a mask

    job = orchard.pipeline.run("incoming/export.ndjson", ndjson([both, video, mask]))

    assert (job.status, job.rows_imported, job.rows_failed) == (JobStatus.COMPLETED, 2, 0)
    assert job.labels_not_imported == {MASK_URLS: 2}  # one beside the boxes, one alone on its row
    assert job.records_left_out == 1  # the row that holds nothing else
    summary = orchard.pipeline.report(job.job_id, "summary.txt").decode()
    assert f"Not imported, as Encord has no place for them: 2 {MASK_URLS}" in summary
    assert "Blueberry" not in by_title(orchard.rows()[orchard.fruit])


def test_problems_are_located_on_the_labelbox_path(orchard: Orchard) -> None:
    _, image, video, _ = sample_lines()
    image_annotations = annotations_of(image)
    image_annotations["objects"][2]["bounding_box"]["width"] = 200.0  # reaches past the 640-pixel-wide image
    broken_video = json.loads(json.dumps(video))
    frames = annotations_of(broken_video)["frames"]
    frames["9"] = frames.pop("3")  # Labelbox frame 9 is Encord frame 8; the video has 5
    annotations_of(broken_video)["segments"] = {}
    no_name = {**image, "data_row": {"id": "clu1nameless000000000000", "row_data": "https://example.com/x.jpg"}}
    unknown_option = json.loads(json.dumps(image))
    annotations_of(unknown_option)["objects"][2]["bounding_box"]["width"] = 80.0
    annotations_of(unknown_option)["classifications"][0]["radio_answer"]["name"] = "Plum"
    texts = json.loads(json.dumps(image))  # text answers to radio questions: found by the shared checks
    annotations_of(texts)["objects"][2]["bounding_box"]["width"] = 80.0
    del annotations_of(texts)["objects"][2]["classifications"][1]["radio_answer"]
    annotations_of(texts)["objects"][2]["classifications"][1]["text_answer"] = {"content": "fairly ripe"}
    del annotations_of(texts)["classifications"][0]["radio_answer"]
    annotations_of(texts)["classifications"][0]["text_answer"] = {"content": "both"}
    lines = [{"encord": {"on_error": "skip-invalid"}}, image, broken_video, no_name, unknown_option, texts]

    job = orchard.pipeline.run("incoming/export.ndjson", ndjson(lines) + b"{not json\n")

    labels = f"projects.{PROJECT}.labels[0].annotations"
    assert job.status is JobStatus.COMPLETED
    assert orchard.errors(job.job_id) == [
        (2, "OUT_OF_RANGE", f"{labels}.objects[2].bounding_box"),
        (3, "FRAME_OUT_OF_RANGE", f"{labels}.frames.9.objects.clu1cherry0tracked000000"),
        (4, "MISSING_FIELD", "data_row"),
        (5, "UNKNOWN_OPTION", f"{labels}.classifications[0].radio_answer.name"),
        (6, "UNKNOWN_OPTION", f"{labels}.objects[2].classifications"),
        (6, "UNKNOWN_OPTION", f"{labels}.classifications[0]"),
        (7, "INVALID_JSON", ""),
    ]


def test_a_relationship_to_an_object_nobody_places_is_located_on_the_relationship(orchard: Orchard) -> None:
    _, image, _, _ = sample_lines()
    annotations_of(image)["relationships"][0]["target"] = "clu1nobody00000000000000"

    job = orchard.pipeline.run("incoming/export.ndjson", ndjson([image]))

    assert job.status is JobStatus.REJECTED
    assert orchard.errors(job.job_id) == [
        (1, "UNKNOWN_OBJECT_ID", f"projects.{PROJECT}.labels[0].annotations.relationships[0]")
    ]


def test_a_gzipped_export_with_two_projects_imports_the_labels_of_both(orchard: Orchard) -> None:
    _, image, _, _ = sample_lines()
    second = json.loads(json.dumps(image["projects"][PROJECT]))
    second["labels"][0]["annotations"] = {
        "objects": [image["projects"][PROJECT]["labels"][0]["annotations"]["objects"][5] | {"feature_id": "clu1p2"}],
        "classifications": [],
        "relationships": [],
    }
    image["projects"]["clu1second0proj000000000"] = second

    job = orchard.pipeline.run("incoming/export.ndjson.gz", gzip.compress(ndjson([image])))

    assert job.status is JobStatus.COMPLETED
    assert len(by_title(orchard.rows()[orchard.fruit])["Pedicel"]) == 2


def test_an_unknown_option_in_the_encord_line_rejects_the_file(orchard: Orchard) -> None:
    job = orchard.pipeline.run("incoming/export.ndjson", ndjson([{"encord": {"on_eror": "skip-invalid"}}]))

    assert job.status is JobStatus.REJECTED
    assert orchard.errors(job.job_id) == [(1, "UNKNOWN_FIELD", "encord.on_eror")]


def test_an_object_of_the_wrong_shape_names_both(orchard: Orchard) -> None:
    _, image, _, _ = sample_lines()
    annotations_of(image)["objects"][3]["name"] = "Branch"  # a polyline in the ontology, a polygon in the file

    job = orchard.pipeline.run("incoming/export.ndjson", ndjson([image]))

    assert orchard.errors(job.job_id) == [
        (1, "SHAPE_MISMATCH", f"projects.{PROJECT}.labels[0].annotations.objects[3].polygon")
    ]


def test_an_export_without_interpolated_frames_is_refused_rather_than_imported_with_holes(orchard: Orchard) -> None:
    _, _, video, _ = sample_lines()
    del annotations_of(video)["frames"]["2"]  # key frames 1 and 3 only, as an export without interpolated_frames

    job = orchard.pipeline.run("incoming/export.ndjson", ndjson([video]))

    assert orchard.errors(job.job_id) == [
        (1, "MISSING_FIELD", f"projects.{PROJECT}.labels[0].annotations.segments.clu1cherry0tracked000000[0]")
    ]
    assert "interpolated_frames" in orjson.loads(orchard.pipeline.report(job.job_id, "errors.jsonl"))["message"]


def test_a_relationship_the_ontology_cannot_hold_is_not_imported_and_says_why(orchard: Orchard) -> None:
    _, image, _, _ = sample_lines()
    annotations_of(image)["relationships"][0]["source"] = "clu1cherry0fruit00000000"  # Cherry has no #relation

    job = orchard.pipeline.run("incoming/export.ndjson", ndjson([image]))

    assert (job.status, job.labels_not_imported) == (JobStatus.COMPLETED, {UNHELD_RELATIONS: 1})
    [calf] = [whale for whale in by_title(orchard.rows()[orchard.fruit])["Whale"] if box_of(whale)[0] > 0.5]
    assert answer_of(calf, "Description #relation") is None


def test_answers_nested_past_the_limit_are_refused_while_read(orchard: Orchard) -> None:
    _, image, _, _ = sample_lines()
    nested: dict[str, Any] = {"name": "Pink", "classifications": []}
    for _ in range(50):
        nested = {"name": "Blue", "classifications": [{"name": "Colour", "radio_answer": nested}]}
    annotations_of(image)["objects"][0]["classifications"] = [{"name": "Colour", "radio_answer": nested}]

    job = orchard.pipeline.run("incoming/export.ndjson", ndjson([image]))

    [(line, code, field)] = orchard.errors(job.job_id)
    assert (line, code) == (1, "NESTING_TOO_DEEP")
    assert field.startswith(f"projects.{PROJECT}.labels[0].annotations.objects[0].classifications[0].radio_answer")

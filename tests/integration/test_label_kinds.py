"""Every label kind, file -> pipeline -> Encord -> read back through the SDK, from the documented samples.

Each test imports one file of `samples/kinds/` (the same file docs/label-format.md shows) and checks the
read-back against values written out literally: normalised coordinates, theta, inclusive frame ranges and
option titles, within 1e-9.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from encord.common.bitmask_operations import deserialise_bitmask
from encord.objects import LabelRowV2
from encord.objects.coordinates import Visibility

from label_importer.model.jobs import JobStatus
from local.pipeline import Pipeline

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "kinds"
SCHEMA = json.loads((ROOT / "docs" / "label-format.schema.json").read_text())
EPSILON = 1e-9


class Kinds:
    """A project holding the data units the samples name, and a way to import one sample into it."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        encord = pipeline.stack.encord
        self.hashes = {
            "fruit.jpg": encord.add_image("fruit.jpg", width=640, height=480),
            "mask.png": encord.add_image("mask.png", width=4, height=3),
            "orchard.mp4": encord.add_video("orchard.mp4", number_of_frames=5),
            "inspection": encord.add_image_group("inspection", [(640, 480), (4, 3), (640, 480)]),
            "drone-pass": encord.add_image_sequence("drone-pass", number_of_images=4),
            "CT chest": encord.add_dicom_series("CT chest", number_of_slices=6),
        }

    def row(self, sample: str, title: str) -> LabelRowV2:
        job = self.pipeline.run(f"incoming/{sample}", (SAMPLES / sample).read_bytes())
        assert (job.status, job.rows_failed) == (JobStatus.COMPLETED, 0), self.pipeline.report(
            job.job_id, "summary.txt"
        ).decode()
        return self.pipeline.stack.read_back([self.hashes[title]])[self.hashes[title]]

    def stored_objects(self, title: str) -> list[dict[str, Any]]:
        data_hash = self.hashes[title]
        row = self.pipeline.stack.encord.label_row(data_hash)
        assert row is not None
        return row["data_units"][data_hash]["labels"]["objects"]


@pytest.fixture
def kinds(pipeline: Pipeline) -> Kinds:
    return Kinds(pipeline)


def only_object(row: LabelRowV2) -> Any:
    [instance] = row.get_object_instances()
    return instance


def flat(points: Any) -> list[float]:
    """[(x, y), ...] as [x0, y0, x1, y1, ...], which pytest.approx can compare within EPSILON."""
    return [coordinate for point in points for coordinate in point]


def answer_of(instance: Any, title: str) -> Any:
    attribute = next(a for a in instance.ontology_item.attributes if a.title == title)
    return instance.get_answer(attribute)


@pytest.mark.parametrize("sample", sorted(path.name for path in SAMPLES.glob("*.jsonl")))
def test_every_sample_line_matches_the_published_json_schema(sample: str) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for line in (SAMPLES / sample).read_text().splitlines():
        validator.validate(json.loads(line))


def test_bounding_box_with_confidence_and_manual_annotation_flag(kinds: Kinds) -> None:
    cherry = only_object(kinds.row("bounding-box.jsonl", "fruit.jpg"))
    annotation = cherry.get_annotation(0)
    box = annotation.coordinates
    assert (box.top_left_x, box.top_left_y, box.width, box.height) == pytest.approx((0.1, 0.2, 0.3, 0.25), abs=EPSILON)
    assert annotation.confidence == pytest.approx(0.87, abs=EPSILON)
    assert annotation.manual_annotation is False
    [stored] = kinds.stored_objects("fruit.jpg")
    assert stored["boundingBox"] == pytest.approx({"h": 0.25, "w": 0.3, "x": 0.1, "y": 0.2}, abs=EPSILON)


def test_rotatable_bounding_box_keeps_its_angle(kinds: Kinds) -> None:
    box = only_object(kinds.row("rotatable-bounding-box.jsonl", "fruit.jpg")).get_annotation(0).coordinates
    assert (box.top_left_x, box.top_left_y, box.width, box.height, box.theta) == pytest.approx(
        (0.4, 0.3, 0.2, 0.1, 37.5), abs=EPSILON
    )


def test_polygon(kinds: Kinds) -> None:
    polygon = only_object(kinds.row("polygon.jsonl", "fruit.jpg")).get_annotation(0).coordinates
    assert flat((p.x, p.y) for p in polygon.values) == pytest.approx(
        flat([(0.2, 0.2), (0.6, 0.25), (0.45, 0.7)]), abs=EPSILON
    )


def test_several_polygons_with_a_hole_are_one_object(kinds: Kinds) -> None:
    polygon = only_object(kinds.row("polygon-with-holes.jsonl", "fruit.jpg")).get_annotation(0).coordinates
    rings = [[[(p.x, p.y) for p in ring] for ring in shape] for shape in polygon.polygons]
    assert rings == [
        [
            [(0.1, 0.1), (0.5, 0.1), (0.5, 0.5), (0.1, 0.5)],
            [(0.2, 0.2), (0.3, 0.2), (0.3, 0.3), (0.2, 0.3)],
        ],
        [[(0.6, 0.6), (0.9, 0.6), (0.75, 0.9)]],
    ]
    [stored] = kinds.stored_objects("fruit.jpg")
    assert stored["polygons"] == [
        [[0.1, 0.1, 0.5, 0.1, 0.5, 0.5, 0.1, 0.5], [0.2, 0.2, 0.3, 0.2, 0.3, 0.3, 0.2, 0.3]],
        [[0.6, 0.6, 0.9, 0.6, 0.75, 0.9]],
    ]


def test_polyline(kinds: Kinds) -> None:
    line = only_object(kinds.row("polyline.jsonl", "fruit.jpg")).get_annotation(0).coordinates
    assert flat((p.x, p.y) for p in line.values) == pytest.approx(
        flat([(0.05, 0.9), (0.3, 0.6), (0.55, 0.55), (0.8, 0.2)]), abs=EPSILON
    )


def test_point(kinds: Kinds) -> None:
    point = only_object(kinds.row("point.jsonl", "fruit.jpg")).get_annotation(0).coordinates
    assert (point.x, point.y) == pytest.approx((0.42, 0.17), abs=EPSILON)


def test_bitmask_decodes_to_the_same_pixels(kinds: Kinds) -> None:
    only_object(kinds.row("bitmask.jsonl", "mask.png"))
    [stored] = kinds.stored_objects("mask.png")
    mask = stored["bitmask"]
    assert (mask["width"], mask["height"], mask["top"], mask["left"]) == (4, 3, 0, 0)
    assert deserialise_bitmask(mask["rleString"], 12) == bytes([0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0])


def test_skeleton_places_every_named_point(kinds: Kinds) -> None:
    skeleton = only_object(kinds.row("skeleton.jsonl", "fruit.jpg")).get_annotation(0).coordinates
    assert {(v.name, v.x, v.y) for v in skeleton.values} == {
        ("calyx", 0.5, 0.2),
        ("tip", 0.5, 0.8),
        ("left", 0.3, 0.5),
        ("right", 0.7, 0.5),
    }
    assert all(v.feature_hash for v in skeleton.values)  # linked to the template's points


def test_skeleton_points_keep_their_visibility(kinds: Kinds) -> None:
    skeleton = only_object(kinds.row("skeleton-visibility.jsonl", "fruit.jpg")).get_annotation(0).coordinates
    assert {(v.name, v.x, v.y, v.visibility) for v in skeleton.values} == {
        ("calyx", 0.5, 0.2, None),
        ("tip", 0.5, 0.8, Visibility.OCCLUDED),
        ("left", 0.3, 0.5, Visibility.VISIBLE),
        ("right", 0.0, 0.0, Visibility.INVISIBLE),
    }
    [stored] = kinds.stored_objects("fruit.jpg")
    assert {point["name"]: point.get("visibility") for point in stored["skeleton"].values()} == {
        "calyx": None,
        "tip": "occluded",
        "left": "visible",
        "right": "invisible",
    }


def test_radio_classification(kinds: Kinds) -> None:
    [classification] = kinds.row("radio-classification.jsonl", "fruit.jpg").get_classification_instances()
    assert classification.ontology_item.title == "Blueberry or cherry?"
    assert classification.get_answer().title == "Blueberry"
    assert classification.get_annotation(0).confidence == pytest.approx(0.6, abs=EPSILON)


def test_checklist_classification(kinds: Kinds) -> None:
    [classification] = kinds.row("checklist-classification.jsonl", "fruit.jpg").get_classification_instances()
    assert sorted(option.title for option in classification.get_answer()) == ["Apple", "Persimmon"]


def test_text_classification(kinds: Kinds) -> None:
    [classification] = kinds.row("text-classification.jsonl", "fruit.jpg").get_classification_instances()
    assert classification.get_answer() == "three cherries on a plate"


def test_classifications_on_chosen_video_frames(kinds: Kinds) -> None:
    row = kinds.row("video-classifications.jsonl", "orchard.mp4")
    frames = {c.ontology_item.title: [a.frame for a in c.get_annotations()] for c in row.get_classification_instances()}
    assert frames == {"Blueberry or cherry?": [0, 1, 2, 4], "Caption": [3]}


def test_text_attribute(kinds: Kinds) -> None:
    whale = only_object(kinds.row("text-attribute.jsonl", "fruit.jpg"))
    assert answer_of(whale, "Description") == "a humpback, breaching"


def test_radio_nested_to_depth_three(kinds: Kinds) -> None:
    whale = only_object(kinds.row("nested-radio-attribute.jsonl", "fruit.jpg"))
    colour = answer_of(whale, "Colour")
    [nested] = colour.attributes
    assert (colour.title, nested.title, whale.get_answer(nested).title) == ("Blue", "Any Other Colours?", "Pink")


def test_checklist_attribute(kinds: Kinds) -> None:
    cherry = only_object(kinds.row("checklist-attribute.jsonl", "fruit.jpg"))
    assert sorted(option.title for option in answer_of(cherry, "Defects")) == ["Bruise", "Crack"]
    assert answer_of(cherry, "Ripeness").title == "Unripe"


def test_relation_attribute_points_at_the_other_objects_hash(kinds: Kinds) -> None:
    row = kinds.row("relation-attribute.jsonl", "fruit.jpg")
    whales = {instance.get_annotation(0).coordinates.top_left_x: instance for instance in row.get_object_instances()}
    mother, calf = whales[0.1], whales[0.6]
    assert answer_of(calf, "Description #relation") == mother.object_hash
    assert answer_of(mother, "Description #relation") is None


def test_dynamic_attribute_changes_answer_per_frame(kinds: Kinds) -> None:
    picker = only_object(kinds.row("dynamic-attribute.jsonl", "orchard.mp4"))
    answers = sorted((a.answer.title, [(r.start, r.end) for r in a.ranges]) for a in answer_of(picker, "Position"))
    assert answers == [("Standing", [(0, 0)]), ("Walking", [(1, 3)])]
    assert [a.frame for a in picker.get_annotations()] == [0, 1, 2, 3]


def test_one_id_tracks_one_object_across_frames_and_lines(kinds: Kinds) -> None:
    cherry = only_object(kinds.row("video-tracked-object.jsonl", "orchard.mp4"))
    annotations = cherry.get_annotations()
    assert [a.frame for a in annotations] == [0, 1, 2, 3, 4]
    assert [a.coordinates.top_left_x for a in annotations] == pytest.approx([0.1, 0.15, 0.15, 0.2, 0.2], abs=EPSILON)


def test_image_group_frames_are_its_images_each_with_its_own_size(kinds: Kinds) -> None:
    row = kinds.row("image-group.jsonl", "inspection")
    objects = {instance.ontology_item.title: instance for instance in row.get_object_instances()}
    cherry = objects["Cherry"].get_annotations()
    assert [a.frame for a in cherry] == [0, 2]
    assert all(
        (a.coordinates.top_left_x, a.coordinates.top_left_y, a.coordinates.width, a.coordinates.height)
        == pytest.approx((0.25, 0.3, 0.2, 0.15), abs=EPSILON)
        for a in cherry
    )
    [mask] = objects["Blueberry"].get_annotations()
    assert mask.frame == 1
    assert deserialise_bitmask(mask.coordinates.to_dict()["rleString"], 12) == bytes([0, 1, 1, 0, 0, 1, 1, 0] + [0] * 4)
    [which] = row.get_classification_instances()
    assert (which.get_answer().title, [a.frame for a in which.get_annotations()]) == ("Cherry", [0, 2])
    stored = kinds.pipeline.stack.encord.label_row(kinds.hashes["inspection"])
    assert stored is not None
    per_image = {unit["data_sequence"]: len(unit["labels"]["objects"]) for unit in stored["data_units"].values()}
    assert per_image == {"0": 1, "1": 1, "2": 1}


def test_image_sequence_frames_are_its_images(kinds: Kinds) -> None:
    row = kinds.row("image-sequence.jsonl", "drone-pass")
    cherry = only_object(row).get_annotations()
    assert [a.frame for a in cherry] == [1, 2, 3]
    assert all(a.coordinates.top_left_x == pytest.approx(0.4, abs=EPSILON) for a in cherry)
    [caption] = row.get_classification_instances()
    assert (caption.get_answer(), [a.frame for a in caption.get_annotations()]) == ("first pass", [0])


def test_dicom_series_frames_are_its_slices(kinds: Kinds) -> None:
    row = kinds.row("dicom-series.jsonl", "CT chest")
    nodule = only_object(row).get_annotations()
    assert [a.frame for a in nodule] == [2, 3, 5]
    for annotation in nodule:
        assert flat((p.x, p.y) for p in annotation.coordinates.values) == pytest.approx(
            flat([(0.3, 0.3), (0.45, 0.32), (0.38, 0.5)]), abs=EPSILON
        )
    [caption] = row.get_classification_instances()
    assert (caption.get_answer(), [a.frame for a in caption.get_annotations()]) == ("nodule, left lobe", [2, 3, 4, 5])

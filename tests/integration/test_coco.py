"""COCO files through the whole pipeline: S3 -> validator -> queue -> importer -> fake Encord -> SDK read-back.

`samples/coco/instances_orchard.json` (the example in docs/input-formats.md) holds every geometry the importer
reads. Expected values are written out by hand from the file's pixel numbers divided by the image size; masks
are compared pixel for pixel with the arrays drawn here.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from encord.objects import LabelRowV2
from encord.objects.coordinates import Visibility
from pycocotools import mask as coco_mask

from label_importer.model.jobs import JobStatus
from local.pipeline import Pipeline
from local.sample_labels import coco_document

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "coco" / "instances_orchard.json"
EPSILON = 1e-9

# The sample's masks on the 6x4 "berries.png", row by row.
MASK_A = [[0, 1, 1, 0, 0, 0], [0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1]]  # compressed RLE
MASK_B = [[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1]]  # crowd, uncompressed
MASK_C = [[0, 1, 1, 1, 0, 0], [0, 1, 0, 1, 0, 0], [0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]]  # ring, as a polygon
MASK_D = [[0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 1, 0], [0, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]]  # polygon, as a mask


class Orchard:
    """The project the sample is made for: titles with and without folders, one of them on the Encord side."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        encord = pipeline.stack.encord
        self.cherry = encord.add_image("cherry_001.jpg", width=640, height=480)
        self.berries = encord.add_image("masks/berries.png", width=6, height=4)
        self.persimmon = encord.add_image("persimmon.jpg", width=100, height=50)

    def run(self, document: dict[str, Any] | bytes, key: str = "incoming/instances_orchard.json") -> Any:
        body = document if isinstance(document, bytes) else orjson.dumps(document)
        return self.pipeline.run(key, body)

    def rows(self) -> dict[str, LabelRowV2]:
        return self.pipeline.stack.read_back([self.cherry, self.berries, self.persimmon])

    def errors(self, job_id: str) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.pipeline.report(job_id, "errors.jsonl").splitlines()]


@pytest.fixture
def orchard(pipeline: Pipeline) -> Orchard:
    return Orchard(pipeline)


def sample() -> dict[str, Any]:
    return orjson.loads(SAMPLE.read_bytes())


def by_title(row: LabelRowV2) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for instance in row.get_object_instances():
        found.setdefault(instance.ontology_item.title, []).append(instance.get_annotation(0))
    return found


def flat(points: Any) -> list[float]:
    return [coordinate for point in points for coordinate in point]


def pixels(annotation: Any) -> list[list[int]]:
    return annotation.coordinates.to_numpy_array().astype(int).tolist()


def rasterised(polygons: list[list[list[Any]]], width: int, height: int) -> list[list[int]]:
    """Encord polygons (outer ring, then holes) drawn the way COCO's own tools draw polygons."""

    def raster(ring: list[Any]) -> np.ndarray:
        outline = [value for point in ring for value in (point.x * width, point.y * height)]
        return coco_mask.decode(coco_mask.frPyObjects([outline], height, width)[0]).astype(bool)

    drawn = np.zeros((height, width), dtype=bool)
    for outer, *holes in polygons:
        shape = raster(outer)
        for hole in holes:
            shape &= ~raster(hole)
        drawn |= shape
    return drawn.astype(int).tolist()


def test_every_coco_geometry_lands_and_reads_back_through_the_sdk(orchard: Orchard) -> None:
    job = orchard.run(SAMPLE.read_bytes())

    assert (job.status, job.total_records, job.records_left_out, job.rows_imported) == (JobStatus.COMPLETED, 9, 1, 3)
    assert job.labels_added == 8
    rows = orchard.rows()
    cherry = by_title(rows[orchard.cherry])
    assert set(cherry) == {"Cherry", "Strawberry", "Other type of fruit"}  # "leaf" was mapped to null
    [box] = cherry["Cherry"]  # bbox [64, 48, 128, 96] on 640x480, score 0.9
    assert [box.coordinates.top_left_x, box.coordinates.top_left_y, box.coordinates.width, box.coordinates.height] == (
        pytest.approx([0.1, 0.1, 0.2, 0.2], abs=EPSILON)
    )
    assert box.confidence == pytest.approx(0.9)
    [rotatable] = cherry["Other type of fruit"]  # mapped by the encord section; bbox [160, 120, 320, 240]
    coordinates = rotatable.coordinates
    assert [coordinates.top_left_x, coordinates.top_left_y, coordinates.width, coordinates.height] == pytest.approx(
        [0.25, 0.25, 0.5, 0.5], abs=EPSILON
    )
    assert coordinates.theta == 0
    [skeleton] = cherry["Strawberry"]  # keypoints listed as Tip, calyx, left, right
    points = {point.name: point for point in skeleton.coordinates.values}
    assert {name: (p.x, p.y) for name, p in points.items()} == {
        "tip": (pytest.approx(0.5), pytest.approx(0.9)),
        "calyx": (pytest.approx(0.5), pytest.approx(0.1)),
        "left": (pytest.approx(0.2), pytest.approx(0.5)),
        "right": (0.0, 0.0),
    }
    assert {name: p.visibility for name, p in points.items()} == {
        "tip": Visibility.VISIBLE,
        "calyx": Visibility.VISIBLE,
        "left": Visibility.OCCLUDED,
        "right": Visibility.INVISIBLE,
    }

    [two_rings] = by_title(rows[orchard.persimmon])["Persimmon"]
    rings = [[flat((p.x, p.y) for p in ring) for ring in polygon] for polygon in two_rings.coordinates.polygons]
    assert rings == [
        [pytest.approx([0.1, 0.1, 0.6, 0.1, 0.6, 0.9, 0.1, 0.9], abs=EPSILON)],
        [pytest.approx([0.7, 0.2, 0.9, 0.2, 0.8, 0.6], abs=EPSILON)],
    ]

    berries = by_title(rows[orchard.berries])
    assert sorted(pixels(mask) for mask in berries["Blueberry"]) == sorted([MASK_A, MASK_B, MASK_D])
    [traced] = berries["Persimmon"]
    assert rasterised(traced.coordinates.polygons, 6, 4) == MASK_C


def test_importing_the_same_coco_file_again_adds_nothing(orchard: Orchard) -> None:
    first = orchard.run(SAMPLE.read_bytes())
    again = orchard.run(SAMPLE.read_bytes())  # a new S3 version: a new job

    assert first.job_id != again.job_id
    assert (again.status, again.rows_imported, again.labels_added) == (JobStatus.COMPLETED, 3, 0)
    assert sum(len(row.get_object_instances()) for row in orchard.rows().values()) == 8


def test_crowd_regions_can_be_left_out_and_are_counted(orchard: Orchard) -> None:
    document = sample()
    document["encord"]["iscrowd"] = "skip"

    job = orchard.run(document)

    assert (job.status, job.records_left_out, job.labels_added) == (JobStatus.COMPLETED, 2, 7)
    masks = by_title(orchard.rows()[orchard.berries])["Blueberry"]
    assert sorted(pixels(mask) for mask in masks) == sorted([MASK_A, MASK_D])
    assert "2 left out" in orchard.pipeline.report(job.job_id, "summary.txt").decode()


def test_under_skip_invalid_every_unmatched_part_is_reported_and_the_rest_lands(orchard: Orchard) -> None:
    document = sample()
    document["encord"] = {"on_error": "skip-invalid"}  # so "other fruit" and "leaf" no longer match anything
    document["images"].append({"id": 4, "file_name": "pear.jpg", "width": 640, "height": 480})
    document["annotations"].append({"id": 110, "image_id": 4, "category_id": 1, "bbox": [1, 1, 2, 2]})
    document["annotations"][0]["bbox"] = [600, 0, 64, 10]  # past the right edge

    job = orchard.run(document)

    assert job.status is JobStatus.COMPLETED
    assert (job.total_records, job.invalid_records, job.records_left_out) == (10, 4, 0)
    assert {(e["line"], e["field"], e["code"]) for e in orchard.errors(job.job_id)} == {
        (0, "images[3].file_name", "UNKNOWN_DATA_UNIT"),
        (0, "categories[4].name", "UNKNOWN_OBJECT"),
        (0, "categories[5].name", "UNKNOWN_OBJECT"),
        (1, "annotations[0].bbox[0]", "OUT_OF_RANGE"),
        (8, "annotations[7].category_id", "UNKNOWN_OBJECT"),
        (9, "annotations[8].category_id", "UNKNOWN_OBJECT"),
        (10, "annotations[9].image_id", "UNKNOWN_DATA_UNIT"),
    }
    assert set(by_title(orchard.rows()[orchard.cherry])) == {"Strawberry"}


def test_a_strict_file_with_one_unmatched_category_writes_nothing(orchard: Orchard) -> None:
    document = sample()
    document["categories"][0]["name"] = "cheery"
    orchard.pipeline.stack.encord.reset_counts()

    job = orchard.run(document)

    assert job.status is JobStatus.REJECTED
    assert orchard.pipeline.stack.encord.write_requests() == 0
    errors = orchard.errors(job.job_id)
    assert [(e["line"], e["field"], e["code"]) for e in errors] == [
        (0, "categories[0].name", "UNKNOWN_OBJECT"),
        (1, "annotations[0].category_id", "UNKNOWN_OBJECT"),
    ]
    assert "did you mean 'Cherry'?" in errors[0]["message"] and "annotation 101" in errors[1]["message"]


def test_a_gzipped_coco_file_reads_the_same(orchard: Orchard) -> None:
    job = orchard.run(gzip.compress(SAMPLE.read_bytes()), key="incoming/instances_orchard.json.gz")

    assert (job.status, job.labels_added) == (JobStatus.COMPLETED, 8)


def test_five_thousand_coco_annotations_cost_what_the_same_json_lines_cost(pipeline: Pipeline) -> None:
    titles = [f"img_{i:04d}.jpg" for i in range(1000)]
    hashes = [pipeline.stack.encord.add_image(title) for title in titles]
    pipeline.stack.encord.reset_counts()
    document = coco_document(titles, annotations_per_image=5)
    assert len(document["annotations"]) == 5000

    job = pipeline.run("incoming/instances_generated.json", orjson.dumps(document))

    assert (job.status, job.total_records, job.total_chunks, job.rows_imported) == (JobStatus.COMPLETED, 5000, 10, 1000)
    assert job.labels_added == 5000
    answered = pipeline.stack.encord.answered_counts
    # The JSON Lines budget (test_pipeline): one listing for the validator, then listing, create, save per chunk.
    assert answered["list_label_rows"] == 1 + 10
    assert answered["create_label_rows"] == 10 and answered["save_label_rows"] == 10
    assert answered["get_label_rows"] == 0
    assert answered["get_project"] <= 2 and answered["get_ontology"] <= 2
    assert all(len(row.get_object_instances()) == 5 for row in pipeline.stack.read_back(hashes[:20]).values())

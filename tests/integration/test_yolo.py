"""YOLO through the whole pipeline: a zip of `data.yaml` + `labels/**/*.txt` -> validator -> queue -> importer ->
fake Encord -> SDK read-back.

`samples/yolo/` (the example in docs/format-yolo.md) is zipped here as an Ultralytics export would be, with
`images/` beside `labels/`. Expected values are the sample's numbers as written (YOLO is normalised already), a
box's centre moved to its top-left corner by hand; the oriented box is compared by its corners, rebuilt from what
Encord stores, to the 6 decimals the file has.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from encord.objects import LabelRowV2, ObjectInstance
from encord.objects.coordinates import Visibility
from read_back import by_title

from label_importer.model.jobs import JobStatus
from label_importer_cli.commands import main
from local.pipeline import Pipeline

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "yolo"
EPSILON = 1e-9
PRINTED = 1e-5
"""The sample's numbers have 6 decimals; an oriented box rebuilt from Encord's box is within that of them."""


def sample_files() -> dict[str, str]:
    files = {"data.yaml": (SAMPLE / "data.yaml").read_text()}
    for path in sorted((SAMPLE / "labels").rglob("*.txt")):
        files[path.relative_to(SAMPLE).as_posix()] = path.read_text()
    return files


def yolo_zip(
    mapping: dict[str, Any] | None = None, *, drop: tuple[str, ...] = (), replaced: dict[str, str] | None = None
) -> bytes:
    """The sample as a zip; `replaced` swaps or adds entries (by path), `drop` leaves some out."""
    files = sample_files() | (replaced or {})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("images/train/0001.jpg", b"\xff\xd8 not read")
        for name, text in files.items():
            if name not in drop:
                archive.writestr(name, text)
        if mapping is not None:
            archive.writestr("encord.json", json.dumps(mapping))
    return buffer.getvalue()


class Orchard:
    def __init__(self, pipeline: Pipeline, second: str = "0002.jpg") -> None:
        self.pipeline = pipeline
        encord = pipeline.stack.encord
        self.first = encord.add_image("images/0001.jpg", width=640, height=480)
        self.second = encord.add_image(second, width=100, height=50)

    def rows(self) -> dict[str, LabelRowV2]:
        return self.pipeline.stack.read_back([self.first, self.second])

    def errors(self, job_id: str) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.pipeline.report(job_id, "errors.jsonl").splitlines()]


@pytest.fixture
def orchard(pipeline: Pipeline) -> Orchard:
    return Orchard(pipeline)


def box_of(instance: ObjectInstance) -> list[float]:
    c = instance.get_annotation(0).coordinates
    return [c.top_left_x, c.top_left_y, c.width, c.height]


def corners(instance: ObjectInstance, width: int, height: int) -> list[float]:
    """Encord's rotatable box back to the 4 corners YOLO wrote, normalised: rotated clockwise about the centre."""
    c = instance.get_annotation(0).coordinates
    w, h = c.width * width, c.height * height
    cx, cy = c.top_left_x * width + w / 2, c.top_left_y * height + h / 2
    turn = math.radians(c.theta)
    flat = []
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        flat += [
            (cx + dx * math.cos(turn) - dy * math.sin(turn)) / width,
            (cy + dx * math.sin(turn) + dy * math.cos(turn)) / height,
        ]
    return flat


def approx(values: list[float], tolerance: float = EPSILON) -> Any:
    return pytest.approx(values, abs=tolerance)


def test_every_line_of_the_sample_lands_where_its_numbers_say(orchard: Orchard) -> None:
    job = orchard.pipeline.run("incoming/yolo.zip", yolo_zip())

    assert (job.status, job.total_records, job.rows_imported, job.labels_added) == (JobStatus.COMPLETED, 6, 2, 6)
    rows = orchard.rows()
    first = by_title(rows[orchard.first])
    assert sorted(box_of(box) for box in first["Cherry"]) == [
        approx([0.0, 0.0, 0.1, 0.1]),  # 0 0.05 0.05 0.1 0.1
        approx([0.5, 0.5, 0.5, 0.5]),  # 0 0.75 0.75 0.5 0.5 0.87
    ]
    assert sorted(box.get_annotation(0).confidence for box in first["Cherry"]) == [pytest.approx(0.87), 1.0]
    [oriented] = first["Other type of fruit"]
    written = (SAMPLE / "labels/train/0001.txt").read_text().splitlines()[2].split()[1:]
    assert corners(oriented, 640, 480) == approx([float(number) for number in written], PRINTED)
    assert oriented.get_annotation(0).coordinates.theta == pytest.approx(30.0, abs=1e-3)  # 200x100 px, 30° clockwise
    [skeleton] = first["Strawberry"]
    points = {point.name: point for point in skeleton.get_annotation(0).coordinates.values}
    assert {name: [p.x, p.y] for name, p in points.items()} == {
        "calyx": approx([0.5, 0.25]),
        "tip": approx([0.5, 0.75]),
        "left": approx([0.35, 0.5]),
        "right": [0.0, 0.0],
    }
    assert {name: p.visibility for name, p in points.items()} == {
        "calyx": Visibility.VISIBLE,
        "tip": Visibility.VISIBLE,
        "left": Visibility.OCCLUDED,
        "right": Visibility.INVISIBLE,
    }
    second = by_title(rows[orchard.second])
    [polygon] = second["Persimmon"]
    values = polygon.get_annotation(0).coordinates.values
    assert [coordinate for p in values for coordinate in (p.x, p.y)] == approx([0.1, 0.1, 0.6, 0.1, 0.6, 0.6])
    assert [box_of(box) for box in second["Cherry"]] == [approx([0.5, 0.5, 0.5, 0.5])]


def test_importing_the_same_zip_again_adds_nothing(orchard: Orchard) -> None:
    first = orchard.pipeline.run("incoming/yolo.zip", yolo_zip())
    again = orchard.pipeline.run("incoming/yolo.zip", yolo_zip())

    assert first.job_id != again.job_id
    assert (again.status, again.labels_added) == (JobStatus.COMPLETED, 0)
    assert sum(len(row.get_object_instances()) for row in orchard.rows().values()) == 6


def test_a_rollback_removes_the_imported_objects(orchard: Orchard) -> None:
    job = orchard.pipeline.run("incoming/yolo.zip", yolo_zip())
    assert job.labels_added == 6

    assert main(["rollback", job.job_id]) == 0

    assert all(not row.get_object_instances() for row in orchard.rows().values())
    assert orchard.pipeline.job(job.job_id).status is JobStatus.ROLLED_BACK


def test_the_mapping_names_data_units_and_objects_and_leaves_a_class_out(pipeline: Pipeline) -> None:
    orchard = Orchard(pipeline, second="IMG_0042.JPG")
    mapping = {
        "data_units": {"0002.jpg": "IMG_0042.JPG"},  # an image name: its stem is the label file's
        "objects": {"persimmon": "obOther0", "strawberry": None},  # a feature hash; null leaves the poses out
    }
    oriented = "2 0.1 0.1 0.6 0.1 0.6 0.6 0.1 0.6\n"  # as the rotatable box the mapping makes class 2

    job = pipeline.run("incoming/yolo.zip", yolo_zip(mapping, replaced={"labels/val/0002.txt": oriented}))

    assert (job.status, job.records_left_out, job.labels_added) == (JobStatus.COMPLETED, 1, 4)
    rows = orchard.rows()
    assert "Strawberry" not in by_title(rows[orchard.first])
    [box] = by_title(rows[orchard.second])["Other type of fruit"]
    assert box_of(box) == approx([0.1, 0.1, 0.5, 0.5], PRINTED)
    assert box.get_annotation(0).coordinates.theta == pytest.approx(0.0, abs=1e-6)


def test_classes_txt_names_the_classes_of_a_detection_zip(orchard: Orchard) -> None:
    boxes = "0 0.5 0.5 1 1\n1 0.25 0.25 0.5 0.5\n"  # class 1 is 'Other type of fruit': an unrotated box

    job = orchard.pipeline.run(
        "incoming/detect.zip",
        yolo_zip(
            drop=("data.yaml", "labels/train/0001.txt"),
            replaced={"classes.txt": "Cherry\nOther type of fruit\n", "labels/val/0002.txt": boxes},
        ),
    )

    assert (job.status, job.labels_added) == (JobStatus.COMPLETED, 2)
    second = by_title(orchard.rows()[orchard.second])
    assert box_of(second["Cherry"][0]) == approx([0.0, 0.0, 1.0, 1.0])
    assert box_of(second["Other type of fruit"][0]) == approx([0.0, 0.0, 0.5, 0.5])


def test_problems_point_at_the_label_file_and_line(orchard: Orchard) -> None:
    bad = "0 0.75 0.75 0.5 0.5\n\n9 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1\n0 1.5 0.5 0.1 0.1\n0 0.5 0.5 0.2 0.2 1.5\n"

    job = orchard.pipeline.run(
        "incoming/yolo.zip", yolo_zip({"on_error": "skip-invalid"}, replaced={"labels/val/0002.txt": bad})
    )

    assert (job.status, job.invalid_records, job.labels_added) == (JobStatus.COMPLETED, 4, 5)
    assert [(e["line"], e["code"], e["field"]) for e in orchard.errors(job.job_id)] == [
        (6, "UNKNOWN_REFERENCE", "labels/val/0002.txt:3"),
        (7, "INVALID_VALUE", "labels/val/0002.txt:4"),
        (8, "OUT_OF_RANGE", "labels/val/0002.txt:5"),
        (9, "OUT_OF_RANGE", "labels/val/0002.txt:6"),  # confidence above 1: found by the shared checks
    ]


def test_a_zip_with_no_class_list_is_rejected_naming_the_layout(orchard: Orchard) -> None:
    job = orchard.pipeline.run("incoming/yolo.zip", yolo_zip(drop=("data.yaml",)))

    assert job.status is JobStatus.REJECTED
    [error] = orchard.errors(job.job_id)
    assert (error["line"], error["code"]) == (0, "UNKNOWN_FORMAT")
    assert "data.yaml" in error["message"] and "classes.txt" in error["message"] and "labels/" in error["message"]


def test_without_kpt_shape_the_count_tells_a_pose_of_points_without_visibility(orchard: Orchard) -> None:
    pose = "3 0.5 0.5 0.4 0.6 0.5 0.25 0.5 0.75 0.35 0.5 0.65 0.5\n"  # 4 + 4 x 2 numbers

    job = orchard.pipeline.run(
        "incoming/pose.zip",
        yolo_zip(
            drop=("labels/train/0001.txt",),
            replaced={"data.yaml": "names: [cherry, fruit, persimmon, Strawberry]\n", "labels/val/0002.txt": pose},
        ),
    )

    assert (job.status, job.labels_added) == (JobStatus.COMPLETED, 1)
    [skeleton] = by_title(orchard.rows()[orchard.second])["Strawberry"]
    points = {point.name: point for point in skeleton.get_annotation(0).coordinates.values}
    assert {name: [p.x, p.y] for name, p in points.items()} == {
        "calyx": approx([0.5, 0.25]),
        "tip": approx([0.5, 0.75]),
        "left": approx([0.35, 0.5]),
        "right": approx([0.65, 0.5]),
    }
    assert {p.visibility for p in points.values()} == {Visibility.VISIBLE}


def test_a_kpt_shape_unlike_the_template_rejects_each_pose_line(orchard: Orchard) -> None:
    data = (SAMPLE / "data.yaml").read_text().replace("kpt_shape: [4, 3]", "kpt_shape: [17, 3]")

    job = orchard.pipeline.run("incoming/yolo.zip", yolo_zip(replaced={"data.yaml": data}))

    assert job.status is JobStatus.REJECTED
    assert [(e["line"], e["code"], e["field"]) for e in orchard.errors(job.job_id)] == [
        (4, "SKELETON_POINTS_MISMATCH", "labels/train/0001.txt:4")
    ]


def test_an_unknown_key_in_encord_json_rejects_the_zip(orchard: Orchard) -> None:
    job = orchard.pipeline.run("incoming/yolo.zip", yolo_zip({"on_eror": "skip-invalid"}))

    assert job.status is JobStatus.REJECTED
    assert [(e["line"], e["code"], e["field"]) for e in orchard.errors(job.job_id)] == [
        (0, "UNKNOWN_FIELD", "encord.json.on_eror")
    ]

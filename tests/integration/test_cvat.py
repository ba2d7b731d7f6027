"""CVAT for images and CVAT for video through the whole pipeline: CVAT's export zip (`annotations.xml` at its
root, `images/` beside it) or `annotations.xml` alone -> validator -> queue -> importer -> fake Encord -> SDK
read-back.

`samples/cvat/images/` and `samples/cvat/video/` (the examples of docs/format-cvat.md) follow CVAT's published
XML 1.1 layout, `<meta>` included. Expected values are the samples' pixel coordinates divided by the image size,
written out by hand.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from encord.objects import LabelRowV2, ObjectInstance
from encord.objects.coordinates import Visibility
from read_back import by_title

from label_importer.model.jobs import JobStatus
from label_importer.model.limits import Limits
from label_importer.runtime.deadline import Deadline
from label_importer.sources.cvat.source import CvatSource
from label_importer.sources.formats import source_for
from label_importer.sources.label_file import LabelFile
from label_importer.sources.pascal_voc.source import VocSource
from label_importer_cli.commands import main
from local.pipeline import Pipeline

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "cvat"
IMAGES = (SAMPLES / "images" / "annotations.xml").read_text()
VIDEO = (SAMPLES / "video" / "annotations.xml").read_text()
MAPPING = (SAMPLES / "images" / "encord.json").read_text()
EPSILON = 1e-9


def cvat_zip(document: str, mapping: str | None = None) -> bytes:
    """A CVAT export: the document at the root, the images it names beside it (never read)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("images/orchard/cherry_001.jpg", b"\xff\xd8 not read")
        archive.writestr("annotations.xml", document)
        if mapping is not None:
            archive.writestr("encord.json", mapping)
    return buffer.getvalue()


class Orchard:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        encord = pipeline.stack.encord
        self.cherry = encord.add_image("cherry_001.jpg", width=640, height=480)
        self.leaf = encord.add_image("leaf.png", width=8, height=6)
        self.video = encord.add_video("orchard.mp4", number_of_frames=10)

    def rows(self) -> dict[str, LabelRowV2]:
        return self.pipeline.stack.read_back([self.cherry, self.leaf, self.video])

    def errors(self, job_id: str) -> list[tuple[int, str, str]]:
        lines = self.pipeline.report(job_id, "errors.jsonl").splitlines()
        return [(e["line"], e["field"], e["code"]) for e in map(orjson.loads, lines)]


@pytest.fixture
def orchard(pipeline: Pipeline) -> Orchard:
    return Orchard(pipeline)


def approx(values: Any) -> Any:
    return pytest.approx(values, abs=EPSILON)


def flat(points: Any) -> list[float]:
    return [value for point in points for value in point]


def answer(instance: ObjectInstance, title: str) -> Any:
    [attribute] = [a for a in instance.ontology_item.attributes if a.title == title]
    return instance.get_answer(attribute)


def test_every_shape_of_the_image_task_lands_where_its_pixels_say(orchard: Orchard) -> None:
    job = orchard.pipeline.run("incoming/cvat-images.zip", cvat_zip(IMAGES, MAPPING))

    assert (job.status, job.rows_imported, job.rows_failed) == (JobStatus.COMPLETED, 2, 0)
    assert (job.records_left_out, job.labels_not_imported) == (1, {"CVAT cuboids (Encord has no cuboid shape)": 1})
    summary = orchard.pipeline.report(job.job_id, "summary.txt").decode()
    assert "Not imported, as Encord has no place for them: 1 CVAT cuboids (Encord has no cuboid shape)" in summary
    report = orjson.loads(orchard.pipeline.report(job.job_id, "report.json"))
    assert report["labels_not_imported"] == {"CVAT cuboids (Encord has no cuboid shape)": 1}
    rows = orchard.rows()
    objects = by_title(rows[orchard.cherry])
    [cherry] = objects["Cherry"]
    box = cherry.get_annotation(0).coordinates
    assert [box.top_left_x, box.top_left_y, box.width, box.height] == approx([0.1, 0.2, 0.3, 0.25])
    assert answer(cherry, "Ripeness").title == "Unripe"
    assert answer(cherry, "Description") == "two leaves on the stalk"
    assert [option.title for option in answer(cherry, "Defects")] == ["Bruise"]  # the checkbox, mapped
    [rotated] = objects["Other type of fruit"]
    turned = rotated.get_annotation(0).coordinates
    assert [turned.top_left_x, turned.top_left_y, turned.width, turned.height, turned.theta] == approx(
        [0.5, 0.5, 0.2, 0.1, 30.0]
    )
    [persimmon] = objects["Persimmon"]
    ring = persimmon.get_annotation(0).coordinates.values
    assert flat([p.x, p.y] for p in ring) == approx(
        flat([[100 / 640, 300 / 480], [200 / 640, 320 / 480], [150 / 640, 420 / 480]])
    )
    [branch] = objects["Branch"]
    assert flat([p.x, p.y] for p in branch.get_annotation(0).coordinates.values) == approx(
        flat([[10 / 640, 470 / 480], [200 / 640, 300 / 480], [400 / 640, 250 / 480]])
    )
    pedicels = sorted(
        (p.get_annotation(0).coordinates.x, p.get_annotation(0).coordinates.y) for p in objects["Pedicel"]
    )
    assert flat(pedicels) == approx(flat([(160 / 640, 90 / 480), (500 / 640, 100 / 480)]))  # one <points>, two points
    assert {p.get_annotation(0).manual_annotation for p in objects["Pedicel"]} == {False}  # source="auto"
    [strawberry] = objects["Strawberry"]
    points = {point.name: point for point in strawberry.get_annotation(0).coordinates.values}
    expected = {"calyx": (500, 200), "tip": (500, 300), "left": (470, 250), "right": (530, 250)}
    assert {name: (p.x, p.y) for name, p in points.items()} == {
        name: pytest.approx((x / 640, y / 480), abs=EPSILON) for name, (x, y) in expected.items()
    }
    visibility = {name: p.visibility for name, p in points.items()}
    assert visibility == {
        "calyx": Visibility.VISIBLE, "tip": Visibility.OCCLUDED, "left": Visibility.VISIBLE,
        "right": Visibility.INVISIBLE,
    }  # fmt: skip
    tags = {c.ontology_item.attributes[0].title: c for c in rows[orchard.cherry].get_classification_instances()}
    assert tags["Blueberry or cherry?"].get_answer().title == "Cherry"
    assert sorted(option.title for option in tags["Many types of fruit?"].get_answer()) == ["Apple", "Persimmon"]
    [mask] = by_title(rows[orchard.leaf])["Blueberry"]
    pixels = mask.get_annotation(0).coordinates.to_numpy_array().astype(int).tolist()
    assert pixels == [[0] * 8, [0, 0, 0, 1, 1, 0, 0, 0], [0, 0, 1, 1, 0, 0, 0, 0], *[[0] * 8] * 3]
    assert job.labels_added == 7 + 2 + 1  # objects and tags on the cherry image, the mask on the leaf


def test_importing_the_same_export_again_adds_nothing(orchard: Orchard) -> None:
    orchard.pipeline.run("incoming/cvat-images.zip", cvat_zip(IMAGES, MAPPING))
    again = orchard.pipeline.run("incoming/cvat-images-again.zip", cvat_zip(IMAGES, MAPPING))

    assert (again.status, again.rows_imported, again.labels_added) == (JobStatus.COMPLETED, 2, 0)


def test_a_rollback_removes_what_the_import_added(orchard: Orchard) -> None:
    first = orchard.pipeline.run("incoming/cvat-images.zip", cvat_zip(IMAGES, MAPPING))

    assert main(["rollback", first.job_id]) == 0

    assert orchard.pipeline.job(first.job_id).status is JobStatus.ROLLED_BACK
    rows = orchard.pipeline.stack.read_back([orchard.cherry, orchard.leaf])
    assert all(not row.get_object_instances() and not row.get_classification_instances() for row in rows.values())


def test_a_track_is_one_object_across_frames_with_its_dynamic_answers(orchard: Orchard) -> None:
    job = orchard.pipeline.run("incoming/annotations.xml", VIDEO.encode())

    assert (job.status, job.rows_imported, job.rows_failed) == (JobStatus.COMPLETED, 1, 0)
    row = orchard.rows()[orchard.video]
    objects = by_title(row)
    [person] = objects["Person"]  # one object hash over frames 0-2; frame 3 is `outside`
    boxes = {a.frame: a.coordinates for a in person.get_annotations()}
    assert sorted(boxes) == [0, 1, 2]
    assert [boxes[2].top_left_x, boxes[2].top_left_y, boxes[2].width, boxes[2].height] == approx([0.15, 0.2, 0.1, 0.3])
    [position] = person.ontology_item.attributes
    by_frame = {frame: person.get_answer(position, filter_frame=frame) for frame in (0, 1, 2)}
    assert {frame: answers[0].answer.title for frame, answers in by_frame.items()} == {
        0: "Standing",
        1: "Standing",
        2: "Walking",
    }
    [cherry] = objects["Cherry"]
    assert sorted(a.frame for a in cherry.get_annotations()) == [4, 5]
    assert answer(cherry, "Ripeness").title == "Ripe"
    tags = row.get_classification_instances()
    assert {tag.get_answer().title for tag in tags} == {"Cherry"}
    assert sorted(frame for tag in tags for r in tag.range_list for frame in range(r.start, r.end + 1)) == [0, 1]

    again = orchard.pipeline.run("incoming/annotations-again.xml", VIDEO.encode())
    assert again.labels_added == 0


def test_a_static_attribute_that_changes_along_a_track_is_refused_on_the_shape(orchard: Orchard) -> None:
    changed = VIDEO.replace(
        '<box frame="5" keyframe="1" outside="0" occluded="0" xtl="328.00" ytl="48.00" xbr="360.00" ybr="80.00" '
        'z_order="0">\n      <attribute name="Ripeness">Ripe</attribute>',
        '<box frame="5" keyframe="1" outside="0" occluded="0" xtl="328.00" ytl="48.00" xbr="360.00" ybr="80.00" '
        'z_order="0">\n      <attribute name="Ripeness">Unripe</attribute>',
    )
    assert changed != VIDEO

    job = orchard.pipeline.run("incoming/annotations.xml", changed.encode())

    assert job.status is JobStatus.REJECTED
    assert orchard.errors(job.job_id) == [
        (5, "annotations.xml:/annotations/track[2]/box[2]/attribute[@name='Ripeness']", "CONFLICTING_LABELS")
    ]


def test_problems_the_shared_checks_find_are_placed_on_the_element(orchard: Orchard) -> None:
    past_the_end = VIDEO.replace('<box frame="5"', '<box frame="12"')
    unknown = IMAGES.replace(
        '<attribute name="Ripeness">Unripe</attribute>', '<attribute name="Ripeness">Rotten</attribute>'
    )

    video = orchard.pipeline.run("incoming/annotations.xml", past_the_end.encode())
    images = orchard.pipeline.run("incoming/cvat.zip", cvat_zip(unknown, MAPPING))

    assert orchard.errors(video.job_id) == [
        (5, "annotations.xml:/annotations/track[2]/box[2]/@frame", "FRAME_OUT_OF_RANGE")
    ]
    assert orchard.errors(images.job_id) == [
        (1, "annotations.xml:/annotations/image[1]/box[1]/attribute[@name='Ripeness']", "UNKNOWN_OPTION")
    ]


@pytest.mark.parametrize(
    ("key", "body", "format"),
    [
        ("annotations.xml", IMAGES.encode(), CvatSource),
        (
            "a.xml",
            b"<?xml version='1.0'?>\n<!-- CVAT -->\n<annotations><version>1.1</version></annotations>",
            CvatSource,
        ),
        ("a.xml", b"<annotation><filename>a.jpg</filename></annotation>", VocSource),
        ("task.zip", cvat_zip(VIDEO), CvatSource),
    ],
    ids=["cvat-xml", "cvat-xml-with-comment", "voc-xml", "cvat-zip"],
)
def test_a_cvat_document_is_told_from_pascal_voc_by_its_root(key: str, body: bytes, format: type) -> None:
    file = LabelFile.of_bytes(f"incoming/{key}", body, Limits(), Deadline.in_seconds(60))
    assert isinstance(source_for(file, Limits()), format)

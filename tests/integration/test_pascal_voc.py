"""Pascal VOC through the whole pipeline: a zip of `Annotations/*.xml` (or one `.xml`) -> validator -> queue ->
importer -> fake Encord -> SDK read-back.

`samples/voc/Annotations/` (the example in docs/format-voc.md) is zipped here as an exporter would, with
`JPEGImages/` beside it. Expected values are the sample's 1-based pixel corners turned into continuous
coordinates (`xmin - 1`, `xmax - xmin + 1`) divided by the image size, written out by hand.
"""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from encord.objects import ChecklistAttribute, LabelRowV2, Object, RadioAttribute, TextAttribute

from label_importer.model.data_units import DataUnit, DataUnitIndex
from label_importer.model.jobs import JobStatus
from label_importer.model.limits import Limits
from label_importer.model.project import ProjectView
from label_importer.runtime.deadline import Deadline
from label_importer.sources.formats import source_for
from label_importer.sources.label_file import LabelFile
from label_importer_cli.commands import main
from local.fake_encord import build_ontology
from local.pipeline import Pipeline

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "voc" / "Annotations"
EPSILON = 1e-9
MAPPING = {
    "objects": {"Cherry": "Cherry"},
    "attributes": {"pose": "Description", "truncated": "Defects", "difficult": "Ripeness"},
    "options": {"truncated": "Crack", "1": "Unripe", "0": "Ripe"},
}


def voc_zip(mapping: dict[str, Any] | None = None, **replaced: str) -> bytes:
    """The sample as a VOC export zip; `replaced` swaps a document's text (by file name)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("JPEGImages/cherry_001.jpg", b"\xff\xd8 not read")
        archive.writestr("ImageSets/Main/train.txt", "cherry_001\npersimmon\n")
        for path in sorted(SAMPLE.glob("*.xml")):
            archive.writestr(f"Annotations/{path.name}", replaced.get(path.name, path.read_text()))
        if mapping is not None:
            archive.writestr("encord.json", json.dumps(mapping))
    return buffer.getvalue()


class Orchard:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        encord = pipeline.stack.encord
        self.cherry = encord.add_image("orchard/cherry_001.jpg", width=640, height=480)
        self.persimmon = encord.add_image("persimmon.jpg", width=100, height=50)

    def rows(self) -> dict[str, LabelRowV2]:
        return self.pipeline.stack.read_back([self.cherry, self.persimmon])

    def errors(self, job_id: str) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.pipeline.report(job_id, "errors.jsonl").splitlines()]


@pytest.fixture
def orchard(pipeline: Pipeline) -> Orchard:
    return Orchard(pipeline)


def boxes(row: LabelRowV2) -> dict[str, list[list[float]]]:
    found: dict[str, list[list[float]]] = {}
    for instance in row.get_object_instances():
        c = instance.get_annotation(0).coordinates
        if instance.ontology_item.title == "Persimmon":
            value = [coordinate for point in c.values for coordinate in (point.x, point.y)]
        else:
            value = [c.top_left_x, c.top_left_y, c.width, c.height]
        found.setdefault(instance.ontology_item.title, []).append(value)
    return {title: sorted(values) for title, values in found.items()}


def approx(values: list[float]) -> Any:
    return pytest.approx(values, abs=EPSILON)


def test_every_object_of_the_sample_lands_where_its_pixels_say(orchard: Orchard) -> None:
    job = orchard.pipeline.run("incoming/voc.zip", voc_zip())

    assert (job.status, job.total_records, job.rows_imported, job.labels_added) == (JobStatus.COMPLETED, 5, 2, 5)
    rows = orchard.rows()
    assert boxes(rows[orchard.cherry]) == {
        "Cherry": [approx([0.0, 0.0, 0.1, 0.1]), approx([0.5, 0.5, 0.5, 0.5])],  # 1..64 x 1..48; 321..640 x 241..480
        "Other type of fruit": [approx([100 / 640, 50 / 480, 100 / 640, 100 / 480])],  # 101..200 x 51..150
    }
    assert boxes(rows[orchard.persimmon]) == {
        "Cherry": [approx([0.5, 0.5, 0.5, 0.5])],  # 51..100 x 26..50 of 100x50
        "Persimmon": [approx([0.1, 0.1, 0.6, 0.1, 0.6, 0.6])],  # the <polygon>, as written
    }
    # The demo ontology has no attribute titled difficult, truncated or pose: without a mapping they are left out.
    for row in rows.values():
        for instance in row.get_object_instances():
            for attribute in instance.ontology_item.attributes:
                assert not instance.get_answer(attribute)


def test_the_mapping_names_attributes_and_options(orchard: Orchard) -> None:
    job = orchard.pipeline.run("incoming/voc.zip", voc_zip(MAPPING))

    assert (job.status, job.labels_added) == (JobStatus.COMPLETED, 5)
    ontology = orchard.pipeline.stack.encord_project().ontology_structure
    cherry = ontology.get_child_by_title("Cherry", type_=Object)
    description = cherry.get_child_by_title("Description", type_=TextAttribute)
    defects = cherry.get_child_by_title("Defects", type_=ChecklistAttribute)
    ripeness = cherry.get_child_by_title("Ripeness", type_=RadioAttribute)
    answers = set()
    for row in orchard.rows().values():
        for instance in row.get_object_instances():
            if instance.ontology_item.title == "Cherry":
                box = instance.get_annotation(0).coordinates
                answers.add(
                    (
                        round(box.top_left_x, 6),
                        instance.get_answer(description),
                        tuple(option.title for option in instance.get_answer(defects)),
                        instance.get_answer(ripeness).title,
                    )
                )
    assert answers == {
        (0.0, "Frontal", (), "Ripe"),  # truncated 0 ticks nothing; difficult 0 is option "0" -> Ripe
        (0.5, None, ("Crack",), "Unripe"),  # pose Unspecified is no answer; truncated 1 -> option "truncated"
        (0.5, "Rear", (), "Unripe"),  # persimmon.jpg's cherry, difficult 1
    }


def test_one_xml_file_is_one_document(orchard: Orchard) -> None:
    job = orchard.pipeline.run("incoming/persimmon.xml", (SAMPLE / "persimmon.xml").read_bytes())

    assert (job.status, job.total_records, job.labels_added) == (JobStatus.COMPLETED, 2, 2)
    assert boxes(orchard.rows()[orchard.persimmon])["Cherry"] == [approx([0.5, 0.5, 0.5, 0.5])]


def test_importing_the_same_zip_again_adds_nothing(orchard: Orchard) -> None:
    first = orchard.pipeline.run("incoming/voc.zip", voc_zip())
    again = orchard.pipeline.run("incoming/voc.zip", voc_zip())

    assert first.job_id != again.job_id
    assert (again.status, again.labels_added) == (JobStatus.COMPLETED, 0)
    assert sum(len(row.get_object_instances()) for row in orchard.rows().values()) == 5


def test_a_rollback_removes_the_imported_objects(orchard: Orchard, capsys: pytest.CaptureFixture[str]) -> None:
    job = orchard.pipeline.run("incoming/voc.zip", voc_zip())
    assert job.labels_added == 5

    assert main(["rollback", job.job_id]) == 0

    assert all(not row.get_object_instances() for row in orchard.rows().values())
    assert orchard.pipeline.job(job.job_id).status is JobStatus.ROLLED_BACK


def test_a_class_mapped_to_null_is_left_out_and_counted(orchard: Orchard) -> None:
    job = orchard.pipeline.run("incoming/voc.zip", voc_zip({"objects": {"other type of fruit": None}}))

    assert (job.status, job.records_left_out, job.labels_added) == (JobStatus.COMPLETED, 1, 4)
    assert "Other type of fruit" not in boxes(orchard.rows()[orchard.cherry])


def test_the_mapping_names_a_data_unit_and_problems_point_into_the_documents(orchard: Orchard) -> None:
    renamed = (SAMPLE / "persimmon.xml").read_text().replace("persimmon.jpg", "IMG_0042.JPG")
    outside = (SAMPLE / "cherry_001.xml").read_text().replace("<xmax>200</xmax>", "<xmax>641</xmax>")
    mapping = {"on_error": "skip-invalid", "data_units": {"IMG_0042.JPG": "persimmon.jpg"}}

    job = orchard.pipeline.run(
        "incoming/voc.zip", voc_zip(mapping, **{"persimmon.xml": renamed, "cherry_001.xml": outside})
    )

    assert (job.status, job.invalid_records, job.labels_added) == (JobStatus.COMPLETED, 1, 4)
    assert [(e["line"], e["code"], e["field"]) for e in orchard.errors(job.job_id)] == [
        (3, "OUT_OF_RANGE", "Annotations/cherry_001.xml:/annotation/object[3]/bndbox")
    ]
    assert len(boxes(orchard.rows()[orchard.persimmon])["Cherry"]) == 1


def test_an_unknown_option_is_located_on_its_voc_field(orchard: Orchard) -> None:
    mapping = {"attributes": {"pose": "Ripeness"}}  # Frontal, Left, Rear are no Ripeness option

    job = orchard.pipeline.run("incoming/voc.zip", voc_zip(mapping))

    assert job.status is JobStatus.REJECTED
    assert {(e["line"], e["code"], e["field"]) for e in orchard.errors(job.job_id)} == {
        (1, "UNKNOWN_OPTION", "Annotations/cherry_001.xml:/annotation/object[1]/pose"),
        (5, "UNKNOWN_OPTION", "Annotations/persimmon.xml:/annotation/object[2]/pose"),
    }


def test_a_mapped_attribute_no_object_has_is_reported_on_the_mapping(orchard: Orchard) -> None:
    job = orchard.pipeline.run("incoming/voc.zip", voc_zip({"attributes": {"difficult": "Dificulty"}}))

    assert job.status is JobStatus.REJECTED
    assert [(e["line"], e["code"], e["field"]) for e in orchard.errors(job.job_id)] == [
        (0, "UNKNOWN_ATTRIBUTE", "encord.json.attributes.difficult")
    ]


def test_documents_without_objects_are_an_empty_file(orchard: Orchard) -> None:
    empty = "<annotation><filename>persimmon.jpg</filename><size><width>100</width><height>50</height></size>"
    job = orchard.pipeline.run("incoming/empty.xml", (empty + "</annotation>").encode())

    assert job.status is JobStatus.REJECTED
    assert [(e["line"], e["code"]) for e in orchard.errors(job.job_id)] == [(0, "EMPTY_FILE")]


def test_reading_every_object_takes_no_more_memory_for_a_larger_archive() -> None:
    """Documents are read one at a time and dropped once their objects are records: four times the documents
    (and objects) take no more memory at the peak, beyond the zip's directory."""
    ontology = build_ontology()

    def peak_reading(documents: int) -> int:
        corners = "<xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax>"
        objects = f"<object><name>cherry</name><bndbox>{corners}</bndbox></object>" * 25
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for index in range(documents):
                archive.writestr(
                    f"Annotations/{index:04d}.xml",
                    f"<annotation><filename>{index:04d}.jpg</filename><size><width>640</width><height>480</height>"
                    f"</size>{objects}</annotation>",
                )
        units = DataUnitIndex(DataUnit(f"h{index}", f"{index:04d}.jpg", 1, 640, 480) for index in range(documents))
        file = LabelFile.of_bytes("incoming/voc.zip", buffer.getvalue(), Limits(), Deadline.in_seconds(600))
        source = source_for(file, Limits())
        source.options()
        source.match(ProjectView(units, ontology))
        tracemalloc.start()
        try:
            records = sum(1 for _ in source.items())
            assert records == documents * 25
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert peak_reading(400) < 1.5 * peak_reading(100)

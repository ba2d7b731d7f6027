"""The bad-file corpus: every file in tests/data/bad/ goes through the real validator handler.

For each, `expected*.json` (one per format family) lists the (line, code) pairs the report must contain, no more
and no less, and where the format has its own way to say where (`labels/0001.txt:4`, a VOC XPath, `row 17`),
the (line, code, field) triples under `located`.
Whatever the file, no exception escapes, Encord gets no write, and nothing is queued.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from encord.objects import OntologyStructure, Shape

from label_importer.checks.ontology_resolver import OntologyResolver
from label_importer.checks.validation import FileIndex, index_records
from label_importer.model.data_units import DataUnit, DataUnitIndex
from label_importer.model.jobs import JobStatus
from label_importer.model.limits import Limits
from label_importer.model.source_items import Record
from label_importer.runtime.deadline import Deadline
from label_importer.runtime.settings import settings_from
from label_importer.runtime.world import World
from label_importer.services.validate import validate_and_chunk
from label_importer.store.s3_objects import label_files
from local.pipeline import Pipeline

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "data" / "bad"
EXPECTED: dict[str, dict[str, Any]] = {
    name: case for path in sorted(BAD.glob("expected*.json")) for name, case in json.loads(path.read_text()).items()
}
OK_LINE = b'{"data_title": "cherry.jpg", "objects": [{"name": "Pedicel", "point": [0.5, 0.5]}]}\n'


@pytest.fixture
def project(pipeline: Pipeline) -> Pipeline:
    return with_the_corpus_data_units(pipeline)


def with_the_corpus_data_units(pipeline: Pipeline) -> Pipeline:
    """The data units the corpus addresses, on the fake (test_offline_validation.py seeds the same)."""
    encord = pipeline.stack.encord
    encord.add_image("cherry.jpg")
    encord.add_image("mask.png", width=4, height=3)
    encord.add_video("orchard.mp4", number_of_frames=10)
    encord.add_image("twin.jpg")
    encord.add_image("twin.jpg")
    encord.add_image_group("inspection", [(640, 480), (4, 3), (640, 480)])
    encord.add_dicom_series("CT chest", number_of_slices=6)
    encord.reset_counts()
    return pipeline


def reported_problems(pipeline: Pipeline, job_id: str) -> list[dict[str, Any]]:
    """What the rejected job's report says, after checking that nothing was imported or queued."""
    job = pipeline.ended_with_reports(job_id)
    assert job.status is JobStatus.REJECTED
    assert pipeline.stack.encord.write_requests() == 0
    assert pipeline.queued_messages() == 0
    errors = [orjson.loads(line) for line in pipeline.report(job_id, "errors.jsonl").splitlines()]
    assert all(error["message"] for error in errors)
    return errors


def reported(pipeline: Pipeline, job_id: str) -> set[tuple[int, str]]:
    return {(error["line"], error["code"]) for error in reported_problems(pipeline, job_id)}


def test_the_corpus_is_large_and_every_file_has_an_expectation() -> None:
    files = {path.name for path in BAD.iterdir() if not path.name.startswith("expected")}
    assert files == set(EXPECTED) and len(files) >= 60


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_bad_file_is_rejected_with_its_problems_by_line(project: Pipeline, name: str) -> None:
    key = EXPECTED[name].get("key", f"incoming/{name}")

    job_id = project.drop(key, (BAD / name).read_bytes())

    problems = reported_problems(project, job_id)
    assert {(error["line"], error["code"]) for error in problems} == {
        (line, code) for line, code in EXPECTED[name]["expected"]
    }
    located = {(error["line"], error["code"], error["field"]) for error in problems}
    assert {tuple(where) for where in EXPECTED[name].get("located", [])} <= located


def test_a_line_over_the_limit_is_reported_without_reading_it_whole(project: Pipeline) -> None:
    long_line = b'{"data_title": "cherry.jpg", "objects": [], "x": "' + b"a" * (300 << 10) + b'"}\n'
    job_id = project.drop("incoming/long-line.jsonl", OK_LINE + long_line + OK_LINE)
    assert reported(project, job_id) == {(2, "LINE_TOO_LONG")}


def test_too_many_records_rejects_whatever_the_policy(project: Pipeline) -> None:
    body = b'{"on_error": "skip-invalid"}\n' + b'{"data_title": "cherry.jpg"}\n' * 5001
    job_id = project.drop("incoming/too-many.jsonl", body)
    assert reported(project, job_id) == {(5002, "TOO_MANY_RECORDS")}


def test_a_file_over_the_size_limit_is_not_read(project: Pipeline) -> None:
    event = project.upload("incoming/huge.jsonl", OK_LINE)
    event["Records"][0]["s3"]["object"]["size"] = 1 << 40  # what S3 reports for a 1 TiB object
    assert reported(project, project.validate_event(event)) == {(0, "FILE_TOO_LARGE")}


def test_no_project_anywhere_is_an_error(project: Pipeline) -> None:
    """With no default project deployed, a file that names none cannot be imported."""
    config = settings_from({**os.environ, "DEFAULT_PROJECT_HASH": ""})
    [ref] = label_files(project.upload("incoming/no-project.jsonl", OK_LINE))

    job = validate_and_chunk(ref, config, World.from_settings(config), Deadline.in_seconds(900))

    assert reported(project, job.job_id) == {(0, "MISSING_PROJECT")}


def test_a_skeleton_without_a_template_is_a_problem_of_its_line() -> None:
    """The demo project's skeleton has its template, so this shows the code against an ontology that lost it (a
    template can be deleted): the line is reported, where the validator used to stop with StopIteration."""
    ontology = OntologyStructure()
    ontology.add_object("Hand", Shape.SKELETON)
    units = DataUnitIndex([DataUnit("img", "hand.jpg", 1, 640, 480)])
    line = b'{"data_title": "hand.jpg", "objects": [{"name": "Hand", "skeleton": {"thumb": [0.1, 0.2]}}]}'

    index = index_records([Record(1, line)], units, OntologyResolver(ontology), FileIndex(max_problems=10), Limits())

    assert [(problem.line, problem.code) for problem in index.problems] == [(1, "NO_SKELETON_TEMPLATE")]


def test_a_coco_category_mapped_to_a_skeleton_without_a_template_is_unmatched() -> None:
    """The same ontology, reached from a COCO keypoints category: reported on the category, no crash."""
    from label_importer.model.project import ProjectView
    from label_importer.sources.coco.document import read_sections
    from label_importer.sources.coco.format import checked
    from label_importer.sources.coco.mapping import map_document

    ontology = OntologyStructure()
    ontology.add_object("Hand", Shape.SKELETON)
    units = DataUnitIndex([DataUnit("img", "hand.jpg", 1, 640, 480)])
    document = {
        "images": [{"id": 1, "file_name": "hand.jpg", "width": 640, "height": 480}],
        "annotations": [],
        "categories": [{"id": 1, "name": "hand", "keypoints": ["thumb"]}],
    }
    sections = read_sections(io.BytesIO(orjson.dumps(document)), max_images=10, max_categories=10)
    coco, problems = checked(sections)
    assert problems == []

    _, problems = map_document(coco.images, coco.categories, coco.options, ProjectView(units, ontology))

    assert [(problem.field, problem.code) for problem in problems] == [("categories[0].name", "NO_SKELETON_TEMPLATE")]


def test_every_error_code_in_the_readme_is_produced_by_a_test_here() -> None:
    readme = (ROOT / "docs" / "operations.md").read_text()
    table = readme[readme.index("Error codes") : readme.index("### Limits")]
    first_cells = re.findall(r"^\| (`[^|]+)\|", table, flags=re.MULTILINE)
    documented = {code for cell in first_cells for code in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}
    produced = {code for case in EXPECTED.values() for _, code in case["expected"]}
    produced |= {"LINE_TOO_LONG", "TOO_MANY_RECORDS", "FILE_TOO_LARGE", "MISSING_PROJECT"}  # the tests above
    produced |= {"DATA_UNIT_TOO_LARGE"}  # test_terminal_states.py: it takes a megabyte of labels
    produced |= {"NO_SKELETON_TEMPLATE"}  # against an ontology of its own, above
    produced |= {"TOO_MANY_ENTRIES"}  # tests/unit/test_archive.py: it takes an archive of 100 001 entries
    assert documented == produced

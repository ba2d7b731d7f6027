"""CSV classification files through the whole pipeline: S3 -> validator -> queue -> importer -> fake Encord -> SDK.

`samples/csv/tags.csv` (the example in docs/format-csv.md) has a radio, a checklist and a text answer, a video
row with frames, and a `# {…}` mapping line that renames a classification, an option and a data unit and leaves
one classification out. What is read back is written out here by hand from the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from encord.objects import LabelRowV2

from label_importer.model.jobs import JobStatus
from label_importer.services.rollback import rollback_job_id
from label_importer_cli.commands import main
from local.pipeline import Pipeline

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "csv" / "tags.csv"
KEY = "incoming/tags.csv"


@pytest.fixture
def units(pipeline: Pipeline) -> dict[str, str]:
    encord = pipeline.stack.encord
    return {
        "a.jpg": encord.add_image("a.jpg"),
        "b.jpg": encord.add_image("b.jpg"),
        "orchard.mp4": encord.add_video("orchard.mp4", number_of_frames=10),
    }


def answers(row: LabelRowV2) -> set[tuple[str, Any, tuple[int, ...]]]:
    """Each classification on a row as (question, answer, frames), answers as the titles a user sees."""
    found = set()
    for instance in row.get_classification_instances():
        answer = instance.get_answer()
        if isinstance(answer, list):
            shown: Any = tuple(sorted(option.title for option in answer))
        else:
            shown = answer if isinstance(answer, str) else answer.title
        frames = tuple(sorted(annotation.frame for annotation in instance.get_annotations()))
        found.add((instance.ontology_item.attributes[0].title, shown, frames))
    return found


def read_back(pipeline: Pipeline, units: dict[str, str]) -> dict[str, set[tuple[str, Any, tuple[int, ...]]]]:
    rows = pipeline.stack.read_back(list(units.values()))
    return {title: answers(rows[data_hash]) for title, data_hash in units.items()}


EXPECTED = {
    "a.jpg": {("Blueberry or cherry?", "Cherry", (0,)), ("Many types of fruit?", ("Apple", "Kiwi"), (0,))},
    "b.jpg": {("Caption", "Two cherries, one leaf", (0,))},
    "orchard.mp4": {("Blueberry or cherry?", "Blueberry", (0, 2, 3, 4)), ("Caption", "Ripe", (7,))},
}


def test_the_sample_imports_and_reads_back_as_written(pipeline: Pipeline, units: dict[str, str]) -> None:
    job = pipeline.run(KEY, SAMPLE.read_bytes())

    assert job.status is JobStatus.COMPLETED
    assert (job.total_records, job.labels_added) == (6, 5)  # the row mapped to null is left out
    assert read_back(pipeline, units) == EXPECTED


def test_a_reimport_in_append_adds_nothing(pipeline: Pipeline, units: dict[str, str]) -> None:
    pipeline.run(KEY, SAMPLE.read_bytes())

    again = pipeline.run("incoming/tags-again.csv", SAMPLE.read_bytes())

    assert (again.status, again.labels_added) == (JobStatus.COMPLETED, 0)
    assert read_back(pipeline, units) == EXPECTED


def test_data_hash_column_feature_hash_mapping_and_case_of_the_suffix(
    pipeline: Pipeline, units: dict[str, str]
) -> None:
    body = (
        '# {"classifications": {"which": "clBluChe"}}\n'
        "data_hash,classification,answer\n"
        f"{units['b.jpg']},which,Blueberry\n"
    ).encode()

    job = pipeline.run("incoming/BY-HASH.CSV", body)

    assert (job.status, job.labels_added) == (JobStatus.COMPLETED, 1)
    [row] = pipeline.stack.read_back([units["b.jpg"]]).values()
    assert answers(row) == {("Blueberry or cherry?", "Blueberry", (0,))}


def test_a_rollback_undoes_the_import(
    pipeline: Pipeline, units: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    job = pipeline.run(KEY, SAMPLE.read_bytes())
    capsys.readouterr()

    assert main(["rollback", job.job_id]) == 0

    assert f"Import job {rollback_job_id(job.job_id)}: COMPLETED" in capsys.readouterr().out
    assert read_back(pipeline, units) == {title: set() for title in units}
    assert pipeline.job(job.job_id).status is JobStatus.ROLLED_BACK


def test_problems_name_the_row_and_column(pipeline: Pipeline, units: dict[str, str]) -> None:
    body = (
        b"data_title,classification,answer,frames\n"
        b"a.jpg,Blueberry or cherry?,Plum,\n"
        b"a.jpg,Ripeness,Yes,\n"
        b"orchard.mp4,Caption,Late,12\n"
        b"a.jpg,Blueberry or cherry?,Cherry,\n"
    )

    job = pipeline.run("incoming/wrong.csv", body)

    assert job.status is JobStatus.REJECTED
    problems = [orjson.loads(line) for line in pipeline.report(job.job_id, "errors.jsonl").splitlines()]
    assert [(p["line"], p["code"], p["field"]) for p in problems] == [
        (2, "UNKNOWN_OPTION", "row 2.answer"),
        (3, "UNKNOWN_CLASSIFICATION", "row 3.classification"),
        (4, "FRAME_OUT_OF_RANGE", "row 4.frames"),
    ]

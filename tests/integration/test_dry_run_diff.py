"""A dry run's diff predicts, data unit by data unit, exactly what importing the same file then does, and writes
nothing to Encord doing so.

Each test drops real files through the handlers onto the fake Encord: a first import, edits through the unmodified
SDK as an annotator makes them, a dry run, then the real import of the same file, whose row outcomes and labels read
back through the SDK are held against the diff.
"""

from __future__ import annotations

import collections
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from encord.objects import Classification, Object, Option
from encord.objects.coordinates import BoundingBoxCoordinates

from label_importer.encord_target.label_builder import label_hashes
from label_importer.model.jobs import Job, JobStatus, RowOutcome, RowStatus
from label_importer.sources.bounded_reading import WRAP_UP_SECONDS
from label_importer.store.jobs import JobStore
from local.keys import generate_ssh_private_key
from local.lambda_runtime import LambdaContext
from local.pipeline import Pipeline
from local.sample_labels import image_records, jsonl
from local.stack import TABLE, user_environment

pytestmark = pytest.mark.integration

TITLES = [f"diff_{i}.jpg" for i in range(5)]
ROOT = Path(__file__).resolve().parents[2]


def records(titles: list[str], *, seed: int = 7) -> list[dict[str, Any]]:
    return list(image_records(titles, seed=seed))


def box(x: float) -> dict[str, Any]:
    return {"name": "Cherry", "bounding_box": {"x": x, "y": 0.1, "w": 0.1, "h": 0.1}}


def hashes_on(pipeline: Pipeline, data_hashes: list[str], branch: str = "main") -> dict[str, set[str]]:
    """Every label hash on each data unit, read back through the SDK (a data unit with no label row has none)."""
    rows = pipeline.stack.read_back(data_hashes, branch)
    return {
        data_hash: set().union(*label_hashes(row)) if row.label_hash is not None else set()
        for data_hash, row in rows.items()
    }


def diff_of(pipeline: Pipeline, job_id: str) -> dict[str, dict[str, Any]]:
    return {
        entry["data_hash"]: entry for entry in map(orjson.loads, pipeline.report(job_id, "diff.jsonl").splitlines())
    }


def outcomes(job: Job) -> dict[str, RowOutcome]:
    jobs = JobStore(TABLE)
    return {row.data_hash: row for status in RowStatus for row in jobs.rows(job.job_id, status)}


def dry_run(pipeline: Pipeline, key: str, body: bytes) -> Job:
    job = pipeline.ended_with_reports(pipeline.drop(key, body, dry_run=True))
    assert job.status is JobStatus.VALIDATED, job.failure
    assert pipeline.queued_messages() == 0
    return job


def assert_predicted(
    pipeline: Pipeline,
    diff: dict[str, dict[str, Any]],
    job: Job,
    before: dict[str, set[str]],
    after: dict[str, set[str]],
) -> None:
    """The diff is what the import did: each row's outcome and reason, the labels it added (counted and read back),
    those it took off, and, for a row it failed, nothing changed."""
    rows = outcomes(job)
    assert set(diff) == set(rows)
    for data_hash, entry in diff.items():
        row = rows[data_hash]
        added = {label["hash"] for label in entry["add"]}
        removed = {label["hash"] for label in entry["remove"]}
        assert (entry["outcome"], entry["reason"], entry["lines"]) == (row.status, row.reason, row.lines)
        assert entry["counts"]["add"] == row.labels_added == len(added)
        assert added == after[data_hash] - before[data_hash]
        assert removed == before[data_hash] - after[data_hash]
        assert {label["hash"] for label in entry["no_op"]} <= before[data_hash] & after[data_hash]
        assert entry["workflow_actions"] == []
        if row.status is RowStatus.FAILED:
            assert after[data_hash] == before[data_hash]
    assert job.labels_added == sum(entry["counts"]["add"] for entry in diff.values())


def annotate(pipeline: Pipeline, data_hash: str, *, add_box_at: float | None = None, answer: str | None = None) -> None:
    """Edit the data unit's labels through the SDK, as an annotator does: draw a box, or answer "Blueberry or
    cherry?" anew (the old answer taken off, a new one put on)."""
    project = pipeline.stack.encord_project()
    [row] = project.list_label_rows_v2(data_hashes=[data_hash])
    row.initialise_labels()
    ontology = project.ontology_structure
    if add_box_at is not None:
        instance = ontology.get_child_by_title("Cherry", type_=Object).create_instance()
        instance.set_for_frames(BoundingBoxCoordinates(height=0.1, width=0.1, top_left_x=add_box_at, top_left_y=0.5))
        row.add_object_instance(instance)
    if answer is not None:
        question = ontology.get_child_by_title("Blueberry or cherry?", type_=Classification)
        for old in row.get_classification_instances(filter_ontology_classification=question):
            row.remove_classification(old)
        new = question.create_instance()
        new.set_answer(question.get_child_by_title(answer, type_=Option))
        new.set_for_frames(0)
        row.add_classification_instance(new)
    row.save()


def test_an_append_dry_run_predicts_the_import_after_annotators_edits_and_reads_only(
    redeployed: Callable[..., Pipeline],
) -> None:
    pipeline = redeployed(BUNDLE_SIZE="2")  # five data units: chunks of 2, 2 and 1
    encord = pipeline.stack.encord
    assert encord is not None
    units = [encord.add_image(title) for title in TITLES]
    first = records(TITLES[:4])
    assert pipeline.run("incoming/first.jsonl", jsonl(first)).status is JobStatus.COMPLETED
    annotate(pipeline, units[0], add_box_at=0.8)
    file_answer = first[1]["classifications"][0]["answer"]
    annotate(pipeline, units[1], answer="Cherry" if file_answer == "Blueberry" else "Blueberry")
    second = [*first, {"data_title": TITLES[2], "objects": [box(0.6)]}, *records(TITLES[4:], seed=11)]
    before = hashes_on(pipeline, units)

    encord.reset_counts()
    job = dry_run(pipeline, "incoming/second.jsonl", jsonl(second))

    assert encord.write_requests() == 0
    counts = collections.Counter(encord.request_counts)
    # The validator's listing of the project, one listing per chunk, one bundled get for each of the two chunks
    # whose data units have label rows; the fifth data unit has none, and none is created.
    assert counts - collections.Counter(get_project=counts["get_project"], get_ontology=counts["get_ontology"]) == {
        "list_label_rows": 1 + 3,
        "get_label_rows": 2,
    }
    assert hashes_on(pipeline, units) == before
    diff = diff_of(pipeline, job.job_id)
    assert [diff[unit]["counts"] for unit in units] == [
        {"add": 0, "no_op": 6, "conflict": 0, "remove": 0},  # a re-upload; the annotator's box is left alone
        {"add": 0, "no_op": 0, "conflict": 1, "remove": 0},  # the annotator's answer contradicts the file's
        {"add": 1, "no_op": 6, "conflict": 0, "remove": 0},  # one box more than the first file
        {"add": 0, "no_op": 6, "conflict": 0, "remove": 0},
        {"add": 6, "no_op": 0, "conflict": 0, "remove": 0},  # no label row yet: all the file's labels are new
    ]
    assert diff[units[1]]["outcome"] == "FAILED" and "different answer" in diff[units[1]]["conflict"][0]
    assert diff[units[4]]["title"] == TITLES[4]
    report = orjson.loads(pipeline.report(job.job_id, "report.json"))
    assert {key: value for key, value in report["diff"].items() if key != "first"} == {
        "rows": 5,
        "would_import": 4,
        "would_fail": 1,
        "add": 7,
        "no_op": 18,
        "conflict": 1,
        "remove": 0,
        "workflow_actions": {},
    }
    assert [entry["data_hash"] for entry in report["diff"]["first"]] == units
    summary = pipeline.report(job.job_id, "summary.txt").decode()
    assert "4 rows would be imported, 1 would fail; 7 labels to add, 18 already there, 1 conflicting" in summary
    assert f"({units[4]} '{TITLES[4]}'): +6 add, =0 already there, -0 remove" in summary
    assert f"Every data unit: reports/{job.job_id}/diff.jsonl" in summary

    real = pipeline.run("incoming/second-for-real.jsonl", jsonl(second))

    assert (real.status, real.rows_imported, real.rows_failed) == (JobStatus.COMPLETED_WITH_ERRORS, 4, 1)
    assert_predicted(pipeline, diff, real, before, hashes_on(pipeline, units))


def test_a_replace_dry_run_predicts_what_goes_and_what_stays(pipeline: Pipeline) -> None:
    encord = pipeline.stack.encord
    assert encord is not None
    units = [encord.add_image(title) for title in TITLES[:3]]
    first = records(TITLES[:3])
    assert pipeline.run("incoming/first.jsonl", jsonl(first)).status is JobStatus.COMPLETED
    annotate(pipeline, units[0], add_box_at=0.8)
    # Keep some of the first file's labels, drop others, bring new ones.
    replacing = [
        {"data_title": TITLES[0], "objects": first[0]["objects"][:2], "classifications": first[0]["classifications"]},
        {"data_title": TITLES[1], "objects": [box(0.3)]},
        first[2],
    ]
    header = {"mode": "replace"}
    before = hashes_on(pipeline, units)

    job = dry_run(pipeline, "incoming/replace.jsonl", jsonl(replacing, header=header))

    diff = diff_of(pipeline, job.job_id)
    assert [diff[unit]["counts"] for unit in units] == [
        {"add": 0, "no_op": 4, "conflict": 0, "remove": 3},  # two objects and the annotator's box go
        {"add": 1, "no_op": 0, "conflict": 0, "remove": 6},
        {"add": 0, "no_op": 6, "conflict": 0, "remove": 0},
    ]
    assert hashes_on(pipeline, units) == before

    real = pipeline.run("incoming/replace-for-real.jsonl", jsonl(replacing, header=header))

    assert real.status is JobStatus.COMPLETED
    assert_predicted(pipeline, diff, real, before, hashes_on(pipeline, units))


def test_a_dry_run_reads_the_branch_the_file_names(pipeline: Pipeline) -> None:
    encord = pipeline.stack.encord
    assert encord is not None
    units = [encord.add_image(title) for title in TITLES[:2]]
    predictions = jsonl(records(TITLES[:2]), header={"branch": "predictions"})
    assert pipeline.run("incoming/predictions.jsonl", predictions).status is JobStatus.COMPLETED

    on_branch = diff_of(pipeline, dry_run(pipeline, "incoming/again.jsonl", predictions).job_id)
    on_main = diff_of(pipeline, dry_run(pipeline, "incoming/main.jsonl", jsonl(records(TITLES[:2]))).job_id)

    assert [on_branch[unit]["counts"]["no_op"] for unit in units] == [6, 6]  # already there, on that branch
    assert [on_main[unit]["counts"]["add"] for unit in units] == [6, 6]  # main has no labels
    assert encord.branches(units[0]) == {"predictions"}  # the dry run on main created no label row there


def test_a_dry_run_under_skip_invalid_diffs_the_valid_rows_and_reports_the_rest(pipeline: Pipeline) -> None:
    encord = pipeline.stack.encord
    assert encord is not None
    units = [encord.add_image(title) for title in TITLES[:2]]
    lines = [*records(TITLES[:2]), {"data_title": "nowhere.jpg", "objects": [box(0.1)]}]

    job = dry_run(pipeline, "incoming/partly.jsonl", jsonl(lines, header={"on_error": "skip-invalid"}))

    assert job.problem_count == 1
    assert "nowhere.jpg" in pipeline.report(job.job_id, "errors.jsonl").decode()
    diff = diff_of(pipeline, job.job_id)
    assert list(diff) == units and all(entry["counts"]["add"] == 6 for entry in diff.values())


def test_a_transient_fault_is_retried_as_the_project_read_is(pipeline: Pipeline) -> None:
    encord = pipeline.stack.encord
    assert encord is not None
    [unit] = [encord.add_image(TITLES[0])]
    body = jsonl(records(TITLES[:1]))
    assert pipeline.run("incoming/first.jsonl", body).status is JobStatus.COMPLETED
    encord.fail_next("get_label_rows", status=503)

    job = dry_run(pipeline, "incoming/again.jsonl", body)

    assert diff_of(pipeline, job.job_id)[unit]["counts"] == {"add": 0, "no_op": 6, "conflict": 0, "remove": 0}


def test_a_dry_run_without_the_time_to_read_the_rows_fails_the_job_saying_so(pipeline: Pipeline) -> None:
    encord = pipeline.stack.encord
    assert encord is not None
    encord.add_image(TITLES[0])
    event = pipeline.upload("incoming/late.jsonl", jsonl(records(TITLES[:1])), dry_run=True)
    # Time enough to validate, not for one read of label rows (an attempt's time) and the report after it.
    attempt_seconds = 3 * int(pipeline.stack.environment["ENCORD_TIMEOUT_SECONDS"])
    short = LambdaContext("ValidateAndChunkFunction", timeout_seconds=WRAP_UP_SECONDS + attempt_seconds / 2)
    encord.reset_counts()

    job = pipeline.ended_with_reports(pipeline.validate(event, short)["jobs"][0]["job_id"])

    assert job.status is JobStatus.FAILED
    assert job.failure is not None and "OUT_OF_TIME" in job.failure and "dry run" in job.failure
    assert encord.request_counts["get_label_rows"] == 0 and encord.write_requests() == 0


def test_the_cli_dry_run_prints_the_diff_whatever_the_file_says(pipeline: Pipeline, tmp_path: Path) -> None:
    encord = pipeline.stack.encord
    assert encord is not None
    units = [encord.add_image(title) for title in TITLES[:2]]
    label_file = tmp_path / "labels.jsonl"
    label_file.write_bytes(jsonl(records(TITLES[:2]), header={"dry_run": False}))
    key_file = tmp_path / "encord-key"
    key_file.write_text(generate_ssh_private_key())
    command = [sys.executable, "-m", "label_importer_cli", "import", str(label_file), "--project", encord.project_hash]
    command += ["--ssh-key-file", str(key_file), "--domain", encord.url, "--out", str(tmp_path / "out"), "--dry-run"]

    done = subprocess.run(command, cwd=ROOT, env=user_environment(), capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    [job_dir] = (tmp_path / "out").iterdir()
    assert "VALIDATED" in done.stdout
    assert "2 rows would be imported, 0 would fail; 12 labels to add" in done.stdout
    assert f"What the import would change, every data unit: {job_dir}/diff.jsonl" in done.stdout
    assert len((job_dir / "diff.jsonl").read_bytes().splitlines()) == 2
    assert encord.write_requests() == 0 and encord.branches(units[0]) == set()


KINDS = ROOT / "samples" / "kinds"


@pytest.mark.parametrize("sample", sorted(path.name for path in KINDS.glob("*.jsonl")))
def test_every_label_kind_on_every_data_type_is_predicted_before_and_after_its_label_row_exists(
    pipeline: Pipeline, sample: str
) -> None:
    encord = pipeline.stack.encord
    assert encord is not None
    units = [  # the data units the samples name (test_label_kinds.py), with no label row yet
        encord.add_image("fruit.jpg", width=640, height=480),
        encord.add_image("mask.png", width=4, height=3),
        encord.add_video("orchard.mp4", number_of_frames=5),
        encord.add_image_group("inspection", [(640, 480), (4, 3), (640, 480)]),
        encord.add_image_sequence("drone-pass", number_of_images=4),
        encord.add_dicom_series("CT chest", number_of_slices=6),
    ]
    body = (KINDS / sample).read_bytes()
    before = hashes_on(pipeline, units)

    diff = diff_of(pipeline, dry_run(pipeline, f"incoming/dry-{sample}", body).job_id)

    assert all(encord.branches(unit) == set() for unit in units)  # no label row was created to read
    real = pipeline.run(f"incoming/{sample}", body)
    assert real.status is JobStatus.COMPLETED
    assert_predicted(pipeline, diff, real, before, hashes_on(pipeline, units))
    again = diff_of(pipeline, dry_run(pipeline, f"incoming/again-{sample}", body).job_id)
    assert [entry["counts"]["no_op"] for entry in again.values()] == [entry["counts"]["add"] for entry in diff.values()]
    assert all(entry["counts"]["add"] == 0 for entry in again.values())

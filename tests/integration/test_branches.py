"""Label branches: a file's `branch` option decides which label rows it reads and writes, and nothing else.

Each test drops real files through the handlers onto the fake Encord, which keeps one label row per data unit
and branch as the service does, and reads every branch back through the unmodified SDK
(`list_label_rows_v2(branch_name=…)`).
"""

from __future__ import annotations

import collections
from typing import Any

import orjson
import pytest
from encord.objects import LabelRowV2

from label_importer.model.jobs import JobStatus, RowStatus
from label_importer.store.jobs import JobStore
from label_importer_cli.commands import main
from local.pipeline import Pipeline
from local.sample_labels import jsonl
from local.stack import TABLE

pytestmark = pytest.mark.integration

TITLES = ("branch_a.jpg", "branch_b.jpg", "branch_c.jpg")


def boxes(x: float, titles: tuple[str, ...] = TITLES) -> list[dict[str, Any]]:
    return [
        {"data_title": title, "objects": [{"name": "Cherry", "bounding_box": {"x": x, "y": 0.1, "w": 0.1, "h": 0.1}}]}
        for title in titles
    ]


def xs(row: LabelRowV2) -> set[float]:
    """The boxes on the row, by their x: what tells one file's labels from another's here."""
    return {instance.get_annotation(0).coordinates.top_left_x for instance in row.get_object_instances()}


def on_branch(pipeline: Pipeline, hashes: list[str], branch: str) -> dict[str, set[float]]:
    return {data_hash: xs(row) for data_hash, row in pipeline.stack.read_back(hashes, branch).items()}


@pytest.fixture
def units(pipeline: Pipeline) -> list[str]:
    return [pipeline.stack.encord.add_image(title) for title in TITLES]


def test_one_file_onto_two_branches_gives_each_its_labels_and_leaves_main_untouched(
    pipeline: Pipeline, units: list[str]
) -> None:
    encord = pipeline.stack.encord
    assert pipeline.run("incoming/annotated.jsonl", jsonl(boxes(0.7))).status is JobStatus.COMPLETED
    main_rows = {data_hash: encord.label_row(data_hash) for data_hash in units}

    budgets = []
    for branch in ("predictions", "model/v2-run.1"):
        encord.reset_counts()
        job = pipeline.run(f"incoming/{branch.replace('/', '-')}.jsonl", jsonl(boxes(0.2), header={"branch": branch}))
        assert (job.status, job.branch, job.rows_imported, job.labels_added) == (JobStatus.COMPLETED, branch, 3, 3)
        budgets.append(collections.Counter(encord.request_counts))
        assert orjson.loads(pipeline.report(job.job_id, "report.json"))["branch"] == branch
        assert f"\nBranch: {branch}\n" in pipeline.report(job.job_id, "summary.txt").decode()

    assert on_branch(pipeline, units, "predictions") == {h: {0.2} for h in units}
    assert on_branch(pipeline, units, "model/v2-run.1") == {h: {0.2} for h in units}
    assert {data_hash: encord.label_row(data_hash) for data_hash in units} == main_rows
    assert on_branch(pipeline, units, "main") == {h: {0.7} for h in units}
    assert all(encord.branches(data_hash) == {"main", "predictions", "model/v2-run.1"} for data_hash in units)
    # A branch costs what main does: the validator's listing, then one listing, one bundled create and one
    # bundled save for the chunk.
    for budget in budgets:
        assert budget - collections.Counter(get_project=budget["get_project"], get_ontology=budget["get_ontology"]) == {
            "list_label_rows": 2,
            "create_label_rows": 1,
            "save_label_rows": 1,
        }

    encord.reset_counts()
    again = pipeline.run("incoming/predictions-again.jsonl", jsonl(boxes(0.2), header={"branch": "predictions"}))
    assert (again.rows_imported, again.labels_added) == (3, 0)
    assert encord.request_counts["create_label_rows"] == 0 and encord.request_counts["get_label_rows"] == 1


def test_a_replace_on_a_branch_and_its_rollback_touch_only_that_branch(
    pipeline: Pipeline, units: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert pipeline.run("incoming/annotated.jsonl", jsonl(boxes(0.7))).status is JobStatus.COMPLETED
    first = pipeline.run("incoming/first.jsonl", jsonl(boxes(0.1), header={"branch": "predictions"}))
    replaced = pipeline.run(
        "incoming/second.jsonl", jsonl(boxes(0.3), header={"branch": "predictions", "mode": "replace"})
    )
    assert (first.status, replaced.status) == (JobStatus.COMPLETED, JobStatus.COMPLETED)
    assert on_branch(pipeline, units, "predictions") == {h: {0.3} for h in units}
    assert on_branch(pipeline, units, "main") == {h: {0.7} for h in units}

    assert main(["rollback", replaced.job_id]) == 0
    assert "\nBranch: predictions\n" in capsys.readouterr().out
    assert on_branch(pipeline, units, "predictions") == {h: {0.1} for h in units}
    assert on_branch(pipeline, units, "main") == {h: {0.7} for h in units}


def test_a_later_replace_on_a_branch_does_not_supersede_an_earlier_upload_to_main(
    pipeline: Pipeline, units: list[str]
) -> None:
    """Upload order is per data unit and branch: the replace, uploaded later and imported first, decides the
    branch's labels only; the earlier upload to main still lands."""
    earlier = pipeline.upload("incoming/main.jsonl", jsonl(boxes(0.4)))
    later = pipeline.upload("incoming/branch.jsonl", jsonl(boxes(0.5), header={"branch": "b", "mode": "replace"}))
    later_job = pipeline.validate_event(later)
    pipeline.drain()
    earlier_job = pipeline.validate_event(earlier)
    pipeline.drain()

    assert pipeline.ended_with_reports(earlier_job).rows_imported == 3
    assert JobStore(TABLE).rows(earlier_job, RowStatus.SKIPPED) == []
    assert pipeline.ended_with_reports(later_job).rows_imported == 3
    assert on_branch(pipeline, units, "main") == {h: {0.4} for h in units}
    assert on_branch(pipeline, units, "b") == {h: {0.5} for h in units}


def test_the_branch_option_works_in_every_format_s_mapping(pipeline: Pipeline, units: list[str]) -> None:
    """Formats other than JSON Lines take the option where they take the mapping: here a CSV's `# {…}` line."""
    csv = b'# {"branch": "csv-predictions"}\ndata_title,classification,answer\n' + b"".join(
        f"{title},Blueberry or cherry?,Cherry\n".encode() for title in TITLES
    )
    job = pipeline.run("incoming/classes.csv", csv)
    assert (job.status, job.branch, job.rows_imported) == (JobStatus.COMPLETED, "csv-predictions", 3)
    rows = pipeline.stack.read_back(units, "csv-predictions")
    assert all(len(row.get_classification_instances()) == 1 for row in rows.values())
    assert all(pipeline.stack.encord.branches(data_hash) == {"csv-predictions"} for data_hash in units)


@pytest.mark.parametrize(
    ("branch", "message"),
    [
        ("encord-consensus-1", "Encord's consensus branches"),
        ("ENCORD-review", "Encord's consensus branches"),
        ("has space", "should match pattern"),
        ("", "should match pattern"),
        ("a#b", "should match pattern"),
        ("x" * 101, "should match pattern"),
        (7, "valid string"),
    ],
)
def test_a_branch_name_encord_keeps_for_itself_or_cannot_hold_is_rejected_before_anything_is_written(
    pipeline: Pipeline, units: list[str], branch: Any, message: str
) -> None:
    encord = pipeline.stack.encord
    job = pipeline.run("incoming/bad-branch.jsonl", jsonl(boxes(0.2), header={"branch": branch}))
    assert job.status is JobStatus.REJECTED
    [problem] = [orjson.loads(line) for line in pipeline.report(job.job_id, "errors.jsonl").splitlines()]
    assert (problem["line"], problem["field"]) == (1, "header.branch")
    assert message in problem["message"]
    assert encord.write_requests() == 0

"""Workflow actions after the save (`after_save`): priority, complete, reopen, bundled, recorded and undone.

Each test drops a real file through the handlers onto the fake Encord, which keeps each data unit's task (its
stage and priority) and counts the requests of each action kind, so the bundling is asserted where it costs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from label_importer.model.jobs import JobStatus, RowStatus
from label_importer.store.jobs import JobStore
from label_importer_cli.commands import main
from local.fake_encord import ANNOTATE, COMPLETE
from local.pipeline import Pipeline
from local.sample_labels import jsonl
from local.stack import TABLE

pytestmark = pytest.mark.integration

TITLES = [f"task_{i}.jpg" for i in range(5)]
ACTION_KINDS = ("set_priority", "workflow_complete", "workflow_reopen")


def box(title: str, **record: Any) -> dict[str, Any]:
    placement = {"name": "Cherry", "bounding_box": {"x": 0.1, "y": 0.1, "w": 0.1, "h": 0.1}}
    return {"data_title": title, "objects": [placement], **record}


@pytest.fixture
def two_per_chunk(redeployed: Callable[..., Pipeline]) -> Pipeline:
    return redeployed(BUNDLE_SIZE="2")  # five data units: three chunks


def test_the_file_s_actions_and_each_record_s_own_are_applied_in_one_request_per_kind_and_chunk(
    two_per_chunk: Pipeline,
) -> None:
    pipeline, encord = two_per_chunk, two_per_chunk.stack.encord
    hashes = [encord.add_image(title) for title in TITLES]
    records = [
        box(TITLES[0]),
        box(TITLES[1], after_save={"priority": 0.2}),
        box(TITLES[2], after_save={"reopen": True}),
        box(TITLES[3], after_save={"complete": False}),
        box(TITLES[4]),
        box(TITLES[1]),  # a second line for the same data unit, without actions: the first line's stand
    ]
    job = pipeline.run(
        "incoming/tasks.jsonl", jsonl(records, header={"after_save": {"priority": 0.9, "complete": True}})
    )

    assert job.status is JobStatus.COMPLETED
    assert [encord.task(h) for h in hashes] == [
        (COMPLETE, 0.9),
        (COMPLETE, 0.2),
        (ANNOTATE, 0.9),
        (ANNOTATE, 0.9),
        (COMPLETE, 0.9),
    ]
    # Chunks: (0, 1) complete + priority, (2, 3) reopen + priority, (4) complete + priority.
    assert {kind: encord.request_counts[kind] for kind in ACTION_KINDS} == {
        "set_priority": 3,
        "workflow_complete": 2,
        "workflow_reopen": 1,
    }
    rows = {row.data_hash: row.actions for row in JobStore(TABLE).rows(job.job_id, RowStatus.IMPORTED)}
    assert rows == {
        hashes[0]: ("priority", "complete"),
        hashes[1]: ("priority", "complete"),
        hashes[2]: ("priority", "reopen"),
        hashes[3]: ("priority",),
        hashes[4]: ("priority", "complete"),
    }
    report = orjson.loads(pipeline.report(job.job_id, "report.json"))
    assert report["workflow_actions"] == {"priority": 5, "complete": 3, "reopen": 1, "refused": 0}
    summary = pipeline.report(job.job_id, "summary.txt").decode()
    assert "\nWorkflow tasks: 5 prioritised, 3 completed, 1 reopened\n" in summary


def test_a_rollback_puts_priorities_back_and_reopens_what_the_import_completed(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    encord = pipeline.stack.encord
    hashes = [encord.add_image(title) for title in TITLES[:2]]
    header = {"after_save": {"priority": 0.8, "complete": True}}
    job = pipeline.run("incoming/tasks.jsonl", jsonl([box(title) for title in TITLES[:2]], header=header))
    assert [encord.task(h) for h in hashes] == [(COMPLETE, 0.8)] * 2
    encord.reset_counts()

    assert main(["rollback", job.job_id]) == 0
    assert [encord.task(h) for h in hashes] == [(ANNOTATE, 0.5)] * 2  # 0.5 is the fake's first priority
    assert {kind: encord.request_counts[kind] for kind in ACTION_KINDS} == {
        "set_priority": 1,
        "workflow_complete": 0,
        "workflow_reopen": 1,
    }
    assert "\nWorkflow tasks: 2 prioritised, 2 reopened\n" in capsys.readouterr().out


def test_actions_encord_refuses_leave_the_labels_saved_and_the_job_completed_with_errors(pipeline: Pipeline) -> None:
    encord = pipeline.stack.encord
    hashes = [encord.add_image(title) for title in TITLES[:2]]
    encord.fail_next("set_priority", status=400)
    job = pipeline.run(
        "incoming/tasks.jsonl", jsonl([box(t) for t in TITLES[:2]], header={"after_save": {"priority": 1}})
    )

    assert (job.status, job.rows_imported, job.labels_added, job.rows_actions_refused) == (
        JobStatus.COMPLETED_WITH_ERRORS,
        2,
        2,
        2,
    )
    assert [encord.task(h)[1] for h in hashes] == [0.5, 0.5]
    report = orjson.loads(pipeline.report(job.job_id, "report.json"))
    assert [
        row["reason"].startswith("labels saved, but Encord refused the workflow actions")
        for row in report["failed_rows"]
    ] == [True, True]
    assert all(pipeline.stack.read_back(hashes)[h].get_object_instances() for h in hashes)


@pytest.mark.parametrize(
    ("header", "records", "where", "code"),
    [
        (
            {"after_save": {"complete": True, "reopen": True}},
            [box(TITLES[0])],
            (1, "header.after_save"),
            "INVALID_VALUE",
        ),
        ({"after_save": {"priority": 1.5}}, [box(TITLES[0])], (1, "header.after_save.priority"), "OUT_OF_RANGE"),
        (
            None,
            [box(TITLES[0], after_save={"priority": 0.1}), box(TITLES[0], after_save={"priority": 0.3})],
            (2, "after_save"),
            "CONFLICTING_LABELS",
        ),
    ],
)
def test_actions_that_cannot_all_hold_reject_the_file_before_anything_is_written(
    pipeline: Pipeline, header: dict[str, Any] | None, records: list[dict[str, Any]], where: tuple[int, str], code: str
) -> None:
    encord = pipeline.stack.encord
    encord.add_image(TITLES[0])
    job = pipeline.run("incoming/bad-actions.jsonl", jsonl(records, header=header))
    assert job.status is JobStatus.REJECTED
    [problem] = [orjson.loads(line) for line in pipeline.report(job.job_id, "errors.jsonl").splitlines()]
    assert ((problem["line"], problem["field"]), problem["code"]) == (where, code)
    assert encord.write_requests() == 0 and all(encord.request_counts[kind] == 0 for kind in ACTION_KINDS)


def test_a_dry_run_says_which_actions_would_apply_and_applies_none(pipeline: Pipeline) -> None:
    encord = pipeline.stack.encord
    hashes = [encord.add_image(title) for title in TITLES[:2]]
    records = [box(TITLES[0]), box(TITLES[1], after_save={"reopen": True})]
    header = {"dry_run": True, "after_save": {"priority": 0.7, "complete": True}}
    job = pipeline.run("incoming/tasks.jsonl", jsonl(records, header=header))

    assert job.status is JobStatus.VALIDATED
    diff = [orjson.loads(line) for line in pipeline.report(job.job_id, "diff.jsonl").splitlines()]
    assert {row["data_hash"]: row["workflow_actions"] for row in diff} == {
        hashes[0]: ["priority 0.7", "complete"],
        hashes[1]: ["priority 0.7", "reopen"],
    }
    report = orjson.loads(pipeline.report(job.job_id, "report.json"))
    assert report["diff"]["workflow_actions"] == {"priority": 2, "complete": 1, "reopen": 1}
    summary = pipeline.report(job.job_id, "summary.txt").decode()
    assert "\nWorkflow actions that would apply: 1 complete, 2 priority, 1 reopen\n" in summary
    assert [encord.task(h) for h in hashes] == [(ANNOTATE, 0.5)] * 2
    assert all(encord.request_counts[kind] == 0 for kind in ACTION_KINDS)

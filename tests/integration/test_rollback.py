"""Rolling an import back, operated as a user would: `label-importer rollback JOB_ID` (its `main`).

Labels are read back through the unmodified SDK. A hand edit is made through the SDK too, as someone in the
Encord editor would, between the import and its rollback.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from encord.objects import LabelRowV2, Object
from encord.objects.coordinates import PointCoordinate

from label_importer.model.jobs import JobStatus
from label_importer.services.rollback import rollback_job_id
from label_importer.store.jobs import JobStore
from label_importer_cli.commands import main
from local.pipeline import Pipeline
from local.sample_labels import jsonl
from local.stack import TABLE

pytestmark = pytest.mark.integration


def box(title: str, x: float) -> dict[str, Any]:
    return {
        "data_title": title,
        "objects": [{"name": "Cherry", "bounding_box": {"x": x, "y": 0.1, "w": 0.1, "h": 0.1}}],
    }


def labels(row: LabelRowV2) -> dict[str, Any]:
    """Everything a user sees on a row: each object and classification by hash, with geometry and answers."""
    objects = {
        instance.object_hash: (instance.ontology_item.title, instance.get_annotation(0).coordinates.to_dict())
        for instance in row.get_object_instances()
    }
    classifications = {
        instance.classification_hash: (instance.ontology_item.title, str(instance.get_answer()))
        for instance in row.get_classification_instances()
    }
    return {"objects": objects, "classifications": classifications}


@pytest.fixture
def orchard(pipeline: Pipeline) -> dict[str, str]:
    return {title: pipeline.stack.encord.add_image(title) for title in ("a.jpg", "b.jpg", "c.jpg")}


def roll_back(job_id: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["rollback", job_id])
    return code, capsys.readouterr().out


def test_an_append_rollback_removes_exactly_the_jobs_labels_and_a_hand_edit_survives(
    pipeline: Pipeline, orchard: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    earlier = pipeline.run("incoming/earlier.jsonl", jsonl([box("b.jpg", 0.7)]))
    job = pipeline.run(
        "incoming/job.jsonl",
        jsonl(
            [
                box("a.jpg", 0.1),
                box("b.jpg", 0.2),
                {"data_title": "c.jpg", "classifications": [{"name": "Blueberry or cherry?", "answer": "Cherry"}]},
            ]
        ),
    )
    assert (earlier.status, job.status, job.labels_added) == (JobStatus.COMPLETED, JobStatus.COMPLETED, 3)
    project = pipeline.stack.encord_project()
    [row_a] = project.list_label_rows_v2(data_hashes=[orchard["a.jpg"]])
    row_a.initialise_labels()
    pedicel = project.ontology_structure.get_child_by_title("Pedicel", type_=Object)
    by_hand = pedicel.create_instance()
    by_hand.set_for_frames(PointCoordinate(0.5, 0.5), frames=0)
    row_a.add_object_instance(by_hand)
    row_a.save()
    before_rollback = pipeline.stack.read_back(list(orchard.values()))

    code, shown = roll_back(job.job_id, capsys)

    assert code == 0
    assert f"Import job {rollback_job_id(job.job_id)}: COMPLETED" in shown and "Rows: 3 rolled back" in shown
    after = pipeline.stack.read_back(list(orchard.values()))
    a, b, c = (labels(after[orchard[title]]) for title in ("a.jpg", "b.jpg", "c.jpg"))
    assert a == {"objects": {by_hand.object_hash: ("Pedicel", {"0": {"x": 0.5, "y": 0.5}})}, "classifications": {}}
    assert b["objects"] == {
        object_hash: value
        for object_hash, value in labels(before_rollback[orchard["b.jpg"]])["objects"].items()
        if value[1]["x"] == 0.7  # the earlier job's box stays; this job's box at 0.2 is gone
    }
    assert len(b["objects"]) == 1
    assert c == {"objects": {}, "classifications": {}}
    assert pipeline.job(job.job_id).status is JobStatus.ROLLED_BACK
    assert pipeline.job(earlier.job_id).status is JobStatus.COMPLETED


def test_a_replace_rollback_puts_back_exactly_the_labels_it_replaced(
    pipeline: Pipeline, orchard: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    original = [
        box("a.jpg", 0.3),
        {"data_title": "a.jpg", "classifications": [{"name": "Blueberry or cherry?", "answer": "Blueberry"}]},
        box("b.jpg", 0.4),
    ]
    pipeline.run("incoming/original.jsonl", jsonl(original))
    hashes = [orchard["a.jpg"], orchard["b.jpg"]]
    before = {data_hash: labels(row) for data_hash, row in pipeline.stack.read_back(hashes).items()}
    replacing = [
        box("a.jpg", 0.8),
        {"data_title": "a.jpg", "classifications": [{"name": "Blueberry or cherry?", "answer": "Cherry"}]},
        {"data_title": "b.jpg", "objects": [{"name": "Pedicel", "point": [0.2, 0.2]}]},
    ]
    job = pipeline.run("incoming/replace.jsonl", jsonl(replacing, header={"mode": "replace"}))
    replaced = {data_hash: labels(row) for data_hash, row in pipeline.stack.read_back(hashes).items()}
    assert replaced != before

    code, _ = roll_back(job.job_id, capsys)

    assert code == 0
    assert {data_hash: labels(row) for data_hash, row in pipeline.stack.read_back(hashes).items()} == before


def xs(pipeline: Pipeline, data_hash: str) -> set[float]:
    """The x of every box on the data unit, read back through the SDK."""
    row = pipeline.stack.read_back([data_hash])[data_hash]
    return {instance.get_annotation(0).coordinates.top_left_x for instance in row.get_object_instances()}


def test_a_replace_rollback_leaves_a_row_a_later_upload_changed(
    pipeline: Pipeline, orchard: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Putting the row back as it was would erase the later upload's labels: the row is left, and says why."""
    a, b = orchard["a.jpg"], orchard["b.jpg"]
    pipeline.run("incoming/earlier.jsonl", jsonl([box("a.jpg", 0.1), box("b.jpg", 0.1)]))
    replaced = pipeline.run(
        "incoming/replace.jsonl", jsonl([box("a.jpg", 0.2), box("b.jpg", 0.2)], header={"mode": "replace"})
    )
    later = pipeline.run("incoming/later.jsonl", jsonl([box("b.jpg", 0.3)]))

    code, _ = roll_back(replaced.job_id, capsys)

    assert code == 0
    assert (xs(pipeline, a), xs(pipeline, b)) == ({0.1}, {0.2, 0.3})
    rollback = pipeline.ended_with_reports(rollback_job_id(replaced.job_id))
    assert (rollback.rows_rolled_back, rollback.rows_superseded) == (1, 1)
    [left] = orjson.loads(pipeline.report(rollback.job_id, "report.json"))["superseded_rows"]
    assert left["data_hash"] == b and later.job_id in left["reason"]
    capsys.readouterr()
    assert main(["status", rollback.job_id, "--table", TABLE]) == 0
    shown = capsys.readouterr().out
    assert "(1 rolled back, 0 failed, 1 left to later uploads)" in shown and later.job_id in shown


def test_an_append_rollback_keeps_a_label_a_later_upload_also_gave_and_leaves_a_later_replace(
    pipeline: Pipeline, orchard: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = orchard["a.jpg"], orchard["b.jpg"]
    appended = pipeline.run("incoming/append.jsonl", jsonl([box("a.jpg", 0.1), box("a.jpg", 0.4), box("b.jpg", 0.5)]))
    pipeline.run("incoming/same box.jsonl", jsonl([box("a.jpg", 0.1)]))  # the same label: nothing added, but given
    pipeline.run("incoming/replace b.jsonl", jsonl([box("b.jpg", 0.5)], header={"mode": "replace"}))

    code, _ = roll_back(appended.job_id, capsys)

    assert code == 0
    # a: the box only the rolled-back file gave is gone, the one the later file gave too stays; b: the later
    # replace decided its labels (the same box), so the rollback leaves it.
    assert (xs(pipeline, a), xs(pipeline, b)) == ({0.1}, {0.5})
    rollback = pipeline.job(rollback_job_id(appended.job_id))
    assert (rollback.rows_rolled_back, rollback.rows_superseded, rollback.labels_removed) == (1, 1, 1)


def test_a_row_encord_refuses_during_a_rollback_fails_alone_and_the_rest_are_rolled_back(
    pipeline: Pipeline, orchard: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The rollback saves through the same bundles as an import: a rejected bundle is saved again row by row."""
    a, b, c = orchard["a.jpg"], orchard["b.jpg"], orchard["c.jpg"]
    job = pipeline.run("incoming/job.jsonl", jsonl([box("a.jpg", 0.1), box("b.jpg", 0.2), box("c.jpg", 0.3)]))
    pipeline.stack.encord.refuse_saves(b)

    code, _ = roll_back(job.job_id, capsys)

    assert code == 4  # finished with errors
    assert (xs(pipeline, a), xs(pipeline, b), xs(pipeline, c)) == (set(), {0.2}, set())
    rollback = pipeline.ended_with_reports(rollback_job_id(job.job_id))
    assert (rollback.status, rollback.rows_rolled_back, rollback.rows_failed) == (JobStatus.COMPLETED_WITH_ERRORS, 2, 1)
    [failed] = orjson.loads(pipeline.report(rollback.job_id, "report.json"))["failed_rows"]
    assert failed["data_hash"] == b and failed["reason"].startswith("Encord rejected the labels")
    # list, one bundled initialise, the rejected bundled save, then one save per row
    assert rollback.encord_requests == 2 + 1 + 3
    assert pipeline.job(job.job_id).status is JobStatus.COMPLETED  # not all of it was undone


def test_rolling_back_twice_changes_nothing_the_second_time(
    pipeline: Pipeline, orchard: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    job = pipeline.run("incoming/twice.jsonl", jsonl([box("a.jpg", 0.1), box("b.jpg", 0.1)]))
    assert roll_back(job.job_id, capsys)[0] == 0
    pipeline.stack.encord.reset_counts()

    code, shown = roll_back(job.job_id, capsys)

    assert code == 0 and "Rows: 2 rolled back" in shown
    assert pipeline.stack.encord.write_requests() == 0
    assert sum(pipeline.stack.encord.request_counts.values()) == 0


def test_a_rollback_removes_labels_saved_by_an_attempt_that_crashed_before_recording(
    pipeline: Pipeline, orchard: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The journal is written before the save: a retry that finds the labels already there adds nothing to
    it, and the rollback still knows they are this job's."""
    job_id = pipeline.drop("incoming/crash.jsonl", jsonl([box("a.jpg", 0.1), box("b.jpg", 0.2)]))
    pipeline.save_then_die(job_id)
    pipeline.drain()
    assert pipeline.job(job_id).labels_added == 2  # saved by the attempt that crashed: counted from its journal

    assert roll_back(job_id, capsys)[0] == 0

    after = pipeline.stack.read_back([orchard["a.jpg"], orchard["b.jpg"]])
    assert all(not row.get_object_instances() for row in after.values())


def test_only_a_finished_import_can_be_rolled_back(
    pipeline: Pipeline, orchard: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    queued = pipeline.drop("incoming/queued.jsonl", jsonl([box("a.jpg", 0.1)]))
    capsys.readouterr()

    assert main(["rollback", queued]) == 2
    assert "is QUEUED: only a finished import can be rolled back" in capsys.readouterr().err
    assert main(["rollback", "no-such-job"]) == 2
    pipeline.drain()
    assert main(["rollback", queued]) == 0
    assert main(["rollback", rollback_job_id(queued)]) == 2
    assert "is itself a rollback" in capsys.readouterr().err


def test_a_rollback_recorded_before_it_had_counters_of_its_own_reads_as_rolled_back(pipeline: Pipeline) -> None:
    """Rollback jobs once counted their rows as imported and the labels they took off as added: read back, such a
    record says what it did in today's terms."""
    pipeline.stack.client("dynamodb").put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": "JOB#old-rollback"},
            "sk": {"S": "JOB"},
            **{name: {"S": value} for name, value in (("job_id", "old-rollback"), ("status", "COMPLETED"))},
            **{name: {"S": value} for name, value in (("bucket", "b"), ("key", "k"), ("project_hash", "p"))},
            "mode": {"S": "rollback"},
            "version_id": {"NULL": True},
            **{name: {"N": value} for name, value in (("created_at", "1"), ("rows_imported", "3"))},
            "labels_added": {"N": "7"},
        },
    )

    job = JobStore(TABLE).get("old-rollback")

    assert job is not None
    assert (job.rows_rolled_back, job.labels_removed, job.rows_imported, job.labels_added) == (3, 7, 0, 0)

"""Leases that cannot expire under a save: an import or rollback held up by a slow Encord past its lease never
saves over what the next holder wrote. The slow answer is held by the fake until the test releases it, so
nothing here depends on how fast the machine is; the lease is one second, so the next holder gets it soon.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from label_importer.model.jobs import JobStatus
from label_importer.model.leases import LeaseLost
from label_importer.store.leases import DataUnitLeases
from local.lambda_runtime import LambdaContext, drain_queue, load_handler
from local.pipeline import Pipeline
from local.sample_labels import jsonl
from local.stack import TABLE

pytestmark = pytest.mark.integration

TITLES = ["lease_a.jpg", "lease_b.jpg"]


def box(title: str, x: float) -> dict[str, Any]:
    return {
        "data_title": title,
        "objects": [{"name": "Cherry", "bounding_box": {"x": x, "y": 0.1, "w": 0.1, "h": 0.1}}],
    }


def boxes_on(pipeline: Pipeline, hashes: list[str]) -> dict[str, set[float]]:
    """The x of every box on each data unit, read back through the SDK."""
    rows = pipeline.stack.read_back(hashes)
    return {
        data_hash: {instance.get_annotation(0).coordinates.top_left_x for instance in row.get_object_instances()}
        for data_hash, row in rows.items()
    }


@pytest.fixture
def short_leases(redeployed: Callable[..., Pipeline]) -> tuple[Pipeline, list[str]]:
    pipeline = redeployed(LEASE_SECONDS="1")
    hashes = [pipeline.stack.encord.add_image(title) for title in TITLES]
    # Labelled already, so initialising them is a read (get_label_rows) the fake can hold.
    assert pipeline.run("incoming/existing.jsonl", jsonl([box(t, 0.1) for t in TITLES])).status is JobStatus.COMPLETED
    return pipeline, hashes


def next_job_imports_while_held(pipeline: Pipeline, slow_work: Callable[[], object]) -> None:
    """Run `slow_work` in a thread until the fake holds its answer to reading the label rows; meanwhile its
    one-second lease runs out, and the next file's import takes the data units and finishes. Then let it go on."""
    held = pipeline.stack.encord.hold_next("get_label_rows")
    slow = threading.Thread(target=slow_work)
    slow.start()
    try:
        assert held.arrived.wait(timeout=300)  # the rows are read, the answer waits
        next_job = pipeline.drop("incoming/next.jsonl", jsonl([box(t, 0.5) for t in TITLES]))
        drain_queue(pipeline.stack, load_handler("import_labels", container=2))
        assert pipeline.job(next_job).status is JobStatus.COMPLETED
    finally:
        held.release()
        slow.join(timeout=600)
    assert not slow.is_alive()


def test_an_import_that_lost_its_lease_under_a_slow_answer_does_not_save_over_the_next_import(
    short_leases: tuple[Pipeline, list[str]],
) -> None:
    pipeline, hashes = short_leases
    slow_job = pipeline.drop("incoming/slow.jsonl", jsonl([box(t, 0.3) for t in TITLES]))
    next_job_imports_while_held(pipeline, lambda: drain_queue(pipeline.stack, pipeline.import_labels))

    # The slow consumer found its lease gone before saving, read the rows again and added its labels to them.
    assert pipeline.ended_with_reports(slow_job).status is JobStatus.COMPLETED
    assert boxes_on(pipeline, hashes) == {h: {0.1, 0.3, 0.5} for h in hashes}


def test_a_rollback_that_lost_its_lease_under_a_slow_answer_does_not_save_over_the_next_import(
    short_leases: tuple[Pipeline, list[str]],
) -> None:
    pipeline, hashes = short_leases
    undone = pipeline.run("incoming/undone.jsonl", jsonl([box(t, 0.3) for t in TITLES]))
    roll_back = load_handler("rollback", container=3)
    results: list[dict[str, Any]] = []
    next_job_imports_while_held(
        pipeline,
        lambda: results.append(
            roll_back({"job_id": undone.job_id}, LambdaContext("RollbackFunction", timeout_seconds=900))
        ),
    )

    # The rollback saved nothing and says to run it again; run again, it takes off only what it imported.
    [first] = results
    assert first["retry"] is True and "lease" in first["error"]
    assert boxes_on(pipeline, hashes) == {h: {0.1, 0.3, 0.5} for h in hashes}
    again = roll_back({"job_id": undone.job_id}, LambdaContext("RollbackFunction", timeout_seconds=900))
    assert again["status"] == "COMPLETED"
    assert boxes_on(pipeline, hashes) == {h: {0.1, 0.5} for h in hashes}


def test_renewing_a_lease_someone_else_took_fails_and_an_expired_one_still_ours_renews(stack: Any) -> None:
    leases = DataUnitLeases(TABLE, lease_seconds=1)
    assert leases.acquire(["unit-1", "unit-2"], "first", branch="main") == {"unit-1", "unit-2"}
    leases.release(["unit-2"], "first", branch="main")
    assert leases.acquire(["unit-2"], "second", branch="main") == {"unit-2"}
    leases.renew(["unit-1"], "first", branch="main")  # still the first holder's: renewed
    with pytest.raises(LeaseLost):
        leases.renew(["unit-1", "unit-2"], "first", branch="main")  # unit-2 went to another holder


def test_each_branch_of_a_data_unit_has_its_own_lease(stack: Any) -> None:
    """Two imports into different branches of one data unit save different label rows: neither waits."""
    leases = DataUnitLeases(TABLE, lease_seconds=600)
    assert leases.acquire(["unit-1"], "main import", branch="main") == {"unit-1"}
    assert leases.acquire(["unit-1"], "predictions import", branch="predictions") == {"unit-1"}
    assert leases.acquire(["unit-1"], "another", branch="main") == set()
    assert leases.acquire(["unit-1"], "another", branch="predictions") == set()
    leases.release(["unit-1"], "predictions import", branch="predictions")
    assert leases.acquire(["unit-1"], "another", branch="predictions") == {"unit-1"}
    assert leases.acquire(["unit-1"], "another", branch="main") == set()


def test_a_release_that_is_throttled_once_is_retried(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    leases = DataUnitLeases(TABLE, lease_seconds=600)
    held = [f"unit-{i}" for i in range(100)]
    assert leases.acquire(held, "first", branch="main") == set(held)
    write = leases._client.transact_write_items
    calls = {"n": 0}

    def throttled_once(**request: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            error = {"Error": {"Code": "ThrottlingException", "Message": "Rate of requests exceeds the allowed"}}
            raise ClientError(error, "TransactWriteItems")
        return write(**request)

    monkeypatch.setattr(leases._client, "transact_write_items", throttled_once)
    leases.release(held, "first", branch="main")
    assert DataUnitLeases(TABLE, lease_seconds=600).acquire(held, "second", branch="main") == set(held)

"""Files touching the same data units end as if applied one after another, in the order S3 received them.

Two files are uploaded one after the other; their chunks are then put back on the queue in an order that
favours the later file (all of its chunks first, or interleaved, or shuffled), and four consumers drain it. The
labels read back through the SDK must equal what applying the files in upload order gives, every time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from encord.objects import LabelRowV2

from label_importer.model.jobs import JobStatus, RowStatus
from label_importer.store.jobs import JobStore
from local.pipeline import Pipeline
from local.sample_labels import jsonl
from local.stack import TABLE

pytestmark = pytest.mark.integration

IMAGES = 12
BUNDLE_SIZE = "3"  # four chunks per file


def boxes(titles: list[str], seed: int) -> list[dict[str, Any]]:
    """Two boxes per image, distinct per seed, so each file's labels can be told apart."""
    rng = random.Random(seed)
    return [
        {
            "data_title": title,
            "objects": [
                {"name": "Cherry", "bounding_box": {"x": round(rng.uniform(0, 0.5), 4), "y": 0.1, "w": 0.2, "h": 0.2}}
                for _ in range(2)
            ],
        }
        for title in titles
    ]


def shown(row: LabelRowV2) -> set[tuple[str, tuple[tuple[str, Any], ...]]]:
    """The objects a user sees on the row: each one's class and geometry."""
    return {
        (instance.ontology_item.title, tuple(sorted(instance.get_annotation(0).coordinates.to_dict().items())))
        for instance in row.get_object_instances()
    }


def expected(records: list[dict[str, Any]]) -> dict[str, set[tuple[str, tuple[tuple[str, Any], ...]]]]:
    """Per title, the objects the records put there, in the terms of `shown`."""
    result: dict[str, set[tuple[str, tuple[tuple[str, Any], ...]]]] = {}
    for record in records:
        for label in record["objects"]:
            box = label["bounding_box"]
            geometry = {"x": box["x"], "y": box["y"], "w": box["w"], "h": box["h"]}
            result.setdefault(record["data_title"], set()).add((label["name"], tuple(sorted(geometry.items()))))
    return result


Order = Callable[[list[str], list[str]], list[str]]
"""Puts the first and the second file's chunk messages back on the queue in some order."""


def requeue(pipeline: Pipeline, first_job: str, second_job: str, order: Order) -> None:
    """Take every queued chunk off the queue and send them back in `order(first file's, second file's)`."""
    sqs, url = pipeline.stack.client("sqs"), pipeline.stack.queue_url
    taken: dict[str, list[str]] = {first_job: [], second_job: []}
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600).get("Messages"):
        for message in batch:
            taken[orjson.loads(message["Body"])["job_id"]].append(message["Body"])
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )
    assert taken[first_job] and taken[second_job]
    for body in order(taken[first_job], taken[second_job]):
        sqs.send_message(QueueUrl=url, MessageBody=body)


def later_first(first: list[str], second: list[str]) -> list[str]:
    return second + first


def interleaved(first: list[str], second: list[str]) -> list[str]:
    return [message for pair in zip(second, first, strict=True) for message in pair]


def shuffled(first: list[str], second: list[str]) -> list[str]:
    messages = first + second
    random.Random(17).shuffle(messages)
    return messages


@pytest.mark.parametrize("order", [later_first, interleaved, shuffled])
@pytest.mark.parametrize(
    ("first_mode", "second_mode"), [("append", "replace"), ("replace", "replace"), ("replace", "append")]
)
def test_files_end_as_applied_in_upload_order_however_consumers_interleave(
    redeployed: Callable[..., Pipeline],
    first_mode: str,
    second_mode: str,
    order: Order,
) -> None:
    pipeline = redeployed(BUNDLE_SIZE=BUNDLE_SIZE)
    titles = [f"order_{i}.jpg" for i in range(IMAGES)]
    hashes = {title: pipeline.stack.encord.add_image(title) for title in titles}
    existing, first, second = boxes(titles, 1), boxes(titles, 2), boxes(titles, 3)
    assert pipeline.run("incoming/existing.jsonl", jsonl(existing)).status is JobStatus.COMPLETED

    first_job = pipeline.drop("incoming/first.jsonl", jsonl(first, header={"mode": first_mode}))
    second_job = pipeline.drop("incoming/second.jsonl", jsonl(second, header={"mode": second_mode}))
    requeue(pipeline, first_job, second_job, order)
    pipeline.drain(consumers=4)

    sequential = expected(second) if second_mode == "replace" else _union(expected(first), expected(second))
    after = pipeline.stack.read_back(list(hashes.values()))
    assert {title: shown(after[data_hash]) for title, data_hash in hashes.items()} == sequential
    jobs = JobStore(TABLE)
    for job_id in (first_job, second_job):
        job = pipeline.ended_with_reports(job_id)
        assert job.status is JobStatus.COMPLETED
        assert job.rows_imported + job.rows_superseded == IMAGES
    # Only the earlier file can be superseded, and each such row says by which job.
    assert pipeline.job(second_job).rows_superseded == 0
    for row in jobs.rows(first_job, RowStatus.SKIPPED):
        assert second_mode == "replace" and row.reason and row.reason.startswith(f"superseded by job {second_job}")


def _union(*parts: dict[str, set[Any]]) -> dict[str, set[Any]]:
    merged: dict[str, set[Any]] = {}
    for part in parts:
        for title, labels in part.items():
            merged.setdefault(title, set()).update(labels)
    return merged

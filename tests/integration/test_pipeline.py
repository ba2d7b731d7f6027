"""End to end: a file dropped in S3 ends as labels read back through the unmodified encord SDK.

Both handlers run in-process, against moto and the fake Encord server.
Expected Encord values are written out literally (normalised x/y/w/h, option titles), not computed by
the importer's own mapping code.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
from encord.objects.coordinates import BoundingBoxCoordinates, PointCoordinate

from label_importer.model.jobs import JobStatus
from local.pipeline import Pipeline
from local.sample_labels import image_records, jsonl
from local.stack import BUCKET

pytestmark = pytest.mark.integration

QUICKSTART = Path(__file__).resolve().parents[2] / "samples" / "quickstart.jsonl"


def objects_by_title(row) -> dict[str, list]:  # type: ignore[no-untyped-def]
    found: dict[str, list] = {}
    for instance in row.get_object_instances():
        found.setdefault(instance.ontology_item.title, []).append(instance)
    return found


def classification_answers(row) -> dict[str, object]:  # type: ignore[no-untyped-def]
    answers = {}
    for instance in row.get_classification_instances():
        answer = instance.get_answer()
        if isinstance(answer, list):
            answers[instance.ontology_item.title] = sorted(option.title for option in answer)
        else:
            answers[instance.ontology_item.title] = answer if isinstance(answer, str) else answer.title
    return answers


def test_quickstart_file_lands_exactly_as_written(pipeline: Pipeline) -> None:
    cherry, mixed = (
        pipeline.stack.encord.add_image("image_00000.jpg"),
        pipeline.stack.encord.add_image("image_00001.jpg"),
    )

    job = pipeline.run("incoming/quickstart.jsonl", QUICKSTART.read_bytes())

    assert job.status is JobStatus.COMPLETED
    assert (job.total_records, job.total_rows, job.rows_imported, job.rows_failed) == (3, 2, 2, 0)
    rows = pipeline.stack.read_back([cherry, mixed])

    boxes = objects_by_title(rows[cherry])["Cherry"]
    assert len(boxes) == 1
    annotation = boxes[0].get_annotation(0)
    assert annotation.coordinates == BoundingBoxCoordinates(height=0.2, width=0.3, top_left_x=0.1, top_left_y=0.2)
    assert annotation.confidence == pytest.approx(0.93)
    attributes = {attribute.title: attribute for attribute in boxes[0].ontology_item.attributes}
    assert boxes[0].get_answer(attributes["Description"]) == "slightly bruised"
    assert boxes[0].get_answer(attributes["Ripeness"]).title == "Ripe"
    assert [option.title for option in boxes[0].get_answer(attributes["Defects"])] == ["Bruise"]
    assert classification_answers(rows[cherry]) == {"Blueberry or cherry?": "Cherry"}

    # Two lines for the same image were merged into one label row, saved once.
    objects = objects_by_title(rows[mixed])
    assert sorted(objects) == ["Cherry", "Pedicel", "Persimmon"]
    assert objects["Persimmon"][0].get_annotation(0).coordinates.values == [
        PointCoordinate(0.1, 0.1),
        PointCoordinate(0.4, 0.1),
        PointCoordinate(0.25, 0.5),
    ]
    assert objects["Pedicel"][0].get_annotation(0).coordinates == PointCoordinate(0.5, 0.25)
    assert objects["Cherry"][0].get_annotation(0).coordinates == BoundingBoxCoordinates(
        height=0.2, width=0.2, top_left_x=0.6, top_left_y=0.6
    )
    assert classification_answers(rows[mixed]) == {"Many types of fruit?": ["Apple", "Kiwi"]}

    # What the fake Encord stored, in Encord's own wire format.
    stored = pipeline.stack.encord.label_row(cherry)
    assert stored is not None
    [frame_object] = stored["data_units"][cherry]["labels"]["objects"]
    assert frame_object["boundingBox"] == {"h": 0.2, "w": 0.3, "x": 0.1, "y": 0.2}
    assert [answer["range"] for answer in stored["classification_answers"].values()] == [[[0, 0]]]


def test_a_thousand_images_cost_three_encord_requests_per_chunk(pipeline: Pipeline) -> None:
    titles = [f"img_{i:04d}.jpg" for i in range(1000)]
    for title in titles:
        pipeline.stack.encord.add_image(title)
    pipeline.stack.encord.reset_counts()

    job = pipeline.run("incoming/thousand.jsonl", jsonl(image_records(titles)))

    assert job.status is JobStatus.COMPLETED
    assert (job.total_chunks, job.rows_imported) == (10, 1000)
    # Counted as Encord answered them: the round trips the import made, not connections a client gave up on.
    answered = pipeline.stack.encord.answered_counts
    # One listing for the validator, then per chunk: listing, bundled create, bundled save.
    assert answered["list_label_rows"] == 1 + 10
    assert answered["create_label_rows"] == 10
    assert answered["save_label_rows"] == 10
    assert answered["get_label_rows"] == 0
    # Project and ontology: fetched by the validator and at most once by the (warm) import function.
    assert answered["get_project"] <= 2 and answered["get_ontology"] <= 2


def test_a_chunk_mixing_labelled_and_new_rows_costs_four_requests(pipeline: Pipeline) -> None:
    titles = [f"mix_{i:03d}.jpg" for i in range(100)]
    for title in titles:
        pipeline.stack.encord.add_image(title)
    first = pipeline.run("incoming/first-half.jsonl", jsonl(image_records(titles[:50])))
    assert first.status is JobStatus.COMPLETED
    pipeline.stack.encord.reset_counts()

    more_objects = [{"data_title": title, "objects": [{"name": "Pedicel", "point": [0.5, 0.5]}]} for title in titles]
    job = pipeline.run("incoming/all.jsonl", jsonl(more_objects))

    assert (job.status, job.total_chunks) == (JobStatus.COMPLETED, 1)
    answered = pipeline.stack.encord.answered_counts
    assert (answered["list_label_rows"], answered["create_label_rows"], answered["get_label_rows"]) == (2, 1, 1)
    assert answered["save_label_rows"] == 1


def test_a_malformed_file_is_rejected_by_line_and_leaves_encord_untouched(pipeline: Pipeline) -> None:
    pipeline.stack.encord.add_image("ok.jpg")
    body = b"\n".join(
        [
            b'{"mode": "append"}',
            b'{"data_title": "ok.jpg", "objects": [{"name": "Cherry", "bounding_box": {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2}}]}',  # noqa: E501
            b'{"data_title": "missing.jpg"}',
            b'{"data_title": "ok.jpg", "objects": [{"name": "Cherry", "point": [0.1, 0.2]}]}',
            b'{"data_title": "ok.jpg", "classifications": [{"name": "Blueberry or cherry?", "answer": "Grape"}]}',
            b'{"data_title": "ok.jpg", "objects": [{"name": "Banana", "point": [0.1, 1.2]}]}',
            b"{not json",
        ]
    )
    pipeline.stack.encord.reset_counts()

    job_id = pipeline.drop("incoming/broken.jsonl", body)

    job = pipeline.job(job_id)
    assert job.status is JobStatus.REJECTED
    assert (job.total_records, job.invalid_records, job.problem_count) == (6, 5, 5)
    errors = [orjson.loads(line) for line in pipeline.report(job_id, "errors.jsonl").splitlines()]
    assert [(e["line"], e["field"], e["code"]) for e in errors] == [
        (3, "data_title", "UNKNOWN_DATA_UNIT"),
        (4, "objects[0].point", "SHAPE_MISMATCH"),
        (5, "classifications[0].answer", "UNKNOWN_OPTION"),
        (6, "objects[0].point[1]", "OUT_OF_RANGE"),
        (7, "", "INVALID_JSON"),
    ]
    assert "Grape" in errors[2]["message"] and "'Blueberry', 'Cherry'" in errors[2]["message"]
    report = orjson.loads(pipeline.report(job_id, "report.json"))
    assert (report["status"], report["problems"]["count"]) == ("REJECTED", 5)
    assert b"line 3, data_title: [UNKNOWN_DATA_UNIT]" in pipeline.report(job_id, "summary.txt")
    assert pipeline.stack.encord.write_requests() == 0
    assert pipeline.queued_messages() == 0
    tags = pipeline.stack.client("s3").get_object_tagging(Bucket=BUCKET, Key="incoming/broken.jsonl")["TagSet"]
    assert {tag["Key"]: tag["Value"] for tag in tags} == {"import-job-id": job_id, "import-status": "REJECTED"}


def test_a_duplicated_s3_event_starts_no_second_import(pipeline: Pipeline) -> None:
    titles = [f"dup_{i}.jpg" for i in range(150)]
    for title in titles:
        pipeline.stack.encord.add_image(title)
    event = pipeline.upload("incoming/dup.jsonl", jsonl(image_records(titles)))

    first, second = pipeline.validate_event(event), pipeline.validate_event(event)

    assert first == second
    assert pipeline.queued_messages() == 2  # 150 rows = 2 chunks, queued once
    pipeline.drain()
    assert pipeline.job(first).rows_imported == 150


def test_a_redelivered_chunk_changes_nothing(pipeline: Pipeline) -> None:
    titles = [f"redeliver_{i}.jpg" for i in range(20)]
    hashes = [pipeline.stack.encord.add_image(title) for title in titles]
    job_id = pipeline.drop("incoming/redeliver.jsonl", jsonl(image_records(titles)))
    sqs = pipeline.stack.client("sqs")
    [message] = sqs.receive_message(QueueUrl=pipeline.stack.queue_url, VisibilityTimeout=0)["Messages"]
    pipeline.drain()
    before = {h: len(row.get_object_instances()) for h, row in pipeline.stack.read_back(hashes).items()}
    saves = pipeline.stack.encord.request_counts["save_label_rows"]

    sqs.send_message(QueueUrl=pipeline.stack.queue_url, MessageBody=message["Body"])  # SQS delivers it again
    pipeline.drain()

    assert pipeline.stack.encord.request_counts["save_label_rows"] == saves
    after = {h: len(row.get_object_instances()) for h, row in pipeline.stack.read_back(hashes).items()}
    assert after == before and set(after.values()) == {4}
    job = pipeline.job(job_id)
    assert (job.status, job.rows_imported, job.rows_failed) == (JobStatus.COMPLETED, 20, 0)


def test_a_crash_between_save_and_record_does_not_duplicate_labels(pipeline: Pipeline) -> None:
    titles = [f"crash_{i}.jpg" for i in range(10)]
    hashes = [pipeline.stack.encord.add_image(title) for title in titles]
    job_id = pipeline.drop("incoming/crash.jsonl", jsonl(image_records(titles)))
    pipeline.save_then_die(job_id)

    pipeline.drain()  # SQS redelivers the message after the visibility timeout

    job = pipeline.job(job_id)
    # The labels the dead consumer saved are this job's: counted from its journal, not from the retry.
    assert (job.status, job.rows_imported, job.labels_added) == (JobStatus.COMPLETED, 10, 60)
    rows = pipeline.stack.read_back(hashes)
    assert {len(row.get_object_instances()) for row in rows.values()} == {4}
    assert {len(row.get_classification_instances()) for row in rows.values()} == {2}


def test_re_uploading_the_same_file_in_append_mode_adds_nothing_twice(pipeline: Pipeline) -> None:
    titles = [f"again_{i}.jpg" for i in range(5)]
    hashes = [pipeline.stack.encord.add_image(title) for title in titles]
    body = jsonl(image_records(titles))
    first = pipeline.run("incoming/again.jsonl", body)
    second = pipeline.run("incoming/again.jsonl", body)  # a new S3 version: a new job

    assert first.job_id != second.job_id
    assert (second.status, second.rows_imported, second.labels_added) == (JobStatus.COMPLETED, 5, 0)
    assert {len(row.get_object_instances()) for row in pipeline.stack.read_back(hashes).values()} == {4}


def test_replace_mode_leaves_exactly_the_labels_in_the_file(pipeline: Pipeline) -> None:
    image = pipeline.stack.encord.add_image("replace.jpg")
    pipeline.run("incoming/before.jsonl", jsonl(image_records(["replace.jpg"])))
    body = jsonl(
        [{"data_title": "replace.jpg", "objects": [{"name": "Pedicel", "point": [0.75, 0.5]}]}],
        header={"mode": "replace"},
    )

    job = pipeline.run("incoming/replace.jsonl", body)

    assert job.status is JobStatus.COMPLETED
    row = pipeline.stack.read_back([image])[image]
    assert [(i.ontology_item.title, i.get_annotation(0).coordinates) for i in row.get_object_instances()] == [
        ("Pedicel", PointCoordinate(0.75, 0.5))
    ]
    assert row.get_classification_instances() == []


def test_a_conflicting_answer_in_append_mode_fails_that_row_only(pipeline: Pipeline) -> None:
    first, second = pipeline.stack.encord.add_image("a.jpg"), pipeline.stack.encord.add_image("b.jpg")
    radio = {"name": "Blueberry or cherry?"}
    pipeline.run(
        "incoming/one.jsonl", jsonl([{"data_title": "a.jpg", "classifications": [{**radio, "answer": "Cherry"}]}])
    )

    job = pipeline.run(
        "incoming/two.jsonl",
        jsonl(
            [
                {"data_title": "a.jpg", "classifications": [{**radio, "answer": "Blueberry"}]},
                {"data_title": "b.jpg", "classifications": [{**radio, "answer": "Blueberry"}]},
            ]
        ),
    )

    assert (job.status, job.rows_imported, job.rows_failed) == (JobStatus.COMPLETED_WITH_ERRORS, 1, 1)
    report = orjson.loads(pipeline.report(job.job_id, "report.json"))
    [failed] = report["failed_rows"]
    assert failed["data_hash"] == first and failed["lines"] == [1]
    assert "different answer" in failed["reason"] and "replace" in failed["reason"]
    rows = pipeline.stack.read_back([first, second])
    assert classification_answers(rows[first]) == {"Blueberry or cherry?": "Cherry"}
    assert classification_answers(rows[second]) == {"Blueberry or cherry?": "Blueberry"}


def test_skip_invalid_imports_the_valid_records_and_reports_the_rest(pipeline: Pipeline) -> None:
    image = pipeline.stack.encord.add_image("skip.jpg")
    body = jsonl(
        [
            {"data_title": "skip.jpg", "objects": [{"name": "Pedicel", "point": [0.1, 0.1]}]},
            {"data_title": "skip.jpg", "objects": [{"name": "Pedicel", "point": [0.1, 7]}]},
            {"data_title": "nowhere.jpg", "objects": [{"name": "Pedicel", "point": [0.1, 0.1]}]},
        ],
        header={"on_error": "skip-invalid"},
    )

    job = pipeline.run("incoming/skip.jsonl", body)

    assert (job.status, job.rows_imported, job.invalid_records) == (JobStatus.COMPLETED, 1, 2)
    errors = [orjson.loads(line) for line in pipeline.report(job.job_id, "errors.jsonl").splitlines()]
    assert [(e["line"], e["code"]) for e in errors] == [(3, "OUT_OF_RANGE"), (4, "UNKNOWN_DATA_UNIT")]
    assert len(pipeline.stack.read_back([image])[image].get_object_instances()) == 1


def test_a_dry_run_validates_and_queues_nothing(pipeline: Pipeline) -> None:
    pipeline.stack.encord.add_image("dry.jpg")
    body = jsonl(image_records(["dry.jpg"]), header={"dry_run": True})
    pipeline.stack.encord.reset_counts()

    job_id = pipeline.drop("incoming/dry.jsonl", body)

    assert pipeline.job(job_id).status is JobStatus.VALIDATED
    assert pipeline.queued_messages() == 0
    assert pipeline.stack.encord.write_requests() == 0


def test_gzip_files_and_url_encoded_keys(pipeline: Pipeline) -> None:
    titles = ["café 1.jpg", "café 2.jpg"]
    hashes = [pipeline.stack.encord.add_image(title) for title in titles]

    job = pipeline.run("incoming/my labels (v2).jsonl.gz", gzip.compress(jsonl(image_records(titles))))

    assert (job.status, job.rows_imported) == (JobStatus.COMPLETED, 2)
    assert job.key == "incoming/my labels (v2).jsonl.gz"
    assert {len(row.get_object_instances()) for row in pipeline.stack.read_back(hashes).values()} == {4}


def test_a_chunk_too_big_for_sqs_travels_by_claim_check(pipeline: Pipeline) -> None:
    titles = [f"big_{i}.jpg" for i in range(30)]
    hashes = [pipeline.stack.encord.add_image(title) for title in titles]
    ring = [[round(0.5 + 0.4 * (i % 2) * 0.5, 6), round(i / 1000, 6)] for i in range(1000)]
    body = jsonl([{"data_title": title, "objects": [{"name": "Persimmon", "polygon": ring}]} for title in titles])

    job = pipeline.run("incoming/big.jsonl", body)

    assert (job.status, job.rows_imported) == (JobStatus.COMPLETED, 30)
    stored = pipeline.stack.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"chunks/{job.job_id}/")
    assert [item["Key"] for item in stored["Contents"]] == [f"chunks/{job.job_id}/0.json"]
    polygon = pipeline.stack.read_back(hashes[:1])[hashes[0]].get_object_instances()[0]
    assert len(polygon.get_annotation(0).coordinates.values) == 1000


def test_a_transient_encord_fault_is_retried_within_the_invocation(pipeline: Pipeline) -> None:
    titles = [f"flaky_{i}.jpg" for i in range(3)]
    hashes = [pipeline.stack.encord.add_image(title) for title in titles]
    job_id = pipeline.drop("incoming/flaky.jsonl", jsonl(image_records(titles)))
    pipeline.stack.encord.fail_next("save_label_rows", status=503)

    stats = pipeline.drain()

    assert stats.failures == 0 and stats.messages == 1  # the attempt was repeated, the message never went back
    job = pipeline.job(job_id)
    assert (job.status, job.rows_imported) == (JobStatus.COMPLETED, 3)
    assert {len(row.get_object_instances()) for row in pipeline.stack.read_back(hashes).values()} == {4}


def test_every_label_kind_survives_the_round_trip(pipeline: Pipeline) -> None:
    from encord.common.bitmask_operations import deserialise_bitmask, serialise_bitmask

    image = pipeline.stack.encord.add_image("kinds.jpg", width=4, height=3)
    video = pipeline.stack.encord.add_video("orchard.mp4", number_of_frames=5)
    mask = bytes([1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1])
    skeleton = {"calyx": [0.1, 0.1], "tip": [0.2, 0.9], "left": [0.05, 0.5], "right": [0.3, 0.5]}
    records = [
        {
            "data_title": "kinds.jpg",
            "objects": [
                {
                    "name": "Other type of fruit",
                    "rotatable_bounding_box": {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4, "theta": 30},
                },
                {"name": "Branch", "polyline": [[0.1, 0.1], [0.5, 0.5], [0.9, 0.2]]},
                {"name": "Blueberry", "bitmask": {"rle": serialise_bitmask(mask), "width": 4, "height": 3}},
                {"name": "Strawberry", "skeleton": skeleton},
                {
                    "name": "Whale",
                    "bounding_box": {"x": 0, "y": 0, "w": 0.5, "h": 0.5},
                    "attributes": {"Colour": {"option": "Blue", "attributes": {"Any Other Colours?": "Pink"}}},
                },
            ],
            "classifications": [{"name": "Caption", "answer": "a fine day"}],
        },
        {
            "data_hash": video,
            "objects": [
                {
                    "name": "Person",
                    "id": "p1",
                    "frames": {"start": 0, "end": 2},
                    "bounding_box": {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2},
                    "attributes": {
                        "Position": [
                            {"answer": "Standing", "frames": 0},
                            {"answer": "Walking", "frames": {"start": 1, "end": 3}},
                        ]
                    },
                },
                {"name": "Person", "id": "p1", "frames": 3, "bounding_box": {"x": 0.2, "y": 0.1, "w": 0.2, "h": 0.2}},
            ],
            "classifications": [{"name": "Blueberry or cherry?", "answer": "Cherry", "frames": {"start": 0, "end": 4}}],
        },
    ]

    job = pipeline.run("incoming/kinds.jsonl", jsonl(records))

    assert (job.status, job.rows_imported) == (JobStatus.COMPLETED, 2)
    # The image, as Encord stores it on the wire.
    stored = {o["name"]: o for o in pipeline.stack.encord.label_row(image)["data_units"][image]["labels"]["objects"]}
    assert stored["Other type of fruit"]["rotatableBoundingBox"] == {
        "h": 0.4,
        "w": 0.3,
        "x": 0.1,
        "y": 0.2,
        "theta": 30,
    }
    assert stored["Branch"]["polyline"] == {
        "0": {"x": 0.1, "y": 0.1},
        "1": {"x": 0.5, "y": 0.5},
        "2": {"x": 0.9, "y": 0.2},
    }
    assert {(v["name"], v["x"], v["y"]) for v in stored["Strawberry"]["skeleton"].values()} == {
        ("calyx", 0.1, 0.1),
        ("tip", 0.2, 0.9),
        ("left", 0.05, 0.5),
        ("right", 0.3, 0.5),
    }
    bitmask = stored["Blueberry"]["bitmask"]
    assert (bitmask["width"], bitmask["height"]) == (4, 3)
    assert deserialise_bitmask(bitmask["rleString"], 12) == mask
    # And read back through the SDK.
    rows = pipeline.stack.read_back([image, video])
    [whale] = objects_by_title(rows[image])["Whale"]
    colour = next(a for a in whale.ontology_item.attributes if a.title == "Colour")
    [nested] = colour.options[0].attributes
    assert (whale.get_answer(colour).title, whale.get_answer(nested).title) == ("Blue", "Pink")
    assert classification_answers(rows[image]) == {"Caption": "a fine day"}
    [person] = rows[video].get_object_instances()
    assert [(a.frame, a.coordinates.top_left_x) for a in person.get_annotations()] == [
        (0, 0.1),
        (1, 0.1),
        (2, 0.1),
        (3, 0.2),
    ]
    position = person.ontology_item.attributes[0]
    assert sorted((a.answer.title, [(r.start, r.end) for r in a.ranges]) for a in person.get_answer(position)) == [
        ("Standing", [(0, 0)]),
        ("Walking", [(1, 3)]),
    ]
    [cherry] = rows[video].get_classification_instances()
    assert [a.frame for a in cherry.get_annotations()] == [0, 1, 2, 3, 4]

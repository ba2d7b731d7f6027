"""The local demo: drop a label file into (moto's) S3 and watch it land in (the fake) Encord.

    python -m local.demo [--images 300] [--latency 0.0] [--coco]

Runs the real handlers in-process, as Lambda would: the S3 event goes to the validator, the queue is
drained by the import function in batches, then the job record and report are printed. Exits non-zero
unless the job COMPLETED and every label reads back through the SDK. `--coco` drops a COCO instances file
(five annotations per image) instead of JSON Lines.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import orjson

from label_importer.model.jobs import JobStatus
from local.pipeline import Pipeline
from local.sample_labels import coco_document, image_records, jsonl
from local.stack import BUCKET, local_stack

DEMO_KEY = "incoming/demo labels.jsonl"
COCO_DEMO_KEY = "incoming/demo instances.json"
COCO_ANNOTATIONS_PER_IMAGE = 5
LOG_FILE = Path("demo-output") / "lambda-logs.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="number of images to label (default 300)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the fake Encord adds per request")
    parser.add_argument("--coco", action="store_true", help="drop a COCO instances file instead of JSON Lines")
    args = parser.parse_args(argv)

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    with local_stack(encord_latency=args.latency) as stack:
        pipeline = Pipeline.on(stack)
        titles = [f"image_{i:05d}.jpg" for i in range(args.images)]
        data_hashes = [stack.encord.add_image(title) for title in titles]
        if args.coco:
            key, document = COCO_DEMO_KEY, coco_document(titles, annotations_per_image=COCO_ANNOTATIONS_PER_IMAGE)
            body, records = orjson.dumps(document), len(document["annotations"])
            expected = {title: (COCO_ANNOTATIONS_PER_IMAGE, 0) for title in titles}
        else:
            key, body, records = (
                DEMO_KEY,
                jsonl(image_records(titles), header={"mode": "append", "on_error": "strict"}),
                len(titles),
            )
            expected = {
                title: (len(record["objects"]), len(record["classifications"]))
                for title, record in zip(titles, image_records(titles), strict=True)
            }
        event = pipeline.upload(key, body)
        print(f"Uploaded s3://{BUCKET}/{key}: {records} records, {len(body) / 1024:.0f} KiB")

        stack.encord.reset_counts()
        LOG_FILE.parent.mkdir(exist_ok=True)
        started = time.perf_counter()
        with LOG_FILE.open("w") as log, contextlib.redirect_stdout(log):
            job_id = pipeline.validate_event(event)
            validated = time.perf_counter()
            drained = pipeline.drain()
        finished = time.perf_counter()

        job = pipeline.job(job_id)
        summary = pipeline.report(job_id, "summary.txt")
        print()
        print(summary.decode().rstrip())
        print()
        counts = stack.encord.request_counts
        print("Encord requests: " + ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items())))
        print(
            f"  = {sum(counts.values())} requests for {len(titles)} data units in {job.total_chunks} chunks "
            f"(a per-row loop needs about {2 * len(titles)})"
        )
        print(
            f"Time: {finished - started:.2f} s (validate {validated - started:.2f} s, import "
            f"{finished - validated:.2f} s; {drained.messages} messages in {drained.batches} batch(es))"
        )
        print(f"Lambda logs: {LOG_FILE}")
        read_back = stack.read_back(data_hashes)
        mismatched = [
            row.data_title
            for row in read_back.values()
            if (len(row.get_object_instances()), len(row.get_classification_instances())) != expected[row.data_title]
        ]
        print(
            f"Read back through the SDK: {len(read_back) - len(mismatched)} of {len(titles)} rows carry "
            "exactly the labels in the file"
        )
        ok = job.status is JobStatus.COMPLETED and job.rows_imported == len(titles) and not mismatched
        print("Demo " + ("succeeded" if ok else f"FAILED: job is {job.status}, {len(mismatched)} rows differ"))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

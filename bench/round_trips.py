"""Encord HTTP requests per 1000 data units: the pipeline against the naive per-row loop of the SDK docs.

    python -m bench.round_trips [--units 1000] [--boxes 5]

The fake Encord server counts every request by kind. Each way imports the same bounding boxes onto fresh
images: the naive loop (list, then initialise and save each row), the docs' bundled loop, and the whole
pipeline (validator, SQS, import function). The pipeline's budget is 3 requests per chunk (listing, bundled
initialise, bundled save; 4 if a chunk mixes labelled and unlabelled rows) plus a constant per file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bench.report import lambda_output_discarded, publish
from bench.sdk_loops import boxes, bundled_loop, fresh_images, label_file_records, naive_loop
from local.pipeline import Pipeline
from local.sample_labels import jsonl
from local.stack import LocalStack, local_stack


def counted(stack: LocalStack, run: Callable[[], object]) -> dict[str, int]:
    stack.encord.reset_counts()
    run()
    return dict(stack.encord.request_counts)


def row(way: str, counts: dict[str, int], units: int, **extra: object) -> dict[str, object]:
    total = sum(counts.values())
    return {
        "way": way,
        "requests": total,
        "per_1000_units": round(total * 1000 / units, 1),
        **extra,
        "by_kind": ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items())),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--boxes", type=int, default=5, help="bounding boxes per image")
    args = parser.parse_args(argv)

    rows = []
    with lambda_output_discarded(), local_stack() as stack:
        project = stack.encord_project()
        for way, loop in (("naive loop (docs)", naive_loop), ("bundled loop (docs)", bundled_loop)):
            wanted = boxes(fresh_images(stack, args.units), args.boxes)
            rows.append(row(way, counted(stack, lambda loop=loop, wanted=wanted: loop(project, wanted)), args.units))

        pipeline = Pipeline.on(stack)
        body = jsonl(label_file_records(boxes(fresh_images(stack, args.units), args.boxes)))
        jobs = []
        validator = counted(stack, lambda: jobs.append(pipeline.drop("incoming/round-trips.jsonl", body)))
        importer = counted(stack, pipeline.drain)
        job = pipeline.job(jobs[0])
        assert job.rows_imported == args.units, job
        chunks = job.total_chunks
        rows.append(
            row(
                "pipeline",
                {kind: validator.get(kind, 0) + importer.get(kind, 0) for kind in validator.keys() | importer.keys()},
                args.units,
                chunks=chunks,
                per_file=sum(validator.values()),
                per_chunk=round(sum(importer.values()) / chunks, 2),
            )
        )
    naive, _, ours = rows
    publish(
        "round_trips",
        rows,
        ["way", "requests", "per_1000_units", "chunks", "per_file", "per_chunk", "by_kind"],
        units=args.units,
        boxes_per_unit=args.boxes,
        naive_over_pipeline=round(naive["requests"] / ours["requests"], 1),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

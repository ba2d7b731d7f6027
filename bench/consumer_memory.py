"""Peak memory of the import function on the worst chunk the default limits let through.

    python -m bench.consumer_memory [--chunk-mib 8] [--units 5]

The import function holds a whole chunk as SDK label objects at once (a few hundred bytes per coordinate),
so chunk size in bytes, not rows, is what bounds its memory. This benchmark builds the heaviest chunk the
deployed defaults accept (`--units` data units of polygons at MAX_POLYGON_POINTS' order of size, together
just under MAX_CHUNK_BYTES of label JSON), validates it with the deployed limits, and imports it with the real
import handler in a consumer process of its own, whose peak RSS it reads; a consumer importing one box is
the baseline in the same run. It also shows that the shape that ran a consumer out of memory before (5 data
units x 20 polygons x 40 000 points) is now refused by the validator.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from typing import Any

import orjson

from bench.report import lambda_output_discarded, publish
from label_importer.model.jobs import JobStatus
from label_importer.runtime.settings import Settings
from local.lambda_runtime import cold_start
from local.pipeline import Pipeline
from local.sample_labels import jsonl
from local.stack import LocalStack, local_stack

LAMBDA_MEMORY_MB = 1024
"""The import function's MemorySize in template.yaml."""
_DEFAULT_LIMITS = (
    "max_file_bytes",
    "max_line_bytes",
    "max_records",
    "max_objects_per_data_unit",
    "max_polygon_points",
    "max_chunk_bytes",
)


def _ring(points: int, salt: int) -> list[list[float]]:
    return [
        [round((i * 7919 + salt) % 100_000 / 100_000, 6), round((i * 104_729) % 99_991 / 99_991, 6)]
        for i in range(points)
    ]


def _records(titles: list[str], polygons: int, points: int) -> list[dict[str, Any]]:
    return [
        {
            "data_title": title,
            "objects": [{"name": "Persimmon", "polygon": _ring(points, n * 31 + p)} for p in range(polygons)],
        }
        for n, title in enumerate(titles)
    ]


def _peak_child_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kilobytes on Linux


def _import_in_a_consumer(pipeline: Pipeline, key: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    job_id = pipeline.drop(key, jsonl(records))
    pipeline.drain(processes=True)
    job = pipeline.job(job_id)
    assert job.status is JobStatus.COMPLETED, job
    return {"job": job, "rss_mb": _peak_child_rss_mb()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunk-mib", type=float, default=Settings.model_fields["max_chunk_bytes"].default / (1 << 20))
    parser.add_argument("--units", type=int, default=5)
    parser.add_argument(
        "--before-points", type=int, default=40_000, help="points per polygon of the shape refused now (issue 16)"
    )
    args = parser.parse_args(argv)
    chunk_bytes = int(args.chunk_mib * (1 << 20))
    with lambda_output_discarded(), local_stack() as stack:
        # The deployed defaults, not the small limits the tests use against the fake (MAX_CHUNK_BYTES as asked).
        os.environ.update({name.upper(): str(Settings.model_fields[name].default) for name in _DEFAULT_LIMITS})
        os.environ["MAX_CHUNK_BYTES"] = str(chunk_bytes)
        cold_start()
        rows = _measure(stack, chunk_bytes, args.units, args.before_points)
    worst = rows[1]
    publish(
        "consumer_memory",
        rows,
        ["case", "rows", "label_json_mb", "points", "status", "peak_rss_mb"],
        max_chunk_mib=args.chunk_mib,
        worst_chunk_rss_of_lambda_memory=round(worst["peak_rss_mb"] / LAMBDA_MEMORY_MB, 3),
        worst_chunk_rss_over_baseline=round(worst["peak_rss_mb"] / rows[0]["peak_rss_mb"], 2),
    )
    return 0


def _measure(stack: LocalStack, chunk_bytes: int, units: int, before_points: int) -> list[dict[str, Any]]:
    encord = stack.encord
    assert encord is not None
    pipeline = Pipeline.on(stack)
    encord.add_image("baseline.jpg")
    box = {"name": "Cherry", "bounding_box": {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2}}
    baseline = _import_in_a_consumer(
        pipeline, "incoming/baseline.jsonl", [{"data_title": "baseline.jpg", "objects": [box]}]
    )
    rows = [
        {
            "case": "one box (baseline)",
            "rows": 1,
            "label_json_mb": 0.0,
            "points": 0,
            "status": "COMPLETED",
            "peak_rss_mb": round(baseline["rss_mb"]),
        }
    ]

    titles = [f"worst_{i}.jpg" for i in range(units)]
    for title in titles:
        encord.add_image(title)
    polygons = 20
    per_point = len(jsonl(_records(titles[:1], 1, 1000))) / 1000
    points = min(
        Settings.model_fields["max_polygon_points"].default, int(chunk_bytes * 0.98 / units / polygons / per_point)
    )
    records = _records(titles, polygons, points)
    size = len(jsonl(records))
    worst = _import_in_a_consumer(pipeline, "incoming/worst.jsonl", records)
    rows.append(
        {
            "case": f"worst chunk: {units} units x {polygons} polygons x {points} points",
            "rows": units,
            "label_json_mb": round(size / 1e6, 1),
            "points": units * polygons * points,
            "status": str(worst["job"].status),
            "peak_rss_mb": round(worst["rss_mb"]),
        }
    )

    before = [f"before_{i}.jpg" for i in range(5)]
    for title in before:
        encord.add_image(title)
    refused = pipeline.drop("incoming/before.jsonl", jsonl(_records(before, 20, before_points)))
    job = pipeline.job(refused)
    codes = sorted({orjson.loads(line)["code"] for line in pipeline.report(refused, "errors.jsonl").splitlines()})
    rows.append(
        {
            "case": f"5 units x 20 polygons x {before_points} points (40000 ran a consumer out of memory before)",
            "rows": 5,
            "label_json_mb": round(len(jsonl(_records(before[:1], 20, before_points))) * 5 / 1e6, 1),
            "points": 5 * 20 * before_points,
            "status": f"{job.status} ({', '.join(codes)})",
            "peak_rss_mb": None,
        }
    )
    return rows


if __name__ == "__main__":
    sys.exit(main())

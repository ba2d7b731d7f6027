"""Rows per second with 50 ms of network latency per Encord request: the SDK docs' loops against the pipeline.

    python -m bench.throughput [--units 2000] [--naive-units 100] [--latency 0.05] [--repeat 3]

Every request to the fake Encord server waits `--latency` seconds first, like a round trip to the real API.
Each image gets 5 bounding boxes. Measured side by side in one run, medians of `--repeat` runs:
(a) the naive per-row loop (on `--naive-units` images: at two round trips per row it is slow, and its
rate does not depend on the count), (b) the docs' bundled loop with bundles of 100, the bare-SDK limit,
(c) the whole pipeline (validator, SQS, import function, DynamoDB; on moto) with one consumer, and
(d) with four consumer processes, as four Lambda containers would be. `moto_busy` is the share of the time
moto spent answering the pipeline's AWS requests (one at a time, in this process).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from bench.report import lambda_output_discarded, publish
from bench.sdk_loops import boxes, bundled_loop, fresh_images, label_file_records, naive_loop
from local.pipeline import Pipeline
from local.sample_labels import jsonl
from local.stack import LocalStack, local_stack

BOXES_PER_IMAGE = 5


def timed(stack: LocalStack, run: Callable[[], int]) -> tuple[float, int, float]:
    """Seconds, rows imported, and seconds of it that moto (the local AWS) spent answering requests."""
    started, busy = time.perf_counter(), stack.moto.busy_seconds
    rows = run()
    return time.perf_counter() - started, rows, stack.moto.busy_seconds - busy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--naive-units", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every Encord request")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    rates: dict[str, list[float]] = {}
    moto_shares: dict[str, list[float]] = {}
    with lambda_output_discarded(), local_stack(encord_latency=args.latency) as stack:
        project = stack.encord_project()
        pipeline = Pipeline.on(stack)

        def sdk(loop: Callable[..., int], units: int) -> tuple[float, int, float]:
            wanted = boxes(fresh_images(stack, units), BOXES_PER_IMAGE)
            return timed(stack, lambda: loop(project, wanted))

        def through_pipeline(consumers: int) -> tuple[float, int, float]:
            body = jsonl(label_file_records(boxes(fresh_images(stack, args.units), BOXES_PER_IMAGE)))

            def run() -> int:
                job_id = pipeline.drop("incoming/throughput.jsonl", body)
                pipeline.drain(consumers=consumers, processes=consumers > 1)
                job = pipeline.job(job_id)
                assert job.rows_imported == args.units, job
                return job.rows_imported

            return timed(stack, run)

        ways: dict[str, Callable[[], tuple[float, int, float]]] = {
            "(a) naive loop (docs)": lambda: sdk(naive_loop, args.naive_units),
            "(b) bundled loop (docs)": lambda: sdk(bundled_loop, args.units),
            "(c) pipeline, 1 consumer": lambda: through_pipeline(1),
            "(d) pipeline, 4 consumer processes": lambda: through_pipeline(4),
        }
        for _ in range(args.repeat):
            for way, measure in ways.items():
                seconds, rows, in_moto = measure()
                rates.setdefault(way, []).append(rows / seconds)
                moto_shares.setdefault(way, []).append(in_moto / seconds)

    median = {way: statistics.median(found) for way, found in rates.items()}
    naive, bundled, one, four = median.values()
    rows = [
        {
            "way": way,
            "rows_per_s": round(rate, 1),
            "runs": ", ".join(f"{r:.0f}" for r in rates[way]),
            "moto_busy": f"{statistics.median(moto_shares[way]):.0%}",
        }
        for way, rate in median.items()
    ]
    publish(
        "throughput",
        rows,
        ["way", "rows_per_s", "runs", "moto_busy"],
        units=args.units,
        naive_units=args.naive_units,
        latency_s=args.latency,
        boxes_per_image=BOXES_PER_IMAGE,
        pipeline_over_naive=round(one / naive, 1),
        pipeline_over_bundled=round(one / bundled, 2),
        four_over_one_consumer=round(four / one, 2),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

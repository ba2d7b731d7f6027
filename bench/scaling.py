"""Scaling curves: validator and importer time and peak RSS at three sizes spanning 100x, to show linear cost.

    python -m bench.scaling [--megabytes 2,20,200] [--rows 30,300,3000] [--repeat 1]

Validator: the JSON Lines files of bench.validator_memory (every label kind, data units grouped), validated by
its two passes exactly as the Lambda runs them, each size in a fresh process (peak RSS is that process's
`ru_maxrss`). The process first validates a 1 MB file, so that the time is the file's and not the imports'.

Importer: `--rows` images with 5 boxes each (bench.throughput's labels), dropped into the local stack (moto and
the fake Encord, no added latency) and validated, then the queue drained by the real import handler in a
consumer process of its own, as bench.consumer_memory runs it. Each size runs in a fresh process, whose
children's `ru_maxrss` is the consumer's peak RSS and whose children's CPU time is the consumer's own
(`consumer_cpu_s`: the import function's work, apart from waiting on moto). `moto_busy` is the share of the
drain moto (in the measuring process) spent answering the consumer's AWS requests.

`per_unit` is time over size; `marginal` is the time one more unit costs, (time - previous time) / (size -
previous size), free of fixed costs (the consumer process starting and importing the handler, a few seconds here).
Cost is linear when the marginal cost of the last step (10x to 100x) is within 1.3x of the first (1x to 10x).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from bench.report import publish

LINEAR_WITHIN = 1.3
"""Largest size's cost per unit over the smallest's, at most, for the curve to count as linear."""
BOXES_PER_IMAGE = 5


def _peak_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kilobytes on Linux


def validator_run(megabytes: int) -> dict[str, Any]:
    """In a fresh process: generate the file, warm up on 1 MB, then time the validator's two passes on it."""
    from bench.validator_memory import _validate, generate

    with tempfile.TemporaryDirectory() as folder:
        warm_up, path = Path(folder) / "warm-up.jsonl", Path(folder) / "labels.jsonl"
        generate(warm_up, 1, interleaved=False)
        lines = generate(path, megabytes, interleaved=False)
        _validate(str(warm_up))
        started = time.perf_counter()
        _validate(str(path))
        seconds = time.perf_counter() - started
        return {
            "mb": path.stat().st_size / 1e6,
            "lines": lines,
            "seconds": seconds,
            "peak_rss_mb": _peak_rss_mb(resource.RUSAGE_SELF),
        }


def importer_run(rows: int) -> dict[str, Any]:
    """In a fresh process: a local stack with `rows` images, the file dropped and validated, the queue drained."""
    from bench.consumer_memory import _DEFAULT_LIMITS as DEPLOYED_LIMITS
    from bench.report import lambda_output_discarded
    from bench.sdk_loops import boxes, fresh_images, label_file_records
    from label_importer.runtime.settings import Settings
    from local.lambda_runtime import cold_start
    from local.pipeline import Pipeline
    from local.sample_labels import jsonl
    from local.stack import local_stack

    with lambda_output_discarded(), local_stack() as stack:
        # The deployed limits, not the small ones the tests use against the fake (10000 rows exceed MAX_RECORDS).
        os.environ.update({name.upper(): str(Settings.model_fields[name].default) for name in DEPLOYED_LIMITS})
        cold_start()
        pipeline = Pipeline.on(stack)
        body = jsonl(label_file_records(boxes(fresh_images(stack, rows), BOXES_PER_IMAGE)))
        job_id = pipeline.drop("incoming/scaling.jsonl", body)
        busy, started = stack.moto.busy_seconds, time.perf_counter()
        stats = pipeline.drain(processes=True)
        seconds, in_moto = time.perf_counter() - started, stack.moto.busy_seconds - busy
        job = pipeline.job(job_id)
        assert job.rows_imported == rows, job
    return {
        "rows": rows,
        "chunks": stats.messages,
        "seconds": seconds,
        "moto_busy": in_moto / seconds,
        "peak_rss_mb": _peak_rss_mb(resource.RUSAGE_CHILDREN),
        "consumer_cpu_s": _cpu_seconds(resource.RUSAGE_CHILDREN),
    }


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _in_a_fresh_process(kind: str, size: int) -> dict[str, Any]:
    code = f"import json; from bench.scaling import {kind}_run; print(json.dumps({kind}_run({size})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{kind} at {size}: {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _median_run(kind: str, size: int, repeat: int) -> dict[str, Any]:
    runs = [_in_a_fresh_process(kind, size) for _ in range(repeat)]
    middle = sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]
    return {**middle, "peak_rss_mb": max(run["peak_rss_mb"] for run in runs)}


def _marginal(points: list[tuple[float, float]]) -> list[float | None]:
    """(size, seconds) in order of size -> the seconds per unit between each point and the one before it."""
    return [None] + [(t - t0) / (n - n0) for (n0, t0), (n, t) in pairwise(points)]


def _linear(marginal: list[float | None]) -> tuple[float, str]:
    first, last = marginal[1], marginal[-1]
    assert first is not None and last is not None, "needs three sizes"
    if first <= 0:  # the first step drowned in the noise of fixed costs: sizes too small to tell
        return float("nan"), "undetermined (sizes too small)"
    ratio = last / first
    return round(ratio, 2), "linear" if ratio <= LINEAR_WITHIN else f"not linear (over {LINEAR_WITHIN}x)"


def _row(stage: str, size: str, seconds: float, per_unit: float, marginal: float | None, unit: str) -> dict[str, Any]:
    scale = 1000  # ms
    return {
        "stage": stage,
        "size": size,
        "time_s": round(seconds, 2),
        "per_unit": f"{per_unit * scale:.3g} ms/{unit}",
        "marginal": "" if marginal is None else f"{marginal * scale:.3g} ms/{unit}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", default="2,20,200", help="validator file sizes in MB, comma separated")
    parser.add_argument("--rows", default="30,300,3000", help="importer sizes in rows, comma separated")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the median time is reported")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    validator = [_median_run("validator", int(size), args.repeat) for size in args.megabytes.split(",")]
    importer = [_median_run("importer", int(size), args.repeat) for size in args.rows.split(",")]
    by_mb = _marginal([(run["mb"], run["seconds"]) for run in validator])
    by_row = _marginal([(run["rows"], run["seconds"]) for run in importer])
    cpu_by_row = _marginal([(run["rows"], run["consumer_cpu_s"]) for run in importer])
    table = [
        {
            **_row(
                "validator",
                f"{run['mb']:.0f} MB ({run['lines']} lines)",
                run["seconds"],
                run["seconds"] / run["mb"],
                marginal,
                "MB",
            ),
            "peak_rss_mb": round(run["peak_rss_mb"]),
        }
        for run, marginal in zip(validator, by_mb, strict=True)
    ] + [
        {
            **_row(
                "importer",
                f"{run['rows']} rows ({run['chunks']} chunks)",
                run["seconds"],
                run["seconds"] / run["rows"],
                marginal,
                "row",
            ),
            "consumer_cpu_s": round(run["consumer_cpu_s"], 1),
            "cpu_marginal": "" if cpu is None else f"{cpu * 1000:.3g} ms/row",
            "moto_busy": f"{run['moto_busy']:.0%}",
            "peak_rss_mb": round(run["peak_rss_mb"]),
        }
        for run, marginal, cpu in zip(importer, by_row, cpu_by_row, strict=True)
    ]
    validator_ratio, validator_says = _linear(by_mb)
    importer_ratio, importer_says = _linear(by_row)
    cpu_ratio, cpu_says = _linear(cpu_by_row)
    first = importer[0]
    publish(
        "scaling",
        table,
        [
            "stage",
            "size",
            "time_s",
            "per_unit",
            "marginal",
            "consumer_cpu_s",
            "cpu_marginal",
            "moto_busy",
            "peak_rss_mb",
        ],
        validator_marginal_last_over_first=validator_ratio,
        validator=validator_says,
        importer_marginal_last_over_first=importer_ratio,
        importer=importer_says,
        importer_cpu_marginal_last_over_first=cpu_ratio,
        importer_cpu=cpu_says,
        importer_fixed_s=round(first["seconds"] - (by_row[1] or 0) * first["rows"], 1),
        repeat=args.repeat,
        took_s=round(time.perf_counter() - started),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

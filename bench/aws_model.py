"""One consumer's work per chunk, measured, and what it comes to on AWS: requests by operation, the time split,
rows per second with AWS latencies in place of moto's, consumers per Encord request rate, and cost per million rows.

    python -m bench.aws_model [--units 1000] [--latency 0.05] [--repeat 3] [--bundle-size 100]

Moto answers from this process, one request at a time and far slower than DynamoDB (its expression evaluation
costs milliseconds per item), so a local rows/s is moto-bound and says little about AWS. This benchmark measures
what does carry over, on a 1000-image file with 5 boxes per image and `--latency` added to every Encord request:

- per chunk, the import function's AWS requests by operation (counted at botocore, the harness's own SQS
  polling left out: on AWS the event source mapping does it), the wall time inside Encord's HTTP requests, and
  the consumer thread's CPU split into our code, the encord SDK and botocore (the sampler of bench.cpu_per_label);
- in the same run, the docs' bundled loop (bundles of 100) at the same latency, the bar to reach.

The model then puts the assumed AWS latencies below (p50 and p99) in place of moto's time. A container imports
`CHUNKS_IN_FLIGHT` (2) chunks at once with one of them talking to Encord at a time, so per chunk it needs the
longest of: the Encord turn (Encord's wall time, the SDK's and our CPU, and the journal write made inside it),
half of one chunk's whole time (two chunks overlap), and its CPU at the function's share of a vCPU.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import botocore.client
import orjson
import requests

from bench.cpu_per_label import PARTS, Sampler
from bench.report import lambda_output_discarded, publish
from bench.sdk_loops import boxes, bundled_loop, fresh_images, label_file_records
from local.lambda_runtime import drain_queue, environment_changed
from local.pipeline import Pipeline
from local.sample_labels import jsonl
from local.stack import local_stack

BOXES_PER_IMAGE = 5
LATENCY_MS: dict[str, tuple[float, float]] = {
    # (p50, p99) ms, assumed. DynamoDB promises single-digit-millisecond reads and writes of an item; transactions
    # and batches of 100 items take longer (no published figure: these are assumptions, stated as such). S3's
    # performance guidelines put small requests' median latency in the tens of milliseconds.
    "dynamodb.GetItem": (4.0, 15.0),
    "dynamodb.BatchGetItem": (8.0, 30.0),
    "dynamodb.UpdateItem": (6.0, 20.0),
    "dynamodb.Query": (8.0, 30.0),
    "dynamodb.TransactWriteItems": (20.0, 80.0),
    "s3.PutObject": (30.0, 200.0),
    "s3.GetObject": (20.0, 150.0),
    "s3.ListObjectsV2": (30.0, 150.0),
    "s3.HeadObject": (15.0, 100.0),
    "s3.PutObjectTagging": (30.0, 150.0),
    "secretsmanager.GetSecretValue": (20.0, 80.0),
}
IN_ENCORD_TURN = {"s3.PutObject"}
"""The rollback journal is written between the Encord read and the save, inside the chunk's Encord turn."""
PRICES = {
    # us-east-1 list prices, arm64 Lambda and DynamoDB on-demand (per request unit), as of 2026.
    "lambda_gb_s": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "dynamodb_wru": 0.625 / 1e6,
    "dynamodb_rru": 0.125 / 1e6,
    "sqs_request": 0.40 / 1e6,
    "s3_put": 0.005 / 1000,
    "s3_get": 0.0004 / 1000,
    "logs_gb": 0.50,
}
FUNCTION_MEMORY_MB = 1024
"""The import function's MemorySize in template.yaml: Lambda gives it 1024/1769 of a vCPU."""
FULL_VCPU_MB = 1769
CHUNKS_IN_FLIGHT = 2
ENCORD_RATES = (10, 25, 50)
"""Encord requests per second a team may be allowed: how many consumers reach each."""
SQS_OPERATIONS = {
    "ReceiveMessage",
    "DeleteMessageBatch",
    "DeleteMessage",
    "ChangeMessageVisibilityBatch",
    "GetQueueAttributes",
}
"""What the harness's consumer loop asks SQS, as the event source mapping does on AWS: not the function's."""


@dataclass
class Calls:
    """AWS calls and Encord HTTP wall time seen while counting, and the DynamoDB capacity they would consume."""

    by_operation: Counter[str] = field(default_factory=Counter)
    event_source: Counter[str] = field(default_factory=Counter)
    wru: float = 0.0
    rru: float = 0.0
    encord_seconds: float = 0.0
    log_bytes: int = 0


def _kb(value: Any) -> int:
    return max(1, math.ceil(len(orjson.dumps(value, default=str)) / 1024))


def _capacity(calls: Calls, operation: str, params: dict[str, Any]) -> None:
    """Request units as DynamoDB bills them, from the request's item sizes (an update counts the size it sends,
    which is the whole item for the chunk's rows item written once)."""
    if operation == "TransactWriteItems":
        calls.wru += sum(2 * _kb(item) for item in params["TransactItems"])
    elif operation in ("UpdateItem", "PutItem"):
        calls.wru += _kb(params)
    elif operation == "BatchWriteItem":
        calls.wru += sum(_kb(request) for requests_ in params["RequestItems"].values() for request in requests_)
    elif operation == "BatchGetItem":
        calls.rru += sum(len(table["Keys"]) for table in params["RequestItems"].values())
    elif operation in ("GetItem", "Query"):
        calls.rru += 1


@contextmanager
def counted(calls: Calls, handler_thread: int) -> Iterator[None]:
    """Count every AWS call made on `handler_thread` (the consumer's) and time its Encord requests."""
    make_api_call = botocore.client.BaseClient._make_api_call
    send = requests.Session.send

    def counting(client: Any, operation: str, params: dict[str, Any]) -> Any:
        if threading.get_ident() == handler_thread:
            service = client.meta.service_model.service_name
            if service == "sqs" and operation in SQS_OPERATIONS:
                calls.event_source[operation] += 1
            else:
                calls.by_operation[f"{service}.{operation}"] += 1
                if service == "dynamodb":
                    _capacity(calls, operation, params)
        return make_api_call(client, operation, params)

    def timed(session: requests.Session, request: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return send(session, request, **kwargs)
        finally:
            if threading.get_ident() == handler_thread:
                calls.encord_seconds += time.perf_counter() - started

    botocore.client.BaseClient._make_api_call = counting  # type: ignore[method-assign]
    requests.Session.send = timed  # type: ignore[method-assign]
    try:
        yield
    finally:
        botocore.client.BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        requests.Session.send = send  # type: ignore[method-assign]


class _CountingStdout:
    """The handlers' log lines and EMF metrics (what CloudWatch Logs ingests), counted, not shown."""

    def __init__(self, calls: Calls) -> None:
        self._calls = calls

    def write(self, text: str) -> int:
        self._calls.log_bytes += len(text.encode())
        return len(text)

    def flush(self) -> None:
        pass


@dataclass(frozen=True)
class ChunkFigures:
    """One consumer's measured figures: for a whole job as measured, or per chunk (`per_chunk`)."""

    rows: float
    wall: float
    encord: float
    encord_requests: float
    cpu: dict[str, float]
    requests: dict[str, float]
    event_source: dict[str, float]
    wru: float
    rru: float
    log_bytes: float


def measure_pipeline(pipeline: Pipeline, stack: Any, units: int) -> tuple[ChunkFigures, int, float]:
    """Import one file with one consumer on this thread, one chunk in flight: the job's figures, its chunks, and
    the validator's seconds for the file."""
    body = jsonl(label_file_records(boxes(fresh_images(stack, units), BOXES_PER_IMAGE)))
    started = time.perf_counter()
    job_id = pipeline.drop("incoming/aws-model.jsonl", body)
    validator_seconds = time.perf_counter() - started
    calls = Calls()
    sampler = Sampler(threading.get_ident())
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    sampler.start()
    from label_importer.runtime.observability import logger  # only once the stack has set the environment

    counting = _CountingStdout(calls)
    saved_stdout, sys.stdout = sys.stdout, counting  # type: ignore[assignment]  # EMF metrics are printed
    saved_stream = logger.registered_handler.setStream(counting)  # type: ignore[attr-defined]  # log lines
    try:
        with counted(calls, threading.get_ident()):
            sent = stack.encord.request_counts.total()
            started, cpu = time.perf_counter(), time.thread_time()
            drain_queue(stack, pipeline.import_labels)
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - started
            sent = stack.encord.request_counts.total() - sent
    finally:
        sys.stdout = saved_stdout
        logger.registered_handler.setStream(saved_stream)  # type: ignore[attr-defined]
        samples = sampler.stop()
        sys.setswitchinterval(switch_interval)
    job = pipeline.job(job_id)
    assert job.rows_imported == units, job
    counted_samples = max(1, sum(samples.values()))
    figures = ChunkFigures(
        rows=units,
        wall=wall,
        encord=calls.encord_seconds,
        encord_requests=sent,
        cpu={part: cpu * samples[part] / counted_samples for part in PARTS} | {"total": cpu},
        requests=dict(calls.by_operation),
        event_source=dict(calls.event_source),
        wru=calls.wru,
        rru=calls.rru,
        log_bytes=calls.log_bytes,
    )
    return figures, job.total_chunks, validator_seconds


def per_chunk(big: ChunkFigures, small: ChunkFigures, chunks: int) -> ChunkFigures:
    """What `chunks` more chunks added between two jobs: the cost of a chunk, without what each job costs once
    (the first chunk's connections, the secret and project, the final report)."""

    def more(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {key: (a.get(key, 0.0) - b.get(key, 0.0)) / chunks for key in sorted({*a, *b})}

    return ChunkFigures(
        rows=(big.rows - small.rows) / chunks,
        wall=(big.wall - small.wall) / chunks,
        encord=(big.encord - small.encord) / chunks,
        encord_requests=(big.encord_requests - small.encord_requests) / chunks,
        cpu=more(big.cpu, small.cpu),
        requests={op: count for op, count in more(big.requests, small.requests).items() if count > 0.01},
        event_source=more(big.event_source, small.event_source),
        wru=(big.wru - small.wru) / chunks,
        rru=(big.rru - small.rru) / chunks,
        log_bytes=(big.log_bytes - small.log_bytes) / chunks,
    )


def measure_bundled_loop(stack: Any, units: int) -> tuple[float, float]:
    """The docs' bundled loop: rows/s at the same latency, and its CPU seconds per 100 rows."""
    project = stack.encord_project()
    wanted = boxes(fresh_images(stack, units), BOXES_PER_IMAGE)
    started, cpu = time.perf_counter(), time.thread_time()
    rows = bundled_loop(project, wanted)
    wall, cpu = time.perf_counter() - started, time.thread_time() - cpu
    return rows / wall, cpu / rows * 100


def median_figures(runs: list[ChunkFigures]) -> ChunkFigures:
    def med(values: Callable[[ChunkFigures], float]) -> float:
        return statistics.median(values(run) for run in runs)

    operations = sorted({operation for run in runs for operation in run.requests})
    event_source = sorted({operation for run in runs for operation in run.event_source})
    return ChunkFigures(
        rows=med(lambda run: run.rows),
        wall=med(lambda run: run.wall),
        encord=med(lambda run: run.encord),
        encord_requests=med(lambda run: run.encord_requests),
        cpu={part: med(lambda run, part=part: run.cpu[part]) for part in runs[0].cpu},  # type: ignore[misc]
        requests={op: med(lambda run, op=op: run.requests.get(op, 0.0)) for op in operations},  # type: ignore[misc]
        event_source={op: med(lambda run, op=op: run.event_source.get(op, 0.0)) for op in event_source},  # type: ignore[misc]
        wru=med(lambda run: run.wru),
        rru=med(lambda run: run.rru),
        log_bytes=med(lambda run: run.log_bytes),
    )


def modelled_seconds(
    figures: ChunkFigures, percentile: int, in_flight: int = CHUNKS_IN_FLIGHT
) -> tuple[float, float, float]:
    """(seconds per chunk for one container on AWS, its Encord turn, its AWS wait) at p50 (0) or p99 (1), with
    `in_flight` chunks at once."""
    aws = {op: count * LATENCY_MS.get(op, (20.0, 80.0))[percentile] / 1000 for op, count in figures.requests.items()}
    in_turn = sum(seconds for op, seconds in aws.items() if op in IN_ENCORD_TURN)
    outside = sum(seconds for op, seconds in aws.items() if op not in IN_ENCORD_TURN)
    cpu = figures.cpu["total"]
    turn = figures.encord + figures.cpu["encord SDK"] + figures.cpu["ours"] + in_turn
    whole = figures.encord + cpu + in_turn + outside
    cpu_share = min(1.0, FUNCTION_MEMORY_MB / FULL_VCPU_MB)
    return max(turn, whole / in_flight, cpu / cpu_share), turn, in_turn + outside


def cost_per_million_rows(
    figures: ChunkFigures, chunk_seconds: float, validator_seconds_per_row: float
) -> dict[str, float]:
    chunks = 1e6 / figures.rows
    requests_by_service = Counter[str]()
    for operation, count in figures.requests.items():
        requests_by_service[operation.split(".")[0] + (".put" if "Put" in operation else "")] += count
    memory_gb = FUNCTION_MEMORY_MB / 1024
    lambda_seconds = chunks * chunk_seconds + 1e6 * validator_seconds_per_row
    return {
        "Lambda (GB-s and requests)": memory_gb * lambda_seconds * PRICES["lambda_gb_s"]
        + chunks / 5 * PRICES["lambda_request"],
        "DynamoDB (request units, transactions at 2x)": chunks
        * (figures.wru * PRICES["dynamodb_wru"] + figures.rru * PRICES["dynamodb_rru"]),
        "SQS (send, receive, delete)": chunks
        * (0.1 + sum(figures.event_source.values()) + figures.requests.get("sqs.SendMessageBatch", 0.0))
        * PRICES["sqs_request"],
        "S3 (journal and reports)": chunks
        * (requests_by_service["s3.put"] * PRICES["s3_put"] + requests_by_service["s3"] * PRICES["s3_get"]),
        "CloudWatch Logs (ingested log lines and metrics)": chunks * figures.log_bytes / 1e9 * PRICES["logs_gb"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every Encord request")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bundle-size", type=int, default=100, help="rows per chunk (BUNDLE_SIZE)")
    args = parser.parse_args(argv)

    runs: list[ChunkFigures] = []
    validator: list[float] = []
    once: list[dict[str, float]] = []
    bundled: list[float] = []
    bundled_cpu: list[float] = []
    with (
        lambda_output_discarded(),
        local_stack(encord_latency=args.latency) as stack,
        # One chunk at a time, on this thread: its parts can be told apart.
        environment_changed(CHUNKS_IN_FLIGHT="1", BUNDLE_SIZE=str(args.bundle_size)),
    ):
        pipeline = Pipeline.on(stack)
        for _ in range(args.repeat):
            rate, cpu = measure_bundled_loop(stack, args.units)
            bundled.append(rate)
            bundled_cpu.append(cpu)
            small, small_chunks, _ = measure_pipeline(pipeline, stack, args.units // 2)
            big, big_chunks, seconds = measure_pipeline(pipeline, stack, args.units)
            assert big_chunks > small_chunks, "--units must make more than one chunk of --bundle-size rows"
            runs.append(per_chunk(big, small, big_chunks - small_chunks))
            once.append(
                {op: count - runs[-1].requests.get(op, 0.0) * small_chunks for op, count in small.requests.items()}
            )
            validator.append(seconds)

    figures = median_figures(runs)
    bundled_rate = statistics.median(bundled)
    p50, turn50, aws50 = modelled_seconds(figures, 0)
    p99, _, aws99 = modelled_seconds(figures, 1)
    rate50, rate99 = figures.rows / p50, figures.rows / p99
    encord_requests_per_chunk = figures.encord_requests
    costs = cost_per_million_rows(figures, p50, statistics.median(validator) / args.units)
    rows = [
        {"figure": "AWS requests per chunk", "value": round(sum(figures.requests.values()), 2)},
        *({"figure": f"  {op}", "value": round(count, 2)} for op, count in figures.requests.items()),
        *(
            {"figure": f"  (event source) sqs.{op}", "value": round(count, 2)}
            for op, count in figures.event_source.items()
        ),
        {
            "figure": "AWS requests per job, once (validator's excluded)",
            "value": round(statistics.median(sum(counts.values()) for counts in once), 1),
        },
        {"figure": "Encord requests per chunk", "value": round(figures.encord_requests, 2)},
        {"figure": "Encord wall ms per chunk", "value": round(figures.encord * 1000, 1)},
        *({"figure": f"CPU ms per chunk: {part}", "value": round(sec * 1000, 1)} for part, sec in figures.cpu.items()),
        {"figure": "local wall ms per chunk (moto-bound)", "value": round(figures.wall * 1000, 1)},
        {"figure": "local rows/s, 1 consumer (moto-bound)", "value": round(figures.rows / figures.wall, 1)},
        {"figure": "modelled AWS ms per chunk, p50 / p99", "value": f"{p50 * 1000:.0f} / {p99 * 1000:.0f}"},
        {"figure": "  of which AWS wait, p50 / p99", "value": f"{aws50 * 1000:.0f} / {aws99 * 1000:.0f}"},
        {"figure": "  Encord turn (p50)", "value": round(turn50 * 1000)},
        {"figure": "modelled AWS rows/s per consumer, p50 / p99", "value": f"{rate50:.0f} / {rate99:.0f}"},
        {
            "figure": "  one chunk at a time instead, p50",
            "value": round(figures.rows / modelled_seconds(figures, 0, in_flight=1)[0]),
        },
        {"figure": "bundled loop rows/s (docs, same latency)", "value": round(bundled_rate, 1)},
        {
            "figure": "modelled / bundled loop, p50 / p99",
            "value": f"{rate50 / bundled_rate:.2f} / {rate99 / bundled_rate:.2f}",
        },
        *(
            {
                "figure": f"consumers for {rate} Encord requests/s",
                "value": math.ceil(rate / (encord_requests_per_chunk * rate50 / figures.rows)),
            }
            for rate in ENCORD_RATES
        ),
        *({"figure": f"$ per million rows: {part}", "value": round(cost, 4)} for part, cost in costs.items()),
        {"figure": "$ per million rows: total", "value": round(sum(costs.values()), 3)},
    ]
    publish(
        "aws_model",
        rows,
        ["figure", "value"],
        units=args.units,
        latency_s=args.latency,
        chunk_rows=figures.rows,
        boxes_per_image=BOXES_PER_IMAGE,
        assumed_aws_latency_ms_p50_p99=LATENCY_MS,
        prices_usd=PRICES,
        function_memory_mb=FUNCTION_MEMORY_MB,
        chunks_in_flight=CHUNKS_IN_FLIGHT,
        dynamodb_wru_per_chunk=round(figures.wru, 1),
        dynamodb_rru_per_chunk=round(figures.rru, 1),
        log_bytes_per_chunk=round(figures.log_bytes),
        bundled_loop_cpu_ms_per_100_rows=round(statistics.median(bundled_cpu) * 1000, 1),
        aws_requests_per_chunk_target_met=sum(figures.requests.values()) <= 6,
        modelled_over_bundled_target_met=rate50 / bundled_rate >= 0.8,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

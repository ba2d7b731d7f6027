"""`python -m label_importer import FILE --project HASH`: import a label file from this machine, without AWS.

The same validator and import function run as in the deployed pipeline, in this process: the bucket, queue
and table they use are moto's, in memory, and disappear when the command ends; only Encord is real. So a
file gets exactly the checks, chunks, bundled requests, exactly-once records and reports it would get in
AWS. The reports are copied to `--out/<job-id>/` (`report.json`, `summary.txt`, and `errors.jsonl` when the
file has problems), the Lambda logs to `lambda-logs.jsonl` beside them. Meant for small jobs and for trying
the format; a rollback needs the journal of a deployed stack, so jobs imported here cannot be rolled back.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

from label_importer.job_store import Job, JobStore
from label_importer.progress import watch
from label_importer.reports import REPORTS_PREFIX
from local.pipeline import Pipeline
from local.stack import BUCKET, TABLE, EncordTarget, local_stack

POLL_SECONDS = 0.5


def import_file(label_file: Path, target: EncordTarget, out: Path) -> Job:
    """Run the file through the pipeline into `target`'s project; return the finished job."""
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    with local_stack(target=target) as stack:
        pipeline = Pipeline.on(stack)
        key = f"incoming/{target.project_hash}/{label_file.name}"
        out.mkdir(parents=True, exist_ok=True)
        logs = out / "lambda-logs.jsonl"
        with logs.open("w") as log:
            with contextlib.redirect_stdout(log):
                job_id = pipeline.drop(key, label_file.read_bytes())
            jobs = JobStore(TABLE)
            job = jobs.get(job_id)
            assert job is not None
            drained = threading.Event()

            def drain() -> None:
                with contextlib.redirect_stdout(log):
                    pipeline.drain()
                drained.set()

            consumer = threading.Thread(target=drain, daemon=True)
            consumer.start()
            job = watch(jobs, job, POLL_SECONDS, as_json=False, stop=drained.is_set)
            consumer.join()
        _copy_reports(stack.client("s3"), job_id, out / job_id)
        logs.replace(out / job_id / "lambda-logs.jsonl")
        return job


def _copy_reports(s3: Any, job_id: str, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    prefix = f"{REPORTS_PREFIX}{job_id}/"
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    for entry in listed.get("Contents", []):
        body = s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read()
        (into / entry["Key"].removeprefix(prefix)).write_bytes(body)

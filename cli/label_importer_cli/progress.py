"""Following a job while it runs: a progress bar with rate and ETA, or one JSON line per poll for scripts."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import orjson
from tqdm import tqdm

from label_importer.model.jobs import TERMINAL, Job
from label_importer.store.jobs import JobStore


def watch(jobs: JobStore, job: Job, interval: float, *, as_json: bool, stop: Callable[[], bool] = lambda: False) -> Job:
    """Poll the job until it ends, or until `stop()` says nothing will move it any more (then once more);
    return its last state. The bar goes to stderr, so stdout stays the command's own output.
    """
    last_poll = False
    with tqdm(total=job.total_rows or None, unit="row", desc=f"job {job.job_id[:8]}", disable=as_json) as bar:
        while True:
            if as_json:
                line = {"job_id": job.job_id, "status": job.status, **job.progress()}
                sys.stdout.write(orjson.dumps(line).decode() + "\n")
                sys.stdout.flush()
            else:
                bar.total = job.total_rows or None
                bar.set_postfix(status=str(job.status), failed=job.rows_failed, refresh=False)
                bar.update(job.rows_done - bar.n)
            if job.status in TERMINAL or last_poll:
                return job
            last_poll = stop()
            if not last_poll:
                time.sleep(interval)
            job = jobs.get(job.job_id) or job

"""How a job ends: finished by whichever consumer records its last row, failed by the system, or finished
again when its report was lost.

Both the validator (a fault it caught) and the validator's failure destination (a validator Lambda killed or
out of retries) fail jobs through `fail_job`, and the import function through `fail_import` (the Encord key was
refused), so a FAILED job always has the same report, tag and metric.
"""

from __future__ import annotations

import time
from dataclasses import replace

from aws_lambda_powertools.metrics import MetricUnit

from label_importer.model.jobs import IN_FLIGHT, TERMINAL, Job, JobStatus, RowOutcome, RowStatus
from label_importer.model.problems import Problem
from label_importer.runtime.observability import (
    JOBS_COMPLETED,
    JOBS_COMPLETED_WITH_ERRORS,
    JOBS_FAILED,
    logger,
    metrics,
)
from label_importer.store.jobs import JobStore
from label_importer.store.reports import SUMMARY_FAILURES_SHOWN, ReportWriter


def fail_job(job: Job, problem: Problem, jobs: JobStore, reports: ReportWriter) -> Job:
    """End a job still VALIDATING as FAILED with `problem` as the reason; any other job is left as it is.

    Reports and tag go first, the status last, so a failure to write them leaves the job for a retry rather
    than FAILED without a report. A job that moved on meanwhile (queued, or finished by another attempt) keeps
    its own outcome and reports.
    """
    current = jobs.get(job.job_id) or job
    if current.status is not JobStatus.VALIDATING:
        logger.info("job already left validation; not failed", extra={"status": str(current.status)})
        return current
    failed = failed_job(current, problem)
    reports.write_problems(failed, [problem], 1)
    reports.write_final(failed, problems=[problem], problem_count=1)
    reports.tag_source(failed)
    if jobs.fail(job.job_id, failed.failure or ""):
        metrics.add_metric(name=JOBS_FAILED, unit=MetricUnit.Count, value=1)
        logger.error("job failed", extra={"code": str(problem.code), "reason": problem.message})
    return jobs.get(job.job_id) or failed


def failed_job(job: Job, problem: Problem) -> Job:
    """The job FAILED with `problem` as the reason: what the system could not do, the file perhaps fine."""
    return replace(
        job,
        status=JobStatus.FAILED,
        failure=f"{problem.code}: {problem.message}",
        problem_count=1,
        finished_at=int(time.time()),
    )


def write_final_report(job: Job, jobs: JobStore, reports: ReportWriter) -> None:
    """The final report of a job from what the table and `errors.jsonl` hold: what a consumer finishing a job
    writes, and what a repeated event writes for a finished job whose report is missing."""
    problems = reports.first_problems(job, SUMMARY_FAILURES_SHOWN) if job.problem_count else []
    reports.write_final(
        job,
        problems=problems,
        problem_count=job.problem_count,
        failed_rows=jobs.rows(job.job_id, RowStatus.FAILED) + _actions_refused(job, jobs),
        superseded_rows=jobs.rows(job.job_id, RowStatus.SKIPPED) if job.rows_superseded else (),
    )


def _actions_refused(job: Job, jobs: JobStore) -> list[RowOutcome]:
    """Imported rows whose workflow actions Encord refused: listed with the failed rows, their reason saying the
    labels were saved."""
    if not job.rows_actions_refused:
        return []
    return [row for row in jobs.rows(job.job_id, RowStatus.IMPORTED) if row.reason]


def fail_import(job: Job, failure: str, jobs: JobStore, reports: ReportWriter) -> None:
    """End a job whose import cannot go on as FAILED with `failure`; its other chunks are then dropped.

    The report keeps what the file's validation found and lists the rows recorded so far; reports first, the
    status last, as in `fail_job`.
    """
    current = jobs.get(job.job_id) or job
    if current.status not in IN_FLIGHT:
        return
    failed = replace(current, status=JobStatus.FAILED, failure=failure, finished_at=int(time.time()))
    write_final_report(failed, jobs, reports)
    reports.tag_source(failed)
    if jobs.fail(job.job_id, failure, allowed_from=IN_FLIGHT, problem_count=None):
        metrics.add_metric(name=JOBS_FAILED, unit=MetricUnit.Count, value=1)
        logger.error("job failed", extra={"reason": failure})


def finish_if_done(job_id: str, jobs: JobStore, reports: ReportWriter) -> Job | None:
    """Whichever consumer records the last row finishes the job: report, status, tag, exactly once.

    The report is written before the status flips, so a crash in between leaves a job that the next
    delivery finishes again (writing the same report) rather than a finished job without a report.
    """
    job = jobs.get(job_id)
    if job is None or job.status in TERMINAL:
        return None
    if job.rows_done < job.total_rows:
        logger.info("job progress", extra={"job_id": job_id, "status": str(job.status), **job.progress()})
        return None
    clean = job.rows_failed == 0 and job.rows_actions_refused == 0
    status = JobStatus.COMPLETED if clean else JobStatus.COMPLETED_WITH_ERRORS
    finished = replace(job, status=status, finished_at=int(time.time()))
    write_final_report(finished, jobs, reports)
    if not jobs.transition(job_id, status):
        return None
    reports.tag_source(finished)
    counted = JOBS_COMPLETED if status is JobStatus.COMPLETED else JOBS_COMPLETED_WITH_ERRORS
    metrics.add_metric(name=counted, unit=MetricUnit.Count, value=1)
    logger.info("job finished", extra={"job_id": job_id, "status": str(status), **finished.progress()})
    return finished

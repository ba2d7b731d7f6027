"""Reports a person reads after a job: written to S3 next to the file, and the file tagged with the outcome.

Every job ends with `reports/<job-id>/report.json` (machine-readable) and `summary.txt` (a few lines for
a person); rejected and skip-invalid jobs add `errors.jsonl`, one problem per line. Writing a report is
idempotent, so two consumers racing to finish the same job write the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import boto3
import orjson
from botocore.exceptions import ClientError

from label_importer.model.branches import MAIN_BRANCH
from label_importer.model.dry_run import DryRunDiff
from label_importer.model.jobs import Job, RowOutcome, RowStatus
from label_importer.model.label_format import Mode
from label_importer.model.problems import ErrorCode, Problem

REPORTS_PREFIX = "reports/"
SUMMARY_FAILURES_SHOWN = 10
_PROBLEMS_READ = 64 << 10
"""Bytes of errors.jsonl read back for a final report: the first few problems, never the whole file."""


def report_key(job_id: str, name: str) -> str:
    return f"{REPORTS_PREFIX}{job_id}/{name}"


class ReportWriter:
    def __init__(self, s3: Any | None = None) -> None:
        self._s3 = s3 or boto3.client("s3")

    def write_problems(self, job: Job, problems: Sequence[Problem], problem_count: int) -> None:
        self._put_all(job, problem_files(problems, problem_count))

    def write_final(
        self,
        job: Job,
        *,
        problems: Sequence[Problem] = (),
        problem_count: int = 0,
        failed_rows: Sequence[RowOutcome] = (),
        superseded_rows: Sequence[RowOutcome] = (),
        diff: DryRunDiff | None = None,
    ) -> None:
        self._put_all(job, final_files(job, problems, problem_count, failed_rows, superseded_rows, diff))

    def write_diff(self, job: Job, lines: BinaryIO) -> None:
        """A dry run's `diff.jsonl`, one line per data unit (what the import would change there), from a file: it
        grows with the label file, unlike the other reports."""
        self._s3.put_object(
            Bucket=job.bucket, Key=report_key(job.job_id, "diff.jsonl"), Body=lines, ContentType="application/x-ndjson"
        )

    def tag_source(self, job: Job) -> None:
        """Tag the label file itself, so the outcome is visible where the user dropped it (unless it is gone)."""
        try:
            self._put_tags(job)
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("NoSuchKey", "NoSuchVersion", "MethodNotAllowed"):
                raise

    def _put_tags(self, job: Job) -> None:
        self._s3.put_object_tagging(
            Bucket=job.bucket,
            Key=job.key,
            **({"VersionId": job.version_id} if job.version_id else {}),
            Tagging={
                "TagSet": [
                    {"Key": "import-job-id", "Value": job.job_id},
                    {"Key": "import-status", "Value": str(job.status)},
                ]
            },
        )

    def exists(self, job: Job, name: str) -> bool:
        """Listed rather than HEAD: without s3:ListBucket a missing object answers 403, not 404, and the grant
        to list can be held to the reports/ prefix."""
        key = report_key(job.job_id, name)
        listed = self._s3.list_objects_v2(Bucket=job.bucket, Prefix=key, MaxKeys=1).get("Contents", [])
        return any(item["Key"] == key for item in listed)

    def first_problems(self, job: Job, count: int) -> list[Problem]:
        """The first `count` problems of `errors.jsonl` (file-level ones come first), read from its start only."""
        try:
            body = self._s3.get_object(
                Bucket=job.bucket, Key=report_key(job.job_id, "errors.jsonl"), Range=f"bytes=0-{_PROBLEMS_READ - 1}"
            )["Body"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "InvalidRange"):
                return []
            raise
        lines = body.splitlines() if body.endswith(b"\n") else body.splitlines()[:-1]  # a cut last line is left
        return [_problem(orjson.loads(line)) for line in lines[:count]]

    def read(self, bucket: str, job_id: str, name: str) -> str:
        body: bytes = self._s3.get_object(Bucket=bucket, Key=report_key(job_id, name))["Body"].read()
        return body.decode()

    def _put_all(self, job: Job, files: Sequence[ReportFile]) -> None:
        for file in files:
            self._s3.put_object(
                Bucket=job.bucket, Key=report_key(job.job_id, file.name), Body=file.body, ContentType=file.content_type
            )


@dataclass(frozen=True)
class ReportFile:
    """One report's name and bytes: built here for S3 and for a local folder alike, so both hold the same bytes."""

    name: str
    body: bytes
    content_type: str


def problem_files(problems: Sequence[Problem], problem_count: int) -> list[ReportFile]:
    """`errors.jsonl`, and a note of how many more problems there were when not all were kept."""
    body = b"".join(orjson.dumps(problem.to_dict()) + b"\n" for problem in problems)
    files = [ReportFile("errors.jsonl", body, "application/x-ndjson")]
    if problem_count > len(problems):
        note = f"{problem_count - len(problems)} more problems were found and not listed.\n"
        files.append(ReportFile("errors-truncated.txt", note.encode(), "text/plain"))
    return files


def final_files(
    job: Job,
    problems: Sequence[Problem] = (),
    problem_count: int = 0,
    failed_rows: Sequence[RowOutcome] = (),
    superseded_rows: Sequence[RowOutcome] = (),
    diff: DryRunDiff | None = None,
) -> list[ReportFile]:
    """`report.json` and `summary.txt` of a job that ended; a dry run's carry its diff's totals and first rows."""
    report = {
        "job_id": job.job_id,
        "status": job.status,
        "file": _file_location(job),
        "version_id": job.version_id,
        "project_hash": job.project_hash,
        "mode": job.mode,
        "branch": job.branch,
        "records": {"total": job.total_records, "invalid": job.invalid_records, "left_out": job.records_left_out},
        "labels_not_imported": job.labels_not_imported,
        "rows": {
            "total": job.total_rows,
            "imported": job.rows_imported,
            "rolled_back": job.rows_rolled_back,
            "failed": job.rows_failed,
            "skipped": job.rows_skipped,
            "superseded": job.rows_superseded,
        },
        "labels_added": job.labels_added,
        "labels_removed": job.labels_removed,
        "workflow_actions": {
            "priority": job.tasks_prioritised,
            "complete": job.tasks_completed,
            "reopen": job.tasks_reopened,
            "refused": job.rows_actions_refused,
        },
        "encord_requests": job.encord_requests,
        "duration_seconds": (job.finished_at - job.created_at) if job.finished_at else None,
        "failure": job.failure,
        "problems": {"count": problem_count, "first": [p.to_dict() for p in problems[:SUMMARY_FAILURES_SHOWN]]},
        "failed_rows": [_row(row) for row in failed_rows],
        "superseded_rows": [_row(row) for row in superseded_rows],
        **({"diff": {**diff.totals.to_dict(), "first": [row.to_dict() for row in diff.first]}} if diff else {}),
    }
    summary_text = summary(job, problems, problem_count, failed_rows, superseded_rows, diff)
    return [
        ReportFile("report.json", orjson.dumps(report), "application/json"),
        ReportFile("summary.txt", summary_text.encode(), "text/plain"),
    ]


def _file_location(job: Job) -> str:
    """Where the label file is: an S3 object, or, for a job checked offline (`label-importer validate`), which
    has no bucket, the path on this machine."""
    return f"s3://{job.bucket}/{job.key}" if job.bucket else job.key


def _row(row: RowOutcome) -> dict[str, Any]:
    return {"data_hash": row.data_hash, "lines": row.lines, "reason": row.reason}


def _problem(fields: dict[str, Any]) -> Problem:
    return Problem(**{**fields, "code": ErrorCode(fields["code"])})


def summary(
    job: Job,
    problems: Sequence[Problem],
    problem_count: int,
    failed_rows: Sequence[RowOutcome],
    superseded_rows: Sequence[RowOutcome] = (),
    diff: DryRunDiff | None = None,
) -> str:
    rollback = job.mode is Mode.ROLLBACK
    lines = [
        f"Import job {job.job_id}: {job.status}",
        *([f"Failed: {job.failure}"] if job.failure else []),
        f"File: {_file_location(job)}",
        *([f"Branch: {job.branch}"] if job.branch != MAIN_BRANCH else []),
        f"Records: {job.total_records} read, {job.invalid_records} invalid"
        + (f", {job.records_left_out} left out" if job.records_left_out else ""),
        *_not_imported(job),
        (
            f"Rows: {job.rows_rolled_back} rolled back, {job.rows_failed} failed (of {job.total_rows}); "
            f"{job.labels_removed} labels taken off"
            if rollback
            else f"Rows: {job.rows_imported} imported, {job.rows_failed} failed, {job.rows_skipped} skipped (of "
            f"{job.total_rows} queued); {job.labels_added} labels added"
        ),
        *(
            [f"Rows left as they are: {job.rows_superseded}, changed by files uploaded later"]
            if job.rows_superseded
            else []
        ),
        *_workflow_actions(job),
        *(_diff_lines(job, diff) if diff else []),
    ]
    if problem_count:
        lines.append(f"Problems in the file: {problem_count} (first {min(problem_count, SUMMARY_FAILURES_SHOWN)}):")
        lines.extend(
            f"  line {p.line}, {p.field or '(line)'}: [{p.code}] {p.message}" for p in problems[:SUMMARY_FAILURES_SHOWN]
        )
        lines.append(f"All problems: {report_key(job.job_id, 'errors.jsonl') if job.bucket else 'errors.jsonl'}")
    if failed_rows:
        lines.append(f"Failed rows (first {min(len(failed_rows), SUMMARY_FAILURES_SHOWN)}):")
        lines.extend(
            f"  lines {','.join(map(str, row.lines))} ({row.data_hash}): {row.reason}"
            for row in failed_rows[:SUMMARY_FAILURES_SHOWN]
        )
    if superseded_rows:
        lines.append(f"Rows left as they are (first {min(len(superseded_rows), SUMMARY_FAILURES_SHOWN)}):")
        lines.extend(
            f"  lines {','.join(map(str, row.lines)) or '-'} ({row.data_hash}): {row.reason}"
            for row in superseded_rows[:SUMMARY_FAILURES_SHOWN]
        )
    return "\n".join(lines) + "\n"


def _diff_lines(job: Job, diff: DryRunDiff) -> list[str]:
    """A dry run's prediction: the totals, then the first data units, each on a line, and where the rest are."""
    totals = diff.totals
    lines = [
        f"Dry run, nothing written to Encord: {totals.would_import} rows would be imported, {totals.would_fail} would "
        f"fail; {totals.add} labels to add, {totals.no_op} already there, {totals.conflict} conflicting, "
        f"{totals.remove} to remove"
    ]
    if totals.workflow_actions:
        actions = ", ".join(f"{count} {kind}" for kind, count in sorted(totals.workflow_actions.items()))
        lines.append(f"Workflow actions that would apply: {actions}")
    if diff.first:
        lines.append(f"Diff by data unit (first {len(diff.first)} of {totals.rows}):")
        lines.extend(
            f"  lines {','.join(map(str, row.lines))} ({row.data_hash}{f' {row.title!r}' if row.title else ''}): "
            + (
                f"+{len(row.add)} add, ={len(row.no_op)} already there, -{len(row.remove)} remove"
                + (f"; then {', '.join(row.workflow_actions)}" if row.workflow_actions else "")
                if row.outcome is RowStatus.IMPORTED
                else f"would fail: {row.reason}"
            )
            for row in diff.first
        )
    lines.append(f"Every data unit: {report_key(job.job_id, 'diff.jsonl') if job.bucket else 'diff.jsonl'}")
    return lines


def _workflow_actions(job: Job) -> list[str]:
    """What `after_save` did to the rows' tasks (a rollback: what it did to undo that), and on how many rows
    Encord refused."""
    done = [
        f"{count} {what}"
        for count, what in (
            (job.tasks_prioritised, "prioritised"),
            (job.tasks_completed, "completed"),
            (job.tasks_reopened, "reopened"),
        )
        if count
    ]
    refused = [f"refused on {job.rows_actions_refused} rows (labels saved)"] if job.rows_actions_refused else []
    return [f"Workflow tasks: {', '.join(done + refused)}"] if done or refused else []


def _not_imported(job: Job) -> list[str]:
    """The labels Encord has no place for, by why: never dropped without a word."""
    if not job.labels_not_imported:
        return []
    reasons = "; ".join(f"{count} {why}" for why, count in sorted(job.labels_not_imported.items()))
    return [f"Not imported, as Encord has no place for them: {reasons}"]

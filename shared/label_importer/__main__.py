"""Operate imports from a shell: `python -m label_importer status JOB_ID`, `... rollback JOB_ID`, `... redrive`,
and `... import FILE --project HASH` (the whole pipeline on this machine, without AWS).

Runs wherever boto3 finds credentials (a laptop against the deployed stack, or the local stack); the table
and queue URLs are the stack's outputs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import boto3
import orjson

from label_importer.job_store import TERMINAL, JobStatus, JobStore, RowOutcome, RowStatus
from label_importer.progress import watch
from label_importer.redrive import redrive
from label_importer.settings import ENCORD_PUBLIC_API, settings

_ROWS_SHOWN = 20


def _status(args: argparse.Namespace) -> int:
    jobs = JobStore(args.table)
    job = jobs.get(args.job_id)
    if job is None:
        print(f"no job {args.job_id} in table {args.table}", file=sys.stderr)
        return 1
    if args.watch:
        job = watch(jobs, job, args.interval, as_json=args.json)
    failed, waiting = jobs.rows(job.job_id, RowStatus.FAILED), jobs.rows(job.job_id, RowStatus.RETRYING)
    if args.json:
        document = {
            "job": asdict(job),
            "progress": job.progress(),
            "failed_rows": [asdict(row) for row in failed],
            "waiting_rows": [asdict(row) for row in waiting],
        }
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if args.watch and args.json:
        return 0  # the last progress line said it all
    version = f" (version {job.version_id})" if job.version_id else ""
    duration = f", {job.finished_at - job.created_at} s" if job.finished_at else ""
    print(f"job {job.job_id}: {job.status}")
    print(f"file: s3://{job.bucket}/{job.key}{version}, project {job.project_hash or '-'}, mode {job.mode or '-'}")
    print(
        f"rows: {job.rows_done}/{job.total_rows} done ({job.rows_imported} imported, {job.rows_failed} failed), "
        f"{job.rows_skipped} skipped as invalid, {len(waiting)} waiting to be retried"
    )
    rate, eta = job.rows_per_second, job.eta_seconds
    if rate is not None and job.status not in TERMINAL:
        print(f"rate: {rate:.1f} rows/s, about {eta:.0f} s left" if eta is not None else f"rate: {rate:.1f} rows/s")
    print(f"labels added: {job.labels_added}, Encord requests: {job.encord_requests}{duration}")
    _print_rows("failed rows", failed)
    _print_rows("rows waiting to be retried", waiting)
    return 0


def _print_rows(title: str, rows: list[RowOutcome]) -> None:
    if not rows:
        return
    print(f"{title}:")
    for row in rows[:_ROWS_SHOWN]:
        lines = ",".join(map(str, row.lines))
        print(f"  line {lines}  {row.data_hash}  attempts {row.attempts}: {row.reason}")
    if len(rows) > _ROWS_SHOWN:
        print(f"  ... and {len(rows) - _ROWS_SHOWN} more (--json lists them all)")


def _rollback(args: argparse.Namespace) -> int:
    # Imported here: Powertools reads its environment when they load, which `import` sets first.
    from label_importer import import_chunk, rollback
    from label_importer.retries import Deadline

    world = import_chunk.Collaborators.from_settings(settings())
    try:
        job = rollback.roll_back(args.job_id, world, Deadline.in_seconds(args.timeout))
    except rollback.CannotRollBack as error:
        print(f"cannot roll back: {error}", file=sys.stderr)
        return 1
    except import_chunk.DataUnitsBusy as error:
        print(f"rollback not finished: {error}", file=sys.stderr)
        return 2
    print(world.reports.read(job.bucket, job.job_id, "summary.txt"), end="")
    return 0 if job.status is JobStatus.COMPLETED else 1


def _import(args: argparse.Namespace) -> int:
    try:  # the local stack (moto) comes with the development install, never with the Lambda layer
        from local.stack import POWERTOOLS_ENVIRONMENT, EncordTarget

        os.environ.update(POWERTOOLS_ENVIRONMENT)  # as the template sets it, before the handlers' code loads
        from local.offline import import_file
    except ImportError as error:
        print(f"the local import needs the development install (pip install -e '.[dev]'): {error}", file=sys.stderr)
        return 2
    if args.ssh_key_file is None:
        print("give --ssh-key-file or set ENCORD_SSH_KEY_FILE: the Encord key to import with", file=sys.stderr)
        return 2
    for path in (args.ssh_key_file, args.file):
        if not Path(path).is_file():
            print(f"no such file: {path}", file=sys.stderr)
            return 2
    target = EncordTarget(args.domain, args.project, Path(args.ssh_key_file).read_text())
    job = import_file(Path(args.file), target, Path(args.out))
    print((Path(args.out) / job.job_id / "summary.txt").read_text(), end="")
    print(f"Reports: {Path(args.out) / job.job_id}/")
    return 0 if job.status in (JobStatus.COMPLETED, JobStatus.VALIDATED) else 1


def _redrive(args: argparse.Namespace) -> int:
    moved = redrive(boto3.client("sqs"), args.dead_letter_queue_url, args.queue_url)
    print(f"moved {moved} chunk messages back to the import queue")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m label_importer", description=__doc__)
    commands = parser.add_subparsers(required=True)

    status = commands.add_parser("status", help="a job's state, progress, failed and waiting rows")
    status.add_argument("job_id")
    status.add_argument(
        "--table",
        default=os.environ.get("JOBS_TABLE_NAME"),
        required="JOBS_TABLE_NAME" not in os.environ,
        help="the jobs table (stack output JobsTableName; default: $JOBS_TABLE_NAME)",
    )
    status.add_argument("--json", action="store_true", help="print everything as JSON, for scripts")
    status.add_argument(
        "--watch", action="store_true", help="follow the job until it ends: a progress bar (with --json, JSON lines)"
    )
    status.add_argument("--interval", type=float, default=2.0, help="seconds between polls with --watch")
    status.set_defaults(run=_status)

    undo = commands.add_parser(
        "rollback",
        help="undo a finished import: remove what it added, or put back what it replaced",
        description="Runs here with this environment's AWS credentials and the functions' settings "
        "(JOBS_TABLE_NAME, ENCORD_SECRET_ID, ENCORD_DOMAIN); the RollbackFunction does the same in AWS.",
    )
    undo.add_argument("job_id", help="the import job to undo")
    undo.add_argument("--timeout", type=float, default=900.0, help="seconds to keep retrying Encord faults")
    undo.set_defaults(run=_rollback)

    local = commands.add_parser(
        "import",
        help="import a label file from this machine, without AWS (the same checks, import and reports)",
    )
    local.add_argument("file", help="a JSON Lines (.jsonl, .jsonl.gz) or COCO (.json, .json.gz) label file")
    local.add_argument("--project", required=True, help="the Encord project hash")
    local.add_argument(
        "--ssh-key-file",
        default=os.environ.get("ENCORD_SSH_KEY_FILE"),
        help="the Encord SSH private key (default: $ENCORD_SSH_KEY_FILE)",
    )
    local.add_argument("--domain", default=ENCORD_PUBLIC_API, help="the Encord API (default: the public one)")
    local.add_argument("--out", default="import-reports", help="where reports go: <out>/<job-id>/")
    local.set_defaults(run=_import)

    move = commands.add_parser("redrive", help="move chunks from the dead-letter queue back to the import queue")
    move.add_argument("--dead-letter-queue-url", required=True, help="stack output DeadLetterQueueUrl")
    move.add_argument("--queue-url", required=True, help="stack output ImportQueueUrl")
    move.set_defaults(run=_redrive)

    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())

"""Operate imports from a shell: `label-importer status JOB_ID`, `... rollback JOB_ID`, `... redrive`,
`... import FILE --project HASH` (the whole pipeline on this machine, without AWS), `... validate FILE` (its
checks without Encord, against `... export-spec`'s files) and `... try-encord` (a fake Encord to import into).

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

import orjson
from encord import EncordUserClient

from label_importer.model.jobs import TERMINAL, Job, RowOutcome, RowStatus
from label_importer.model.label_format import Mode
from label_importer.runtime.settings import ENCORD_PUBLIC_API, settings
from label_importer.store.aws import AwsClients
from label_importer.store.dead_letters import redrive
from label_importer.store.jobs import JobStore
from label_importer_cli.encord_key import key_problem
from label_importer_cli.exit_codes import EXIT_CODES, ExitCode, SetupError, UsageError, outcome
from label_importer_cli.explain import explain, without_context
from label_importer_cli.progress import watch
from label_importer_cli.project_spec import exported, read_data_units, read_ontology, read_spec, write_spec

_ROWS_SHOWN = 20


def _status(args: argparse.Namespace) -> int:
    jobs = JobStore(args.table)
    job = jobs.get(args.job_id)
    if job is None:
        raise UsageError(
            f"no job {args.job_id} in table {args.table}: check the job id (reports/<job-id>/ in the bucket, or the "
            "label file's import-job-id tag), --table (stack output JobsTableName) and AWS_DEFAULT_REGION"
        )
    if args.watch:
        job = watch(jobs, job, args.interval, as_json=args.json)
    code = outcome(job) if args.watch else ExitCode.DONE
    failed, waiting = jobs.rows(job.job_id, RowStatus.FAILED), jobs.rows(job.job_id, RowStatus.RETRYING)
    superseded = jobs.rows(job.job_id, RowStatus.SKIPPED) if job.rows_superseded else []
    if args.json:
        document = {
            "job": asdict(job),
            "progress": job.progress(),
            "failed_rows": [asdict(row) for row in failed],
            "waiting_rows": [asdict(row) for row in waiting],
            "superseded_rows": [asdict(row) for row in superseded],
        }
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
        return code
    version = f" (version {job.version_id})" if job.version_id else ""
    duration = f", {job.finished_at - job.created_at} s" if job.finished_at else ""
    print(f"job {job.job_id}: {job.status}")
    if job.failure:
        print(f"failed: {job.failure}")
    print(
        f"file: s3://{job.bucket}/{job.key}{version}, project {job.project_hash or '-'}, mode {job.mode or '-'}, "
        f"branch {job.branch}"
    )
    # A rollback's rows and labels are counted apart from an import's: say what this job did.
    undoing = job.mode == Mode.ROLLBACK
    done = f"{job.rows_rolled_back} rolled back" if undoing else f"{job.rows_imported} imported"
    labels = f"labels removed: {job.labels_removed}" if undoing else f"labels added: {job.labels_added}"
    print(
        f"rows: {job.rows_done}/{job.total_rows} done ({done}, {job.rows_failed} failed"
        + (f", {job.rows_superseded} left to later uploads" if job.rows_superseded else "")
        + f"), {job.rows_skipped} skipped as invalid, {len(waiting)} waiting to be retried"
    )
    rate, eta = job.rows_per_second, job.eta_seconds
    if rate is not None and job.status not in TERMINAL:
        print(f"rate: {rate:.1f} rows/s, about {eta:.0f} s left" if eta is not None else f"rate: {rate:.1f} rows/s")
    print(f"{labels}, Encord requests: {job.encord_requests}{duration}")
    _print_rows("failed rows", failed)
    _print_rows("rows waiting to be retried", waiting)
    _print_rows("rows left to later uploads", superseded)
    return code


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
    from label_importer.runtime.deadline import Deadline
    from label_importer.runtime.world import World
    from label_importer.services import rollback

    world = World.from_settings(settings())
    job = rollback.roll_back(args.job_id, world, Deadline.in_seconds(args.timeout))
    print(world.reports.read(job.bucket, job.job_id, "summary.txt"), end="")
    return outcome(job)


def _import(args: argparse.Namespace) -> int:
    try:  # the local stack (moto) comes with the `local` extra, never with the Lambda layer
        from local.stack import MAX_RECEIVE_COUNT, POWERTOOLS_ENVIRONMENT, EncordTarget

        os.environ.update(POWERTOOLS_ENVIRONMENT)  # as the template sets it, before the handlers' code loads
        from local.offline import check_target, import_file
    except ImportError as error:
        raise SetupError(
            f"the local import needs the local stack, which this install lacks ({error}): in the clone, run "
            "pip install '.[local]' (pip install -e '.[local]' for an editable install)"
        ) from None
    key, label_file = _encord_key(args, "to import with"), _readable(args.file)
    out = _folder(args.out)
    target = EncordTarget(args.domain, args.project, key)
    check_target(target)
    imported = import_file(label_file, target, out, dry_run=args.dry_run)
    job = imported.job
    if job.status not in TERMINAL:
        waiting = imported.waiting_rows
        last_error = f"; last error: {without_context(waiting[0].reason or '').rstrip('.')}" if waiting else ""
        print(
            f"job {job.job_id} is not finished: {_counted(imported.dead_lettered, 'chunk')} ended in the dead-letter "
            f"queue after {MAX_RECEIVE_COUNT} deliveries each, {job.total_rows - job.rows_done} of {job.total_rows} "
            f"rows not imported{last_error}. The local queue ends with this command, so there is nothing to "
            "redrive: once Encord answers again, run the same command again; it is safe: labels already imported "
            f"have deterministic hashes and are not added twice. Logs: {imported.reports}/lambda-logs.jsonl",
            file=sys.stderr,
        )
        return ExitCode.ENVIRONMENT
    code = _reported(job, imported.reports, "import")
    if (imported.reports / "diff.jsonl").is_file():  # a dry run
        print(f"What the import would change, every data unit: {imported.reports}/diff.jsonl")
    return code


def _validate(args: argparse.Namespace) -> int:
    from label_importer_cli.offline_validation import validate_offline  # loads the validator, and Powertools

    label_file = _readable(args.file)
    spec = read_spec(_readable(args.ontology), _readable(args.data_units))
    checked = validate_offline(label_file, spec, args.project, _folder(args.out))
    return _reported(checked.job, checked.reports, "validate")


def _export_spec(args: argparse.Namespace) -> int:
    key = _encord_key(args, "to read the project with")
    client = EncordUserClient.create_with_ssh_private_key(ssh_private_key=key, domain=args.domain)
    spec = exported(client.get_project(args.project))
    ontology, data_units = write_spec(spec, _folder(args.out))
    print(
        f"project {spec.project_hash}: {_counted(len(spec.units), 'data unit')} in {data_units}, the ontology in "
        f"{ontology}"
    )
    print(
        f"check a label file against them: label-importer validate FILE --ontology {ontology} --data-units {data_units}"
    )
    return ExitCode.DONE


def _try_encord(args: argparse.Namespace) -> int:
    try:
        from local.try_encord import Seed, demo_seed, serve
    except ImportError as error:
        raise SetupError(
            f"try-encord needs the local stack, which this install lacks ({error}): in the clone, run "
            "pip install '.[local]' (pip install -e '.[local]' for an editable install)"
        ) from None
    demo = demo_seed()
    ontology = read_ontology(_readable(args.ontology)) if args.ontology else demo.ontology
    units, project_hash = read_data_units(_readable(args.data_units)) if args.data_units else (demo.units, None)
    serve(Seed(ontology, units, project_hash), Path(args.key_file).expanduser() if args.key_file else None)
    return ExitCode.DONE


def _reported(job: Job, reports: Path, command: str) -> int:
    """The job's summary, where its reports are, and a line on stderr saying what its outcome asks for."""
    print((reports / "summary.txt").read_text(), end="")
    print(f"Reports: {reports}/")
    code = outcome(job)
    if code is ExitCode.REJECTED:
        print(f"rejected: fix the problems in {reports}/errors.jsonl and {command} again", file=sys.stderr)
    elif code is ExitCode.FINISHED_WITH_ERRORS:
        print(
            f"finished with errors: {job.rows_failed} rows failed, {job.invalid_records} records invalid, "
            f"{job.rows_skipped} rows skipped; see {reports}/report.json",
            file=sys.stderr,
        )
    elif code is ExitCode.ENVIRONMENT:
        print(f"job failed: {job.failure}", file=sys.stderr)
    return code


def _encord_key(args: argparse.Namespace, purpose: str) -> str:
    """The key in --ssh-key-file, checked to be one the encord SDK can sign with."""
    if args.ssh_key_file is None:
        raise UsageError(f"give --ssh-key-file or set ENCORD_SSH_KEY_FILE: the Encord key {purpose}")
    key_file = _readable(args.ssh_key_file)
    key = key_file.read_text(errors="replace")
    if problem := key_problem(key):
        raise SetupError(f"--ssh-key-file {key_file}: {problem}")
    return key


def _folder(name: str) -> Path:
    out = Path(name)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out {out}: cannot create the folder ({error.strerror})") from None
    return out


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _readable(name: str) -> Path:
    path = Path(name).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise UsageError(f"no such file: {name}" if not path.exists() else f"not a readable file: {name}")
    return path


def _redrive(args: argparse.Namespace) -> int:
    if args.dead_letter_queue_url == args.queue_url:
        raise UsageError("--dead-letter-queue-url and --queue-url are the same queue: give the stack's two outputs")
    moved = redrive(AwsClients.connect().sqs, args.dead_letter_queue_url, args.queue_url)
    print(f"moved {moved} chunk messages back to the import queue")
    return ExitCode.DONE


# --- the command line ----------------------------------------------------------------------------------------


def _encord_arguments(parser: argparse.ArgumentParser) -> None:
    """The key and API of the commands that talk to Encord from this machine."""
    parser.add_argument(
        "--ssh-key-file",
        default=os.environ.get("ENCORD_SSH_KEY_FILE"),
        help="the Encord SSH private key, OpenSSH Ed25519 (default: $ENCORD_SSH_KEY_FILE)",
    )
    parser.add_argument(
        "--domain",
        default=os.environ.get("ENCORD_DOMAIN") or ENCORD_PUBLIC_API,
        help=f"the Encord API (default: $ENCORD_DOMAIN, else the public one, {ENCORD_PUBLIC_API})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="label-importer",  # not argv[0], which `python -m label_importer_cli` makes "__main__.py"
        description=__doc__,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(required=True)

    def command(name: str, *, help: str, description: str | None = None) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help,
            description=description,
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    status = command("status", help="a job's state, progress, failed and waiting rows")
    status.add_argument("job_id")
    status.add_argument(
        "--table",
        default=os.environ.get("JOBS_TABLE_NAME"),
        required="JOBS_TABLE_NAME" not in os.environ,
        help="the jobs table (stack output JobsTableName; default: $JOBS_TABLE_NAME)",
    )
    status.add_argument("--json", action="store_true", help="print everything as JSON, for scripts")
    status.add_argument(
        "--watch",
        action="store_true",
        help="follow the job until it ends: a progress bar (with --json, JSON lines); exits with the job's outcome",
    )
    status.add_argument("--interval", type=float, default=2.0, help="seconds between polls with --watch")
    status.set_defaults(run=_status, aws_resources="--table (stack output JobsTableName)")

    undo = command(
        "rollback",
        help="undo a finished import: remove what it added, or put back what it replaced",
        description="Runs here with this environment's AWS credentials and the functions' settings "
        "(JOBS_TABLE_NAME, ENCORD_SECRET_ID, ENCORD_DOMAIN); the RollbackFunction does the same in AWS.",
    )
    undo.add_argument("job_id", help="the import job to undo")
    undo.add_argument("--timeout", type=float, default=900.0, help="seconds to keep retrying Encord faults")
    undo.set_defaults(
        run=_rollback, aws_resources="JOBS_TABLE_NAME and ENCORD_SECRET_ID (the stack's table and secret)"
    )

    local = command(
        "import",
        help="import a label file from this machine, without AWS (the same checks, import and reports)",
    )
    local.add_argument(
        "file",
        help="a label file: JSON Lines (.jsonl, .jsonl.gz), COCO (.json, .json.gz), YOLO or Pascal VOC (.zip, .xml), "
        "CSV classifications (.csv)",
    )
    local.add_argument("--project", required=True, help="the Encord project hash")
    _encord_arguments(local)
    local.add_argument("--out", default="import-reports", help="where reports go: <out>/<job-id>/")
    local.add_argument(
        "--dry-run",
        action="store_true",
        help="write nothing to Encord: validate, read the label rows and report what the import would change "
        "(<out>/<job-id>/diff.jsonl), whatever the file's own dry_run option says",
    )
    local.set_defaults(run=_import)

    offline = command(
        "validate",
        help="check a label file without Encord, against the project's spec files (the same checks and reports)",
        description="Runs every check of the deployed validator on this machine, with no AWS, Encord key or "
        "network: the project is read from the two files `export-spec` writes. The limits are the functions' "
        "(MAX_* in the environment, else the defaults).",
    )
    offline.add_argument("file", help="a label file, in any format `import` takes")
    offline.add_argument("--ontology", required=True, help="the project's ontology.json (from export-spec)")
    offline.add_argument(
        "--data-units", required=True, help="the project's data-units.json (from export-spec), or a CSV of them"
    )
    offline.add_argument(
        "--project",
        help="the project hash, where deployed the key prefix incoming/<project_hash>/ gives it (optional)",
    )
    offline.add_argument("--out", default="validation-reports", help="where reports go: <out>/<job-id>/")
    offline.set_defaults(run=_validate)

    export = command(
        "export-spec",
        help="write a project's ontology.json and data-units.json, for validate and try-encord",
    )
    export.add_argument("--project", required=True, help="the Encord project hash")
    _encord_arguments(export)
    export.add_argument("--out", default="project-spec", help="the folder the two files go to")
    export.set_defaults(run=_export_spec)

    fake = command(
        "try-encord",
        help="serve a fake Encord API on this machine, seeded from spec files or the demo, until Ctrl-C",
        description="Prints the API's address, the project hash and a generated key file: give them to "
        "`label-importer import` to run a file end to end without an Encord account.",
    )
    fake.add_argument("--ontology", help="an ontology.json to serve (default: the demo ontology)")
    fake.add_argument(
        "--data-units", help="a data-units.json or CSV whose data units to serve (default: demo images and more)"
    )
    fake.add_argument("--key-file", help="where to write the key (default: a new temporary folder)")
    fake.set_defaults(run=_try_encord)

    move = command("redrive", help="move chunks from the dead-letter queue back to the import queue")
    move.add_argument("--dead-letter-queue-url", required=True, help="stack output DeadLetterQueueUrl")
    move.add_argument("--queue-url", required=True, help="stack output ImportQueueUrl")
    move.set_defaults(
        run=_redrive,
        aws_resources="--dead-letter-queue-url and --queue-url (stack outputs DeadLetterQueueUrl, ImportQueueUrl)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; whatever stops it ends as one line on stderr and an exit code from EXIT_CODES.

    argparse's own usage errors (exit 2) and --help (exit 0) pass through as SystemExit, as argparse intends.
    """
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args))
    except (Exception, KeyboardInterrupt) as error:
        line, code = explain(error, args)
        print(line, file=sys.stderr)
        return int(code)


if __name__ == "__main__":
    sys.exit(main())

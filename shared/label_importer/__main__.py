"""Operate imports from a shell: `python -m label_importer status JOB_ID`, `... rollback JOB_ID`, `... redrive`,
and `... import FILE --project HASH` (the whole pipeline on this machine, without AWS).

Runs wherever boto3 finds credentials (a laptop against the deployed stack, or the local stack); the table
and queue URLs are the stack's outputs.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from enum import IntEnum
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import orjson
import requests
from botocore import exceptions as aws
from encord import exceptions as encord

from label_importer.model.jobs import TERMINAL, Job, JobStatus, RowOutcome, RowStatus
from label_importer.progress import watch
from label_importer.redrive import RedriveIncomplete, redrive
from label_importer.runtime.settings import ENCORD_PUBLIC_API, ConfigurationError, settings
from label_importer.store.jobs import JobStore

_ROWS_SHOWN = 20
_LINE_CHARACTERS = 400
"""A message quoted from a library (Encord's carry a whole request context) is cut to this, to stay one line."""


class ExitCode(IntEnum):
    DONE = 0
    INTERNAL_ERROR = 1
    USAGE = 2
    REJECTED = 3
    FINISHED_WITH_ERRORS = 4
    ENVIRONMENT = 5
    INTERRUPTED = 130
    """What shells report for a process ended by SIGINT (128 + 2), so scripts see Ctrl-C as they expect."""


EXIT_CODES = """\
exit codes (the same for every command):
  0    done: the job COMPLETED, a dry run VALIDATED, a rollback completed, the status was printed
  1    internal error (a bug): one line names it and the file holding the full traceback
  2    usage: a wrong option, a file that is not there, a job that is not there or cannot be rolled back
  3    the file was REJECTED: nothing was imported; errors.jsonl lists every problem by line
  4    finished with FAILED rows, or with records or rows skipped as invalid (on_error: skip-invalid),
       even when every record was invalid
  5    environment: the Encord key, the network, AWS credentials or region, Encord refusing the key or the
       project, a FAILED job, or a job left unfinished (chunks in the dead-letter queue)
  130  interrupted (Ctrl-C): running the same command again is safe
`status` exits 0 once it printed the job, whatever its status; `status --watch` waits for the job to end and
exits with the code of its outcome (0, 3, 4 or 5), for scripts that wait on an import.
"""

RUN_AGAIN = (
    "running the same command again is safe: rows already recorded are skipped, and labels have deterministic "
    "hashes, so none is added twice"
)


class UsageError(Exception):
    """The command line names something that is not there or cannot be used as asked (exit 2)."""


class SetupError(Exception):
    """This machine's setup stops the command before it starts: the key file, the install (exit 5)."""


def outcome(job: Job) -> ExitCode:
    """The exit code a job's status means: one table for `import`, `rollback` and `status --watch`.

    Records or rows skipped as invalid count as errors although the job COMPLETED: a script must not read
    "every record was invalid and so nothing was imported" as success.
    """
    if job.status is JobStatus.ROLLED_BACK:
        return ExitCode.DONE
    if job.status is JobStatus.REJECTED:
        return ExitCode.REJECTED
    if job.status is JobStatus.FAILED or job.status not in TERMINAL:
        return ExitCode.ENVIRONMENT
    if job.status is JobStatus.COMPLETED_WITH_ERRORS or job.rows_failed or job.rows_skipped or job.invalid_records:
        return ExitCode.FINISHED_WITH_ERRORS
    return ExitCode.DONE


# --- commands ------------------------------------------------------------------------------------------------


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
    print(f"file: s3://{job.bucket}/{job.key}{version}, project {job.project_hash or '-'}, mode {job.mode or '-'}")
    print(
        f"rows: {job.rows_done}/{job.total_rows} done ({job.rows_imported} imported, {job.rows_failed} failed"
        + (f", {job.rows_superseded} left to later uploads" if job.rows_superseded else "")
        + f"), {job.rows_skipped} skipped as invalid, {len(waiting)} waiting to be retried"
    )
    rate, eta = job.rows_per_second, job.eta_seconds
    if rate is not None and job.status not in TERMINAL:
        print(f"rate: {rate:.1f} rows/s, about {eta:.0f} s left" if eta is not None else f"rate: {rate:.1f} rows/s")
    print(f"labels added: {job.labels_added}, Encord requests: {job.encord_requests}{duration}")
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
    from label_importer.runtime.retries import Deadline
    from label_importer.runtime.world import World
    from label_importer.services import rollback

    world = World.from_settings(settings())
    job = rollback.roll_back(args.job_id, world, Deadline.in_seconds(args.timeout))
    print(world.reports.read(job.bucket, job.job_id, "summary.txt"), end="")
    return outcome(job)


def _import(args: argparse.Namespace) -> int:
    try:  # the local stack (moto) comes with the development install, never with the Lambda layer
        from local.stack import MAX_RECEIVE_COUNT, POWERTOOLS_ENVIRONMENT, EncordTarget

        os.environ.update(POWERTOOLS_ENVIRONMENT)  # as the template sets it, before the handlers' code loads
        from local.offline import check_target, import_file, key_problem
    except ImportError as error:
        raise SetupError(f"the local import needs the development install (pip install -e '.[dev]'): {error}") from None
    if args.ssh_key_file is None:
        raise UsageError("give --ssh-key-file or set ENCORD_SSH_KEY_FILE: the Encord key to import with")
    key_file, label_file = _readable(args.ssh_key_file), _readable(args.file)
    key = key_file.read_text(errors="replace")
    if problem := key_problem(key):
        raise SetupError(f"--ssh-key-file {key_file}: {problem}")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out {out}: cannot create the reports folder ({error.strerror})") from None
    target = EncordTarget(args.domain, args.project, key)
    check_target(target)
    imported = import_file(label_file, target, out)
    job = imported.job
    if job.status not in TERMINAL:
        waiting = imported.waiting_rows
        last_error = f"; last error: {_without_context(waiting[0].reason or '').rstrip('.')}" if waiting else ""
        print(
            f"job {job.job_id} is not finished: {_counted(imported.dead_lettered, 'chunk')} ended in the dead-letter "
            f"queue after {MAX_RECEIVE_COUNT} deliveries each, {job.total_rows - job.rows_done} of {job.total_rows} "
            f"rows not imported{last_error}. The local queue ends with this command, so there is nothing to "
            "redrive: once Encord answers again, run the same command again; it is safe: labels already imported "
            f"have deterministic hashes and are not added twice. Logs: {imported.reports}/lambda-logs.jsonl",
            file=sys.stderr,
        )
        return ExitCode.ENVIRONMENT
    print((imported.reports / "summary.txt").read_text(), end="")
    print(f"Reports: {imported.reports}/")
    code = outcome(job)
    if code is ExitCode.REJECTED:
        print(f"rejected: fix the problems in {imported.reports}/errors.jsonl and import again", file=sys.stderr)
    elif code is ExitCode.FINISHED_WITH_ERRORS:
        print(
            f"finished with errors: {job.rows_failed} rows failed, {job.invalid_records} records invalid, "
            f"{job.rows_skipped} rows skipped; see {imported.reports}/report.json",
            file=sys.stderr,
        )
    elif code is ExitCode.ENVIRONMENT:
        print(f"job failed: {job.failure}", file=sys.stderr)
    return code


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _without_context(message: str) -> str:
    """An Encord error without the request context the SDK appends (timestamp, trace and span ids, domain)."""
    return _one_line(message.split(" timestamp=")[0])


def _readable(name: str) -> Path:
    path = Path(name).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise UsageError(f"no such file: {name}" if not path.exists() else f"not a readable file: {name}")
    return path


def _redrive(args: argparse.Namespace) -> int:
    if args.dead_letter_queue_url == args.queue_url:
        raise UsageError("--dead-letter-queue-url and --queue-url are the same queue: give the stack's two outputs")
    moved = redrive(boto3.client("sqs"), args.dead_letter_queue_url, args.queue_url)
    print(f"moved {moved} chunk messages back to the import queue")
    return ExitCode.DONE


# --- failures: what each kind of exception means, said in one line -------------------------------------------

Explain = Callable[[BaseException, argparse.Namespace | None], str | None]


@dataclass(frozen=True)
class Failure:
    """One kind of failure: the exceptions that are it (anywhere in the chain of causes), its exit code, and the
    line that says what to do; `explain` may decline (None) when the kind means nothing for this command.

    A kind given as "module.Class" is one of the layer's own that this module must not import: loading
    import_chunk or rollback loads Powertools, which reads its environment once, before `import` has set it.
    Such a class is looked up only if its module is loaded, which it is whenever one of its exceptions exists.
    """

    kinds: tuple[type[BaseException] | str, ...]
    exit_code: ExitCode
    explain: Explain

    def matches(self, error: BaseException) -> bool:
        return any(isinstance(error, kind) for kind in map(_loaded_class, self.kinds) if kind is not None)


def _loaded_class(kind: type[BaseException] | str) -> type[BaseException] | None:
    if not isinstance(kind, str):
        return kind
    module, _, name = kind.rpartition(".")
    return getattr(sys.modules.get(module), name, None)


def _interrupted(error: BaseException, args: argparse.Namespace | None) -> str:
    return f"interrupted: {RUN_AGAIN}"


def _quoted(error: BaseException, args: argparse.Namespace | None) -> str:
    return str(error)


def _no_region(error: BaseException, args: argparse.Namespace | None) -> str | None:
    if _aws_resources(args) is None:
        return None
    return (
        "no AWS region: set AWS_DEFAULT_REGION to the stack's region, e.g. AWS_DEFAULT_REGION=eu-west-1 (boto3 reads "
        "AWS_DEFAULT_REGION, not AWS_REGION), or `region` in your AWS profile"
    )


def _no_credentials(error: BaseException, args: argparse.Namespace | None) -> str | None:
    if _aws_resources(args) is None:
        return None
    return (
        f"no usable AWS credentials ({_one_line(str(error))}): set AWS_PROFILE (after `aws configure` or "
        "`aws sso login`), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )


def _aws_unreachable(error: BaseException, args: argparse.Namespace | None) -> str | None:
    if _aws_resources(args) is None:
        return None
    return (
        f"cannot reach AWS ({_one_line(str(error))}): check the network, AWS_DEFAULT_REGION, and AWS_ENDPOINT_URL "
        "if it is set"
    )


_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "AccessDeniedException",
    }
)


def _aws_refused(error: BaseException, args: argparse.Namespace | None) -> str | None:
    resources = _aws_resources(args)
    if resources is None or not isinstance(error, aws.ClientError):
        return None
    details = error.response.get("Error", {})
    code, message = details.get("Code", "?"), _one_line(details.get("Message", ""))
    operation = error.operation_name
    if code in _CREDENTIAL_CODES:
        return (
            f"AWS refused {operation} ({code}: {message}): check the credentials (AWS_PROFILE or the access keys) and "
            f"that they may call {operation} on {resources}"
        )
    return (
        f"AWS: {operation} failed ({code}: {message}): check {resources}, and AWS_DEFAULT_REGION (the stack's region)"
    )


def _aws_resources(args: argparse.Namespace | None) -> str | None:
    """What a command finds in AWS, as the user names it; None for the local import, whose AWS is in-process."""
    return getattr(args, "aws_resources", None)


def _configuration(error: BaseException, args: argparse.Namespace | None) -> str:
    return (
        f"{error}: set the functions' settings as the stack has them (JOBS_TABLE_NAME = stack output JobsTableName, "
        "ENCORD_SECRET_ID = the key's secret ARN; ENCORD_DOMAIN if not the public API)"
    )


def _key_unusable(error: BaseException, args: argparse.Namespace | None) -> str:
    return f"{error}: check ENCORD_SECRET_ID, and that these AWS credentials may read the secret"


def _encord_unreachable(error: BaseException, args: argparse.Namespace | None) -> str:
    return (
        f"cannot reach Encord at {_encord_domain(error, args)} ({_network_reason(error)}): check the network "
        f"(proxy, VPN, firewall), or {_domain_option(args)} if that is not your Encord API"
    )


def _encord_refused_key(error: BaseException, args: argparse.Namespace | None) -> str:
    key_file = getattr(args, "ssh_key_file", None)
    key = f"the key in {key_file}" if key_file else "the key"
    return (
        f"Encord at {_encord_domain(error, args)} refused {key} ({type(error).__name__}): add its public key to your "
        f"Encord user (Settings > Public keys), and check that {_domain_option(args)} is your Encord region's API"
    )


def _encord_refused_project(error: BaseException, args: argparse.Namespace | None) -> str:
    given = getattr(args, "project", None)
    project, check = (f"project {given}", "--project") if given else ("the job's project", "the job's project hash")
    return (
        f"Encord at {_encord_domain(error, args)} has no {project} that this key can open ({type(error).__name__}): "
        f"check {check}, and that the key's Encord user is a member of the project"
    )


def _encord_failed(error: BaseException, args: argparse.Namespace | None) -> str:
    message = error.message if isinstance(error, encord.EncordException) else str(error)
    return (
        f"Encord at {_encord_domain(error, args)} failed ({type(error).__name__}: {_without_context(message)}): "
        f"try again later; {RUN_AGAIN}"
    )


def _busy(error: BaseException, args: argparse.Namespace | None) -> str:
    return f"not finished: {error}; {RUN_AGAIN}"


def _redrive_incomplete(error: BaseException, args: argparse.Namespace | None) -> str:
    return f"redrive stopped: {error}; running it again is safe (a chunk sent twice imports nothing twice)"


FAILURES: tuple[Failure, ...] = (
    Failure((KeyboardInterrupt,), ExitCode.INTERRUPTED, _interrupted),
    Failure((UsageError,), ExitCode.USAGE, _quoted),
    Failure(
        ("label_importer.services.rollback.CannotRollBack",),
        ExitCode.USAGE,
        lambda error, args: f"cannot roll back: {error}",
    ),
    Failure((SetupError,), ExitCode.ENVIRONMENT, _quoted),
    Failure((ConfigurationError,), ExitCode.ENVIRONMENT, _configuration),
    Failure((aws.NoRegionError,), ExitCode.ENVIRONMENT, _no_region),
    Failure(
        (
            aws.NoCredentialsError,
            aws.PartialCredentialsError,
            aws.CredentialRetrievalError,
            aws.ProfileNotFound,
            aws.TokenRetrievalError,
            aws.SSOError,
        ),
        ExitCode.ENVIRONMENT,
        _no_credentials,
    ),
    Failure((aws.ConnectionError, aws.HTTPClientError), ExitCode.ENVIRONMENT, _aws_unreachable),
    Failure(("label_importer.encord_target.gateway.EncordKeyUnusable",), ExitCode.ENVIRONMENT, _key_unusable),
    Failure((aws.ClientError,), ExitCode.ENVIRONMENT, _aws_refused),
    Failure(
        (requests.ConnectionError, requests.Timeout, encord.TimeOutError), ExitCode.ENVIRONMENT, _encord_unreachable
    ),
    Failure((encord.AuthenticationError,), ExitCode.ENVIRONMENT, _encord_refused_key),
    Failure((encord.AuthorisationError, encord.ResourceNotFoundError), ExitCode.ENVIRONMENT, _encord_refused_project),
    Failure((encord.EncordException,), ExitCode.ENVIRONMENT, _encord_failed),
    Failure(("label_importer.services.import_chunk.DataUnitsBusy",), ExitCode.ENVIRONMENT, _busy),
    Failure((RedriveIncomplete,), ExitCode.ENVIRONMENT, _redrive_incomplete),
)
"""Checked in order, the first that explains any exception in the chain wins; anything else is a bug (exit 1)."""


def explain(error: BaseException, args: argparse.Namespace | None) -> tuple[str, ExitCode]:
    """The one line to print for `error`, and the exit code: how every command fails, in one place."""
    chain = list(_chain(error))
    for failure in FAILURES:
        for link in chain:
            if failure.matches(link) and (line := failure.explain(link, args)) is not None:
                return _one_line(line, limit=None), failure.exit_code
    where = _write_traceback(error, args)
    return (
        f"internal error: {type(error).__name__}: {_one_line(str(error))} (a bug; the full traceback is in {where}, "
        "please include it when you report it)",
        ExitCode.INTERNAL_ERROR,
    )


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The exception and its causes, as a traceback would show them (`raise ... from None` ends the chain)."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)


def _write_traceback(error: BaseException, args: argparse.Namespace | None) -> Path:
    """The traceback goes to a file, never the terminal: into the reports folder of an import, else a temp file."""
    text = "".join(traceback.format_exception(error))
    name = f"label-importer-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    out = getattr(args, "out", None)
    folders = [Path(out)] if out else []
    for folder in [*folders, Path(tempfile.gettempdir())]:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
            return (folder / name).resolve()
        except OSError:
            continue
    return Path("(nowhere: no folder could be written)")


def _one_line(text: str, limit: int | None = _LINE_CHARACTERS) -> str:
    line = " ".join(text.split())
    return line if limit is None or len(line) <= limit else line[: limit - 1] + "…"


def _encord_domain(error: BaseException, args: argparse.Namespace | None) -> str:
    """The API the failed request went to, from the request itself if it says, else from the settings."""
    for link in _chain(error):
        url = getattr(getattr(link, "request", None), "url", None)
        if isinstance(url, str) and url:
            parts = urlsplit(url)
            return f"{parts.scheme}://{parts.netloc}"
    return getattr(args, "domain", None) or os.environ.get("ENCORD_DOMAIN") or ENCORD_PUBLIC_API


def _domain_option(args: argparse.Namespace | None) -> str:
    return "--domain (or ENCORD_DOMAIN)" if hasattr(args, "domain") else "ENCORD_DOMAIN"


def _network_reason(error: BaseException) -> str:
    for link in _chain(error):
        if isinstance(link, socket.gaierror):
            return "the name does not resolve"
        if isinstance(link, ConnectionRefusedError):
            return "connection refused"
        if isinstance(link, requests.Timeout | TimeoutError | encord.TimeOutError):
            return "no answer in time"
    return _one_line(str(error), limit=120)


# --- the command line ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m label_importer",
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
    local.add_argument("file", help="a JSON Lines (.jsonl, .jsonl.gz) or COCO (.json, .json.gz) label file")
    local.add_argument("--project", required=True, help="the Encord project hash")
    local.add_argument(
        "--ssh-key-file",
        default=os.environ.get("ENCORD_SSH_KEY_FILE"),
        help="the Encord SSH private key, OpenSSH Ed25519 (default: $ENCORD_SSH_KEY_FILE)",
    )
    local.add_argument(
        "--domain",
        default=os.environ.get("ENCORD_DOMAIN") or ENCORD_PUBLIC_API,
        help=f"the Encord API (default: $ENCORD_DOMAIN, else the public one, {ENCORD_PUBLIC_API})",
    )
    local.add_argument("--out", default="import-reports", help="where reports go: <out>/<job-id>/")
    local.set_defaults(run=_import)

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

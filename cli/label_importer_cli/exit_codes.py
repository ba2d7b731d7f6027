"""What a command's exit code means, for every command alike, and the exit code a job's outcome is."""

from __future__ import annotations

from enum import IntEnum

from label_importer.model.jobs import TERMINAL, Job, JobStatus


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
  2    usage: a wrong option, a file that is not there, a spec file (--ontology, --data-units) not as
       described, a job that is not there or cannot be rolled back
  3    the file was REJECTED: nothing was imported; errors.jsonl lists every problem by line
  4    finished with FAILED rows, or with records or rows skipped as invalid (on_error: skip-invalid),
       even when every record was invalid
  5    environment: the Encord key, the network, AWS credentials or region, Encord refusing the key or the
       project, a FAILED job, or a job left unfinished (chunks in the dead-letter queue)
  130  interrupted (Ctrl-C): running the same command again is safe
`status` exits 0 once it printed the job, whatever its status; `status --watch` waits for the job to end and
exits with the code of its outcome (0, 3, 4 or 5), for scripts that wait on an import.
"""


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

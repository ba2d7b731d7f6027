"""How the CLI turns an exception into one line and an exit code (`label_importer_cli.explain`), and a job
into an exit code (`outcome`): the cases a subprocess cannot cheaply stage, with the exceptions the libraries
raise built as they build them. The commands themselves run as a user runs them in
tests/integration/test_local_cli.py.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError, NoRegionError
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from encord.exceptions import RequestException

from label_importer.model.jobs import Job, JobStatus
from label_importer.model.leases import DataUnitsBusy
from label_importer.store.dead_letters import RedriveIncomplete
from label_importer_cli.commands import build_parser, main
from label_importer_cli.encord_key import key_problem
from label_importer_cli.exit_codes import EXIT_CODES, ExitCode, UsageError, outcome
from label_importer_cli.explain import RUN_AGAIN, explain
from local.keys import generate_ssh_private_key

API = "https://api.eu.encord.example"


def import_args(tmp_path: Path) -> argparse.Namespace:
    arguments = ["import", "labels.jsonl", "--project", "p", "--domain", API, "--out", str(tmp_path / "reports")]
    return build_parser().parse_args([*arguments, "--ssh-key-file", "key"])


def status_args() -> argparse.Namespace:
    return build_parser().parse_args(["status", "job", "--table", "jobs"])


def raised(error: BaseException, cause: BaseException | None = None) -> BaseException:
    """`error` as Python hands it over: raised (so it has a traceback), with `cause` as its __cause__."""
    try:
        raise error from cause
    except BaseException as caught:
        return caught


def sdk_request_failure(cause: Exception) -> BaseException:
    """What the encord SDK raises when `session.send` fails: its RequestException, from the requests error."""
    return raised(RequestException(f"Request session.send failed req.url='{API}/v2/public/projects/p'"), cause)


def test_a_name_that_does_not_resolve_names_the_domain_the_request_went_to(tmp_path: Path) -> None:
    request = requests.Request("GET", f"{API}/v2/public/projects/p").prepare()
    dns = raised(requests.ConnectionError("Max retries exceeded", request=request), socket.gaierror(-2, "not known"))

    line, code = explain(sdk_request_failure(dns), import_args(tmp_path))

    assert code is ExitCode.ENVIRONMENT
    assert line.startswith(f"cannot reach Encord at {API} (the name does not resolve): check the network")
    assert "--domain (or ENCORD_DOMAIN)" in line


def test_an_encord_that_does_not_answer_in_time_says_so(tmp_path: Path) -> None:
    line, code = explain(sdk_request_failure(raised(requests.ReadTimeout("read timed out"))), import_args(tmp_path))

    assert code is ExitCode.ENVIRONMENT
    assert f"cannot reach Encord at {API} (no answer in time)" in line


def test_an_aws_error_names_what_the_command_needs() -> None:
    missing = ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "not found"}}, "GetItem")

    line, code = explain(raised(missing), status_args())

    assert code is ExitCode.ENVIRONMENT
    assert line == (
        "AWS: GetItem failed (ResourceNotFoundException: not found): check --table (stack output JobsTableName), "
        "and AWS_DEFAULT_REGION (the stack's region)"
    )


def test_refused_credentials_say_to_check_them() -> None:
    refused = ClientError({"Error": {"Code": "UnrecognizedClientException", "Message": "bad token"}}, "GetItem")

    line, code = explain(raised(refused), status_args())

    assert code is ExitCode.ENVIRONMENT and "check the credentials (AWS_PROFILE or the access keys)" in line


def test_no_region_says_which_variable_boto3_reads() -> None:
    args = build_parser().parse_args(["redrive", "--dead-letter-queue-url", "a", "--queue-url", "b"])

    line, code = explain(raised(NoRegionError()), args)

    assert code is ExitCode.ENVIRONMENT and "set AWS_DEFAULT_REGION" in line


def test_an_aws_error_inside_the_local_import_is_a_bug_not_the_users_setup(tmp_path: Path) -> None:
    """The local import's AWS is moto, in the process: nothing the user could set would fix it."""
    line, code = explain(raised(NoRegionError()), import_args(tmp_path))

    assert code is ExitCode.INTERNAL_ERROR and line.startswith("internal error: NoRegionError")


def test_an_unexpected_error_is_one_line_and_its_traceback_goes_to_the_reports_folder(tmp_path: Path) -> None:
    def deep_inside() -> None:
        raise RuntimeError("the unexpected\nhappened")

    try:
        deep_inside()
    except RuntimeError as error:
        line, code = explain(error, import_args(tmp_path))

    assert code is ExitCode.INTERNAL_ERROR
    [log] = (tmp_path / "reports").glob("label-importer-error-*.log")
    assert line == (
        f"internal error: RuntimeError: the unexpected happened (a bug; the full traceback is in {log.resolve()}, "
        "please include it when you report it)"
    )
    written = log.read_text()
    assert written.startswith("Traceback (most recent call last):") and "in deep_inside" in written


def test_ctrl_c_during_the_cleanup_after_another_failure_is_still_an_interruption() -> None:
    interrupted = raised(KeyboardInterrupt())
    try:
        try:
            raise interrupted
        finally:
            raise OSError("the server did not stop")  # its __context__ is the interruption
    except OSError as error:
        line, code = explain(error, status_args())

    assert code is ExitCode.INTERRUPTED
    assert line.startswith("interrupted: running the same command again is safe")


def test_raise_from_none_ends_the_chain_of_causes() -> None:
    hidden = raised(UsageError("no such file: labels.jsonl"), None)
    hidden.__context__ = KeyboardInterrupt()
    hidden.__suppress_context__ = True

    assert explain(hidden, None) == ("no such file: labels.jsonl", ExitCode.USAGE)


def test_a_layer_error_is_recognised_without_this_module_importing_its_module() -> None:
    from label_importer.services.rollback import CannotRollBack

    line, code = explain(raised(CannotRollBack("job j is QUEUED")), None)

    assert (line, code) == ("cannot roll back: job j is QUEUED", ExitCode.USAGE)


def test_a_redrive_sqs_refused_says_running_it_again_is_safe() -> None:
    stopped = RedriveIncomplete(10, [{"Id": "0", "Code": "InternalError", "Message": "try later"}])

    line, code = explain(raised(stopped), None)

    assert code is ExitCode.ENVIRONMENT
    assert "10 messages moved, then 1 could not be sent back (InternalError: try later)" in line
    assert "running it again is safe" in line


def test_data_units_busy_says_running_again_is_safe() -> None:
    """An import or rollback that waited too long for leases held by another job: nothing is wrong but timing."""
    busy = DataUnitsBusy("2 data units stayed leased by other imports; retrying later")

    line, code = explain(raised(busy), None)

    assert code is ExitCode.ENVIRONMENT
    assert line == f"not finished: 2 data units stayed leased by other imports; retrying later; {RUN_AGAIN}"


def job(status: JobStatus, **counts: int) -> Job:
    return Job("j", status, "bucket", "incoming/a.jsonl", None, "p", "append", created_at=0, **counts)


@pytest.mark.parametrize(
    ("finished", "code"),
    [
        (job(JobStatus.COMPLETED), ExitCode.DONE),
        (job(JobStatus.VALIDATED), ExitCode.DONE),
        (job(JobStatus.ROLLED_BACK, rows_failed=1), ExitCode.DONE),
        (job(JobStatus.REJECTED, invalid_records=3), ExitCode.REJECTED),
        (job(JobStatus.COMPLETED_WITH_ERRORS, rows_failed=1), ExitCode.FINISHED_WITH_ERRORS),
        (job(JobStatus.COMPLETED, invalid_records=1), ExitCode.FINISHED_WITH_ERRORS),
        (job(JobStatus.COMPLETED, rows_skipped=1), ExitCode.FINISHED_WITH_ERRORS),
        (job(JobStatus.VALIDATED, invalid_records=1), ExitCode.FINISHED_WITH_ERRORS),
        (job(JobStatus.FAILED), ExitCode.ENVIRONMENT),
        (job(JobStatus.IMPORTING), ExitCode.ENVIRONMENT),
    ],
    ids=lambda value: (
        f"{value.status}:{value.rows_failed}/{value.invalid_records}/{value.rows_skipped}"
        if isinstance(value, Job)
        else str(int(value))
    ),
)
def test_a_jobs_outcome_is_its_exit_code(finished: Job, code: ExitCode) -> None:
    assert outcome(finished) is code


def test_a_usable_key_has_no_problem_and_an_rsa_key_is_told_to_be_ed25519() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    rsa_text = rsa_key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()

    assert key_problem(generate_ssh_private_key()) is None
    problem = key_problem(rsa_text)
    assert problem is not None and "another type" in problem and "ssh-keygen -t ed25519" in problem
    assert rsa_text.splitlines()[1] not in problem  # never a piece of the key itself


def test_help_lists_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ([], ["import"], ["status"], ["rollback"], ["redrive"]):
        with pytest.raises(SystemExit) as exited:
            main([*command, "--help"])
        assert exited.value.code == 0
        shown = capsys.readouterr().out
        assert EXIT_CODES.splitlines()[0] in shown
        for code in ExitCode:
            assert f"\n  {int(code):<4} " in shown, (command, code)

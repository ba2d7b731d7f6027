"""`label-importer ...`, run as a user runs it: the installed command, a fresh process, a user's environment.

`import` talks to the test session's fake Encord over HTTP, as it would to the real API; its bucket, queue and
table live and die inside it. `status`, `rollback` and `redrive` talk to the session's moto when a test gives
them its address, or to nothing at all when the test is about a missing AWS setting.

Every failure a user can cause or meet must end as one line on stderr that says what to do, with the exit code
the CLI documents (`label-importer --help`), never a traceback.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from local.fake_encord import FakeEncordServer
from local.keys import generate_ssh_private_key
from local.pipeline import Pipeline
from local.sample_labels import jsonl
from local.stack import MAX_RECEIVE_COUNT, REGION, TABLE, user_environment

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "samples" / "quickstart.jsonl"
VOC_OBJECTS = (ROOT / "samples" / "voc" / "Annotations" / "cherry_001.xml").read_text().count("<object>")
"""Two images (image_00000.jpg, image_00001.jpg): one chunk."""
TIMEOUT_SECONDS = 120
SCRIPT = shutil.which("label-importer", path=str(Path(sys.executable).parent))
"""The console script `pip install` puts beside this Python: the command as a user runs it."""
CLI = [SCRIPT or "label-importer"]


def fake(pipeline: Pipeline) -> FakeEncordServer:
    assert pipeline.stack.encord is not None
    return pipeline.stack.encord


def import_command(
    pipeline: Pipeline,
    label_file: Path,
    tmp_path: Path,
    *,
    key: str | None = None,
    project: str | None = None,
    domain: str | None = "fake",
) -> list[str]:
    key_file = tmp_path / "encord-key"
    key_file.write_text(generate_ssh_private_key() if key is None else key)
    command = [*CLI, "import", str(label_file), "--project", project or fake(pipeline).project_hash]
    command += ["--ssh-key-file", str(key_file), "--out", str(tmp_path / "reports")]
    if domain is not None:
        command += ["--domain", fake(pipeline).url if domain == "fake" else domain]
    return command


def run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = user_environment() if env is None else env
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)


def run_cli(pipeline: Pipeline, label_file: Path, tmp_path: Path, **options: str) -> subprocess.CompletedProcess[str]:
    return run(import_command(pipeline, label_file, tmp_path, **options))


def said(done: subprocess.CompletedProcess[str], *phrases: str) -> str:
    """The one stderr line that holds every phrase; the output holds no traceback."""
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = [line for line in done.stderr.splitlines() if all(phrase in line for phrase in phrases)]
    assert len(lines) == 1, f"no single line with {phrases} in:\n{done.stderr}"
    return lines[0]


def aws_environment(**extra: str) -> dict[str, str]:
    """A user's environment with the session's moto as their AWS account."""
    names = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "NO_PROXY")
    return {**user_environment(), **{name: os.environ[name] for name in names}, "AWS_DEFAULT_REGION": REGION, **extra}


def no_aws_environment(**extra: str) -> dict[str, str]:
    """A user's environment with no AWS setup at all: no profile files, no instance metadata to fall back on."""
    return {
        **user_environment(),
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }


# --- the install -------------------------------------------------------------------------------------------------


def test_the_install_gives_a_label_importer_command_and_python_m_runs_the_same() -> None:
    assert SCRIPT is not None, f"no label-importer beside {sys.executable}: pip install -e '.[dev]'"
    installed = run([*CLI, "--help"])
    module = run([sys.executable, "-m", "label_importer_cli", "--help"])

    assert installed.returncode == module.returncode == 0, installed.stderr + module.stderr
    assert installed.stdout.startswith("usage: label-importer ")
    assert module.stdout == installed.stdout


def test_import_without_the_local_extra_says_which_pip_command_installs_it(tmp_path: Path) -> None:
    """`pip install .` without `[local]` has no moto: `import` says so in one line before it starts."""
    without_moto = (
        "import sys; sys.modules['moto'] = None; from label_importer_cli.commands import main; sys.exit(main())"
    )
    key_file = tmp_path / "encord-key"
    key_file.write_text(generate_ssh_private_key())
    out = tmp_path / "reports"
    arguments = ["import", str(QUICKSTART), "--project", "p", "--ssh-key-file", str(key_file), "--out", str(out)]

    done = run([sys.executable, "-c", without_moto, *arguments])

    assert done.returncode == 5
    said(done, "the local import needs the local stack", "moto", "pip install '.[local]'")
    assert not out.exists()


# --- outcomes ------------------------------------------------------------------------------------------------


def test_a_file_imports_from_this_machine_with_its_reports_in_a_local_folder(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    hashes = fake(pipeline).add_images(2)
    out = tmp_path / "reports"

    done = run_cli(pipeline, QUICKSTART, tmp_path)

    assert done.returncode == 0, done.stderr
    [job_dir] = out.iterdir()
    report = orjson.loads((job_dir / "report.json").read_bytes())
    assert (report["status"], report["rows"]["imported"], report["labels_added"]) == ("COMPLETED", 2, 6)
    assert "COMPLETED" in done.stdout and f"Reports: {job_dir}/" in done.stdout
    assert "2/2" in done.stderr and "100%" in done.stderr  # the progress bar
    rows = pipeline.stack.read_back(hashes)
    assert sum(len(row.get_object_instances()) for row in rows.values()) == 4


@pytest.mark.parametrize(
    ("sample", "images", "labels_added"),
    [
        (ROOT / "samples" / "voc" / "Annotations" / "cherry_001.xml", ["cherry_001.jpg"], VOC_OBJECTS),
        (ROOT / "samples" / "csv" / "tags.csv", ["a.jpg", "b.jpg"], 5),
        (ROOT / "samples" / "encord-export" / "export.json", ["cherry_001.jpg"], 6),
        (ROOT / "samples" / "cvat" / "video" / "annotations.xml", [], 4),
    ],
    ids=["pascal-voc-xml", "csv-classifications", "encord-export", "cvat-video"],
)
def test_a_file_in_another_format_imports_from_this_machine(
    pipeline: Pipeline, tmp_path: Path, sample: Path, images: list[str], labels_added: int
) -> None:
    """The command line takes every format the bucket does: the key keeps the file's name, so its suffix."""
    for title in images:
        fake(pipeline).add_image(title)
    fake(pipeline).add_video("orchard.mp4", number_of_frames=10)

    done = run_cli(pipeline, sample, tmp_path)

    assert done.returncode == 0, done.stderr + done.stdout
    [job_dir] = (tmp_path / "reports").iterdir()
    report = orjson.loads((job_dir / "report.json").read_bytes())
    assert (report["status"], report["labels_added"]) == ("COMPLETED", labels_added)


def test_a_bad_file_gets_the_pipelines_error_report_and_nothing_is_written(pipeline: Pipeline, tmp_path: Path) -> None:
    fake(pipeline).add_image("image_00000.jpg")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(jsonl([{"data_title": "image_00000.jpg", "objects": [{"name": "Cheery", "point": [0.5, 0.5]}]}]))
    fake(pipeline).reset_counts()

    done = run_cli(pipeline, bad, tmp_path)

    assert done.returncode == 3
    [job_dir] = (tmp_path / "reports").iterdir()
    [error] = [orjson.loads(line) for line in (job_dir / "errors.jsonl").read_bytes().splitlines()]
    assert (error["line"], error["field"], error["code"]) == (1, "objects[0].name", "UNKNOWN_OBJECT")
    assert "did you mean 'Cherry'?" in error["message"]
    assert "REJECTED" in done.stdout
    said(done, "rejected", f"{job_dir}/errors.jsonl")
    assert fake(pipeline).write_requests() == 0


CHERRY = {"name": "Cherry", "bounding_box": {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.2}}
UNKNOWN = {"name": "Cheery", "point": [0.5, 0.5]}


@pytest.mark.parametrize(
    ("records", "status", "exit_code", "reason"),
    [
        pytest.param([{"dry_run": True}, CHERRY, CHERRY], "VALIDATED", 0, None, id="dry run"),
        pytest.param(
            [{"on_error": "skip-invalid"}, CHERRY, UNKNOWN], "COMPLETED", 4, "1 records invalid", id="some skipped"
        ),
        pytest.param(
            [{"on_error": "skip-invalid"}, UNKNOWN, UNKNOWN],
            "COMPLETED",
            4,
            "2 records invalid",
            id="every one skipped",
        ),
    ],
)
def test_the_exit_code_says_whether_records_were_skipped(
    pipeline: Pipeline, tmp_path: Path, records: list[dict[str, object]], status: str, exit_code: int, reason: str
) -> None:
    header, *objects = records
    fake(pipeline).add_images(2)
    labels = tmp_path / "labels.jsonl"
    lines = [{"data_title": f"image_{i:05d}.jpg", "objects": [labelled]} for i, labelled in enumerate(objects)]
    labels.write_bytes(jsonl([header, *lines]))

    done = run_cli(pipeline, labels, tmp_path)

    assert done.returncode == exit_code, done.stderr
    assert f": {status}" in done.stdout
    if reason:
        said(done, "finished with errors", reason)
    else:
        assert "Traceback" not in done.stderr and fake(pipeline).write_requests() == 0


def test_a_row_encord_refuses_finishes_the_job_with_errors_and_exit_code_4(pipeline: Pipeline, tmp_path: Path) -> None:
    _, refused = fake(pipeline).add_images(2)
    fake(pipeline).refuse_saves(refused)

    done = run_cli(pipeline, QUICKSTART, tmp_path)

    assert done.returncode == 4, done.stderr
    assert "COMPLETED_WITH_ERRORS" in done.stdout
    said(done, "finished with errors", "1 rows failed", "report.json")


def test_import_defaults_the_domain_to_encord_domain_from_the_environment(pipeline: Pipeline, tmp_path: Path) -> None:
    fake(pipeline).add_images(2)
    command = import_command(pipeline, QUICKSTART, tmp_path, domain=None)

    done = run(command, env={**user_environment(), "ENCORD_DOMAIN": fake(pipeline).url})

    assert done.returncode == 0, done.stderr
    assert fake(pipeline).write_requests() > 0


# --- the key, the network, Encord refusing ---------------------------------------------------------------------


def _closed_port() -> int:
    """A port nothing listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _public_key() -> str:
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + " me@laptop\n"


def _pkcs8_key() -> str:
    return Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


@pytest.mark.parametrize(
    ("key", "fix"),
    [
        pytest.param(_public_key(), "give the private key (the same file name without .pub)", id="public key"),
        pytest.param(_pkcs8_key(), "this is a PKCS8 private key", id="PKCS8"),
        pytest.param('{"data_title": "a.jpg"}\n', "this is not a private key", id="not a key"),
    ],
)
def test_a_key_file_the_sdk_cannot_use_is_refused_in_one_line_before_anything_starts(
    pipeline: Pipeline, tmp_path: Path, key: str, fix: str
) -> None:
    done = run_cli(pipeline, QUICKSTART, tmp_path, key=key)

    assert done.returncode == 5
    said(done, "--ssh-key-file", fix, "-----BEGIN OPENSSH PRIVATE KEY-----")
    assert sum(fake(pipeline).request_counts.values()) == 0


def test_a_missing_key_file_is_a_usage_error(pipeline: Pipeline, tmp_path: Path) -> None:
    command = import_command(pipeline, QUICKSTART, tmp_path)
    command[command.index("--ssh-key-file") + 1] = str(tmp_path / "no-such-key")

    done = run(command)

    assert done.returncode == 2
    said(done, "no such file", "no-such-key")


def test_an_unreachable_encord_is_named_with_what_to_check(pipeline: Pipeline, tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{_closed_port()}"

    done = run_cli(pipeline, QUICKSTART, tmp_path, domain=nobody)

    assert done.returncode == 5
    said(done, f"cannot reach Encord at {nobody}", "connection refused", "check the network", "--domain")


def test_an_encord_that_does_not_answer_in_time_is_named_with_what_to_check(pipeline: Pipeline, tmp_path: Path) -> None:
    fake(pipeline).slow_next("get_project", seconds=5)
    command = import_command(pipeline, QUICKSTART, tmp_path)

    done = run(command, env={**user_environment(), "ENCORD_TIMEOUT_SECONDS": "1"})

    fake(pipeline).wait_until_idle()
    assert done.returncode == 5
    said(done, f"cannot reach Encord at {fake(pipeline).url}", "no answer in time", "--domain")


@pytest.mark.parametrize(
    ("status", "fix"),
    [
        pytest.param(401, "refused the key in", id="key refused"),
        pytest.param(403, "check --project", id="no access to the project"),
    ],
)
def test_encord_refusing_the_key_or_the_project_is_one_line(
    pipeline: Pipeline, tmp_path: Path, status: int, fix: str
) -> None:
    fake(pipeline).fail_next("get_project", status=status)

    done = run_cli(pipeline, QUICKSTART, tmp_path)

    assert done.returncode == 5
    said(done, f"Encord at {fake(pipeline).url}", fix)
    assert fake(pipeline).write_requests() == 0


def test_an_unknown_project_is_one_line_naming_it(pipeline: Pipeline, tmp_path: Path) -> None:
    project = str(uuid.uuid4())

    done = run_cli(pipeline, QUICKSTART, tmp_path, project=project)

    assert done.returncode == 5
    said(done, f"has no project {project} that this key can open", "check --project")


# --- an import that cannot finish, and one that is interrupted ------------------------------------------------


def test_encord_down_through_every_delivery_fails_the_rows_with_the_last_error(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    fake(pipeline).add_images(2)
    fake(pipeline).fail_next("save_label_rows", status=503, times=1000)  # Encord down for every attempt
    command = import_command(pipeline, QUICKSTART, tmp_path)

    # Backoff in milliseconds, as the functions run against the fake: the same deliveries, without the waits.
    done = run(command, env={**user_environment(), "RETRY_BACKOFF_SECONDS": "0.01"})

    assert done.returncode == 4, done.stderr
    said(done, "finished with errors: 2 rows failed")
    assert "transient Encord fault" not in done.stdout  # the functions' logs went to the file
    [job_dir] = (tmp_path / "reports").iterdir()
    assert "transient Encord fault; retrying" in (job_dir / "lambda-logs.jsonl").read_text()
    summary = (job_dir / "summary.txt").read_text()
    assert f"still failing on delivery {MAX_RECEIVE_COUNT}, the last" in summary
    assert "UnknownException: An unknown error occurred" in summary  # the SDK's word for a 503
    assert fake(pipeline).request_counts["save_label_rows"] >= MAX_RECEIVE_COUNT


def test_ctrl_c_mid_import_says_running_again_is_safe_and_exits_130(pipeline: Pipeline, tmp_path: Path) -> None:
    fake(pipeline).add_images(2)
    fake(pipeline).slow_next("save_label_rows", seconds=6)  # the import waits on Encord until we interrupt it
    command = import_command(pipeline, QUICKSTART, tmp_path)
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=user_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A harness that runs the suite in the background starts it with Ctrl-C ignored, and children inherit
        # that; a user's shell does not, so the CLI gets Ctrl-C as a user's would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while fake(pipeline).request_counts["save_label_rows"] == 0:  # mid-import: the save has been sent
            assert process.poll() is None and time.monotonic() < deadline, "the import never reached its save"
            time.sleep(0.05)

        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
    finally:
        process.kill()
        fake(pipeline).wait_until_idle()

    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    assert done.returncode == 130, stderr
    said(done, "interrupted", "running the same command again is safe", "none is added twice")


# --- status, rollback and redrive against AWS --------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param(["status", "some-job", "--table", TABLE], id="status"),
        pytest.param(["rollback", "some-job"], id="rollback"),
        pytest.param(["redrive", "--dead-letter-queue-url", "dlq", "--queue-url", "queue"], id="redrive"),
    ],
)
def test_no_aws_region_says_which_variable_to_set(arguments: list[str]) -> None:
    settings = {"JOBS_TABLE_NAME": TABLE, "ENCORD_SECRET_ID": "encord/ssh-private-key"}  # what rollback reads

    done = run([*CLI, *arguments], env=no_aws_environment(**settings))

    assert done.returncode == 5
    said(done, "no AWS region", "set AWS_DEFAULT_REGION")


def test_no_aws_credentials_says_what_to_set() -> None:
    done = run([*CLI, "status", "some-job", "--table", TABLE], env=no_aws_environment(AWS_DEFAULT_REGION=REGION))

    assert done.returncode == 5
    said(done, "no usable AWS credentials", "AWS_PROFILE", "AWS_ACCESS_KEY_ID")


def test_rollback_without_the_functions_settings_names_them() -> None:
    done = run([*CLI, "rollback", "some-job"], env=no_aws_environment(AWS_DEFAULT_REGION=REGION))

    assert done.returncode == 5
    said(done, "JOBS_TABLE_NAME", "ENCORD_SECRET_ID", "stack output JobsTableName")


def test_a_wrong_table_name_says_to_check_table(pipeline: Pipeline) -> None:
    done = run([*CLI, "status", "some-job", "--table", "no-such-table"], env=aws_environment())

    assert done.returncode == 5
    said(done, "ResourceNotFoundException", "check --table (stack output JobsTableName)")


def test_status_exits_0_for_any_job_it_prints_and_watch_exits_with_the_jobs_outcome(pipeline: Pipeline) -> None:
    fake(pipeline).add_image("image_00000.jpg")
    job = pipeline.run("incoming/bad.jsonl", jsonl([{"data_title": "image_00000.jpg", "objects": [UNKNOWN]}]))
    status = [*CLI, "status", job.job_id, "--table", TABLE]

    printed, watched = run(status, env=aws_environment()), run([*status, "--watch"], env=aws_environment())
    unknown = run([*CLI, "status", "no-such-job", "--table", TABLE], env=aws_environment())

    assert (printed.returncode, watched.returncode) == (0, 3), printed.stderr + watched.stderr
    assert f"job {job.job_id}: REJECTED" in printed.stdout and f"job {job.job_id}: REJECTED" in watched.stdout
    assert unknown.returncode == 2
    said(unknown, "no job no-such-job", "check the job id", "--table")


def test_an_unexpected_error_is_one_line_naming_it_and_the_file_with_the_traceback(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
    table.put_item(Item={"pk": "JOB#broken", "sk": "JOB", "job_id": "broken", "status": "NO_SUCH_STATUS"})

    done = run([*CLI, "status", "broken", "--table", TABLE], env=aws_environment(TMPDIR=str(tmp_path)))

    assert done.returncode == 1
    line = said(done, "internal error: ValueError", "NO_SUCH_STATUS", "the full traceback is in")
    [log] = tmp_path.glob("label-importer-error-*.log")
    assert str(log) in line
    assert log.read_text().startswith("Traceback") and "from_item" in log.read_text()

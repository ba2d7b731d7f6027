"""`label-importer validate` against `export-spec`'s files says exactly what the deployed validator says.

For every file of the bad-file corpus, the deployed validator handler runs on the fake Encord; `export-spec`
writes that project's spec through the SDK; `validate` checks the file offline. Their errors.jsonl must be the
same bytes, and their status and exit code the same. Then `validate` is run where it cannot reach the network.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from test_bad_files import BAD, EXPECTED, with_the_corpus_data_units

from label_importer.model.jobs import JobStatus
from label_importer_cli.commands import main
from label_importer_cli.exit_codes import ExitCode, outcome
from label_importer_cli.project_spec import CSV_COLUMNS
from local.fake_encord import FakeEncordServer, build_ontology
from local.keys import generate_ssh_private_key
from local.pipeline import Pipeline
from local.stack import user_environment

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "samples" / "quickstart.jsonl"
PROJECT = "11111111-2222-3333-4444-555555555555"
NO_NETWORK = (
    "import socket\n"
    "def refuse(*args, **kwargs):\n"
    "    raise OSError('refused: no network here')\n"
    "socket.socket.connect = socket.socket.connect_ex = socket.create_connection = refuse\n"
)
"""Python that makes every connection attempt of the process fail, run before anything else is imported."""


def export_spec(fake: FakeEncordServer, tmp_path: Path) -> tuple[Path, Path]:
    key_file = tmp_path / "encord-key"
    key_file.write_text(generate_ssh_private_key())
    out = tmp_path / "spec"
    command = ["export-spec", "--project", fake.project_hash, "--ssh-key-file", str(key_file)]
    assert main([*command, "--domain", fake.url, "--out", str(out)]) == ExitCode.DONE
    return out / "ontology.json", out / "data-units.json"


def the_reports(out: Path) -> Path:
    [reports] = out.iterdir()
    return reports


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_validate_offline_reports_what_the_deployed_validator_reports(
    pipeline: Pipeline, tmp_path: Path, name: str
) -> None:
    project = with_the_corpus_data_units(pipeline)
    key = EXPECTED[name].get("key", f"incoming/{name}")
    deployed = project.job(project.drop(key, (BAD / name).read_bytes()))
    ontology, data_units = export_spec(pipeline.stack.encord, tmp_path)
    folder = key.removeprefix("incoming/").rpartition("/")[0]
    out = tmp_path / "out"

    command = ["validate", str(BAD / name), "--ontology", str(ontology), "--data-units", str(data_units)]
    code = main([*command, "--out", str(out), *(["--project", folder] if folder else [])])

    reports = the_reports(out)
    assert (reports / "errors.jsonl").read_bytes() == project.report(deployed.job_id, "errors.jsonl")
    offline, online = (
        orjson.loads((reports / "report.json").read_bytes()),
        orjson.loads(project.report(deployed.job_id, "report.json")),
    )
    assert offline["status"] == online["status"] == JobStatus.REJECTED
    assert (offline["records"], offline["problems"]) == (online["records"], online["problems"])
    assert code == outcome(deployed) == ExitCode.REJECTED


def test_validate_reaches_no_network_and_needs_no_encord_or_aws_settings(tmp_path: Path) -> None:
    """Exported from a fake that is then stopped, and run with every socket connection refused: a valid file
    is VALIDATED (exit 0), an invalid one REJECTED (exit 3), a skip-invalid one exits 4."""
    with FakeEncordServer() as fake:
        fake.add_images(2)
        ontology, data_units = export_spec(fake, tmp_path)
    skip_invalid = tmp_path / "skip-invalid.jsonl"
    skip_invalid.write_bytes(
        b'{"on_error": "skip-invalid"}\n'
        b'{"data_title": "image_00000.jpg", "objects": [{"name": "Pedicel", "point": [0.5, 0.5]}]}\n'
        b'{"data_title": "image_00001.jpg", "objects": [{"name": "Banana", "point": [0.5, 0.5]}]}\n'
    )
    offline = NO_NETWORK + "import sys\nfrom label_importer_cli.commands import main\nsys.exit(main(sys.argv[1:]))\n"
    spec = ["--ontology", str(ontology), "--data-units", str(data_units)]

    def validate(label_file: Path, out: str) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
        done = subprocess.run(
            [sys.executable, "-c", offline, "validate", str(label_file), *spec, "--out", str(tmp_path / out)],
            cwd=ROOT,
            env=user_environment(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Traceback" not in done.stdout + done.stderr, done.stderr
        return done, json.loads((the_reports(tmp_path / out) / "report.json").read_text())

    valid, valid_report = validate(QUICKSTART, "valid")
    invalid, invalid_report = validate(BAD / "041-unknown-object.jsonl", "invalid")
    skipped, skipped_report = validate(skip_invalid, "skipped")

    assert (valid.returncode, valid_report["status"]) == (ExitCode.DONE, "VALIDATED"), valid.stderr
    assert (invalid.returncode, invalid_report["status"]) == (ExitCode.REJECTED, "REJECTED")
    assert (skipped.returncode, skipped_report["status"]) == (ExitCode.FINISHED_WITH_ERRORS, "VALIDATED")
    assert skipped_report["records"] == {"total": 2, "invalid": 1, "left_out": 0}
    assert "errors.jsonl" in invalid.stderr


def test_the_network_guard_of_the_test_above_stops_the_encord_sdk() -> None:
    """Else the test above would prove nothing: under the same guard, the SDK opening a project fails."""
    with FakeEncordServer() as fake:
        client = f"encord_client({fake.url!r}, {generate_ssh_private_key()!r})"
        reach = f"from local.fake_encord import encord_client\n{client}.get_project({fake.project_hash!r})\n"
        guarded = subprocess.run(
            [sys.executable, "-c", NO_NETWORK + reach], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        reached = subprocess.run([sys.executable, "-c", reach], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert reached.returncode == 0, reached.stderr
    assert guarded.returncode != 0 and "refused: no network here" in guarded.stderr


def offline_problems(tmp_path: Path, units: str, *options: str) -> tuple[int, list[dict[str, object]]]:
    """`validate` of a one-record file against the demo ontology and a CSV of data units; its problems."""
    ontology, data_units, label_file = tmp_path / "ontology.json", tmp_path / "units.csv", tmp_path / "labels.jsonl"
    ontology.write_bytes(orjson.dumps(build_ontology().to_dict()))
    data_units.write_text(f"{','.join(CSV_COLUMNS)}\n{units}\n")
    label_file.write_text('{"data_title": "cherry.jpg", "objects": [{"name": "Pedicel", "point": [0.5, 0.5]}]}\n')
    spec = ["--ontology", str(ontology), "--data-units", str(data_units), "--out", str(tmp_path / "out")]
    code = main(["validate", str(label_file), *spec, *options])
    errors = the_reports(tmp_path / "out") / "errors.jsonl"
    return code, [orjson.loads(line) for line in errors.read_bytes().splitlines()] if errors.exists() else []


def test_with_no_project_anywhere_validate_asks_for_project(tmp_path: Path) -> None:
    """A CSV names no project, nor does this file: offline, --project is what a user can give."""
    code, problems = offline_problems(tmp_path, "h-cherry,cherry.jpg,image,1,640,480,")

    assert code == ExitCode.REJECTED
    [problem] = problems
    assert problem["code"] == "MISSING_PROJECT" and str(problem["message"]).endswith("or give --project")


def test_a_project_the_spec_files_do_not_describe_is_unknown(tmp_path: Path) -> None:
    with FakeEncordServer() as fake:
        fake.add_image("cherry.jpg")
        ontology, data_units = export_spec(fake, tmp_path)
    label_file = tmp_path / "labels.jsonl"
    label_file.write_text('{"data_title": "cherry.jpg", "objects": [{"name": "Pedicel", "point": [0.5, 0.5]}]}\n')
    other = "99999999-8888-7777-6666-555555555555"
    spec = ["--ontology", str(ontology), "--data-units", str(data_units)]

    matching = main(
        ["validate", str(label_file), *spec, "--out", str(tmp_path / "matching"), "--project", fake.project_hash]
    )
    other_project = main(["validate", str(label_file), *spec, "--out", str(tmp_path / "other"), "--project", other])

    assert matching == ExitCode.DONE
    assert other_project == ExitCode.REJECTED
    [problem] = [
        orjson.loads(line) for line in (the_reports(tmp_path / "other") / "errors.jsonl").read_bytes().splitlines()
    ]
    assert problem["code"] == "UNKNOWN_PROJECT" and other in str(problem["message"])


def test_a_valid_file_checked_offline_has_its_counts_and_no_errors_file(tmp_path: Path) -> None:
    code, problems = offline_problems(tmp_path, "h-cherry,cherry.jpg,image,1,640,480,", "--project", PROJECT)

    report = orjson.loads((the_reports(tmp_path / "out") / "report.json").read_bytes())
    assert (code, problems) == (ExitCode.DONE, [])
    assert (report["status"], report["project_hash"], report["rows"]["total"]) == ("VALIDATED", PROJECT, 1)

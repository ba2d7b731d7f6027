"""`python -m label_importer import FILE --project HASH`, run as a user runs it: a fresh process, no AWS.

The process talks to the test session's fake Encord over HTTP, as it would to the real API; its bucket,
queue and table live and die inside it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from local.keys import generate_ssh_private_key
from local.pipeline import Pipeline
from local.sample_labels import jsonl
from local.stack import user_environment

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def run_cli(pipeline: Pipeline, label_file: Path, out: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    key_file = tmp_path / "encord-key"
    key_file.write_text(generate_ssh_private_key())
    encord = pipeline.stack.encord
    assert encord is not None
    command = [sys.executable, "-m", "label_importer", "import", str(label_file), "--project", encord.project_hash]
    command += ["--domain", encord.url, "--ssh-key-file", str(key_file), "--out", str(out)]
    return subprocess.run(command, cwd=ROOT, env=user_environment(), capture_output=True, text=True, timeout=120)


def test_a_file_imports_from_this_machine_with_its_reports_in_a_local_folder(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    hashes = [pipeline.stack.encord.add_image(f"image_{i:05d}.jpg") for i in range(2)]  # type: ignore[union-attr]
    out = tmp_path / "reports"

    done = run_cli(pipeline, ROOT / "samples" / "quickstart.jsonl", out, tmp_path)

    assert done.returncode == 0, done.stderr
    [job_dir] = out.iterdir()
    report = orjson.loads((job_dir / "report.json").read_bytes())
    assert (report["status"], report["rows"]["imported"], report["labels_added"]) == ("COMPLETED", 2, 6)
    assert "COMPLETED" in done.stdout and f"Reports: {job_dir}/" in done.stdout
    assert "2/2" in done.stderr and "100%" in done.stderr  # the progress bar
    rows = pipeline.stack.read_back(hashes)
    assert sum(len(row.get_object_instances()) for row in rows.values()) == 4


def test_a_bad_file_gets_the_pipelines_error_report_and_nothing_is_written(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.stack.encord.add_image("image_00000.jpg")  # type: ignore[union-attr]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(jsonl([{"data_title": "image_00000.jpg", "objects": [{"name": "Cheery", "point": [0.5, 0.5]}]}]))
    pipeline.stack.encord.reset_counts()  # type: ignore[union-attr]

    done = run_cli(pipeline, bad, tmp_path / "reports", tmp_path)

    assert done.returncode == 1
    [job_dir] = (tmp_path / "reports").iterdir()
    [error] = [orjson.loads(line) for line in (job_dir / "errors.jsonl").read_bytes().splitlines()]
    assert (error["line"], error["field"], error["code"]) == (1, "objects[0].name", "UNKNOWN_OBJECT")
    assert "did you mean 'Cherry'?" in error["message"]
    assert "REJECTED" in done.stdout
    assert pipeline.stack.encord.write_requests() == 0  # type: ignore[union-attr]

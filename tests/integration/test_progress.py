"""Progress of a long import: the job record's counters and rate, `status --watch`, and the progress log.

Operated as a user would, through `label-importer status` (its `main`), against the local stack.
"""

from __future__ import annotations

import threading

import orjson
import pytest

import label_importer_cli.commands
from label_importer.model.jobs import Job, JobStatus
from label_importer_cli.commands import main
from local.pipeline import Pipeline
from local.sample_labels import image_records, jsonl
from local.stack import TABLE

pytestmark = pytest.mark.integration


def test_rate_and_eta_follow_from_the_counters_and_timestamps() -> None:
    job = Job("j", JobStatus.IMPORTING, "b", "k", None, "p", "append", created_at=990, total_rows=100)
    assert job.rows_per_second is None and job.eta_seconds is None  # nothing measured yet

    halfway = Job(
        **{**job.__dict__, "rows_imported": 38, "rows_failed": 2, "import_started_at": 1000, "updated_at": 1010}
    )
    assert halfway.progress() == {
        "rows_done": 40,
        "rows_failed": 2,
        "rows_total": 100,
        "rows_per_second": 4.0,
        "eta_seconds": 15.0,
    }


def slow_import(pipeline: Pipeline, images: int, key: str) -> str:
    """A job of `images` rows in chunks of 100 whose saves each take 1.1 s, dropped and queued, not drained."""
    titles = [f"{key}_{i:04d}.jpg" for i in range(images)]
    for title in titles:
        pipeline.stack.encord.add_image(title)
    pipeline.stack.encord.slow_next("save_label_rows", seconds=1.1, times=images // 100)
    return pipeline.drop(f"incoming/{key}.jsonl", jsonl(image_records(titles)))


def test_the_job_record_carries_rows_done_of_total_and_a_rate(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = slow_import(pipeline, 200, "rated")
    pipeline.drain()

    job = pipeline.job(job_id)
    assert (job.status, job.rows_done, job.total_rows) == (JobStatus.COMPLETED, 200, 200)
    assert job.import_started_at is not None and job.finished_at is not None
    assert job.rows_per_second == pytest.approx(200 / (job.finished_at - job.import_started_at))
    assert 0 < job.rows_per_second <= 200 / 2  # two saves of 1.1 s each
    assert job.eta_seconds == 0
    # The dashboard's "jobs in flight" widget reads these log lines.
    logged = [record.__dict__ for record in caplog.records if record.__dict__.get("job_id") == job_id]
    progress = [e for e in logged if e["msg"] == "job progress"]
    finished = [e for e in logged if e["msg"] == "job finished"]
    assert [(e["rows_done"], e["rows_total"], e["status"]) for e in progress] == [(100, 200, "IMPORTING")]
    assert [(e["rows_done"], e["rows_total"], e["status"]) for e in finished] == [(200, 200, "COMPLETED")]
    assert set(job.progress()) <= set(progress[0])


def test_status_watch_follows_a_job_to_its_end_as_json_lines(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = slow_import(pipeline, 300, "watched")
    capsys.readouterr()
    # The import starts once the command has read the job (still QUEUED) and begins to watch it, however long
    # the command takes to get there on a busy machine; a head start in seconds would be a guess.
    watching = threading.Event()
    watch = label_importer_cli.commands.watch

    def watch_and_say_so(*args: object, **kwargs: object) -> object:
        watching.set()
        return watch(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(label_importer_cli.commands, "watch", watch_and_say_so)
    consumer = threading.Thread(target=lambda: (watching.wait(timeout=60), pipeline.drain()))
    consumer.start()
    try:
        assert main(["status", job_id, "--table", TABLE, "--watch", "--json", "--interval", "0.1"]) == 0
    finally:
        consumer.join()

    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"job_id"')]
    assert lines[0]["status"] == "QUEUED" and lines[0]["rows_done"] == 0
    assert (lines[-1]["status"], lines[-1]["rows_done"], lines[-1]["eta_seconds"]) == ("COMPLETED", 300, 0.0)
    done = [line["rows_done"] for line in lines]
    assert done == sorted(done) and {100, 200} & set(done)  # seen in between, never going back


def test_status_watch_draws_a_progress_bar(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    job_id = slow_import(pipeline, 100, "barred")
    pipeline.drain()
    capsys.readouterr()

    assert main(["status", job_id, "--table", TABLE, "--watch", "--interval", "0.1"]) == 0

    captured = capsys.readouterr()
    assert "100/100" in captured.err and "100%" in captured.err and "COMPLETED" in captured.err
    assert f"job {job_id}: COMPLETED" in captured.out

"""`label-importer try-encord`, as a user runs it: started in its own process, its printed address, project and
key given to `label-importer import`, the labels read back through the SDK, and stopped with Ctrl-C."""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from local.fake_encord import build_ontology, encord_client
from local.stack import user_environment

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLI = [shutil.which("label-importer", path=str(Path(sys.executable).parent)) or "label-importer"]
TIMEOUT_SECONDS = 120


class Running:
    """The try-encord process, what it printed before it started waiting, and a thread reading the rest (a
    readline that never returns must not hang the test)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self.process = process
        self._lines: queue.Queue[str] = queue.Queue()
        stdout = process.stdout
        self._reader = threading.Thread(target=lambda: [self._lines.put(line) for line in stdout], daemon=True)
        self._reader.start()
        printed = self._printed_until_ready()
        self.domain, self.project, self.key_file = printed["domain"], printed["project"], Path(printed["key file"])

    def _printed_until_ready(self) -> dict[str, str]:
        """The `name: value` lines it prints up to the import command it suggests."""
        printed: dict[str, str] = {}
        while not (line := self._lines.get(timeout=TIMEOUT_SECONDS)).startswith("  label-importer import "):
            assert "Traceback" not in line, line
            name, _, value = line.strip().partition(": ")
            printed[name] = value
        return printed

    def labels(self, data_hash: str) -> list[str]:
        """The object titles on the data unit, read back through the unmodified SDK."""
        project = encord_client(self.domain, self.key_file.read_text()).get_project(self.project)
        [row] = project.list_label_rows_v2(data_hashes=[data_hash])
        row.initialise_labels()
        return sorted(instance.object_name for instance in row.get_object_instances())

    def stop(self) -> tuple[int, str]:
        """Ctrl-C, as a terminal sends it; its exit code and the rest of what it printed."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=TIMEOUT_SECONDS)
        self._reader.join(timeout=TIMEOUT_SECONDS)
        return code, "".join(self._lines.get() for _ in range(self._lines.qsize()))


@contextmanager
def try_encord(*options: str) -> Iterator[Running]:
    process = subprocess.Popen(
        [*CLI, "try-encord", *options],
        cwd=ROOT,
        env=user_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield Running(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def run_import(running: Running, label_file: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    command = [*CLI, "import", str(label_file), "--project", running.project, "--domain", running.domain]
    command += ["--ssh-key-file", str(running.key_file), "--out", str(tmp_path / "reports")]
    return subprocess.run(
        command, cwd=ROOT, env=user_environment(), capture_output=True, text=True, timeout=TIMEOUT_SECONDS
    )


def test_a_file_imports_end_to_end_into_a_fake_seeded_from_spec_files(tmp_path: Path) -> None:
    project_hash, cherry, group = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    ontology, data_units = tmp_path / "ontology.json", tmp_path / "data-units.json"
    ontology.write_bytes(orjson.dumps(build_ontology().to_dict()))
    image = {"data_hash": cherry, "title": "my cherry.jpg", "data_type": "image", "frames": 1, "width": 1024}
    sizes = [[640, 480], [4, 3]]
    image_group = {"data_hash": group, "title": "my group", "data_type": "img_group", "frames": 2, "image_sizes": sizes}
    data_units.write_bytes(
        orjson.dumps({"project_hash": project_hash, "data_units": [{**image, "height": 768}, image_group]})
    )
    box = {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.2}
    records = [
        {"data_title": "my cherry.jpg", "objects": [{"name": "Cherry", "bounding_box": box}]},
        {"data_hash": group, "objects": [{"name": "Pedicel", "point": [0.5, 0.5], "frames": 1}]},
    ]
    labels = tmp_path / "labels.jsonl"
    labels.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    spec = ["--ontology", str(ontology), "--data-units", str(data_units)]

    with try_encord(*spec, "--key-file", str(tmp_path / "key")) as running:
        imported = run_import(running, labels, tmp_path)
        assert imported.returncode == 0, imported.stderr
        assert (running.project, running.key_file) == (project_hash, tmp_path / "key")
        assert (running.labels(cherry), running.labels(group)) == (["Cherry"], ["Pedicel"])
        code, rest = running.stop()

    assert (code, rest.strip()) == (0, "stopped")


def test_with_no_spec_it_serves_the_demo_project_which_the_quickstart_file_imports_into(tmp_path: Path) -> None:
    with try_encord() as running:
        imported = run_import(running, ROOT / "samples" / "quickstart.jsonl", tmp_path)
        assert imported.returncode == 0, imported.stderr
        assert "Rows: 2 imported" in imported.stdout
        code, rest = running.stop()

    assert running.key_file.is_file() and (code, rest.strip()) == (0, "stopped")

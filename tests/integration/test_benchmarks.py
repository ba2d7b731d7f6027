"""The benchmarks run, small: each in a fresh process as `make bench` runs it, writing its JSON elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SMALL = {
    "round_trips": ["--units", "30"],
    "aws_model": ["--units", "40", "--bundle-size", "10", "--latency", "0", "--repeat", "1"],
    "throughput": ["--units", "30", "--naive-units", "3", "--latency", "0", "--repeat", "1"],
    "cpu_per_label": ["--units", "20", "--repeat", "1"],
    "cold_start": ["--repeat", "1"],
    "validator_memory": ["--sizes", "1", "--layouts", "interleaved"],
    "reader_speed": ["--images", "20", "--repeat", "1"],
    "scaling": ["--megabytes", "1,2,4", "--rows", "10,20,40"],
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_benchmark_runs_and_writes_its_table(name: str, tmp_path: Path) -> None:
    environment = {**os.environ, "BENCH_RESULTS": str(tmp_path)}
    for variable in [name for name in environment if name.startswith(("AWS_", "ENCORD_", "JOBS_", "IMPORT_"))]:
        del environment[variable]  # a benchmark sets up its own local stack, as on a clean machine
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *SMALL[name]],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads((tmp_path / f"{name}.json").read_text())
    assert written["rows"] and written["machine"]["cores"] >= 1

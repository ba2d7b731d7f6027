"""What every benchmark prints and writes: a table, the same rows as JSON, and the machine they came from.

Absolute times on a shared machine drift from run to run; the benchmarks therefore measure the things they
compare side by side in one run, repeat them, and report medians and ratios.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(os.environ.get("BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
"""Where the JSON goes; the tests point it elsewhere to run the benchmarks small."""


def machine() -> dict[str, Any]:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        model = names[0] if names else model
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(terse=True),
    }


@contextlib.contextmanager
def lambda_output_discarded() -> Iterator[None]:
    """The handlers print their log lines and EMF metrics to stdout, as Lambda expects; not over the table."""
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield


def publish(name: str, rows: Sequence[dict[str, Any]], columns: Sequence[str], **summary: Any) -> Path:
    """Print `rows` as a table of `columns` (and `summary` below it); write all of it to results/<name>.json."""
    widths = [max(len(column), *(len(_cell(row.get(column))) for row in rows)) for column in columns]
    print("  ".join(column.rjust(width) for column, width in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(_cell(row.get(column)).rjust(width) for column, width in zip(columns, widths, strict=True)))
    for key, value in summary.items():
        print(f"{key}: {_cell(value)}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {"machine": machine(), "rows": list(rows), **summary}
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(f"written: {path}")
    return path


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return "" if value is None else str(value)

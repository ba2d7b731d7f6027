"""Import time of each handler module, as a cold Lambda container pays it before the first event.

    python -m bench.cold_start [--repeat 5]

Each handler is imported in a fresh interpreter laid out as Lambda lays it out (the function's folder and the
layer's content on the path, the function's environment set), with `python -X importtime`. The table shows
the median total and the top-level packages that cost the most, so the validator's start stays lean.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from bench.report import publish

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = {"validate_and_chunk": "ValidateAndChunkFunction", "import_labels": "ImportLabelsFunction"}
ENVIRONMENT = {
    "JOBS_TABLE_NAME": "jobs",
    "ENCORD_SECRET_ID": "arn:aws:secretsmanager:us-east-1:123456789012:secret:encord-AbCdEf",
    "IMPORT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/chunks",
    "POWERTOOLS_SERVICE_NAME": "encord-label-importer",
    "POWERTOOLS_METRICS_NAMESPACE": "EncordLabelImporter",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def import_times(function: str) -> tuple[int, dict[str, int]]:
    """Microseconds to import the handler module `app`, and of that, each top-level package's own modules.

    -X importtime prints a module after everything it imports, indented by depth; `app` is the last line at
    depth 0, and the lines since the previous depth-0 line are what it pulled in.
    """
    folder = ROOT / "functions" / function
    environment = {
        **ENVIRONMENT,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT / "shared")]),
    }
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import app"],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    subtree: list[tuple[int, str]] = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        if not name.startswith("  "):  # depth 0
            if name.strip() == "app":
                by_package: dict[str, int] = defaultdict(int)
                for module_us, module in subtree:
                    by_package[module.split(".")[0]] += module_us
                return int(cumulative), dict(by_package)
            subtree = []
            continue
        subtree.append((int(own), name.strip()))
    raise RuntimeError(f"no import time for app in {function}: {result.stderr[-500:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    rows = []
    for function in HANDLERS:
        runs = [import_times(function) for _ in range(args.repeat)]
        totals = [total for total, _ in runs]
        packages = {name: statistics.median(found.get(name, 0) for _, found in runs) for name in runs[0][1]}
        heaviest = sorted(packages.items(), key=lambda item: item[1], reverse=True)[:5]
        rows.append(
            {
                "handler": function,
                "import_ms": round(statistics.median(totals) / 1000),
                "heaviest": ", ".join(f"{name} {us / 1000:.0f} ms" for name, us in heaviest),
            }
        )
    publish("cold_start", rows, ["handler", "import_ms", "heaviest"], repeat=args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())

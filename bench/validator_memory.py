"""Validator speed and memory on big generated files, against a bare `orjson.loads` of the same lines.

    python -m bench.validator_memory [--sizes 200,1000] [--layouts grouped,interleaved] [--repeat 1]

For each size it writes a JSONL file of every label kind to a temporary folder, then runs, each in a
fresh subprocess so peak RSS belongs to that run alone: (1) a bare parse (`orjson.loads` per line), and
(2) the validator's two passes exactly as the Lambda runs them (pass 1 `index_records`, pass 2
`assemble_chunks`, chunks serialised as they would be sent), on the file read as a stream. It prints MB/s,
the validator/parse time ratio and peak RSS, and writes the table as JSON. Medians of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench.report import publish

UNITS = 20_000


def _record(rng: random.Random, unit: int) -> dict[str, Any]:
    def xy() -> list[float]:
        return [round(rng.random(), 6), round(rng.random(), 6)]

    box = {"x": round(rng.random() * 0.5, 6), "y": round(rng.random() * 0.5, 6), "w": 0.2, "h": 0.3}
    return {
        "data_title": f"image_{unit:06d}.jpg",
        "objects": [
            {
                "name": "Cherry",
                "bounding_box": box,
                "confidence": 0.9,
                "attributes": {"Ripeness": "Ripe", "Defects": ["Bruise"], "Description": "generated"},
            },
            {"name": "Other type of fruit", "rotatable_bounding_box": {**box, "theta": 12.5}},
            {"name": "Persimmon", "polygon": [xy() for _ in range(12)]},
            {"name": "Branch", "polyline": [xy() for _ in range(6)]},
            {"name": "Pedicel", "point": xy()},
            {"name": "Strawberry", "skeleton": {"calyx": xy(), "tip": xy(), "left": xy(), "right": xy()}},
            {
                "name": "Whale",
                "bounding_box": box,
                "attributes": {"Colour": {"option": "Blue", "attributes": {"Any Other Colours?": "Pink"}}},
            },
        ],
        "classifications": [
            {"name": "Blueberry or cherry?", "answer": ["Blueberry", "Cherry"][unit % 2]},
            {"name": "Many types of fruit?", "answer": ["Apple", "Kiwi"]},
        ],
    }


def generate(path: Path, megabytes: int, *, interleaved: bool) -> int:
    """Write about `megabytes` MB; records cycle through UNITS data units (grouped, or round-robin)."""
    rng = random.Random(megabytes)
    target, written, lines = megabytes * 1_000_000, 0, 0
    per_unit = max(1, target // 1500 // UNITS)
    with path.open("wb") as out:
        while written < target:
            unit = lines % UNITS if interleaved else (lines // per_unit) % UNITS
            line = orjson.dumps(_record(rng, unit)) + b"\n"
            out.write(line)
            written += len(line)
            lines += 1
    return lines


def _bare_parse(path: str) -> None:
    with open(path, "rb") as stream:
        for line in stream:
            orjson.loads(line)


def _validate(path: str) -> None:
    from label_importer.checks.ontology_resolver import OntologyResolver
    from label_importer.checks.validation import FileIndex, index_records
    from label_importer.model.data_units import DataUnit, DataUnitIndex
    from label_importer.model.limits import Limits
    from label_importer.model.messages import chunk_document
    from label_importer.services.chunking import assemble_chunks, plan_chunks
    from label_importer.sources.json_lines import numbered_lines
    from local.fake_encord import build_ontology

    units = DataUnitIndex(DataUnit(f"h{i:06d}", f"image_{i:06d}.jpg", 1, 640, 480) for i in range(UNITS))
    limits = Limits()
    with open(path, "rb") as stream:
        lines = numbered_lines(stream, max_line_bytes=limits.max_line_bytes)
        index = index_records(lines, units, OntologyResolver(build_ontology()), FileIndex(max_problems=100), limits)
    assert index.problem_count == 0, index.problems[:3]
    plan = plan_chunks(index.lines_by_unit, 100)

    def emit(chunk_index: int, rows: list) -> None:
        orjson.dumps(chunk_document("bench", chunk_index, "p", "append", "main", rows))

    with open(path, "rb") as stream:
        lines = numbered_lines(stream, max_line_bytes=limits.max_line_bytes)
        assemble_chunks(lines, plan, index, emit)


def _measure(kind: str, path: Path) -> dict[str, float]:
    """Run one kind in a fresh interpreter; return its wall time and peak RSS."""
    code = (
        "import sys, time, resource; from bench.validator_memory import _bare_parse, _validate; "
        f"t = time.perf_counter(); {'_bare_parse' if kind == 'parse' else '_validate'}(sys.argv[1]); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    seconds, rss_kib = out.stdout.split()
    return {"seconds": float(seconds), "peak_rss_mb": int(rss_kib) / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,1000", help="file sizes in MB, comma separated")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the median is reported")
    parser.add_argument("--layouts", default="grouped,interleaved")
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for megabytes in (int(size) for size in args.sizes.split(",")):
            for layout in args.layouts.split(","):
                path = Path(folder) / f"{megabytes}-{layout}.jsonl"
                lines = generate(path, megabytes, interleaved=layout == "interleaved")
                size_mb = path.stat().st_size / 1e6
                runs = {kind: [_measure(kind, path) for _ in range(args.repeat)] for kind in ("parse", "validate")}
                parse_s = statistics.median(run["seconds"] for run in runs["parse"])
                validate_s = statistics.median(run["seconds"] for run in runs["validate"])
                rows.append(
                    {
                        "file_mb": round(size_mb),
                        "layout": layout,
                        "lines": lines,
                        "parse_mb_s": round(size_mb / parse_s, 1),
                        "validate_mb_s": round(size_mb / validate_s, 1),
                        "validate_over_parse": round(validate_s / parse_s, 1),
                        "validate_peak_rss_mb": round(max(run["peak_rss_mb"] for run in runs["validate"])),
                        "parse_peak_rss_mb": round(max(run["peak_rss_mb"] for run in runs["parse"])),
                    }
                )
                path.unlink()
    publish(
        "validator_memory",
        rows,
        ["file_mb", "layout", "lines", "parse_mb_s", "validate_mb_s", "validate_over_parse", "validate_peak_rss_mb"],
        repeat=args.repeat,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

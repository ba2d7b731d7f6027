"""Generated label files for the demo, the tests and the benchmarks: valid, varied, and reproducible."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import orjson


def _box(rng: random.Random) -> dict[str, float]:
    x, y = rng.uniform(0, 0.7), rng.uniform(0, 0.7)
    return {
        "x": round(x, 6),
        "y": round(y, 6),
        "w": round(rng.uniform(0.05, 0.3), 6),
        "h": round(rng.uniform(0.05, 0.3), 6),
    }


def _triangle(rng: random.Random) -> list[list[float]]:
    x, y = rng.uniform(0.1, 0.8), rng.uniform(0.1, 0.8)
    return [[round(x, 6), round(y, 6)], [round(x + 0.1, 6), round(y, 6)], [round(x + 0.05, 6), round(y + 0.1, 6)]]


def image_records(titles: Sequence[str], *, boxes_per_image: int = 2, seed: int = 7) -> Iterator[dict[str, Any]]:
    """One record per image: bounding boxes, a polygon, a point and both image classifications."""
    rng = random.Random(seed)
    for title in titles:
        objects: list[dict[str, Any]] = [
            {"name": "Cherry", "bounding_box": _box(rng), "confidence": round(rng.uniform(0.5, 1.0), 3)}
            for _ in range(boxes_per_image)
        ]
        objects.append({"name": "Persimmon", "polygon": _triangle(rng)})
        objects.append({"name": "Pedicel", "point": [round(rng.uniform(0, 1), 6), round(rng.uniform(0, 1), 6)]})
        yield {
            "data_title": title,
            "objects": objects,
            "classifications": [
                {"name": "Blueberry or cherry?", "answer": rng.choice(["Blueberry", "Cherry"])},
                {"name": "Many types of fruit?", "answer": rng.sample(["Apple", "Kiwi", "Persimmon"], 2)},
            ],
        }


def jsonl(records: Iterator[dict[str, Any]] | Sequence[dict[str, Any]], header: dict[str, Any] | None = None) -> bytes:
    lines = ([header] if header else []) + list(records)
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)

"""Each input format's reader against the JSON Lines validator, on the same labels, in one run.

    python -m bench.reader_speed [--images 5000] [--boxes 4] [--repeat 3]

The same generated labels (boxes on images, and one classification each) are written as JSON Lines, COCO,
an Encord export, YOLO, Pascal VOC, CVAT, Labelbox and (the classifications) CSV. Each file is validated
in-process exactly as the validator's first pass runs (options, match, every record through the shared checks)
against the demo ontology and generated data units; MB/s is the file's size (uncompressed bytes the reader
takes) over the median time, and the ratio is that format's time over the JSON Lines file's time for the same labels.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import time
import zipfile
from collections.abc import Callable
from typing import Any

import orjson

from bench.report import publish
from label_importer.checks.ontology_resolver import OntologyResolver
from label_importer.checks.validation import FileIndex, index_records
from label_importer.model.data_units import DataUnit, DataUnitIndex
from label_importer.model.limits import Limits
from label_importer.model.project import ProjectView
from label_importer.runtime.deadline import Deadline
from label_importer.sources.formats import source_for
from label_importer.sources.label_file import LabelFile
from local.fake_encord import build_ontology

WIDTH, HEIGHT = 640, 480
Box = tuple[float, float, float, float]  # normalised x, y, w, h
Labels = list[tuple[str, list[Box], str]]  # (image title, boxes, classification answer)


def labels(images: int, boxes: int) -> Labels:
    rng = random.Random(11)

    def box() -> Box:
        x, y = rng.randrange(WIDTH - 100), rng.randrange(HEIGHT - 100)
        return x / WIDTH, y / HEIGHT, rng.randrange(1, 100) / WIDTH, rng.randrange(1, 100) / HEIGHT

    return [
        (f"image_{i:06d}.jpg", [box() for _ in range(boxes)], rng.choice(["Blueberry", "Cherry"]))
        for i in range(images)
    ]


def json_lines(data: Labels) -> bytes:
    return b"".join(
        orjson.dumps(
            {
                "data_title": title,
                "objects": [{"name": "Cherry", "bounding_box": dict(zip("xywh", b, strict=True))} for b in boxes],
            }
        )
        + b"\n"
        for title, boxes, _ in data
    )


def json_lines_classifications(data: Labels) -> bytes:
    return b"".join(
        orjson.dumps({"data_title": title, "classifications": [{"name": "Blueberry or cherry?", "answer": answer}]})
        + b"\n"
        for title, _, answer in data
    )


def coco(data: Labels) -> bytes:
    images = [{"id": i, "file_name": title, "width": WIDTH, "height": HEIGHT} for i, (title, _, _) in enumerate(data)]
    annotations = [
        {
            "id": len(boxes) * i + j,
            "image_id": i,
            "category_id": 1,
            "bbox": [x * WIDTH, y * HEIGHT, w * WIDTH, h * HEIGHT],
        }
        for i, (_, boxes, _) in enumerate(data)
        for j, (x, y, w, h) in enumerate(boxes)
    ]
    return orjson.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "cherry"}]})


def encord_export(data: Labels) -> bytes:
    """What `LabelRowV2.to_encord_dict()` writes for these boxes, the fields the reader uses and a few it skips."""
    [cherry] = [obj for obj in build_ontology().objects if obj.title == "Cherry"]
    rows = []
    for i, (title, boxes, _) in enumerate(data):
        objects = [
            {
                "name": "Cherry",
                "value": "cherry",
                "color": "#D33115",
                "shape": "bounding_box",
                "featureHash": cherry.feature_node_hash,
                "objectHash": f"{i:05d}{j:03d}",
                "confidence": 1.0,
                "manualAnnotation": True,
                "createdAt": "Thu, 03 Dec 2026 11:39:03 UTC",
                "boundingBox": dict(zip("xywh", box, strict=True)),
            }
            for j, box in enumerate(boxes)
        ]
        answers = {obj["objectHash"]: {"objectHash": obj["objectHash"], "classifications": []} for obj in objects}
        rows.append(
            {
                "data_hash": f"hash{i:06d}",
                "data_title": title,
                "data_type": "image",
                "data_units": {f"hash{i:06d}": {"data_sequence": 0, "labels": {"objects": objects}}},
                "object_answers": answers,
                "classification_answers": {},
                "object_actions": {},
            }
        )
    return orjson.dumps(rows)


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in entries.items():
            archive.writestr(name, body)
    return buffer.getvalue()


def yolo(data: Labels) -> bytes:
    entries = {"classes.txt": b"cherry\n"}
    for title, boxes, _ in data:
        lines = (f"0 {x + w / 2:.6f} {y + h / 2:.6f} {w:.6f} {h:.6f}\n" for x, y, w, h in boxes)
        entries[f"labels/{title.removesuffix('.jpg')}.txt"] = "".join(lines).encode()
    return _zip(entries)


def voc(data: Labels) -> bytes:
    entries = {}
    for title, boxes, _ in data:
        objects = "".join(
            f"<object><name>cherry</name><bndbox><xmin>{round(x * WIDTH) + 1}</xmin>"
            f"<ymin>{round(y * HEIGHT) + 1}</ymin>"
            f"<xmax>{round((x + w) * WIDTH)}</xmax><ymax>{round((y + h) * HEIGHT)}</ymax></bndbox></object>"
            for x, y, w, h in boxes
        )
        entries[f"Annotations/{title.removesuffix('.jpg')}.xml"] = (
            f"<annotation><filename>{title}</filename><size><width>{WIDTH}</width><height>{HEIGHT}</height>"
            f"<depth>3</depth></size>{objects}</annotation>"
        ).encode()
    return _zip(entries)


def cvat(data: Labels) -> bytes:
    images = []
    for index, (title, boxes, _) in enumerate(data):
        shapes = "".join(
            f'<box label="cherry" source="manual" occluded="0" xtl="{x * WIDTH:.2f}" ytl="{y * HEIGHT:.2f}" '
            f'xbr="{(x + w) * WIDTH:.2f}" ybr="{(y + h) * HEIGHT:.2f}" z_order="0"></box>'
            for x, y, w, h in boxes
        )
        images.append(f'<image id="{index}" name="{title}" width="{WIDTH}" height="{HEIGHT}">{shapes}</image>')
    meta = "<meta><task><name>bench</name><mode>annotation</mode></task></meta>"
    document = f"<annotations><version>1.1</version>{meta}{''.join(images)}</annotations>"
    return _zip({"annotations.xml": document.encode()})


def labelbox(data: Labels) -> bytes:
    """One data row per image, as Labelbox's export writes it (the fields the reader uses and a few it skips)."""
    rows = []
    for index, (title, boxes, _) in enumerate(data):
        objects = [
            {
                "feature_id": f"clu{index:08d}{j:03d}",
                "feature_schema_id": "clu1schema0cherry0000000",
                "name": "cherry",
                "value": "cherry",
                "annotation_kind": "ImageBoundingBox",
                "classifications": [],
                "bounding_box": {"top": y * HEIGHT, "left": x * WIDTH, "height": h * HEIGHT, "width": w * WIDTH},
            }
            for j, (x, y, w, h) in enumerate(boxes)
        ]
        label = {"id": f"label{index}", "annotations": {"objects": objects, "classifications": [], "relationships": []}}
        rows.append(
            {
                "data_row": {"id": f"row{index}", "global_key": title},
                "media_attributes": {"height": HEIGHT, "width": WIDTH, "mime_type": "image/jpeg"},
                "projects": {"clu1bench0project00000000": {"name": "bench", "labels": [label]}},
            }
        )
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def csv(data: Labels) -> bytes:
    rows = "".join(f"{title},Blueberry or cherry?,{answer}\n" for title, _, answer in data)
    return ("data_title,classification,answer\n" + rows).encode()


FORMATS: list[tuple[str, str, Callable[[Labels], bytes], str]] = [
    ("JSON Lines", "labels.jsonl", json_lines, "boxes"),
    ("COCO", "instances.json", coco, "boxes"),
    ("Encord export", "export.json", encord_export, "boxes"),
    ("YOLO", "yolo.zip", yolo, "boxes"),
    ("Pascal VOC", "voc.zip", voc, "boxes"),
    ("CVAT for images", "cvat.zip", cvat, "boxes"),
    ("Labelbox", "export.ndjson", labelbox, "boxes"),
    ("JSON Lines", "tags.jsonl", json_lines_classifications, "classifications"),
    ("CSV", "tags.csv", csv, "classifications"),
]


def _uncompressed_bytes(key: str, body: bytes) -> int:
    if key.endswith(".zip"):
        return sum(info.file_size for info in zipfile.ZipFile(io.BytesIO(body)).infolist())
    return len(body)


def _validate(key: str, body: bytes, units: DataUnitIndex, limits: Limits) -> float:
    ontology = build_ontology()
    started = time.perf_counter()
    file = LabelFile.of_bytes(f"incoming/{key}", body, limits, Deadline.in_seconds(3600))
    source = source_for(file, limits)
    source.options()
    index = FileIndex(max_problems=10, locate=source.locate)
    index.report(source.match(ProjectView(units, ontology)))
    index_records(source.items(), units, OntologyResolver(ontology), index, limits)
    elapsed = time.perf_counter() - started
    if index.problem_count or not index.records:
        raise SystemExit(f"{key}: the generated file did not validate: {index.problems[:3]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--boxes", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    data = labels(args.images, args.boxes)
    units = DataUnitIndex([DataUnit(f"hash{i:06d}", title, 1, WIDTH, HEIGHT) for i, (title, _, _) in enumerate(data)])
    limits = Limits()
    rows: list[dict[str, Any]] = []
    baseline: dict[str, float] = {}
    for name, key, write, labelled in FORMATS:
        body = write(data)
        seconds = statistics.median(_validate(key, body, units, limits) for _ in range(args.repeat))
        baseline.setdefault(labelled, seconds)
        megabytes = _uncompressed_bytes(key, body) / 1e6
        rows.append(
            {
                "format": name,
                "labels": labelled,
                "MB": megabytes,
                "seconds": seconds,
                "MB/s": megabytes / seconds,
                "x JSON Lines time": seconds / baseline[labelled],
            }
        )
    publish(
        "reader_speed",
        rows,
        ["format", "labels", "MB", "seconds", "MB/s", "x JSON Lines time"],
        images=args.images,
        boxes_per_image=args.boxes,
        repeat=args.repeat,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""PNG masks through the whole pipeline: a zip of `masks/**/*.png` + `encord.json` -> validator -> queue -> importer
-> fake Encord -> SDK read-back.

`samples/png-masks/` (the example in docs/format-png-masks.md, drawn by the script in its README) is zipped here as
an exporter would, with `images/` beside `masks/`. What Encord stores is read back through the SDK
(`BitmaskCoordinates.to_numpy_array()`) and compared with the PNG's own pixels, exactly.
"""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from encord.objects import LabelRowV2
from PIL import Image, ImageFile

from label_importer.model.data_units import DataUnit, DataUnitIndex
from label_importer.model.jobs import JobStatus
from label_importer.model.limits import Limits
from label_importer.model.project import ProjectView
from label_importer.runtime.deadline import Deadline
from label_importer.sources.formats import source_for
from label_importer.sources.label_file import LabelFile
from label_importer.sources.pascal_voc.source import VocSource
from label_importer.sources.png_masks.source import PngMasksSource
from label_importer.sources.yolo.source import YoloSource
from label_importer_cli.commands import main
from local.fake_encord import build_ontology
from local.pipeline import Pipeline

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "png-masks"


def folder_files(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()
    }


def masks_zip(kind: str, mapping: dict[str, Any] | None = None, replaced: dict[str, bytes] | None = None) -> bytes:
    """The sample of `kind` (`semantic`, `instance`) as a zip; `mapping` replaces its encord.json, `replaced`
    swaps or adds entries (by path)."""
    files = folder_files(SAMPLE / kind) | (replaced or {})
    if mapping is not None:
        files["encord.json"] = json.dumps(mapping).encode()
    return zipped(files | {"images/0001.jpg": b"\xff\xd8 not read"})


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def png(pixels: np.ndarray) -> bytes:
    """A PNG of the mode the array's type and shape give: grey (uint8), 16-bit grey (uint16), RGB, RGBA."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height grey pixels, with a few bytes of pixel data: tiny on disk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, deflate, no filter, no interlace
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def sample_pixels(path: str) -> np.ndarray:
    """A sample PNG's values: palette index or grey level, or for RGB the colour as one number 0xRRGGBB."""
    pixels = np.asarray(Image.open(SAMPLE / path)).astype(np.uint32)
    return pixels if pixels.ndim == 2 else pixels[..., 0] << 16 | pixels[..., 1] << 8 | pixels[..., 2]


class Orchard:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        encord = pipeline.stack.encord
        self.first = encord.add_image("images/0001.jpg", width=8, height=6)
        self.second = encord.add_image("0002.png", width=6, height=4)

    def rows(self) -> dict[str, LabelRowV2]:
        return self.pipeline.stack.read_back([self.first, self.second])

    def masks(self, data_hash: str) -> list[np.ndarray]:
        """Every object's mask, as Encord stores it, read back through the SDK; each is a Blueberry (the demo
        ontology's only bitmask object); none on a data unit never labelled."""
        row = self.rows()[data_hash]
        instances = row.get_object_instances() if row.is_labelling_initialised else []
        assert {instance.ontology_item.title for instance in instances} <= {"Blueberry"}
        return [instance.get_annotation(0).coordinates.to_numpy_array() for instance in instances]

    def errors(self, job_id: str) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.pipeline.report(job_id, "errors.jsonl").splitlines()]


@pytest.fixture
def orchard(pipeline: Pipeline) -> Orchard:
    return Orchard(pipeline)


def same_masks(stored: list[np.ndarray], expected: list[np.ndarray]) -> bool:
    """The same masks, pixel for pixel, in any order."""

    def canonical(masks: list[np.ndarray]) -> list[tuple[tuple[int, ...], bytes]]:
        return sorted((mask.shape, mask.astype(bool).tobytes()) for mask in masks)

    return canonical(stored) == canonical(expected)


def test_the_semantic_sample_becomes_one_object_per_class_pixel_for_pixel(orchard: Orchard) -> None:
    job = orchard.pipeline.run("incoming/masks.zip", masks_zip("semantic"))

    assert (job.status, job.total_records, job.rows_imported, job.labels_added) == (JobStatus.COMPLETED, 2, 2, 2)
    first = sample_pixels("semantic/masks/0001.png")
    assert set(np.unique(first)) == {0, 1, 255}
    [blueberries] = orchard.masks(orchard.first)  # the two separate squares of index 1 are one object
    assert blueberries.dtype == bool and np.array_equal(blueberries, first == 1)  # 255 (void) is left out
    [block] = orchard.masks(orchard.second)  # masks/val/0002.png, matched by stem
    assert np.array_equal(block, sample_pixels("semantic/masks/val/0002.png") == 1)


def test_the_instance_sample_becomes_one_object_per_colour(orchard: Orchard) -> None:
    job = orchard.pipeline.run("incoming/masks.zip", masks_zip("instance"))

    assert (job.status, job.total_records, job.labels_added) == (JobStatus.COMPLETED, 1, 2)
    pixels = sample_pixels("instance/masks/0001.jpg.png")  # 0001.jpg.png names the image 0001.jpg
    assert same_masks(orchard.masks(orchard.first), [pixels == 0xE6194B, pixels == 0x3CB44B])


def test_importing_the_same_zip_again_adds_nothing(orchard: Orchard) -> None:
    first = orchard.pipeline.run("incoming/masks.zip", masks_zip("semantic"))
    again = orchard.pipeline.run("incoming/masks.zip", masks_zip("semantic"))

    assert first.job_id != again.job_id
    assert (again.status, again.labels_added) == (JobStatus.COMPLETED, 0)
    assert sum(len(row.get_object_instances()) for row in orchard.rows().values()) == 2


def test_a_rollback_removes_the_imported_objects(orchard: Orchard) -> None:
    job = orchard.pipeline.run("incoming/masks.zip", masks_zip("instance"))
    assert job.labels_added == 2

    assert main(["rollback", job.job_id]) == 0

    assert orchard.masks(orchard.first) == []
    assert orchard.pipeline.job(job.job_id).status is JobStatus.ROLLED_BACK


def test_sixteen_bit_instances_a_mapped_data_unit_a_mapped_background_and_a_left_out_mask(orchard: Orchard) -> None:
    cells = np.zeros((4, 6), np.uint16)
    cells[0, :] = 1000
    cells[1:, 4:] = 1001
    cells[3, 0] = 7
    everything_left_out = np.full((6, 8), 7, np.uint8)
    background = np.zeros((6, 8), np.uint8)
    background[2:4, 2:5] = 1
    mapping = {
        "masks": "instance",
        "objects": {"1000": "Blueberry", "1001": "obBluebe", "7": None},  # by title, by feature hash, left out
        "data_units": {"cells": "0002.png"},
    }
    files = {
        "encord.json": json.dumps(mapping).encode(),
        "masks/cells.png": png(cells),
        "masks/0001.png": png(everything_left_out),
        "masks/more/0002.png": png(np.zeros((4, 6), np.uint8)),  # all background: a record with no objects
    }

    job = orchard.pipeline.run("incoming/cells.zip", zipped(files))

    assert (job.status, job.total_records, job.records_left_out, job.labels_added) == (JobStatus.COMPLETED, 3, 1, 2)
    assert same_masks(orchard.masks(orchard.second), [cells == 1000, cells == 1001])
    assert orchard.masks(orchard.first) == []

    semantic = {"objects": {"0": "Blueberry", "1": None}}  # the background is a class once the mapping names it
    job = orchard.pipeline.run(
        "incoming/background.zip",
        zipped({"encord.json": json.dumps(semantic).encode(), "masks/0001.png": png(background)}),
    )

    assert (job.status, job.records_left_out, job.labels_added) == (JobStatus.COMPLETED, 0, 1)
    [stored] = orchard.masks(orchard.first)
    assert np.array_equal(stored, background == 0)


def test_an_all_background_mask_in_replace_mode_leaves_its_image_without_labels(orchard: Orchard) -> None:
    assert orchard.pipeline.run("incoming/masks.zip", masks_zip("semantic")).labels_added == 2
    files = {"encord.json": b'{"mode": "replace"}', "masks/0001.png": png(np.zeros((6, 8), np.uint8))}

    job = orchard.pipeline.run("incoming/empty.zip", zipped(files))

    assert (job.status, job.total_records, job.rows_imported) == (JobStatus.COMPLETED, 1, 1)
    assert orchard.masks(orchard.first) == []
    assert len(orchard.masks(orchard.second)) == 1  # no mask names it: untouched


def test_problems_point_at_the_mask_and_the_value(orchard: Orchard) -> None:
    rgba = png(np.zeros((4, 6, 4), np.uint8))
    mapping = {"on_error": "skip-invalid", "masks": "semantic", "objects": {"1": "Blueberry"}}  # 255 unmapped

    job = orchard.pipeline.run(
        "incoming/masks.zip",
        masks_zip("semantic", mapping, {"masks/zz/0002.png": rgba, "masks/zz/plum.png": b"plum"}),
    )

    assert (job.status, job.invalid_records, job.labels_added) == (JobStatus.COMPLETED, 3, 1)
    errors = orchard.errors(job.job_id)
    assert [(e["line"], e["code"], e["field"]) for e in errors] == [
        (1, "UNKNOWN_OBJECT", "masks/0001.png: value 255"),
        (3, "INVALID_VALUE", "masks/zz/0002.png"),  # RGBA: whether transparent is background cannot be told
        (4, "INVALID_VALUE", "masks/zz/plum.png"),  # not a PNG
    ]
    assert "masks/0001.png" in errors[0]["message"] and "'255'" in errors[0]["message"]
    assert "'RGBA'" in errors[1]["message"]
    assert len(orchard.masks(orchard.second)) == 1 and orchard.masks(orchard.first) == []


def test_a_noisy_mask_names_its_first_unmapped_values_and_counts_the_rest(orchard: Orchard) -> None:
    noise = np.arange(1, 49, dtype=np.uint8).reshape(6, 8)  # 48 values, none of them mapped
    mapping = {"masks": "instance", "objects": {}}

    job = orchard.pipeline.run(
        "incoming/masks.zip", zipped({"masks/0001.png": png(noise), "encord.json": json.dumps(mapping).encode()})
    )

    assert job.status is JobStatus.REJECTED
    errors = orchard.errors(job.job_id)
    assert [e["field"] for e in errors[:-1]] == [f"masks/0001.png: value {value}" for value in range(1, 21)]
    assert (errors[-1]["field"], errors[-1]["code"]) == ("masks/0001.png", "UNKNOWN_OBJECT")
    assert "28 more values name no object" in errors[-1]["message"]


def test_a_problem_the_shared_checks_find_is_placed_on_the_mask(orchard: Orchard) -> None:
    orchard.pipeline.stack.encord.add_image("crowd.png", width=11, height=10)
    crowd = np.arange(110, dtype=np.uint8).reshape(10, 11)  # values 1 to 109: more objects than a data unit takes
    mapping = {"masks": "instance", "objects": {str(value): "Blueberry" for value in range(1, 110)}}

    job = orchard.pipeline.run(
        "incoming/crowd.zip", zipped({"encord.json": json.dumps(mapping).encode(), "masks/crowd.png": png(crowd)})
    )

    assert job.status is JobStatus.REJECTED
    [error] = orchard.errors(job.job_id)
    assert (error["line"], error["code"], error["field"]) == (1, "TOO_MANY_OBJECTS", "masks/crowd.png")


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (1001, 1000)])
def test_the_pixel_limit_refuses_a_bomb_without_decoding_it(
    orchard: Orchard, monkeypatch: pytest.MonkeyPatch, width: int, height: int
) -> None:
    """Over MAX_BITMASK_PIXELS (a million on the local stack) by far (Pillow raises as it opens) or by a row
    (Pillow warns): either way refused from the header; decoding would fail this test."""

    def decode(self: ImageFile.ImageFile) -> None:
        raise AssertionError(f"decoded a {self.size} PNG")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)
    bomb = declaring(width, height)
    assert len(bomb) < 100

    job = orchard.pipeline.run("incoming/bomb.zip", zipped({"masks/0001.png": bomb}))

    assert job.status is JobStatus.REJECTED
    [error] = orchard.errors(job.job_id)
    assert (error["line"], error["code"], error["field"]) == (1, "BITMASK_TOO_LARGE", "masks/0001.png")
    assert "1000000 pixels" in error["message"] and "MAX_BITMASK_PIXELS" in error["message"]


def test_masks_yolo_and_voc_zips_are_each_claimed_by_their_own_format() -> None:
    mask = (SAMPLE / "semantic" / "masks" / "0001.png").read_bytes()
    yolo = folder_files(ROOT / "samples" / "yolo")
    voc = folder_files(ROOT / "samples" / "voc")
    zips = {
        "masks": (zipped({"export/masks/0001.png": mask}), PngMasksSource),  # a masks folder at any depth
        "yolo": (zipped(yolo), YoloSource),
        "yolo with masks": (zipped(yolo | {"masks/0001.png": mask}), YoloSource),  # data.yaml: YOLO's
        "classes.txt with masks": (zipped({"classes.txt": b"cherry\n", "masks/0001.png": mask}), YoloSource),
        "voc": (zipped(voc), VocSource),
        "voc with masks": (zipped(voc | {"SegmentationClass/masks/0001.png": mask}), VocSource),  # .xml: VOC's
        "pngs outside a masks folder": (zipped({"SegmentationClass/0001.png": mask}), YoloSource),
    }
    claimed = {}
    for name, (data, _) in zips.items():
        file = LabelFile.of_bytes(f"incoming/{name}.zip", data, Limits(), Deadline.in_seconds(600))
        claimed[name] = type(source_for(file, Limits()))
    assert claimed == {name: expected for name, (_, expected) in zips.items()}


def test_reading_every_mask_takes_no_more_memory_for_a_larger_archive() -> None:
    """Masks are read and decoded one at a time and dropped once they are records: four times the masks take no
    more memory at the peak, beyond the zip's directory."""
    pixels = np.zeros((120, 160), np.uint8)
    pixels[10:60, 20:90] = 1
    pixels[70:110, 100:150] = 2
    mask = png(pixels)
    mapping = json.dumps({"masks": "instance", "objects": {"1": "Blueberry", "2": "Blueberry"}}).encode()

    def peak_reading(masks: int) -> int:
        data = zipped({"encord.json": mapping} | {f"masks/{index:04d}.png": mask for index in range(masks)})
        units = DataUnitIndex(DataUnit(f"h{index}", f"{index:04d}.jpg", 1, 160, 120) for index in range(masks))
        file = LabelFile.of_bytes("incoming/masks.zip", data, Limits(), Deadline.in_seconds(600))
        source = source_for(file, Limits())
        source.options()
        source.match(ProjectView(units, build_ontology()))
        tracemalloc.start()
        try:
            assert sum(1 for _ in source.items()) == masks
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak_reading(1)  # Pillow imports its PNG plugin on the first open: not a cost of the archive
    assert peak_reading(400) < 1.5 * peak_reading(100)

"""COCO pixels -> normalised label geometry: expected values are written out by hand, masks compared by pixel.

Masks go through pycocotools (COCO's reference implementation) on the checking side: a traced outline must
rasterise back to the very pixels it came from.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from encord.objects.bitmask import BitmaskCoordinates
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as coco_mask

from label_importer.model.problems import ErrorCode
from label_importer.sources.coco.document import NotCoco, read_sections
from label_importer.sources.coco.geometry import (
    GeometryMisfit,
    ImageSize,
    encord_bitmask,
    mask_from_rings,
    mask_from_runs,
    normalised_box,
    normalised_rings,
    polygon_geometry,
    rle_counts,
    skeleton_points,
    traced_polygons,
)
from label_importer.sources.json_document import is_json_document

EPSILON = 1e-9
VGA = ImageSize(640, 480)


def flat(points: list[list[float]] | list[tuple[float, float]]) -> list[float]:
    """[[x, y], ...] as [x0, y0, x1, y1, ...], which pytest.approx compares within EPSILON."""
    return [coordinate for point in points for coordinate in point]


# The sample's 6x4 mask "A", row by row, and the same mask in COCO's compressed and uncompressed RLE.
MASK_A = np.array(
    [
        [0, 1, 1, 0, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 1],
    ],
    dtype=bool,
)
MASK_A_COMPRESSED = "42210O6O"
MASK_A_RUNS = [4, 2, 2, 3, 2, 2, 8, 1]  # down the columns: 4 zeros, 2 ones (column 1), 2 zeros, ...
SMALL = ImageSize(6, 4)


def test_a_bbox_becomes_a_normalised_box() -> None:
    assert normalised_box([64, 48, 128, 96], VGA) == pytest.approx(
        {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2}, abs=EPSILON
    )
    assert normalised_box([0.5, 0, 639.5, 480], VGA) == pytest.approx(
        {"x": 0.00078125, "y": 0.0, "w": 0.99921875, "h": 1.0}, abs=EPSILON
    )


@pytest.mark.parametrize(("bbox", "field"), [([600, 0, 41, 10], "bbox[0]"), ([0, -1, 10, 10], "bbox[1]")])
def test_a_bbox_reaching_outside_the_image_is_refused(bbox: list[float], field: str) -> None:
    with pytest.raises(GeometryMisfit) as refused:
        normalised_box(bbox, VGA)
    assert (refused.value.field, refused.value.code) == (field, ErrorCode.OUT_OF_RANGE)


def test_polygon_rings_become_normalised_points_and_several_rings_one_object() -> None:
    rings = normalised_rings([[10, 5, 60, 5, 60, 45, 10, 45], [70, 10, 90, 10, 80, 30]], ImageSize(100, 50))
    assert flat(rings[0]) == pytest.approx([0.1, 0.1, 0.6, 0.1, 0.6, 0.9, 0.1, 0.9], abs=EPSILON)
    assert flat(rings[1]) == pytest.approx([0.7, 0.2, 0.9, 0.2, 0.8, 0.6], abs=EPSILON)
    assert polygon_geometry(rings) == {"polygons": [{"outer": rings[0]}, {"outer": rings[1]}]}
    assert polygon_geometry(rings[:1]) == rings[0]


@pytest.mark.parametrize("ring", [[1, 1, 5, 1, 5], [1, 1, 5, 1], [1, 1, 700, 1, 5, 3]])
def test_a_ring_that_is_not_a_polygon_inside_the_image_is_refused(ring: list[float]) -> None:
    with pytest.raises(GeometryMisfit) as refused:
        normalised_rings([[1, 1, 5, 1, 5, 3], ring], VGA)
    assert refused.value.field == "segmentation[1]"


def test_compressed_and_uncompressed_rle_decode_to_the_same_pixels() -> None:
    compressed = mask_from_runs(rle_counts([4, 6], MASK_A_COMPRESSED, SMALL), SMALL)
    uncompressed = mask_from_runs(rle_counts([4, 6], MASK_A_RUNS, SMALL), SMALL)
    assert np.array_equal(compressed, MASK_A) and np.array_equal(uncompressed, MASK_A)
    assert coco_mask.encode(np.asfortranarray(MASK_A.astype(np.uint8)))["counts"].decode() == MASK_A_COMPRESSED


def test_a_mask_reaches_encord_row_by_row_pixel_for_pixel() -> None:
    bitmask = encord_bitmask(MASK_A)
    decoded = BitmaskCoordinates(
        BitmaskCoordinates.EncodedBitmask(top=0, left=0, height=4, width=6, rle_string=bitmask["rle"])
    ).to_numpy_array()
    assert (bitmask["width"], bitmask["height"]) == (6, 4)
    assert np.array_equal(decoded, MASK_A)


@pytest.mark.parametrize(
    ("counts", "size", "field", "code"),
    [
        ([4, 2, 2, 3, 2, 2, 8, 2], [4, 6], "segmentation.counts", ErrorCode.INVALID_VALUE),  # 25 pixels of 24
        ([30, -6], [4, 6], "segmentation.counts[1]", ErrorCode.INVALID_VALUE),
        ([2**63 - 1, 2**63 - 1, 26], [4, 6], "segmentation.counts", ErrorCode.INVALID_VALUE),  # wraps to 24 in int64
        ("0" + "k" * 40, [4, 6], "segmentation.counts", ErrorCode.INVALID_VALUE),  # huge runs: would overrun
        ("42210O6O~", [4, 6], "segmentation.counts", ErrorCode.INVALID_VALUE),  # not an RLE character
        ("42210O6Oo", [4, 6], "segmentation.counts", ErrorCode.INVALID_VALUE),  # a run cut short
        (MASK_A_RUNS, [6, 4], "segmentation.size", ErrorCode.BITMASK_SIZE_MISMATCH),
    ],
)
def test_rle_counts_that_do_not_cover_the_image_exactly_are_refused_before_decoding(
    counts: list[int] | str, size: list[int], field: str, code: ErrorCode
) -> None:
    with pytest.raises(GeometryMisfit) as refused:
        rle_counts(size, counts, SMALL)
    assert (refused.value.field, refused.value.code) == (field, code)


def test_polygons_are_rasterised_as_coco_defines_them() -> None:
    expected = np.zeros((4, 6), dtype=bool)
    expected[1:3, 1:5] = True
    assert np.array_equal(mask_from_rings([[1, 1, 5, 1, 5, 3, 1, 3]], SMALL), expected)


def test_a_mask_with_a_hole_is_traced_along_its_pixel_edges() -> None:
    ring = np.zeros((4, 6), dtype=bool)
    ring[0:3, 1:4] = True
    ring[1, 2] = False
    traced = traced_polygons(ring, SMALL)
    [polygon] = traced["polygons"]
    outer = sorted((x * 6, y * 4) for x, y in polygon["outer"])  # back to pixels, to compare with a drawing
    [hole] = [sorted((x * 6, y * 4) for x, y in h) for h in polygon["holes"]]
    # The 3x3 block spans x 1..4, y 0..3; the outline cuts each corner pixel diagonally through its middle.
    corners = [(1, 0.5), (1.5, 0), (3.5, 0), (4, 0.5), (4, 2.5), (3.5, 3), (1.5, 3), (1, 2.5)]
    assert flat(outer) == pytest.approx(flat(sorted(corners)), abs=EPSILON)
    assert flat(hole) == pytest.approx(flat(sorted([(2.5, 1), (3, 1.5), (2.5, 2), (2, 1.5)])), abs=EPSILON)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda height: st.integers(1, 12).flatmap(
            lambda width: st.lists(st.booleans(), min_size=height * width, max_size=height * width).map(
                lambda cells: np.array(cells, dtype=bool).reshape(height, width)
            )
        )
    )
)
def test_a_traced_outline_rasterises_back_to_the_same_pixels(mask: np.ndarray) -> None:
    if not mask.any():
        return
    height, width = mask.shape
    traced = traced_polygons(mask, ImageSize(width, height))
    polygons = traced["polygons"] if isinstance(traced, dict) else [{"outer": traced, "holes": []}]

    def raster(ring: list[list[float]]) -> np.ndarray:
        flat = [float(v) for x, y in ring for v in (x * width, y * height)]
        return coco_mask.decode(coco_mask.frPyObjects([flat], height, width)[0]).astype(bool)

    drawn = np.zeros_like(mask)
    for polygon in polygons:
        shape = raster(polygon["outer"])
        for hole in polygon["holes"]:
            shape &= ~raster(hole)
        drawn |= shape
    assert np.array_equal(drawn, mask)


def test_keypoints_become_named_skeleton_points_with_visibility() -> None:
    points = skeleton_points([320, 432, 2, 320, 48, 2, 128, 240, 1, 0, 0, 0], ["tip", "calyx", "left", "right"], VGA)
    assert points == {
        "tip": {"x": pytest.approx(0.5), "y": pytest.approx(0.9), "visibility": "visible"},
        "calyx": {"x": pytest.approx(0.5), "y": pytest.approx(0.1), "visibility": "visible"},
        "left": {"x": pytest.approx(0.2), "y": pytest.approx(0.5), "visibility": "occluded"},
        "right": {"x": 0.0, "y": 0.0, "visibility": "invisible"},
    }


@pytest.mark.parametrize(("keypoints", "field"), [([1, 1, 2], "keypoints"), ([1, 1, 3, 2, 2, 2], "keypoints[2]")])
def test_keypoints_that_do_not_fit_the_category_are_refused(keypoints: list[float], field: str) -> None:
    with pytest.raises(GeometryMisfit) as refused:
        skeleton_points(keypoints, ["tip", "calyx"], VGA)
    assert refused.value.field == field


def test_sections_are_read_in_any_order_and_annotations_are_streamed() -> None:
    document = (
        b'{"annotations": [{"id": 1}, {"id": 2}], "info": {"year": 2026}, '
        b'"categories": [{"id": 1, "name": "cherry"}], "images": [], "encord": {"mode": "replace"}}'
    )
    sections = read_sections(io.BytesIO(b"\xef\xbb\xbf" + document), max_images=10, max_categories=10)
    assert sections.categories == [{"id": 1, "name": "cherry"}] and sections.options == {"mode": "replace"}
    assert sections.images == []


@pytest.mark.parametrize(
    ("document", "code"),
    [
        (b'[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9}]', ErrorCode.NOT_COCO),
        (b'{"images": [], "annotations": []}', ErrorCode.NOT_COCO),
        (b'{"images": [], "annotations": [', ErrorCode.INVALID_JSON),
    ],
)
def test_a_file_that_is_not_a_coco_document_says_so(document: bytes, code: ErrorCode) -> None:
    with pytest.raises(NotCoco) as refused:
        read_sections(io.BytesIO(document), max_images=10, max_categories=10)
    assert refused.value.code is code and "\n" not in refused.value.message


def test_json_files_are_coco_and_everything_else_is_json_lines() -> None:
    assert is_json_document("incoming/instances_val.json") and is_json_document("incoming/p/instances.JSON.gz")
    assert not is_json_document("incoming/labels.jsonl") and not is_json_document("incoming/labels.jsonl.gz")

"""COCO geometry in pixels -> the label format's normalised geometry, with every misfit said in COCO terms.

COCO coordinates are continuous pixel coordinates (the image spans [0, width] x [0, height]); the label format
divides them by the image size. Masks follow COCO's own definitions: polygons are rasterised by pycocotools,
RLE counts run down columns (column-major), and Encord's RLE runs along rows, so masks are transposed on the
way. A mask imported as a polygon is traced along its pixel edges, so rasterising the polygon (outer rings
minus holes) gives back the very same pixels.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import contourpy
import numpy as np
from encord.objects.bitmask import BitmaskCoordinates
from pycocotools import mask as coco_mask

from label_importer.model.problems import ErrorCode

if TYPE_CHECKING:
    from contourpy._contourpy import FillReturn_OuterOffset


class GeometryMisfit(Exception):
    """A geometry that cannot become a label; `field` is relative to the annotation (e.g. `bbox[2]`)."""

    def __init__(self, field: str, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ImageSize:
    width: int
    height: int


def normalised_box(bbox: list[float], size: ImageSize) -> dict[str, float]:
    """`[x, y, w, h]` in pixels -> `{x, y, w, h}` in [0, 1]; a box reaching outside the image is refused."""
    x, y, w, h = bbox
    for index, (start, extent, limit, axis) in enumerate(((x, w, size.width, "width"), (y, h, size.height, "height"))):
        if start < 0 or extent < 0 or start + extent > limit:
            raise GeometryMisfit(
                f"bbox[{index}]",
                ErrorCode.OUT_OF_RANGE,
                f"the box spans {start:g} to {start + extent:g} but the image {axis} is {limit}",
            )
    return {"x": x / size.width, "y": y / size.height, "w": w / size.width, "h": h / size.height}


def normalised_rings(segmentation: list[list[float]], size: ImageSize) -> list[list[list[float]]]:
    """COCO polygon rings (`[x1, y1, x2, y2, ...]`, pixels) -> rings of normalised `[x, y]` points."""
    rings = []
    for index, flat in enumerate(segmentation):
        if len(flat) % 2 or len(flat) < 6:
            raise GeometryMisfit(
                f"segmentation[{index}]",
                ErrorCode.INVALID_VALUE,
                f"a polygon ring is x, y pairs of at least 3 points; this one has {len(flat)} numbers",
            )
        points = np.asarray(flat, dtype=float).reshape(-1, 2)
        outside = (points < 0).any(axis=1) | (points[:, 0] > size.width) | (points[:, 1] > size.height)
        if outside.any():
            x, y = points[int(np.argmax(outside))]
            raise GeometryMisfit(
                f"segmentation[{index}]",
                ErrorCode.OUT_OF_RANGE,
                f"point ({x:g}, {y:g}) is outside the {size.width}x{size.height} image",
            )
        rings.append((points / (size.width, size.height)).tolist())
    return rings


def polygon_geometry(rings: list[list[list[float]]]) -> Any:
    """One ring is a plain polygon; several are the parts of one object, as COCO means them."""
    if len(rings) == 1:
        return rings[0]
    return {"polygons": [{"outer": ring} for ring in rings]}


def rle_counts(rle_size: list[int], counts: list[int] | str, size: ImageSize) -> np.ndarray:
    """The run lengths of an RLE segmentation (uncompressed list or compressed string), checked to cover the
    image exactly. pycocotools trusts counts and writes past its buffer when they overrun, so they are
    checked here before anything decodes them."""
    height, width = rle_size
    if (width, height) != (size.width, size.height):
        raise GeometryMisfit(
            "segmentation.size",
            ErrorCode.BITMASK_SIZE_MISMATCH,
            f"the mask is {width}x{height} (size is [height, width]) but the image is {size.width}x{size.height}",
        )
    runs = counts if isinstance(counts, list) else _decompressed(counts)
    pixels = width * height
    negative = next((index for index, run in enumerate(runs) if run < 0), None)
    if negative is not None:
        raise GeometryMisfit(
            f"segmentation.counts[{negative}]", ErrorCode.INVALID_VALUE, f"run {negative} is {runs[negative]}"
        )
    covered = sum(runs)  # Python integers: hostile counts must not wrap around to a plausible total
    if covered != pixels:
        raise GeometryMisfit(
            "segmentation.counts",
            ErrorCode.INVALID_VALUE,
            f"the runs cover {covered} pixels; a {width}x{height} mask has {pixels}",
        )
    return np.asarray(runs, dtype=np.int64)


def _decompressed(counts: str) -> list[int]:
    """COCO's compressed counts: each run in 5-bit groups (6th bit = more follows), sign-extended, and from the
    third run on stored as the difference to the run two before. The same decoding as pycocotools'
    `rleFrString`, which is not exposed to Python."""
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value = shift = 0
        more = True
        while more:
            if position == len(counts):
                raise GeometryMisfit("segmentation.counts", ErrorCode.INVALID_VALUE, "the RLE string is cut short")
            code = ord(counts[position]) - 48
            if not 0 <= code < 64:
                raise GeometryMisfit(
                    "segmentation.counts",
                    ErrorCode.INVALID_VALUE,
                    f"{counts[position]!r} at {position} is not an RLE character (COCO uses '0' to 'o')",
                )
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position += 1
            shift += 5
            if not more and code & 0x10:
                value |= -1 << shift
        runs.append(value + runs[-2] if len(runs) > 2 else value)
    return runs


def mask_from_runs(runs: np.ndarray, size: ImageSize) -> np.ndarray:
    """Checked run lengths -> a boolean height x width mask (runs go down columns, starting with zeros)."""
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape(size.width, size.height).T


def mask_from_rings(segmentation: list[list[float]], size: ImageSize) -> np.ndarray:
    """Polygon rings rasterised exactly as COCO's tools do; the parts are joined."""
    encoded = coco_mask.merge(coco_mask.frPyObjects(segmentation, size.height, size.width))
    decoded: np.ndarray = coco_mask.decode(encoded)  # pycocotools is untyped: a height x width uint8 array
    return decoded.astype(bool)


def encord_bitmask(mask: np.ndarray) -> dict[str, Any]:
    """The label format's bitmask: Encord's row-major RLE, encoded by the SDK."""
    encoded = BitmaskCoordinates(np.ascontiguousarray(mask)).to_dict()
    return {"rle": encoded["rleString"], "width": encoded["width"], "height": encoded["height"]}


def traced_polygons(mask: np.ndarray, size: ImageSize) -> Any:
    """The outline of a (non-empty) mask as polygons with holes, along pixel edges, without collinear points."""
    padded = np.pad(mask, 1).astype(float)  # so shapes touching the border close
    generator = contourpy.contour_generator(z=padded, fill_type=contourpy.FillType.OuterOffset, corner_mask=False)
    # contourpy types `filled` as the union over every fill type; OuterOffset's is a (points, offsets) pair.
    outlines, offsets = cast("FillReturn_OuterOffset", generator.filled(0.5, 1.5))
    polygons = []
    for points, starts in zip(outlines, offsets, strict=True):
        # Contour points are in padded-array indices (pixel centres): shift to COCO's pixel coordinates.
        rings = [_without_collinear(points[start : end - 1] - 0.5) for start, end in itertools.pairwise(starts)]
        scaled = [(ring / (size.width, size.height)).tolist() for ring in rings]
        polygons.append({"outer": scaled[0], "holes": scaled[1:]})
    if len(polygons) == 1 and not polygons[0]["holes"]:
        return polygons[0]["outer"]
    return {"polygons": polygons}


def _without_collinear(ring: np.ndarray) -> np.ndarray:
    """Drop points that lie on the straight line through their neighbours: the outline stays exactly the same."""
    before, after = np.roll(ring, 1, axis=0), np.roll(ring, -1, axis=0)
    cross = (ring[:, 0] - before[:, 0]) * (after[:, 1] - before[:, 1]) - (ring[:, 1] - before[:, 1]) * (
        after[:, 0] - before[:, 0]
    )
    kept: np.ndarray = ring[np.abs(cross) > 1e-12]
    return kept


VISIBILITY = {0: "invisible", 1: "occluded", 2: "visible"}
"""COCO keypoint flags: 0 not labelled (stored at 0, 0), 1 labelled but hidden, 2 visible."""


def skeleton_points(keypoints: list[float], names: Sequence[str], size: ImageSize) -> dict[str, dict[str, Any]]:
    """`[x1, y1, v1, ...]` in the category's keypoint order -> `{point name: {x, y, visibility}}`."""
    if len(keypoints) != 3 * len(names):
        raise GeometryMisfit(
            "keypoints",
            ErrorCode.INVALID_VALUE,
            f"{len(keypoints)} numbers; the category has {len(names)} keypoints, so {3 * len(names)} (x, y, v each)",
        )
    skeleton = {}
    for index, name in enumerate(names):
        x, y, flag = keypoints[3 * index : 3 * index + 3]
        if flag not in VISIBILITY:
            raise GeometryMisfit(
                f"keypoints[{3 * index + 2}]",
                ErrorCode.INVALID_VALUE,
                f"visibility of {name!r} is {flag:g}; COCO uses 0 (not labelled), 1 (hidden) or 2 (visible)",
            )
        if not (0 <= x <= size.width and 0 <= y <= size.height):
            raise GeometryMisfit(
                f"keypoints[{3 * index}]",
                ErrorCode.OUT_OF_RANGE,
                f"{name!r} at ({x:g}, {y:g}) is outside the {size.width}x{size.height} image",
            )
        skeleton[name] = {"x": x / size.width, "y": y / size.height, "visibility": VISIBILITY[int(flag)]}
    return skeleton

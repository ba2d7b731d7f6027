"""A PNG mask's pixels, decoded with Pillow only once its header says they fit.

A PNG declares its size in its first chunk, so a few hundred bytes can declare ten billion pixels, gigabytes
once decoded. Pillow reads that header when it opens a file, and checks the size against `MAX_IMAGE_PIXELS`
before any pixel is decoded: set to MaxBitmaskPixels (the most pixels a bitmask may have anyway), it refuses a
mask too large to import before it costs any memory. Decoded, each pixel is a value: the palette index of a
palette PNG, the grey level of a grey one (1, 8 or 16 bits), the colour of an RGB one. A PNG with an alpha
channel is refused, since whether a transparent pixel is background or its colour cannot be told.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from label_importer.model.problems import ErrorCode

INDEX_MODES = frozenset({"1", "L", "P", "I;16", "I"})
"""Pillow's modes of the PNGs whose pixel value is one number: bilevel, grey (8 or 16 bits), palette index."""
COLOUR_MODE = "RGB"
BACKGROUND = 0
"""The value that is no object unless the mapping names it: index or grey level 0, colour #000000."""

_UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
"""What Pillow raises for bytes that are not a PNG or a PNG that is truncated or corrupt (UnidentifiedImageError
is an OSError)."""


class MaskMisfit(Exception):
    """A PNG that cannot be a mask: not a PNG, too large, of a kind without values, or corrupt."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class MaskValues:
    """Every pixel's value as a whole number, a height x width array; `colour` says they are 0xRRGGBB."""

    codes: np.ndarray
    colour: bool

    def values(self) -> list[int]:
        """The distinct values, in increasing order."""
        return [int(code) for code in np.unique(self.codes)]

    def written(self, code: int) -> str:
        """A value as the mapping's `objects` names it: `"3"` (index or grey level), `"#ff8000"` (colour)."""
        return f"#{code:06x}" if self.colour else str(code)

    def mask(self, codes: list[int]) -> np.ndarray:
        """The pixels holding any of `codes`, as a boolean height x width array."""
        return np.isin(self.codes, codes)


def open_png(data: bytes, max_pixels: int) -> Image.Image:
    """The PNG in `data`, its header read and its pixels not yet decoded; raises MaskMisfit when it is not a PNG
    or declares more than `max_pixels` pixels."""
    Image.MAX_IMAGE_PIXELS = max_pixels  # the deployment's limit, the same on every call
    try:
        with warnings.catch_warnings():
            # Pillow warns between the limit and twice it, and raises above: both are over the limit here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=["PNG"])
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise MaskMisfit(
            ErrorCode.BITMASK_TOO_LARGE,
            f"declares more than {max_pixels} pixels in its header, the most a mask may have (MAX_BITMASK_PIXELS); "
            "it is refused before decoding",
        ) from None
    except _UNREADABLE:
        raise MaskMisfit(ErrorCode.INVALID_VALUE, "is not a PNG image (its first bytes are not a PNG header)") from None


def decoded(image: Image.Image) -> MaskValues:
    """The values of an opened PNG's pixels; raises MaskMisfit for a PNG with alpha or one that does not decode."""
    mode = image.mode
    try:
        if mode not in INDEX_MODES and mode != COLOUR_MODE:
            raise MaskMisfit(
                ErrorCode.INVALID_VALUE,
                f"is a PNG of mode {mode!r}; a mask is a palette, grey (8 or 16 bits) or RGB PNG without alpha",
            )
        pixels = np.asarray(image)
    except _UNREADABLE as error:
        raise MaskMisfit(ErrorCode.INVALID_VALUE, f"does not decode as a PNG ({error})") from None
    finally:
        image.close()
    if mode != COLOUR_MODE:
        return MaskValues(pixels.view(np.uint8) if pixels.dtype == np.bool_ else pixels, colour=False)
    red, green, blue = (pixels[..., channel].astype(np.uint32) for channel in range(3))
    return MaskValues(red << 16 | green << 8 | blue, colour=True)

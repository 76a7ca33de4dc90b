"""The one image reader of the project: sizes and pixels as Label Studio's editor shows them.

Every stage that looks at a task image goes through here, so that all of them agree on its
size and orientation:
- the size is read from the header only, and refused when it is over a pixel budget derived
  from `validate.max_image_side` (a few-kilobyte PNG may declare 16384 x 16384 pixels: a
  decompression bomb), before any pixel is decoded;
- sizes and pixels are in the DISPLAYED orientation: the EXIF orientation tag (values 5-8
  swap width and height) is applied, as browsers and the editor apply it to JPEGs, so label
  maps drawn in the editor line up with the pixels the model sees.

Shapes: (H, W) are the displayed height and width; RGB arrays are (H, W, 3) uint8.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.core.errors import ImageError

ORIENTATION_TAG = 0x0112
SWAPPED_ORIENTATIONS = {5, 6, 7, 8}  # transpose, rotate 90 cw, transverse, rotate 90 ccw
# Magic bytes of the formats task images may have: (offset, bytes) -> canonical suffix.
SIGNATURES = (
    ((0, b"\x89PNG\r\n\x1a\n"), ".png"),
    ((0, b"\xff\xd8\xff"), ".jpg"),
    ((0, b"GIF87a"), ".gif"),
    ((0, b"GIF89a"), ".gif"),
    ((0, b"BM"), ".bmp"),
    ((0, b"II*\x00"), ".tif"),
    ((0, b"MM\x00*"), ".tif"),
)
FORMATS = {"PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"}  # what PIL may open for us; nothing else
DECODE_ERRORS = (
    UnidentifiedImageError,
    Image.DecompressionBombError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    TypeError,
    IndexError,
    KeyError,
    ZeroDivisionError,
)


def image_suffix(head: bytes) -> str | None:
    """The canonical file suffix of an image by its first bytes (16 are enough), or None."""
    for (offset, magic), suffix in SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return suffix
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    return None


def pixel_budget(max_side: int) -> int:
    """Most pixels an image may have: a side may reach `max_side`, the area a quarter of its square.

    max_side 16384 -> 67,108,864 pixels (8192 x 8192, 16384 x 4096): about 200 MB decoded as RGB.
    """
    return max_side * max_side // 4


def _open(path: Path) -> Image.Image:
    # PIL's own bomb check uses a process-wide limit; ours (the budget) is applied by the callers,
    # so PIL's is silenced here rather than changed for everyone.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(path, formats=sorted(FORMATS))
        except Image.DecompressionBombError as error:
            raise ImageError(
                f"the image declares more pixels than any budget allows ({error}); "
                "a decompression bomb or corrupt; resize it"
            ) from None
        except FileNotFoundError:
            raise ImageError(f"image file {path} is missing; run pull again") from None
        except DECODE_ERRORS as error:
            raise ImageError(f"the image file is not a readable image ({type(error).__name__}); re-upload it") from None


def _orientation(image: Image.Image) -> int | None:
    """The EXIF orientation tag, from the header: None when absent or unreadable."""
    if image.format == "PNG" and "exif" not in image.info:
        # An eXIf chunk after the pixel data is found only by decoding them all (PIL loads the image
        # to look for one); browsers take orientation from chunks before the pixels, and so do we.
        return None
    try:
        return image.getexif().get(ORIENTATION_TAG)
    except DECODE_ERRORS:
        return None  # an unreadable EXIF block: shown unrotated, as browsers do


def _displayed_size(image: Image.Image, orientation: int | None) -> tuple[int, int]:
    width, height = image.size
    return (width, height) if orientation in SWAPPED_ORIENTATIONS else (height, width)


def _check_size(height: int, width: int, max_side: int) -> None:
    if height < 1 or width < 1:
        raise ImageError(f"the image is {width}x{height} pixels; re-upload it")
    if max(width, height) > max_side:
        raise ImageError(f"the image is {width}x{height}, larger than validate.max_image_side={max_side}")
    if width * height > pixel_budget(max_side):
        raise ImageError(
            f"the image is {width}x{height} = {width * height:,} pixels, over the budget of "
            f"{pixel_budget(max_side):,} (validate.max_image_side\u00b2/4): a decompression bomb or too "
            "large; resize it or raise validate.max_image_side"
        )


def read_size(path: Path, max_side: int) -> tuple[int, int]:
    """(H, W) as displayed, from the header only; ImageError for non-images, bombs and absurd sizes."""
    with _open(path) as image:
        _check_size(image.height, image.width, max_side)  # before EXIF: the bounds do not depend on it
        height, width = _displayed_size(image, _orientation(image))
    return height, width


def read_rgb(path: Path, max_side: int = 16384) -> np.ndarray:
    """(H, W, 3) uint8 RGB as displayed (EXIF orientation applied); the size is checked before decoding."""
    with _open(path) as image:
        _check_size(image.height, image.width, max_side)
        orientation = _orientation(image)
        height, width = _displayed_size(image, orientation)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                # the orientation read_size went by: a PNG's trailing eXIf, found once decoded, is ignored
                upright = ImageOps.exif_transpose(image) if orientation not in (None, 1) else image
                pixels = np.array(upright.convert("RGB"))  # a writable copy: torch.from_numpy wants one
        except DECODE_ERRORS as error:
            raise ImageError(f"image {path} cannot be decoded ({type(error).__name__}); re-upload it") from None
    if pixels.shape[:2] != (height, width):
        raise ImageError(
            f"image {path} decoded to {pixels.shape[1]}x{pixels.shape[0]}, its header says {width}x{height}"
        )
    return pixels

"""The one image reader: header sizes under a pixel budget, EXIF orientation, bombs refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from pipeline.core.errors import ImageError
from pipeline.core.images import image_suffix, pixel_budget, read_rgb, read_size
from pipeline.dataset.masks import write_label_map
from pipeline.model.data import Sample, read_pair
from tests import imagefiles


def test_decompression_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    bomb = imagefiles.png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ImageError, match="budget"):
        read_size(bomb, 16384)
    with pytest.raises(ImageError, match="budget"):
        read_rgb(bomb, 16384)


def test_sizes_are_read_without_decoding_a_pixel(tmp_path: Path, monkeypatch) -> None:
    # Over our budget but under PIL's own bomb limit: refused before anything is decoded.
    bomb = imagefiles.png_bomb(tmp_path / "bomb.png", side=12000)
    plain = tmp_path / "plain.png"
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(plain)
    decoded = []
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", lambda image: decoded.append(image))
    with pytest.raises(ImageError, match="budget"):
        read_size(bomb, 16384)
    assert read_size(plain, 100) == (30, 50)
    assert not decoded


def test_png_orientation_comes_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "turned.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(path, exif=exif)  # eXIf before the pixels
    assert read_size(path, 100) == (40, 20)
    assert read_rgb(path, 100).shape == (40, 20, 3)


def test_pixel_budget_follows_max_image_side() -> None:
    assert pixel_budget(16384) == 8192 * 8192
    assert pixel_budget(100) == 2500


@pytest.mark.parametrize("orientation", [1, 3, 5, 6, 7, 8])
def test_sizes_and_pixels_are_in_the_displayed_orientation(tmp_path: Path, orientation: int) -> None:
    path = tmp_path / "photo.jpg"
    stored = imagefiles.rotated_jpeg(path, orientation, height=20, width=40)
    swapped = orientation in (5, 6, 7, 8)
    assert read_size(path, 100) == ((40, 20) if swapped else (20, 40))
    pixels = read_rgb(path, 100)
    assert pixels.shape == ((40, 20, 3) if swapped else (20, 40, 3))
    with Image.open(path) as image:
        expected = np.asarray(
            image.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else image.convert("RGB")
        )
    np.testing.assert_array_equal(pixels, expected)
    assert stored.shape == (20, 40, 3)


_TRANSPOSE = {
    3: Image.Transpose.ROTATE_180,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def test_orientation_6_puts_the_top_row_on_the_right(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    imagefiles.rotated_jpeg(path, 6, height=20, width=40)  # stored: left half red
    pixels = read_rgb(path, 100)
    assert pixels[:15, :, 0].mean() > 200 and pixels[25:, :, 0].mean() < 50  # displayed: top half red


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"%!PS-Adobe-3.0 EPSF-3.0\n", b'{"token": "x"}'])
def test_non_images_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match="not a readable image"):
        read_size(path, 100)


def test_truncated_image_is_refused_when_decoded(tmp_path: Path) -> None:
    path = imagefiles.truncated_png(tmp_path / "cut.png")
    assert read_size(path, 100) == (32, 32)  # the header is intact
    with pytest.raises(ImageError, match="cannot be decoded"):
        read_rgb(path, 100)


def test_oversized_side_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.fromarray(np.zeros((2, 300), np.uint8)).save(path)
    with pytest.raises(ImageError, match="max_image_side=200"):
        read_size(path, 200)


@pytest.mark.parametrize(
    ("head", "suffix"),
    [
        (b"\x89PNG\r\n\x1a\n....", ".png"),
        (b"\xff\xd8\xff\xe0", ".jpg"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", ".webp"),
        (b"GIF89a", ".gif"),
        (b"<html>", None),
        (b'{"id": 1}', None),
        (b"", None),
    ],
)
def test_image_suffix_by_magic_bytes(head: bytes, suffix: str | None) -> None:
    assert image_suffix(head) == suffix


def test_training_reads_the_displayed_orientation_validate_sized(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    imagefiles.rotated_jpeg(path, 6, height=20, width=40)
    height, width = read_size(path, 100)  # what validate sizes the label maps by
    write_label_map(tmp_path / "label.png", np.zeros((height, width), np.uint8))
    image, label = read_pair(Sample(1, path, tmp_path / "label.png", "photo.jpg"))
    assert image.shape == (40, 20, 3) and label.shape == (40, 20)

"""Hostile and awkward image files, built byte by byte (nothing large is ever allocated)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(path: Path, side: int = 16384) -> Path:
    """A 1-bit PNG declaring side x side pixels, all zero: a few kilobytes on disk."""
    row = b"\x00" * (1 + side // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))
    return path


def rotated_jpeg(path: Path, orientation: int = 6, height: int = 20, width: int = 40) -> np.ndarray:
    """A JPEG stored (height, width) with an EXIF orientation tag; returns the stored pixels (H, W, 3)."""
    stored = np.zeros((height, width, 3), np.uint8)
    stored[:, : width // 2] = (250, 0, 0)  # left half red, right half black
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, quality=95, exif=exif.tobytes())
    return stored


def truncated_png(path: Path) -> Path:
    """A PNG whose header is right and whose pixel data stops half-way."""
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path

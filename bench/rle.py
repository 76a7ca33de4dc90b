"""Brush RLE codec: ours against label_studio_sdk's, bit-exact check included.

Run: .venv/bin/python bench/rle.py
Targets on 1920x1080 blobs: decode >= 40x and encode >= 10x the SDK's speed.
"""

import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    # Run as a script: make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from label_studio_sdk.converter.brush import decode_rle, mask2rle  # noqa: E402

from pipeline.labelstudio import rle  # noqa: E402

TARGETS = {"decode": 40.0, "encode": 10.0}
TARGET_CASE = "blobs 1920x1080"


def blob_mask(height: int, width: int, seed: int = 0, blobs: int = 12, classes: int = 6) -> np.ndarray:
    """A (height, width) uint8 label map: filled ellipses of class values 1..classes on background 0."""
    rng = np.random.default_rng(seed)
    rows, cols = np.ogrid[:height, :width]
    mask = np.zeros((height, width), dtype=np.uint8)
    for _ in range(blobs):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.05, 0.25) * height, rng.uniform(0.05, 0.25) * width
        inside = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1.0
        mask[inside] = rng.integers(1, classes + 1)
    return mask


def noise_mask(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A (height, width) uint8 map of uniform random values: the worst case for RLE."""
    return np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)


def sdk_decode(stream: list[int], height: int, width: int) -> np.ndarray:
    """The SDK's decode as a (height, width) label map: channel 3 of its flat RGBA values."""
    return decode_rle(stream).reshape(height, width, 4)[:, :, 3]


def best_ms(fn, repeats: int) -> float:
    """Best wall time of fn() over repeats calls, in milliseconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def measure(name: str, mask: np.ndarray, repeats: int) -> list[tuple]:
    """Time encode and decode of one mask with both codecs; raise if they disagree."""
    height, width = mask.shape
    stream = mask2rle(mask)
    if rle.encode(mask) != stream:
        raise SystemExit(f"{name}: encode differs from the SDK's mask2rle")
    if not np.array_equal(rle.decode(stream, height, width), sdk_decode(stream, height, width)):
        raise SystemExit(f"{name}: decode differs from the SDK's decode_rle")
    rows = []
    for op, sdk_fn, our_fn in (
        ("encode", lambda: mask2rle(mask), lambda: rle.encode(mask)),
        ("decode", lambda: sdk_decode(stream, height, width), lambda: rle.decode(stream, height, width)),
    ):
        sdk_ms, our_ms = best_ms(sdk_fn, max(3, repeats // 5)), best_ms(our_fn, repeats)
        rows.append((name, op, len(stream), sdk_ms, our_ms, sdk_ms / our_ms))
    return rows


def main() -> None:
    start = time.perf_counter()
    rle.decode(rle.encode(blob_mask(8, 8)), 8, 8)  # JIT compile, or load from the on-disk cache
    print(f"first call (compile or cache load): {(time.perf_counter() - start) * 1e3:.0f} ms")
    cases = [
        ("blobs 480x360", blob_mask(360, 480, seed=1), 50),
        (TARGET_CASE, blob_mask(1080, 1920, seed=2), 30),
        ("noise 480x360", noise_mask(360, 480, seed=3), 10),
    ]
    rows = [row for name, mask, repeats in cases for row in measure(name, mask, repeats)]
    print(f"{'case':<16} {'op':<7} {'bytes':>8} {'sdk ms':>9} {'ours ms':>9} {'ratio':>8}  target")
    failed = False
    for name, op, nbytes, sdk_ms, our_ms, ratio in rows:
        target = TARGETS[op] if name == TARGET_CASE else None
        verdict = "" if target is None else f">= {target:.0f}x " + ("ok" if ratio >= target else "MISSED")
        failed |= target is not None and ratio < target
        print(f"{name:<16} {op:<7} {nbytes:>8} {sdk_ms:>9.2f} {our_ms:>9.3f} {ratio:>7.0f}x  {verdict}")
    print("bit-exact with the SDK: yes (checked for every case)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

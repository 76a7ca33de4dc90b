"""Seeded thin-structure label maps: vessel-like curves a few pixels wide, two related classes.

For benchmarks of merging where every object is mostly boundary (vessels, membranes): a
one-pixel shift of a 3-px vessel moves a third of it. Classes: 0 background, 1 artery, 2 vein
(related classes that a confused annotator swaps). Curves wander smoothly, branch, and cross;
where they cross, the later one is drawn on top.

Shapes: H, W label map height and width.
"""

from __future__ import annotations

import cv2
import numpy as np

CLASSES = ("background", "artery", "vein")


def _curve(rng: np.random.Generator, height: int, width: int, start=None, heading=None) -> np.ndarray:
    """(N, 2) int32 points of a smooth random walk from ``start`` (random if None)."""
    point = np.array(start if start is not None else (rng.uniform(0, width), rng.uniform(0, height)), float)
    angle = rng.uniform(0, 2 * np.pi) if heading is None else heading
    turn, points = 0.0, [point.copy()]
    for _ in range(int(rng.integers(40, 120))):
        turn = 0.85 * turn + rng.normal(0, 0.06)  # slowly changing curvature
        angle += turn
        point += 4.0 * np.array([np.cos(angle), np.sin(angle)])
        points.append(point.copy())
        if not (-10 <= point[0] <= width + 10 and -10 <= point[1] <= height + 10):
            break
    return np.round(np.array(points)).astype(np.int32)


def vessel_map(
    rng: np.random.Generator | int | None,
    height: int = 360,
    width: int = 480,
    trees: int = 6,
    min_width: int = 2,
    max_width: int = 5,
) -> np.ndarray:
    """(H, W) uint8 label map of ``trees`` vessel trees per class, each a trunk with 0-3 branches."""
    rng = np.random.default_rng(rng)
    label = np.zeros((height, width), np.uint8)
    for _ in range(trees):
        for cls in (1, 2):
            thickness = int(rng.integers(min_width, max_width + 1))
            trunk = _curve(rng, height, width)
            cv2.polylines(label, [trunk], False, cls, thickness, lineType=cv2.LINE_8)
            for _ in range(int(rng.integers(0, 4))):
                origin = trunk[int(rng.integers(0, len(trunk)))]
                branch = _curve(rng, height, width, start=origin, heading=rng.uniform(0, 2 * np.pi))
                cv2.polylines(label, [branch], False, cls, max(min_width, thickness - 1), lineType=cv2.LINE_8)
    return label

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


def vessel_image(label: np.ndarray, rng: np.random.Generator | int | None) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of a vessel ``label`` map, like a fundus photograph.

    Reddish background under uneven illumination and a faint texture; arteries (1) a little
    darker than the background, veins (2) darker still; the optics blur every edge (Gaussian,
    sigma 0.6-1.0 px) and the sensor adds noise (std 3-7 grey levels): vessel edges are there,
    never sharp or clean."""
    rng = np.random.default_rng(rng)
    height, width = label.shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    falloff = 1.0 - 0.45 * (((xx - cx) / width) ** 2 + ((yy - cy) / height) ** 2) * 4
    texture = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 6) * 25
    base = np.array([200.0, 95.0, 45.0], np.float32) * rng.uniform(0.85, 1.1)
    depth = np.zeros((height, width), np.float32)
    depth[label == 1] = rng.uniform(0.22, 0.32)
    depth[label == 2] = rng.uniform(0.35, 0.5)
    depth = cv2.GaussianBlur(depth, (0, 0), rng.uniform(0.6, 1.0))
    image = base[None, None] * (falloff * (1.0 - depth))[..., None] + texture[..., None] * 0.3
    image += rng.normal(0, rng.uniform(3, 7), image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)

"""Seeded synthetic street-like scenes: an RGB image and its exact label map.

Used by the demo project, the benchmarks and the size tests, so that the whole loop can run
with no data of one's own. Classes (ids in this order): background, road, vehicle, person,
vegetation. Every class has its own texture, so a network can learn them; objects occlude
each other in drawing order (road, vegetation, vehicles, people), and sizes vary.

Shapes: H, W = image height and width.
"""

from __future__ import annotations

import cv2
import numpy as np

CLASSES = ("background", "road", "vehicle", "person", "vegetation")
COLOURS = ((0, 0, 0), (128, 64, 128), (0, 0, 192), (220, 20, 60), (107, 142, 35))  # RGB, one per class
BACKGROUND, ROAD, VEHICLE, PERSON, VEGETATION = range(5)
# Base colours (BGR) and texture strengths per class: distinct but not trivially separable.
_LOOK = {
    BACKGROUND: ((170, 160, 150), 25),
    ROAD: ((95, 90, 90), 18),
    VEHICLE: ((40, 40, 170), 30),
    PERSON: ((60, 150, 200), 22),
    VEGETATION: ((40, 130, 60), 40),
}


def _texture(rng: np.random.Generator, height: int, width: int, colour: tuple, strength: float) -> np.ndarray:
    """(H, W, 3) uint8 colour with smooth noise: blurred random field of the given strength."""
    noise = rng.normal(0, 1, (height // 4 + 1, width // 4 + 1, 3)).astype(np.float32)
    noise = cv2.resize(noise, (width, height), interpolation=cv2.INTER_LINEAR)
    fine = rng.normal(0, 0.35, (height, width, 3)).astype(np.float32)
    return np.clip(np.asarray(colour, np.float32) + strength * (noise + fine), 0, 255).astype(np.uint8)


def _paint(image: np.ndarray, labels: np.ndarray, mask: np.ndarray, class_id: int, rng: np.random.Generator) -> None:
    colour, strength = _LOOK[class_id]
    jittered = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in colour)
    texture = _texture(rng, *labels.shape, jittered, strength)
    image[mask] = texture[mask]
    labels[mask] = class_id


def scene(seed: int, height: int = 360, width: int = 480) -> tuple[np.ndarray, np.ndarray]:
    """One scene: ((H, W, 3) uint8 BGR image, (H, W) uint8 label map with ids of CLASSES)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((height, width), np.uint8)
    image = _texture(rng, height, width, _LOOK[BACKGROUND][0], _LOOK[BACKGROUND][1])
    horizon = int(height * rng.uniform(0.35, 0.55))
    left_top, right_top = width * rng.uniform(0.3, 0.45), width * rng.uniform(0.55, 0.7)
    road = np.array([[0, height], [width, height], [right_top, horizon], [left_top, horizon]], np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [road], 1)
    _paint(image, labels, mask.astype(bool), ROAD, rng)
    for _ in range(rng.integers(1, 4)):
        mask[:] = 0
        centre = (int(rng.uniform(0, width)), int(rng.uniform(horizon * 0.5, horizon * 1.1)))
        axes = (int(rng.uniform(20, 90)), int(rng.uniform(25, 80)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        _paint(image, labels, mask.astype(bool), VEGETATION, rng)
    for _ in range(rng.integers(1, 5)):
        mask[:] = 0
        y = int(rng.uniform(horizon, height * 0.95))
        scale = 0.3 + 0.9 * (y - horizon) / max(height - horizon, 1)  # nearer is bigger
        w, h = int(rng.uniform(60, 110) * scale) + 6, int(rng.uniform(30, 50) * scale) + 4
        x = int(rng.uniform(-w / 3, width - w * 2 / 3))
        cv2.rectangle(mask, (x, y - h), (x + w, y), 1, -1)
        cv2.rectangle(mask, (x + w // 5, y - h - h // 2), (x + 4 * w // 5, y - h), 1, -1)
        _paint(image, labels, mask.astype(bool), VEHICLE, rng)
    for _ in range(rng.integers(0, 4)):
        mask[:] = 0
        y = int(rng.uniform(horizon, height * 0.98))
        scale = 0.3 + 0.9 * (y - horizon) / max(height - horizon, 1)
        h, w = int(rng.uniform(50, 80) * scale) + 6, int(rng.uniform(12, 20) * scale) + 3
        x = int(rng.uniform(0, width - w))
        cv2.rectangle(mask, (x, y - h), (x + w, y - h // 5), 1, -1)
        cv2.circle(mask, (x + w // 2, y - h - w // 2), max(w // 2, 2), 1, -1)
        _paint(image, labels, mask.astype(bool), PERSON, rng)
    return image, labels

"""A simulated crowd: noisy annotators derived from a ground-truth label map.

Seeds demo projects and exercises the merge stage on data that has one
ground truth per image (CamVid). Pure functions on arrays.

Shapes legend:
    H, W   label map height and width
    C      number of classes; labels 0..C-1, 255 = void / unlabeled

Profiles (``PROFILES``), each applied to the truth and then, except for the
spammer, given a light boundary jitter: the map is resampled (nearest
neighbour) through a smooth random displacement field whose per-pixel offset
has a standard deviation of ``jitter`` px (default 0.5: about a third of the
boundary pixels move by one pixel along each axis):

    good      the truth with the light jitter only
    dilated   objects grown by ``radius`` px: classes rarer in the image win
              over more common ones inside the radius (things over stuff)
    eroded    the opposite: objects shrink by ``radius`` px, common classes grow
    sloppy    strong, wobbly jitter (about 4 ``jitter`` px): jagged boundaries
    misser    each connected component of a non-background class is missed
              with probability ``miss_prob``; missed pixels take the nearest
              kept label (``miss_fill="surround"``) or stay 255 ("unlabeled")
    confuser  each connected component of a class in ``pairs`` is relabelled
              ``pairs[class]`` with probability ``swap_prob``
    spammer   random blobs of random classes, unrelated to the image
    partial   careful, but leaves smooth random patches covering about ``unlabeled_share``
              of the image unlabelled (255)

Every output keeps the truth's 255 pixels at 255: annotators do not label
void. Same inputs and the same seed give the same map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from pipeline.core.constants import IGNORE_INDEX
from pipeline.core.errors import PipelineError

PROFILES = ("good", "dilated", "eroded", "sloppy", "misser", "confuser", "spammer", "partial")
MISS_FILLS = ("surround", "unlabeled")


class CrowdError(PipelineError):
    """An annotator profile or parameter the simulated crowd does not know."""


def class_pairs(pairs: Sequence[tuple[str, str]], class_names: Sequence[str]) -> dict[int, int]:
    """Symmetric class-id swap map from name pairs, e.g. [("Road", "Pavement")] -> {3: 4, 4: 3}."""
    index = {name: i for i, name in enumerate(class_names)}
    out: dict[int, int] = {}
    for a, b in pairs:
        for name in (a, b):
            if name not in index:
                raise CrowdError(f"unknown class {name!r}; valid names: {', '.join(class_names)}")
        out[index[a]], out[index[b]] = index[b], index[a]
    return out


def simulate_annotator(
    truth: np.ndarray,
    profile: str,
    rng: np.random.Generator | int | None,
    num_classes: int,
    *,
    pairs: Mapping[int, int] | None = None,
    background: Sequence[int] | None = None,
    miss_prob: float = 0.5,
    miss_fill: str = "surround",
    swap_prob: float = 0.6,
    radius: int = 3,
    jitter: float = 0.5,
    unlabeled_share: float = 0.3,
) -> np.ndarray:
    """One simulated annotator's label map of an image.

    truth: (H, W) uint8, labels 0..C-1 and 255 = void. Returns (H, W) uint8.
    rng: a numpy Generator (consumed) or a seed (None: fresh entropy, not
    reproducible). ``pairs``: confuser swap map,
    class id -> class id (default: 0<->1, 2<->3, ...). ``background``: classes
    the misser never misses (default: classes covering at least 10 % of the
    image's labelled pixels). See the module docstring for the profiles.
    """
    truth = _check_truth(truth, num_classes)
    if profile not in PROFILES:
        raise CrowdError(f"unknown annotator profile {profile!r}; valid: {', '.join(PROFILES)}")
    if miss_fill not in MISS_FILLS:
        raise CrowdError(f"unknown miss_fill {miss_fill!r}; valid: {', '.join(MISS_FILLS)}")
    rng = np.random.default_rng(rng)
    if profile == "spammer":
        out = _spam(truth.shape, rng, num_classes)
    else:
        out = _distort(truth, profile, rng, num_classes, pairs, background, miss_prob, miss_fill, swap_prob, radius)
        amplitude, scale = (4.0 * jitter, 12) if profile == "sloppy" else (jitter, 8)
        out = _jitter(out, rng, amplitude, scale)
        if profile == "partial":
            out[_patches(truth.shape, rng, unlabeled_share)] = IGNORE_INDEX
    out[truth == IGNORE_INDEX] = IGNORE_INDEX
    return out


def _check_truth(truth: np.ndarray, num_classes: int) -> np.ndarray:
    truth = np.asarray(truth)
    if truth.ndim != 2 or truth.dtype != np.uint8:
        raise CrowdError(f"truth must be a (H, W) uint8 label map, got {truth.dtype} {truth.shape}")
    if not 1 <= num_classes <= IGNORE_INDEX:
        raise CrowdError(f"num_classes must lie in [1, 255], got {num_classes}")
    bad = (truth >= num_classes) & (truth != IGNORE_INDEX)
    if bad.any():
        raise CrowdError(
            f"truth holds labels {sorted(np.unique(truth[bad]).tolist())} outside 0..{num_classes - 1}"
            " and 255; map void/unknown ids to 255 first"
        )
    return truth


def _distort(
    truth, profile, rng, num_classes, pairs, background, miss_prob, miss_fill, swap_prob, radius
) -> np.ndarray:
    if profile in ("dilated", "eroded"):
        return _grow(truth, radius, shrink=profile == "eroded")
    if profile == "misser":
        if background is None:
            counts = np.bincount(truth[truth != IGNORE_INDEX], minlength=num_classes)
            background = np.flatnonzero(counts >= 0.1 * max(counts.sum(), 1)).tolist()
        objects = [c for c in range(num_classes) if c not in set(background)]
        missed = _pick_components(truth, objects, miss_prob, rng)
        if miss_fill == "unlabeled":
            out = truth.copy()
            out[missed] = IGNORE_INDEX
            return out
        return _fill_nearest(truth, missed | (truth == IGNORE_INDEX))
    if profile == "confuser":
        if pairs is None:
            pairs = {c: c ^ 1 for c in range(num_classes) if c ^ 1 < num_classes}
        out = truth.copy()
        for src, dst in sorted(pairs.items()):
            if not (0 <= src < num_classes and 0 <= dst < num_classes):
                raise CrowdError(f"pair {src}->{dst} lies outside 0..{num_classes - 1}")
            out[_pick_components(truth, [src], swap_prob, rng)] = dst
        return out
    return truth.copy()  # good, sloppy: the jitter does the work


def _grow(truth: np.ndarray, radius: int, shrink: bool) -> np.ndarray:
    """Grey dilation (or erosion) of a rank map: rarer classes rank higher."""
    if radius <= 0:
        return truth.copy()
    present, counts = np.unique(truth[truth != IGNORE_INDEX], return_counts=True)
    if present.size == 0:
        return truth.copy()
    order = present[np.argsort(-counts, kind="stable")]  # most common first
    rank_of = np.full(256, 255 if shrink else 0, dtype=np.uint8)
    rank_of[order] = np.arange(1, order.size + 1, dtype=np.uint8)
    class_of = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    class_of[rank_of[order]] = order
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    op = cv2.erode if shrink else cv2.dilate
    return class_of[op(rank_of[truth], kernel, borderType=cv2.BORDER_REPLICATE)]


def _pick_components(truth, classes, prob, rng) -> np.ndarray:
    """Mask of the connected components (8-connected) of ``classes`` drawn with ``prob``."""
    picked = np.zeros(truth.shape, dtype=bool)
    for c in classes:
        mask = (truth == c).astype(np.uint8)
        if not mask.any():
            continue
        n, comp = cv2.connectedComponents(mask, connectivity=8)
        chosen = np.zeros(n, dtype=bool)
        chosen[1:] = rng.random(n - 1) < prob
        picked |= chosen[comp]
    return picked


def _fill_nearest(labels: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Replace the ``holes`` pixels by the label of the nearest non-hole pixel (L2)."""
    if not holes.any():
        return labels.copy()
    if holes.all():
        return np.full_like(labels, IGNORE_INDEX)
    _, nearest = cv2.distanceTransformWithLabels(holes.astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    # DIST_LABEL_PIXEL numbers the non-hole pixels 1.. in raster order.
    sources = np.flatnonzero(~holes.ravel())
    out = labels.ravel()[sources[nearest.ravel() - 1]]
    return out.reshape(labels.shape)


def _jitter(labels: np.ndarray, rng: np.random.Generator, amplitude: float, scale: int) -> np.ndarray:
    """Resample through a smooth random displacement field of about ``amplitude`` px."""
    if amplitude <= 0:
        return labels.copy()
    h, w = labels.shape
    small = (max(2, -(-h // scale)), max(2, -(-w // scale)))
    field = rng.normal(0.0, amplitude, size=(2, *small)).astype(np.float32)
    dx, dy = (cv2.resize(f, (w, h), interpolation=cv2.INTER_CUBIC) for f in field)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(labels, xs + dx, ys + dy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)


def _spam(shape: tuple[int, int], rng: np.random.Generator, num_classes: int) -> np.ndarray:
    """Blobs of random classes: argmax of smooth random class scores."""
    h, w = shape
    small = (max(2, h // 24), max(2, w // 24), num_classes)
    scores = rng.normal(size=small).astype(np.float32)
    if num_classes == 1:
        return np.zeros(shape, dtype=np.uint8)
    full = cv2.resize(scores, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.argmax(full.reshape(h, w, num_classes), axis=-1).astype(np.uint8)


def _patches(shape: tuple[int, int], rng: np.random.Generator, share: float) -> np.ndarray:
    """(H, W) bool: smooth random patches covering about ``share`` of the image."""
    if not 0 <= share <= 1:
        raise CrowdError(f"unlabeled_share must lie in [0, 1], got {share}")
    h, w = shape
    field = rng.normal(size=(max(2, h // 40), max(2, w // 40))).astype(np.float32)
    smooth = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
    return smooth < np.quantile(smooth, share) if share > 0 else np.zeros(shape, bool)

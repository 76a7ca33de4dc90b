"""Boundary offsets and edge fidelity measured against the image's own edges (pipeline.dataset.edge_offsets)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.dataset.boundary_offsets import RarityOffsets, rarity_offsets
from pipeline.dataset.crowd_corrections import CorrectedModels, estimate_corrected
from pipeline.dataset.dawid_skene import estimate_models
from pipeline.dataset.edge_offsets import edge_evidence, edge_profile, edge_sums, image_edges, peak_offset
from pipeline.demo.crowd import simulate_annotator
from pipeline.demo.thin_structures import vessel_image, vessel_map

COLOURS = np.array([[40, 90, 40], [200, 60, 50], [60, 70, 210]], np.uint8)  # a colour per class


def scene(seed: int) -> np.ndarray:
    """(96, 128) background 0, class-1 disks (r 10) and smaller class-2 disks (r 5)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((96, 128), np.uint8)
    for label, radius, count in ((1, 10, 4), (2, 5, 5)):
        for _ in range(count):
            cv2.circle(out, (int(rng.integers(12, 116)), int(rng.integers(12, 84))), radius, label, -1)
    return out


def photograph(truth: np.ndarray, seed: int) -> np.ndarray:
    """(H, W, 3) uint8: each class its colour, blurred (sigma 0.8) and noisy (std 6)."""
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(COLOURS[truth].astype(np.float32), (0, 0), 0.8)
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


def crowd(seeds: range, **fat) -> tuple[list[dict], list[np.ndarray], list[np.ndarray]]:
    """Tasks of a careful annotator, one whose regions are 2 px too large and a spammer; their images."""
    tasks, images, truths = [], [], []
    for i in seeds:
        truth = scene(i)
        truths.append(truth)
        images.append(photograph(truth, 100 + i))
        tasks.append(
            {
                "careful": simulate_annotator(truth, "good", [i, 0], 3),
                "fat": simulate_annotator(truth, "dilated", [i, 1], 3, radius=fat.get("radius", 2)),
                "spam": simulate_annotator(truth, "spammer", [i, 2], 3),
            }
        )
    return tasks, images, truths


def summed(maps: list[np.ndarray], images: list[np.ndarray]) -> np.ndarray:
    return sum(np.vstack([edge_profile(m, image_edges(im), 3), [1.0, 1.0]]) for m, im in zip(maps, images))


def test_image_edges_are_strong_on_a_colour_boundary_only():
    truth = np.zeros((20, 20), np.uint8)
    truth[:, 10:] = 1
    edges = image_edges(COLOURS[truth])
    assert edges[:, 9:11].min() > 10 * max(edges[:, :7].max(), 1e-6)
    assert edges[:, 14:].max() == 0
    with pytest.raises(ValueError, match="uint8 RGB"):
        image_edges(truth)


@pytest.mark.parametrize(("profile", "radius", "expected"), [("dilated", 2, 2), ("eroded", 1, -1), ("good", 0, 0)])
def test_the_profile_peaks_at_the_planted_offset(profile, radius, expected):
    truths = [scene(i) for i in range(6)]
    images = [photograph(t, 50 + i) for i, t in enumerate(truths)]
    maps = [simulate_annotator(t, profile, i, 3, radius=max(radius, 1), jitter=0.3) for i, t in enumerate(truths)]
    offset = peak_offset(summed(maps, images))
    assert offset is not None and abs(offset - expected) < 0.5


def test_boundaries_that_follow_no_edge_have_no_offset_and_fidelity_near_one():
    truths = [scene(i) for i in range(6)]
    images = [photograph(t, 50 + i) for i, t in enumerate(truths)]
    tasks = [
        {
            "careful": simulate_annotator(t, "good", i, 3),
            "wobbly": simulate_annotator(t, "sloppy", i, 3, jitter=0.6),
            "spam": simulate_annotator(t, "spammer", i, 3),
        }
        for i, t in enumerate(truths)
    ]
    evidence = edge_evidence(edge_sums(task, image_edges(im), 3) for task, im in zip(tasks, images))
    assert "spam" not in evidence.offsets and abs(evidence.offsets["careful"]) < 0.5
    assert evidence.fidelity["careful"] > evidence.fidelity["wobbly"] > evidence.fidelity["spam"]
    assert evidence.fidelity["spam"] < 1.2
    weights = evidence.start_weights()
    assert weights["spam"] < 0.2 * weights["careful"]


def test_too_little_boundary_says_nothing():
    truth = np.zeros((30, 30), np.uint8)
    truth[10:20, 10:20] = 1
    evidence = edge_evidence([edge_sums({"a": truth}, image_edges(photograph(truth, 0)), 3)])
    assert evidence.offsets == {} and evidence.fidelity == {}


def test_vessels_in_their_picture_peak_at_no_offset():
    label = vessel_map(0)
    eroded = simulate_annotator(label, "eroded", 0, 3, radius=1, jitter=0.0)
    images = [vessel_image(label, 1)]
    assert abs(peak_offset(summed([label], images))) < 0.5
    assert peak_offset(summed([eroded], images)) == pytest.approx(-1, abs=0.5)


def test_image_edges_undo_the_offset_the_labels_alone_cannot_place():
    """A careful annotator, a fat brush and a spammer: by labels alone the two disagree and nobody
    says which is right; the images do."""
    tasks, images, truths = crowd(range(8))
    with_images = estimate_corrected(
        range(len(tasks)), 3, load=tasks.__getitem__, edges=lambda i: image_edges(images[i])
    )
    offsets = with_images.corrections.offsets
    assert offsets.radius["fat"] == 2 and offsets.reference["fat"] == "image_edges"
    assert offsets.radius["careful"] == 0 and offsets.reference["careful"] == "image_edges"
    assert offsets.reference.get("spam", "consensus") == "consensus"
    assert with_images.edge_fidelity["careful"] > with_images.edge_fidelity["spam"]
    labels_only = estimate_corrected(tasks, 3)

    def errors(models) -> int:
        return sum(int((models.vote(t)[0] != truth).sum()) for t, truth in zip(tasks, truths))

    assert errors(with_images) < 0.7 * errors(labels_only)
    restored = CorrectedModels.from_dict(with_images.to_dict())
    assert restored.corrections.offsets.reference == offsets.reference
    assert restored.edge_fidelity == pytest.approx(with_images.edge_fidelity, abs=1e-4)
    assert restored.image_tasks == with_images.image_tasks == (8, 8) and labels_only.image_tasks is None


def test_measured_offsets_override_the_consensus_and_round_to_the_nearest_px():
    models = estimate_models([], 3)
    offsets = rarity_offsets([{"a": (30.0, 10.0), "b": (2.0, 10.0)}], models, measured={"a": 0.6, "c": -1.4})
    assert offsets.radius == {"a": 1, "b": 0, "c": -1}
    assert offsets.reference == {"a": "image_edges", "b": "consensus", "c": "image_edges"}
    assert RarityOffsets.from_dict(offsets.to_dict()) == offsets
    with pytest.raises(ValueError, match="reference"):
        RarityOffsets.from_dict({"a": {"offset_px": 1.0, "correction_px": -1, "reference": "oracle"}})


def test_start_weights_decide_the_first_pass():
    """Two annotators disagree on every pixel: pass 0 follows the heavier one, a plain start shares."""
    a = np.zeros((10, 10), np.uint8)
    b = np.ones((10, 10), np.uint8)
    tasks = [{"a": a, "b": b, "c": a.copy()}, {"a": a, "b": b, "c": b.copy()}]
    plain = estimate_models(tasks, 2, iterations=0)
    weighted = estimate_models(tasks, 2, iterations=0, start_weights={"a": 1.0, "b": 0.2, "c": 0.5})
    assert plain.class_counts == pytest.approx([100, 100])
    assert weighted.class_counts == pytest.approx([200, 0])

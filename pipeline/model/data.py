"""The labelled dataset on disk as torch datasets and loaders.

A dataset is (images dir, annotations index, labels dir, splits dir + split name), see pipeline.artifacts:
    <annotations>/index.jsonl   one task a line: {"task_id", "image" (relative to the images dir), "image_name", ...}
    <labels>/<task_id>.png      consensus label map, (H, W) uint8, 255 = ignore
    <splits>/<split>.txt        task ids, one a line

Shapes legend: H, W image size; h, w after scaling to base_size; N batch; C classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import tv_tensors

from pipeline.artifacts import labels as labels_artifact
from pipeline.artifacts.annotations import index_by_task, index_path
from pipeline.artifacts.labels import label_path
from pipeline.artifacts.splits import read_split
from pipeline.core.constants import IGNORE_INDEX
from pipeline.core.errors import TrainingError
from pipeline.core.images import read_rgb
from pipeline.dataset.masks import read_label_map
from pipeline.model.models import STRIDE
from pipeline.model.transforms import eval_image, pad_to_stride


@dataclasses.dataclass(frozen=True)
class Sample:
    task_id: int
    image: Path
    label: Path
    image_name: str


def list_samples(
    images_dir: Path, annotations_dir: Path, labels_dir: Path, splits_dir: Path, split: str, key: str = "the split name"
) -> list[Sample]:
    """The samples of split `split`, in split-file order; every task must have an image and a label map.

    `key` is the param that named the split, for the error when the split does not exist.
    """
    entries = index_by_task(annotations_dir)
    samples = []
    for task_id in read_split(splits_dir, split, key):
        if task_id not in entries:
            raise TrainingError(
                f"task {task_id} of split {split!r} is not in {index_path(annotations_dir)}; "
                "run split again after validate"
            )
        entry = entries[task_id]
        label = label_path(labels_dir, task_id)
        if not label.is_file():
            raise TrainingError(
                f"no consensus label map {label} for task {task_id} of split {split!r}; run merge again"
            )
        name = entry.get("image_name") or entry["image"]
        samples.append(Sample(task_id, Path(images_dir) / entry["image"], label, name))
    return samples


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB as the editor shows it (EXIF orientation applied), like validate's sizes."""
    return read_rgb(path)


def read_pair(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) RGB image and its (H, W) label map, checked to be the same size."""
    image, label = read_image(sample.image), read_label_map(sample.label)
    if image.shape[:2] != label.shape:
        raise TrainingError(
            f"task {sample.task_id}: image {image.shape[1]}x{image.shape[0]} and label map "
            f"{label.shape[1]}x{label.shape[0]} differ in size; run validate and merge again"
        )
    return image, label


def confidence_path(label: Path) -> Path:
    """merge's confidence map of a consensus label map (pipeline.artifacts.labels)."""
    return labels_artifact.confidence_path(label.parent, label.stem)


def drop_unconfident(label: np.ndarray, sample: Sample, min_confidence: float) -> np.ndarray:
    """The label map with pixels whose consensus confidence is below ``min_confidence`` set to 255.

    Confidence maps are uint8, round(255 p): a pixel is kept when its value >= 255 * min_confidence.
    """
    if min_confidence <= 0:
        return label
    path = confidence_path(sample.label)
    if not path.is_file():
        raise TrainingError(
            f"task {sample.task_id}: no confidence map {path} for train.min_label_confidence="
            f"{min_confidence}; run merge again (it writes one per task) or set it to 0"
        )
    confidence = read_label_map(path)
    if confidence.shape != label.shape:
        raise TrainingError(
            f"task {sample.task_id}: confidence map {path} is {confidence.shape}, label map "
            f"{label.shape}; run merge again"
        )
    out = label.copy()
    out[confidence < 255 * min_confidence] = IGNORE_INDEX
    return out


class TrainDataset(Dataset):
    """Augmented crops: item -> ((3, crop, crop) float32, (crop, crop) int64).

    ``min_confidence`` > 0: pixels whose consensus confidence is below it are ignored (255).
    """

    def __init__(self, samples: list[Sample], transform: Callable, min_confidence: float = 0.0):
        self.samples, self.transform, self.min_confidence = samples, transform, min_confidence

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = read_pair(self.samples[i])
        label = drop_unconfident(label, self.samples[i], self.min_confidence)
        image = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1))
        image, mask = self.transform(image, tv_tensors.Mask(torch.from_numpy(label)))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()


class EvalDataset(Dataset):
    """Whole images at evaluation scale: item -> ((3, h, w) float32, (H, W) uint8 truth, index)."""

    def __init__(self, samples: list[Sample], base_size: int | None):
        self.samples, self.base_size = samples, base_size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image, label = read_pair(self.samples[i])
        return eval_image(torch.from_numpy(image).permute(2, 0, 1), self.base_size), torch.from_numpy(label), i


@dataclasses.dataclass
class EvalBatch:
    images: torch.Tensor  # (N, 3, h', w') padded to the stride with 0 (the mean colour)
    sizes: list[tuple[int, int]]  # (h, w) of each image before padding
    truths: list[torch.Tensor]  # (H, W) uint8 each, full resolution
    indices: list[int]  # positions in the dataset

    def pin_memory(self) -> EvalBatch:
        self.images = self.images.pin_memory()
        return self


def collate_eval(items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> EvalBatch:
    """Pad every image bottom/right to the batch's largest stride-multiple size."""
    sizes = [tuple(image.shape[-2:]) for image, _, _ in items]
    height, width = max(s[0] for s in sizes), max(s[1] for s in sizes)
    canvas = torch.zeros(len(items), 3, height, width)
    for k, (image, _, _) in enumerate(items):
        canvas[k, :, : image.shape[1], : image.shape[2]] = image
    return EvalBatch(pad_to_stride(canvas, STRIDE, 0.0), sizes, [t for _, t, _ in items], [i for _, _, i in items])


def seed_worker(worker_id: int) -> None:
    """Seed numpy in each DataLoader worker from torch's per-worker seed (torch and random are already)."""
    np.random.seed(torch.initial_seed() % 2**32)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    workers: int,
    *,
    shuffle: bool,
    seed: int,
    sampler: Sampler | None = None,
    drop_last: bool = False,
    collate_fn=None,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader with seeded shuffling/augmentation and persistent workers when there are any."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=pin_memory,
        drop_last=drop_last,
        collate_fn=collate_fn,
        worker_init_fn=seed_worker,
        generator=generator,
        prefetch_factor=2 if workers > 0 else None,
    )


def label_frequencies(samples: list[Sample], num_classes: int) -> np.ndarray:
    """(C,) share of labelled pixels per class over the samples' label maps (255 dropped)."""
    counts = np.zeros(num_classes, np.int64)
    for sample in samples:
        label = read_label_map(sample.label).ravel()
        counts += np.bincount(label[label != IGNORE_INDEX], minlength=256)[:num_classes]
    return counts / max(counts.sum(), 1)

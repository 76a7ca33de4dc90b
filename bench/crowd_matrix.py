"""The crowds of the consensus benchmark: error profiles, crowds drawn from a seed, the two data sets.

Both data sets come with their images (CamVid's photographs; for the vessels, generated
fundus-like pictures: pipeline.demo.thin_structures.vessel_image), which the default merge
measures boundary offsets against.

A cell of the matrix is (data set, crowd size n, featured profile p). Its crowd holds one
annotator of profile p and n - 1 annotators of other profiles drawn without replacement from
the seed, so every crowd mixes different kinds of error; each annotator's severity is drawn
too. An annotator keeps its profile and severity over all images of the cell (the project-wide
models see the same person on every task); the random parts of each map (jitter field, which
objects are missed) are drawn per image.

Profiles (severity ranges drawn uniformly):
    expert   careful: the truth through a light jitter (0.5 px std)
    bias     systematic boundary bias: every region dilated or eroded by 1-3 px
    jitter   wobbly boundaries, 1.6-3 px std displacement
    misser   misses each object (connected component of a non-background class) with p 0.3-0.7
    swapper  swaps related classes (Road/Pavement, ...; artery/vein) per object with p 0.3-0.8
    spammer  random blobs of random classes
    partial  careful, but 20-50 % of the image left unlabelled in smooth patches
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pipeline.core.images import read_rgb
from pipeline.demo.crowd import class_pairs, simulate_annotator
from pipeline.demo.thin_structures import CLASSES as THIN_CLASSES
from pipeline.demo.thin_structures import vessel_image, vessel_map

PROFILES = ("expert", "bias", "jitter", "misser", "swapper", "spammer", "partial")
CAMVID_PAIRS = [("Road", "Pavement"), ("Pedestrian", "Bicyclist"), ("Pole", "SignSymbol"), ("Fence", "Building")]
CAMVID_BACKGROUND = ("Sky", "Building", "Road", "Pavement", "Tree")


@dataclass(frozen=True)
class DataSet:
    name: str
    classes: list[str]
    truths: list[np.ndarray]  # (H, W) uint8, 255 = void
    pairs: dict[int, int]  # swapper: class -> related class
    background: list[int] = field(default_factory=list)  # classes a misser never misses
    images: list[np.ndarray] = field(default_factory=list)  # (H, W, 3) uint8 RGB, one per truth


def camvid(root: Path, images: int, seed: int) -> DataSet | None:
    """``images`` CamVid label maps (train+val) drawn with ``seed``; None if the folder is absent."""
    if not (root / "classes.json").is_file():
        return None
    meta = json.loads((root / "classes.json").read_text())
    void = int(meta["ignore_index"])
    names = [c["name"] for c in meta["classes"] if c["id"] != void]
    files = [p for split in ("trainannot", "valannot") for p in sorted((root / split).glob("*.png"))]
    chosen = np.random.default_rng([seed, 1]).permutation(len(files))[:images]
    truths, images = [], []
    for i in sorted(chosen):
        label = cv2.imread(str(files[i]), cv2.IMREAD_UNCHANGED)
        label[label == void] = 255
        truths.append(label)
        picture = files[i].parent.parent / files[i].parent.name.removesuffix("annot") / files[i].name
        images.append(read_rgb(picture))  # as merge reads them
    pairs, background = class_pairs(CAMVID_PAIRS, names), [names.index(n) for n in CAMVID_BACKGROUND]
    return DataSet("camvid", names, truths, pairs, background, images)


def thin(images: int, seed: int) -> DataSet:
    """``images`` generated 480x360 vessel maps (background, artery, vein) and their pictures."""
    truths = [vessel_map(np.random.default_rng([seed, 2, i])) for i in range(images)]
    pictures = [vessel_image(t, np.random.default_rng([seed, 3, i])) for i, t in enumerate(truths)]
    return DataSet("thin", list(THIN_CLASSES), truths, {1: 2, 2: 1}, [0], pictures)


@dataclass(frozen=True)
class Annotator:
    name: str  # e.g. "a1-bias"
    profile: str
    options: dict  # keyword arguments of simulate_annotator


def draw_crowd(seed: int, data: str, size: int, featured: str) -> list[Annotator]:
    """The crowd of one cell: ``featured`` plus ``size - 1`` other profiles, severities drawn."""
    rng = np.random.default_rng([seed, sum(map(ord, data)), size, PROFILES.index(featured)])
    others = [p for p in PROFILES if p != featured]
    picked = [featured] + [others[i] for i in rng.choice(len(others), size - 1, replace=False)]
    return [Annotator(f"a{i}-{p}", p, _severity(p, rng)) for i, p in enumerate(picked)]


TRIO_THIRDS = ("misser", "swapper")


def draw_trio(seed: int, data: str, third: str) -> list[Annotator]:
    """A crowd of three the way labelling leads describe theirs: a careful annotator (boundaries
    within 1-2 px), one who paints every region 1-3 px too large, and a misser or a swapper."""
    rng = np.random.default_rng([seed, sum(map(ord, data)), 3, 100 + TRIO_THIRDS.index(third)])
    careful = {"profile": "sloppy", "jitter": float(rng.uniform(0.25, 0.5))}  # 4 x jitter: 1-2 px
    dilator = {"profile": "dilated", "radius": int(rng.integers(1, 4))}
    return [
        Annotator("a0-careful", "careful", careful),
        Annotator("a1-dilator", "bias", dilator),
        Annotator(f"a2-{third}", third, _severity(third, rng)),
    ]


def _severity(profile: str, rng: np.random.Generator) -> dict:
    if profile == "bias":
        return {"profile": "dilated" if rng.random() < 0.5 else "eroded", "radius": int(rng.integers(1, 4))}
    if profile == "jitter":
        return {"profile": "sloppy", "jitter": float(rng.uniform(0.4, 0.75))}
    if profile == "misser":
        return {"profile": "misser", "miss_prob": float(rng.uniform(0.3, 0.7))}
    if profile == "swapper":
        return {"profile": "confuser", "swap_prob": float(rng.uniform(0.3, 0.8))}
    if profile == "partial":
        return {"profile": "partial", "unlabeled_share": float(rng.uniform(0.2, 0.5))}
    return {"profile": {"expert": "good"}.get(profile, profile)}


def identity_tie(profiles: list[str]) -> bool:
    """Whether the identity of the classes a swapper swaps rests on two opinions only: one swapper
    and one other annotator who is not a spammer. Where the two give an object different classes
    nobody breaks the tie, so on those objects the consensus can only pick a side."""
    informative = [p for p in profiles if p != "spammer"]
    return len(informative) == 2 and informative.count("swapper") == 1


def mirrorable(profiles: list[str]) -> bool:
    """Whether a crowd of these profiles is one expert, one swapper and spammers only (see
    mirrored_truths): the identity tie whose other side errs in nothing else."""
    return identity_tie(profiles) and "expert" in profiles


def mirrored_truths(data: DataSet, crowd: list[Annotator], seed: int, cell: int) -> list[np.ndarray] | None:
    """The truths of the cell's mirrored world, for a crowd of one expert, one swapper and spammers
    only (None for any other crowd): the swapper's maps before their jitter, i.e. the truth with the
    swapper's swaps. In that world the same maps are an expert's (the swapper's) and a swapper's
    (the expert's: the same objects swapped back), and the spammers' maps owe nothing to either
    truth, so both worlds give every method the same maps and the same images."""
    if not mirrorable([p.profile for p in crowd]):
        return None
    j = next(i for i, p in enumerate(crowd) if p.profile == "swapper")
    return [
        simulate_annotator(
            truth,
            rng=np.random.default_rng([seed, cell, i, j]),  # simulate_cell's draws: the same swaps
            num_classes=len(data.classes),
            pairs=data.pairs,
            background=data.background,
            **{**crowd[j].options, "jitter": 0.0},
        )
        for i, truth in enumerate(data.truths)
    ]


def simulate_cell(data: DataSet, crowd: list[Annotator], seed: int, cell: int) -> list[dict[str, np.ndarray]]:
    """{annotator name: (H, W) uint8} per image of the data set."""
    tasks = []
    for i, truth in enumerate(data.truths):
        task = {}
        for j, person in enumerate(crowd):
            rng = np.random.default_rng([seed, cell, i, j])
            task[person.name] = simulate_annotator(
                truth,
                rng=rng,
                num_classes=len(data.classes),
                pairs=data.pairs,
                background=data.background,
                **person.options,
            )
        tasks.append(task)
    return tasks

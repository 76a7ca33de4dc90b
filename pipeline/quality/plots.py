"""Pictures of evaluation results, as PNG files that need no browser or CDN.

Shapes legend: H, W image size; C classes. Images are (H, W, 3) uint8 RGB, label maps (H, W) uint8,
255 = ignore.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pipeline.core.atomic import replace_file
from pipeline.core.constants import IGNORE_INDEX
from pipeline.core.errors import PipelineError
from pipeline.dataset.masks import colorize

ERROR_RGB = (255, 0, 0)
IGNORED_RGB = (255, 255, 255)
HEADER_PX = 32  # two text lines: the caption, then the panel titles
MIN_PANEL_PX = 160


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # the object API: no pyplot global state, no display backend

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(figure, path: Path) -> None:
    with replace_file(Path(path), "wb") as handle:
        figure.savefig(handle, format="png", metadata={"Software": None})


def confusion_png(path: Path, cm: np.ndarray, names: Sequence[str], title: str = "") -> None:
    """Row-normalised confusion matrix (rows: truth, columns: prediction); each cell shows its share."""
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    side = 1.2 + 0.55 * len(names)
    figure = _figure(side + 1.5, side)
    ax = figure.subplots()
    shown = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title or "confusion matrix (share of each actual class)")
    for (i, j), value in np.ndenumerate(share):
        if rows[i, 0] > 0:
            ax.text(
                j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value > 0.5 else "black"
            )
    figure.colorbar(shown, ax=ax, fraction=0.046)
    _save(figure, path)


def comparison_png(
    path: Path,
    models: Sequence[str],
    names: Sequence[str],
    iou: np.ndarray,
    miou: Sequence[float],
    title: str = "IoU per class",
) -> None:
    """Grouped bars: per-class IoU and mIoU (last group) for each model. iou: (models, C), NaN allowed."""
    groups = list(names) + ["mIoU"]
    values = np.column_stack([np.asarray(iou, dtype=np.float64), np.asarray(miou, dtype=np.float64)])
    figure = _figure(max(6.0, 0.9 * len(groups) * max(1, len(models)) ** 0.5 + 2), 4.0)
    ax = figure.subplots()
    width = 0.8 / max(1, len(models))
    x = np.arange(len(groups))
    for k, model in enumerate(models):
        ax.bar(x + (k - (len(models) - 1) / 2) * width, np.nan_to_num(values[k]), width, label=model)
    ax.set_xticks(x, groups, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    _save(figure, path)


def error_map(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(H, W, 3): the image dimmed to grey, wrong pixels red, ignored pixels white."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    out = np.repeat((grey // 2)[..., None], 3, axis=2)
    out[(truth != pred) & (truth != IGNORE_INDEX)] = ERROR_RGB
    out[truth == IGNORE_INDEX] = IGNORED_RGB
    return out


def overlay(
    image: np.ndarray, truth: np.ndarray, pred: np.ndarray, palette: Sequence[tuple[int, int, int]], caption: str = ""
) -> np.ndarray:
    """(header + h, 4 w + gaps, 3) uint8 RGB: image | truth | prediction | errors under a caption line.

    Images narrower than MIN_PANEL_PX are enlarged (NEAREST, so labels stay labels) to keep titles legible.
    """
    panels = [image, colorize(truth, palette), colorize(pred, palette), error_map(image, truth, pred)]
    factor = max(1, -(-MIN_PANEL_PX // truth.shape[1]))
    if factor > 1:
        panels = [cv2.resize(p, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST) for p in panels]
    height, width = panels[0].shape[:2]
    gap, line = 4, HEADER_PX // 2
    canvas = np.full((height + HEADER_PX, 4 * width + 3 * gap, 3), 255, np.uint8)
    _text(canvas, caption, (4, line - 5))
    for k, (panel, title) in enumerate(zip(panels, ("image", "truth", "prediction", "errors"))):
        left = k * (width + gap)
        canvas[HEADER_PX:, left : left + width] = panel
        _text(canvas, title, (left + 4, HEADER_PX - 5))
    return canvas


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int]) -> None:
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Save an (H, W, 3) RGB array as PNG, atomically."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise PipelineError(f"could not encode {path} as PNG")
    with replace_file(Path(path), "wb") as handle:
        handle.write(encoded.tobytes())


def _read_series(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one dvclive TSV (columns timestamp?, step, <name>); empty when absent."""
    if not path.exists():
        return np.empty(0), np.empty(0)
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if line.strip()]
    return np.array([float(r[-2]) for r in rows]), np.array([float(r[-1]) for r in rows])


def training_curves_png(live_dir: Path, path: Path) -> None:
    """Loss, validation mIoU and learning rate per epoch, from the dvclive folder, in one PNG."""
    series = Path(live_dir) / "plots" / "metrics"
    panels = [
        ("train loss", series / "train" / "loss.tsv"),
        ("val mIoU", series / "val" / "mIoU.tsv"),
        ("learning rate", series / "train" / "lr.tsv"),
    ]
    figure = _figure(10, 3)
    for position, (title, tsv) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), position)
        steps, values = _read_series(tsv)
        axes.plot(steps + 1, values, marker="o", markersize=3)
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
    _save(figure, path)

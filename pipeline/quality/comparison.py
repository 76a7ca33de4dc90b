"""Side-by-side results of several models on one split: a Markdown table, JSON and a bar figure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.core.atomic import replace_file, write_json
from pipeline.quality.plots import comparison_png


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def comparison_markdown(rows: Sequence[dict], names: Sequence[str]) -> str:
    """One row per model: architecture, encoder, size, speed, mIoU, pixel accuracy, mean Dice, IoU per class."""
    head = ["model", "architecture", "encoder", "params (M)", "ms/image", "mIoU", "pixel acc.", "mean Dice", *names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [
            f"`{row['model']}`",
            row["architecture"],
            row["encoder"],
            f"{row['parameters'] / 1e6:.2f}",
            f"{row['ms_per_image']:.1f}",
            _cell(row["mIoU"]),
            _cell(row["pixel_accuracy"]),
            _cell(row["mean_dice"]),
            *(_cell(row["iou"][n]) for n in names),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def legend_names(rows: Sequence[dict]) -> list[str]:
    """architecture/encoder, with the checkpoint path added where two models would read the same."""
    short = [f"{r['architecture']}/{r['encoder']}" for r in rows]
    return [f"{s} ({r['model']})" if short.count(s) > 1 else s for s, r in zip(short, rows)]


def write_comparison(stem: Path, rows: Sequence[dict], names: Sequence[str], split: str) -> None:
    """Write <stem>.md, <stem>.json and <stem>.png."""
    stem = Path(stem)
    with replace_file(stem.with_suffix(".md")) as handle:
        handle.write(f"# Models on the {split} split\n\n" + comparison_markdown(rows, names))
    write_json(stem.with_suffix(".json"), {"split": split, "classes": list(names), "models": list(rows)})
    iou = np.array([[np.nan if r["iou"][n] is None else r["iou"][n] for n in names] for r in rows], dtype=float)
    miou = [np.nan if r["mIoU"] is None else r["mIoU"] for r in rows]
    comparison_png(stem.with_suffix(".png"), legend_names(rows), names, iou, miou, f"{split} IoU per class")

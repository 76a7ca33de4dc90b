"""The DVC stages as data: each stage's command, run function, params keys and command-line paths.

`pipeline/__main__.py` builds one command per entry; tests/test_registry.py checks every entry
against dvc.yaml (params keys against `params:`, the stage module's imports inside `pipeline/`
against `deps:`). A stage's `run` is called as

    run(<options without keyword, in order>, <params sections, in order>, <keyword options>)

To add a stage: write `pipeline/stages/<name>.py` with such a `run`, add a `Stage` to STAGES, and
a stage to dvc.yaml whose `params:` equal `params` here and whose `deps:` cover its imports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console


@dataclasses.dataclass(frozen=True)
class Option:
    """One command-line option of a stage; paths come from dvc.yaml, never from a default here."""

    name: str  # the Python name; the option is --name with _ as -
    help: str
    type: Any = Path  # Path, list[Path], bool, ...
    required: bool = True  # optional ones default to None (False for a bool, [] for a list)
    flag: str | None = None  # spelling on the command line when it is not --name
    keyword: str | None = None  # passed to run() under this keyword instead of by position
    envvar: str | None = None  # read from this environment variable when not given

    @property
    def default(self) -> Any:
        if self.required:
            return ...
        return False if self.type is bool else [] if getattr(self.type, "__origin__", None) is list else None


def show_line(console: Console, command: str, result: dict, options: dict) -> None:
    """`command: key=value, ...` for every value that is not a mapping."""
    console.print(f"{command}: " + ", ".join(f"{k}={v}" for k, v in result.items() if not isinstance(v, dict)))


def show_scalars(console: Console, command: str, result: dict, options: dict) -> None:
    console.print_json(data={k: v for k, v in result.items() if not isinstance(v, (dict, list))})


def show_json(console: Console, command: str, result: dict, options: dict) -> None:
    console.print_json(data=result)


def show_pulled(console: Console, command: str, result: int, options: dict) -> None:
    console.print(f"pulled {result} tasks into {options['out']}")


@dataclasses.dataclass(frozen=True)
class Stage:
    command: str  # `python -m pipeline <command>`
    module: str  # the module holding `run`
    params: tuple[str, ...]  # params.yaml keys read, as dvc.yaml lists them (`section` or `section.key`)
    options: tuple[Option, ...]
    help: str
    show: Callable[[Console, str, Any, dict], None] = show_line
    overrides: str | None = None  # a section that `--set key=value` may change for one run
    classes_from: str | None = None  # the option naming validate's output: base.classes as validate resolved them

    @property
    def sections(self) -> list[str]:
        """The params sections loaded for run(), in the order of `params`."""
        return list(dict.fromkeys(key.split(".")[0] for key in self.params))


SNAPSHOT = Option("raw", "Snapshot folder written by pull.")
IMAGES = Option("images", "Image folder written by pull.")
ANNOTATIONS = Option("annotations", "Folder written by validate (label maps and index.jsonl).")
LABELS = Option("labels", "Consensus label maps written by merge.")
SPLITS = Option("splits", "Folder of split files written by split.")
# The cluster is a property of the machine, not of the dataset: environment or command line only.
SCHEDULER = Option(
    "scheduler",
    "Run the per-task work on this Dask scheduler (tcp://host:8786) instead of local processes.",
    str,
    required=False,
    flag="--scheduler",
    keyword="scheduler",
    envvar="DASK_SCHEDULER_ADDRESS",
)

STAGES: tuple[Stage, ...] = (
    Stage(
        "pull",
        "pipeline.stages.pull",
        ("labelstudio.project", "labelstudio.image_tag", "pull"),
        (
            Option("out", "Snapshot folder for tasks.jsonl and project.json (data/raw)."),
            Option("images", "Content-addressed image folder (data/images)."),
        ),
        "Snapshot the Label Studio project (or pull.export_file) with every task image.",
        show_pulled,
    ),
    Stage(
        "validate",
        "pipeline.stages.validate",
        ("base", "labelstudio.image_tag", "labelstudio.control_tags", "validate"),
        (
            SNAPSHOT,
            IMAGES,
            Option("out", "Folder of per-annotator label maps (data/annotations)."),
            Option("report", "validation.json to write."),
            SCHEDULER,
        ),
        "Decode and check every annotation; write one label map per (task, annotator) and the report.",
    ),
    Stage(
        "merge",
        "pipeline.stages.merge",
        ("base", "merge"),
        (
            Option("annotations", "Folder written by validate."),
            Option("validation", "validation.json written by validate."),
            Option("out", "Folder of consensus label maps (data/labels)."),
            Option("report", "agreement.json to write."),
            SCHEDULER,
            Option(
                "images",
                "Image folder written by pull: boundary offsets measured against the images' edges.",
                required=False,
                keyword="images_dir",
            ),
        ),
        "Merge the annotators of each task into one consensus label map; write agreement figures.",
        classes_from="annotations",
    ),
    Stage(
        "split",
        "pipeline.stages.split",
        ("base", "split"),
        (
            Option("annotations", "Folder written by validate."),
            LABELS,
            Option("images", "Image folder (for perceptual hashes)."),
            Option("agreement", "agreement.json written by merge."),
            Option("out", "Folder for one <split>.txt per key of split.fractions."),
            Option("card", "Dataset card path without suffix; .md and .json are written."),
        ),
        "Split the labelled tasks into the splits of split.fractions without leakage; write the dataset card.",
        classes_from="annotations",
    ),
    Stage(
        "train",
        "pipeline.stages.train",
        ("base", "train"),
        (
            IMAGES,
            ANNOTATIONS,
            LABELS,
            SPLITS,
            Option("models", "Folder for best.pt and last.pt."),
            Option("live", "dvclive folder (metrics.json, plots, curves.png)."),
            Option("resume", "Continue from MODELS/last.pt.", bool, required=False, flag="--resume", keyword="resume"),
        ),
        "Fine-tune the configured network; the same command runs under `torchrun --nproc_per_node N`.",
        overrides="train",
        classes_from="annotations",
    ),
    Stage(
        "evaluate",
        "pipeline.stages.evaluate",
        ("base", "evaluate"),
        (
            IMAGES,
            ANNOTATIONS,
            LABELS,
            SPLITS,
            Option("model", "Checkpoint(s); the first is the primary model, all are compared.", list[Path]),
            Option("reports", "Folder for metrics, pictures, comparison and suspect labels."),
            Option(
                "validation",
                "validation.json (its project id makes Label Studio links).",
                required=False,
                keyword="validation_path",
            ),
        ),
        "Score the model(s) on evaluate.split; write metrics, confusion, overlays, comparison, suspect labels.",
        show_scalars,
        classes_from="annotations",
    ),
    Stage(
        "preannotate",
        "pipeline.stages.preannotate",
        ("base", "labelstudio.image_tag", "preannotate"),
        (
            Option("raw", "Snapshot folder written by pull (tasks)."),
            IMAGES,
            Option("model", "Checkpoint to predict with (models/best.pt)."),
            Option("agreement", "agreement.json (its review list, for tasks: low_agreement).", required=False),
            Option("report", "preannotate.json to write."),
            Option("uncertainty", "CSV of the pre-annotated tasks, least confident first."),
        ),
        "Push the model's masks into Label Studio as predictions, replacing that model version's.",
    ),
    Stage(
        "review-stats",
        "pipeline.stages.review_stats",
        ("base", "labelstudio.image_tag", "labelstudio.control_tags", "validate.unpainted"),
        (
            SNAPSHOT,
            Option("report", "preannotation_effect.json to write."),
        ),
        "How much pre-annotation saved: prediction vs submitted IoU, pixels changed, lead time.",
        show_json,
    ),
)


def stage(command: str) -> Stage:
    """The registered stage run by `python -m pipeline <command>`."""
    return {s.command: s for s in STAGES}[command]

"""data/splits: `<name>.txt` per split, task ids one a line, ascending.

Split names are the keys of split.fractions, free to choose; the stages that read a split
name it in their own params (train.train_split, train.val_split, evaluate.split).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.core.errors import ArtifactError

SUFFIX = ".txt"


def split_path(splits_dir: Path, name: str) -> Path:
    return Path(splits_dir) / f"{name}{SUFFIX}"


def split_names(splits_dir: Path) -> list[str]:
    """The splits present, sorted by name."""
    return sorted(path.stem for path in Path(splits_dir).glob(f"*{SUFFIX}"))


def write_splits(splits_dir: Path, assignment: dict[str, list[int]]) -> None:
    """One file per split, its task ids sorted."""
    for name, ids in assignment.items():
        split_path(splits_dir, name).write_text("".join(f"{i}\n" for i in sorted(ids)))


def read_split(splits_dir: Path, name: str, key: str = "the split name") -> list[int]:
    """Task ids of split `name`; a missing split names the splits there and the param `key` to change."""
    path = split_path(splits_dir, name)
    try:
        text = path.read_text()
    except FileNotFoundError:
        present = split_names(splits_dir)
        if not present:
            raise ArtifactError(f"no split in {splits_dir}; run the split stage first") from None
        raise ArtifactError(
            f"split {name!r} is not in {splits_dir} (it holds {', '.join(present)}); "
            f"set {key} to one of them, or add {name!r} to split.fractions"
        ) from None
    try:
        return [int(line) for line in text.split()]
    except ValueError:
        raise ArtifactError(f"{path} holds something other than task ids; run the split stage again") from None

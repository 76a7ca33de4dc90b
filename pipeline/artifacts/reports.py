"""JSON reports streamed entry by entry, and the parts of them later stages read back.

Shape of a streamed report: {"<entries key>": [entry, ...] or {"<id>": entry, ...}, <rest keys>...}
with one compact, key-sorted entry per line, then the rest indented; so memory does not grow
with the project and equal content gives equal bytes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ijson
import orjson

from pipeline.core.atomic import replace_file


class StreamedReport:
    """Write entries one by one (`add`), then the remaining keys (`finish`)."""

    def __init__(self, handle, key: str, keyed: bool):
        self.handle, self.keyed, self.count = handle, keyed, 0
        self.close_bracket = "}" if keyed else "]"
        handle.write("{" + json.dumps(key) + ": " + ("{" if keyed else "["))

    def add(self, entry: dict, entry_id: Any = None) -> None:
        self.add_encoded(orjson.dumps(entry, option=orjson.OPT_SORT_KEYS).decode(), entry_id)

    def add_encoded(self, text: str, entry_id: Any = None) -> None:
        """Add an entry already encoded as compact, key-sorted JSON (as a worker returns it)."""
        name = f"{json.dumps(str(entry_id))}: " if self.keyed else ""
        self.handle.write(f"{',' if self.count else ''}\n{name}{text}")
        self.count += 1

    def finish(self, rest: dict) -> None:
        """Close the entries and write `rest` (at least one key) after them."""
        self.handle.write(f"\n{self.close_bracket},\n" + json.dumps(rest, indent=1, sort_keys=True)[1:] + "\n")


@contextlib.contextmanager
def streamed_report(path: Path, key: str, keyed: bool = False) -> Iterator[StreamedReport]:
    """A report that appears at `path` whole, or not at all if the block fails."""
    with replace_file(Path(path)) as handle:
        yield StreamedReport(handle, key, keyed)


def read_keys(path: Path, keys: tuple[str, ...]) -> dict:
    """Top-level `keys` of a (possibly large) report, each read by streaming; absent keys are {}."""
    found = {}
    for key in keys:
        with open(path, "rb") as handle:
            found[key] = next(ijson.items(handle, key, use_float=True), {})
    return found


def report_project(validation_path: Path | None) -> dict:
    """The {"id", "title"} of the project a validation report came from; {} without one."""
    if validation_path is None or not Path(validation_path).is_file():
        return {}
    return read_keys(validation_path, ("project",))["project"] or {}


def agreement_summary(agreement_path: Path) -> dict:
    """The summary and annotators of agreement.json, without loading its per-task entries."""
    if not Path(agreement_path).exists():
        return {}
    return read_keys(agreement_path, ("summary", "annotators"))


def review_ids(agreement_path: Path | None) -> list[int]:
    """Task ids merge listed for review (mean pairwise IoU under merge.min_agreement)."""
    if agreement_path is None or not Path(agreement_path).exists():
        return []
    return [row["task_id"] for row in read_keys(agreement_path, ("review",))["review"] or []]

"""Read a Label Studio JSON export (a list of tasks) item by item, however it was edited.

A saved export may be gigabytes and hand-edited. The list is cut into items by the standard
library's JSON decoder, one item at a time (memory: one item plus a read buffer), so that one
bad item is rejected alone, naming its position or its task:
- an item that is not an object, or whose `id` is not an integer, is REJECTED by position;
- `annotations` / `predictions` that are not lists reject their task, with the field named;
- a non-finite number (NaN, Infinity, or an overflow such as 1e309), which Python's JSON
  accepts and no strict reader does, rejects the annotation holding it (or its task, when it
  sits elsewhere); so does an integer outside the 64-bit range;
- only a file that is not a JSON list at all fails as a whole, with the byte offset.
"""

from __future__ import annotations

import codecs
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from pipeline.core.errors import PipelineError

READ_SIZE = 1 << 20
NON_FINITE_REASON = "holds a non-finite number (NaN, Infinity or an overflow such as 1e309)"
LIST_FIELDS = ("annotations", "predictions")


@dataclass(frozen=True)
class ExportItem:
    """One item of the export: a task to use (with `problem` when the whole task is rejected), or a rejected item."""

    position: int  # 0-based index in the export's list
    task: dict | None  # None: the item is not a usable task
    problem: str | None = None  # why the task (or the item) is rejected


DECODER = json.JSONDecoder()  # the C decoder: NaN, Infinity and 1e309 come out as non-finite floats, caught below
DIGIT_RUNS = str.maketrans({**{chr(c): " " for c in range(128)}, **{d: "0" for d in "0123456789"}})
LONGEST_SAFE_DIGITS = "0" * 19  # 19 digits and more may leave the 64-bit range


class _Stream:
    """Text of a binary file read on demand, with byte offsets for error messages."""

    def __init__(self, handle: BinaryIO, path: Path):
        self.handle, self.path = handle, path
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.text, self.start_byte, self.eof = "", 0, False

    def more(self, at_least: int = READ_SIZE) -> bool:
        if self.eof:
            return False
        chunk = self.handle.read(max(at_least, READ_SIZE))
        try:
            self.text += self.decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as error:
            raise PipelineError(
                f"{self.path} is not UTF-8 text near byte {self.start_byte + len(self.text.encode()) + error.start}"
            ) from None
        self.eof = not chunk
        return True

    def byte_offset(self, position: int) -> int:
        return self.start_byte + len(self.text[:position].encode())

    def drop(self, position: int) -> None:
        self.start_byte = self.byte_offset(position)
        self.text = self.text[position:]

    def skip_space(self, position: int) -> int:
        while True:
            while position < len(self.text) and self.text[position] in " \t\r\n":
                position += 1
            if position < len(self.text) or not self.more():
                return position

    def fail(self, position: int, what: str) -> PipelineError:
        return PipelineError(
            f"{self.path} is not a Label Studio JSON export (a list of tasks): {what} at byte "
            f"{self.byte_offset(position)}"
        )


def iter_items(handle: BinaryIO, path: Path) -> Iterator[tuple[Any, bool]]:
    """(value, known to be strict JSON) for each item of the top-level list in `handle`."""
    stream = _Stream(handle, path)
    position = stream.skip_space(0)
    if stream.text[position : position + 1] != "[":
        raise stream.fail(position, "expected '['")
    position = stream.skip_space(position + 1)
    if stream.text[position : position + 1] == "]":
        return _check_end(stream, position + 1)
    while True:
        start = position
        value, position = _decode_one(stream, position)
        raw = stream.text[start:position]
        # orjson rejects NaN, Infinity and 1e309, but would turn an integer past 64 bits into a float:
        # such items (19 digits in a row, rare) and rejected ones are checked by check_item instead.
        try:
            if LONGEST_SAFE_DIGITS in raw.translate(DIGIT_RUNS):
                raise orjson.JSONDecodeError("long digit run", raw, 0)
            yield orjson.loads(raw), True
        except orjson.JSONDecodeError:
            yield value, False
        if position > READ_SIZE:  # forget what was read, now and then: slicing per item would copy the buffer each time
            stream.drop(position)
            position = 0
        position = stream.skip_space(position)
        following = stream.text[position : position + 1]
        if following == "]":
            _check_end(stream, position + 1)
            return
        if following != ",":
            raise stream.fail(position, "expected ',' or ']' after an item")
        position = stream.skip_space(position + 1)


def _decode_one(stream: _Stream, position: int) -> tuple[Any, int]:
    while True:
        try:
            value, end = DECODER.raw_decode(stream.text, position)
            if end < len(stream.text) or stream.eof:  # a number at the very end may continue in the next read
                return value, end
        except json.JSONDecodeError as error:
            if stream.eof:
                raise stream.fail(error.pos, error.msg) from None
        stream.more(len(stream.text))  # reads grow with the item: linear time on a huge item


def _check_end(stream: _Stream, position: int) -> None:
    position = stream.skip_space(position)
    if position < len(stream.text):
        raise stream.fail(position, "unexpected content after the list")


def _problem(value: Any) -> str | None:
    """Why `value` cannot go into the snapshot as strict JSON, or None (C encoders only: no walk)."""
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:
        return NON_FINITE_REASON
    if LONGEST_SAFE_DIGITS in text.translate(DIGIT_RUNS):
        try:
            orjson.dumps(value)
        except TypeError:
            return "holds an integer outside the 64-bit range"
    return None


def _blank(value: Any) -> Any:
    """`value` with non-finite floats and integers past 64 bits replaced by None."""
    if isinstance(value, dict):
        return {k: _blank(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blank(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value) or isinstance(value, int) and abs(value) >= 2**63:
        return None
    return value


def _malformed(annotation: Any, reason: str) -> dict:
    identifier = annotation.get("id") if isinstance(annotation, dict) else None
    return {"id": identifier if isinstance(identifier, int) and abs(identifier) < 2**63 else None, "_malformed": reason}


def check_item(position: int, item: Any, strict: bool = False) -> ExportItem:
    """One export item as a task to snapshot, a task rejected as a whole, or a rejected item.

    `strict`: the item is already known to hold no non-finite number nor huge integer.
    """
    if not isinstance(item, dict):
        return ExportItem(position, None, f"export item {position} is a {type(item).__name__}, not a task object")
    task_id = item.get("id")
    if not isinstance(task_id, int) or isinstance(task_id, bool) or not 0 <= task_id < 2**63:
        return ExportItem(
            position, None, f"export item {position}: task id {str(task_id)[:40]!r} is not a non-negative integer"
        )
    task, problems = dict(item), []
    for name in LIST_FIELDS:
        if task.get(name) is not None and not isinstance(task[name], list):
            problems.append(f"'{name}' is a {type(task[name]).__name__}, not a list")
            task[name] = []
    if not strict and _problem(task) is not None:
        if isinstance(task.get("annotations"), list):
            task["annotations"] = [
                a if (why := _problem(a)) is None else _malformed(a, why) for a in task["annotations"]
            ]
        why = _problem(task)
        if why is not None:
            problems.append(f"{why} outside its annotations")
            task = _blank(task)
    if problems:
        return ExportItem(position, task, f"task {task_id}: {'; '.join(problems)}; fix the export")
    return ExportItem(position, task)


def iter_export(path: Path) -> Iterator[ExportItem]:
    """Every item of the export file at `path`, checked (see `check_item`), streamed."""
    try:
        with open(path, "rb") as handle:
            for position, (item, strict) in enumerate(iter_items(handle, Path(path))):
                yield check_item(position, item, strict)
    except RecursionError:
        raise PipelineError(f"{path}: an item is nested too deeply to be a Label Studio task") from None

"""Plain data (as YAML gives it) checked against a typed dataclass, with errors in a YAML user's words.

Types are checked strictly (pydantic's strict JSON mode: lists may become tuples and ints floats,
nothing else is converted); constraints come from `Annotated` metadata (`Field(ge=1)`, `Literal`).
A dataclass may define `check(self)` for rules across its fields; it runs after the types pass.
"""

from __future__ import annotations

import dataclasses
import json
import types
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from annotated_types import Ge, Gt, Le, Lt
from pydantic import Field, TypeAdapter, ValidationError

from pipeline.core.errors import ParamsError

T = TypeVar("T")

Count = Annotated[int, Field(ge=0)]  # 0 allowed (0 workers = all cores, 0 threads = default, ...)
Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[float, Field(ge=0)]
Share = Annotated[float, Field(ge=0, le=1)]
Device = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto, cpu, cuda or cuda:N")]
Channel = Annotated[int, Field(ge=0, le=255)]


def build(cls: type[T], values: dict, section_name: str) -> T:
    """`values` (as read from YAML) checked against `cls`'s fields and turned into `cls`."""
    hints = get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ParamsError(f"unknown key(s) {unknown} in params section {section_name!r}; valid: {sorted(fields)}")
    try:
        text = json.dumps(values)
    except (TypeError, ValueError) as error:
        raise ParamsError(
            f"params section {section_name!r} holds a value YAML cannot give as plain data: {error}"
        ) from None
    try:
        # JSON mode, strict: lists become tuples and ints floats, but nothing else is converted.
        result = TypeAdapter(cls).validate_json(text, strict=True)
    except ValidationError as error:
        raise ParamsError(explain(error, section_name, values, hints)) from None
    if hasattr(result, "check"):
        result.check()
    return result


def explain(error: ValidationError, section_name: str, values: dict, hints: dict) -> str:
    """One line per wrong key: `section.key = value: expected <what fits>`."""
    lines = {}
    for item in error.errors(include_url=False):
        key = str(item["loc"][0]) if item["loc"] else ""
        if key in lines:
            continue
        where = f"{section_name}.{key}"
        if item["type"] == "missing" and len(item["loc"]) == 1:
            lines[key] = f"{where} is missing: expected {describe(hints[key])}"
            continue
        detail = ""
        if len(item["loc"]) > 1 and item["type"] != "literal_error":
            inner = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"][1:] if _is_path(p))
            detail = f" ({where}{inner}: {item['msg'][0].lower()}{item['msg'][1:]})" if inner else ""
        lines[key] = f"{where} = {json.dumps(values.get(key))}: expected {describe(hints[key])}{detail}"
    return "; ".join(lines.values())


def _is_path(part: Any) -> bool:
    """Pydantic puts the names of union members into error locations; keep keys and indices."""
    return isinstance(part, int) or (part.isidentifier() and part not in ("int", "str", "float", "bool", "none"))


def describe(hint: Any) -> str:
    """What fits a type hint, in the words of a YAML file: `an integer >= 1`, `one of vote, staple`."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        return " ".join([describe(args[0]), *filter(None, map(_constraint, args[1:]))])
    if origin in (Union, types.UnionType):
        return " or ".join(describe(arg) for arg in args)
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args) if len(args) > 1 else json.dumps(args[0])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of ({describe(args[0])})"
        return f"a list of {len(args)} ({describe(args[0])})"
    if origin is dict:
        return f"a mapping of names to ({describe(args[1])})"
    if dataclasses.is_dataclass(hint):
        return "a mapping with " + ", ".join(f.name for f in dataclasses.fields(hint))
    simple = {type(None): "null", bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return simple.get(hint, getattr(hint, "__name__", str(hint)))


def _constraint(meta: Any) -> str:
    if getattr(meta, "description", None):
        return f"({meta.description})"
    words = {Ge: (">=", "ge"), Gt: (">", "gt"), Le: ("<=", "le"), Lt: ("<", "lt")}
    parts = [
        f"{words[type(m)][0]} {getattr(m, words[type(m)][1])}"
        for m in getattr(meta, "metadata", [])
        if type(m) in words
    ]
    return " and ".join(parts)

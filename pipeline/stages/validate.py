"""validate: decode and check every annotation of the snapshot; one label map per (task, annotator).

Every task and every annotation of the export gets exactly one fate in the report:
  ok        decoded; its label map is in data/annotations/<task_id>/u<annotator id>.png
  rejected  something is wrong; the reason names the task, the annotation and the fix
  skipped   not used on purpose: cancelled by the annotator, superseded by the same
            annotator's newer annotation of the task, or (for a task) no annotation yet,
            which makes it a candidate for pre-annotation
so the counts add up to the export's. An annotation whose annotator is unknown (a deleted user)
is its own annotator, `anon-a<annotation id>` (see pipeline.labelstudio.annotators); export
items pull could not read as tasks (data/raw/rejected.jsonl) are reported as rejected tasks. One bad annotation never hides the good annotations
of the same task. Overlaps between classes inside one annotation: the later region wins
(see pipeline.labelstudio.results).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import unquote, urlsplit

import orjson
from tqdm import tqdm

from pipeline.artifacts import annotations as annotation_maps
from pipeline.artifacts.reports import streamed_report
from pipeline.artifacts.snapshot import read_project, read_rejected, tasks_path
from pipeline.atomic import replace_dir
from pipeline.constants import IGNORE_INDEX
from pipeline.cooccurrence import COMBINATIONS, encode_index_map, pixel_keys
from pipeline.errors import PipelineError
from pipeline.images import read_size
from pipeline.labelstudio.annotators import annotator_of
from pipeline.labelstudio.results import annotation_to_label_map, label_tags
from pipeline.masks import encode_label_map
from pipeline.params import BaseParams, LabelStudioParams, ValidateParams
from pipeline.taskmap import choose_backend, pack, unpack


@dataclass(frozen=True)
class Rules:
    """What validate checks against: class names, tags to read, unpainted value, size limit."""

    classes: tuple[str, ...]
    control_tags: tuple[str, ...]
    unpainted_value: int
    max_image_side: int


def image_name(reference: str | None) -> str:
    """The file name of a task image reference (`/data/local-files/?d=a/b.png` -> `b.png`)."""
    if not reference:
        return ""
    parts = urlsplit(reference)
    return Path(unquote(parts.query.rpartition("=")[2] if "d=" in parts.query else parts.path)).name


def _newest_per_annotator(annotations: list[dict]) -> dict[int, int]:
    """For each superseded annotation id, the id of the same KNOWN annotator's newest one.

    Annotations without a known annotator are never superseded: each is its own identity.
    Ids and dates of any type are ordered without comparing across types.
    """
    newest: dict[str, tuple] = {}
    for position, annotation in enumerate(annotations):
        author = annotator_of(annotation, position)
        if annotation.get("was_cancelled") or not author.known:
            continue
        identifier = annotation.get("id")
        order = (str(annotation.get("created_at") or ""), identifier if _is_int(identifier) else -1, position)
        if author.key not in newest or order > newest[author.key][0]:
            newest[author.key] = (order, annotation)
    superseded = {}
    for position, annotation in enumerate(annotations):
        winner = newest.get(annotator_of(annotation, position).key)
        if not annotation.get("was_cancelled") and winner and winner[1] is not annotation and _is_int(annotation.get("id")):
            superseded[annotation["id"]] = winner[1].get("id")
    return superseded


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def image_header(line: bytes, images_dir: Path, max_side: int) -> dict:
    """{"size": [height, width]} from the image file's header, or {"error": why it is unusable}, or {} when the
    line cannot be read (the worker reports that)."""
    try:
        record = orjson.loads(line)
        image = record["image"]
        if record.get("problem") is not None or image.get("error") is not None:
            return {}
        return {"size": list(read_size(images_dir / image["file"], max_side))}
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return {}
    except PipelineError as error:
        return {"error": str(error)}


def task_payload(line: str | bytes, images_dir: Path, max_side: int) -> bytes:
    """What a worker needs for one task: its snapshot line and its image's size (never the pixels)."""
    line = line.encode() if isinstance(line, str) else line
    return pack({"line": line, "image": orjson.dumps(image_header(line, images_dir, max_side))})


def validate_payload(payload: bytes, rules: Rules) -> bytes:
    """The worker's kernel: a `task_payload` in; report entry, index entry and encoded files out."""
    parts = unpack(payload)
    report, index, files = validate_task(parts["line"], orjson.loads(parts["image"]), rules)
    framed = {"report": orjson.dumps(report, option=orjson.OPT_SORT_KEYS),
              "index": b"" if index is None else orjson.dumps(index, option=orjson.OPT_SORT_KEYS)}
    return pack(framed | {f"file:{name}": content for name, content in files.items()})


def validate_task(line: str | bytes, header: dict, rules: Rules) -> tuple[dict, dict | None, dict[str, bytes]]:
    """Check one snapshot line, given its image `header` (see image_header); returns (report entry,
    index entry, {relative path: file bytes})."""
    try:
        record = orjson.loads(line)
        task, image, task_id = record["task"], record["image"], record["task"]["id"]
        if not isinstance(image, dict) or not isinstance(task, dict):
            raise TypeError("task or image record is not an object")
    except (orjson.JSONDecodeError, KeyError, TypeError) as error:
        reason = f"a line of the snapshot cannot be read ({type(error).__name__}); run pull again"
        return {"task_id": None, "image": None, "annotations": [], "fate": "rejected", "reason": reason}, None, {}
    # An export edited by hand may hold anything: a non-object annotation becomes an object that
    # fails validation with a reason, instead of a traceback.
    annotations = [a if isinstance(a, dict) else {"id": None, "result": None, "_malformed": f"is a {type(a).__name__}, not an object"}
                   for a in (task.get("annotations") if isinstance(task.get("annotations"), list) else [])]
    size, image_problem, task_problem = header.get("size"), image.get("error"), record.get("problem")
    if task_problem is not None:
        image_problem = f"the task is rejected: {task_problem}"
    elif image_problem is None:
        image_problem = header.get("error")
    superseded = _newest_per_annotator(annotations)
    entries, maps, arrays, files = [], {}, {}, {}
    seen_ids: set[int] = set()
    for position, annotation in enumerate(annotations):
        entry, label_map = _check_annotation(task_id, annotation, position, superseded, seen_ids, size, image_problem, rules)
        entries.append(entry)
        if label_map is not None:
            key = entry["annotator"]
            relative = annotation_maps.map_file(task_id, key)
            files[relative] = encode_label_map(label_map)
            maps[key] = {"file": relative, "annotation_id": entry["annotation_id"], "email": entry["email"]}
            arrays[key] = label_map
    report = {"task_id": task_id, "image": image.get("file"), "annotations": entries, **_task_fate(task_id, entries, image_problem, task_problem)}
    index = None
    if maps:
        # The label co-occurrence table and each pixel's row in it let merge estimate annotator
        # models and paint the consensus without reading every annotator's map again.
        tuples, pixels = pixel_keys(arrays, len(rules.classes))
        combinations = f"{task_id}/{COMBINATIONS}"
        files[combinations] = encode_index_map(pixels.reshape(size))
        index = {"task_id": task_id, "image": image["file"], "height": size[0], "width": size[1],
                 "image_name": image_name(image.get("ref")), "data": task.get("data", {}), "maps": maps,
                 "cooccurrence": {**tuples.to_dict(), "pixels": combinations}}
    return report, index, files


def _check_annotation(task_id: int, annotation: dict, position: int, superseded: dict, seen_ids: set, size,
                      image_problem: str | None, rules: Rules):
    annotation_id = annotation.get("id")
    author = annotator_of(annotation, position)
    key, email = author.key, author.email
    entry = {"annotation_id": annotation_id if _is_int(annotation_id) else None, "annotator": key, "email": email,
             "annotator_known": author.known, "lead_time": annotation.get("lead_time"),
             "from_prediction": bool(annotation.get("parent_prediction")), "regions": 0, "overlap_pixels": 0}
    who = email or (key if author.known else f"an unknown annotator (deleted user; identity {key})")
    where = f"task {task_id}, annotation {annotation_id} by {who}"
    if "_malformed" in annotation:
        reason = f"task {task_id}, annotation {annotation_id if _is_int(annotation_id) else position + 1}: {annotation['_malformed']}; fix the export"
        return {**entry, "fate": "rejected", "reason": reason}, None
    if not _is_int(annotation_id) or annotation_id in seen_ids:
        problem = "appears twice in the task" if _is_int(annotation_id) else f"id {str(annotation_id)[:40]!r} is not an integer"
        reason = f"task {task_id}, annotation #{position + 1} by {who}: {problem}; export the project again"
        return {**entry, "fate": "rejected", "reason": reason}, None
    seen_ids.add(annotation_id)
    if annotation.get("was_cancelled"):
        return {**entry, "fate": "skipped", "reason": f"{where}: cancelled (skipped) by the annotator"}, None
    if annotation_id in superseded:
        reason = f"{where}: superseded by the same annotator's newer annotation {superseded[annotation_id]}"
        return {**entry, "fate": "skipped", "reason": reason}, None
    if image_problem is not None:
        unusable = image_problem if image_problem.startswith("the task is rejected") else f"image unusable: {image_problem}"
        return {**entry, "fate": "rejected", "reason": f"{where}: {unusable}"}, None
    try:
        decoded = annotation_to_label_map(
            annotation.get("result"), rules.classes, height=size[0], width=size[1],
            from_names=rules.control_tags or None, unlabeled_value=rules.unpainted_value,
        )
    except PipelineError as error:
        fix = "fix or delete the region in Label Studio and submit again"
        return {**entry, "fate": "rejected", "reason": f"{where}: {error}; {fix}"}, None
    entry.update(fate="ok", reason="", regions=decoded.regions, overlap_pixels=decoded.overlap_pixels)
    return entry, decoded.label_map


def _task_fate(task_id: int, entries: list[dict], image_problem: str | None, task_problem: str | None = None) -> dict:
    fates = Counter(entry["fate"] for entry in entries)
    if task_problem is not None:
        return {"fate": "rejected", "reason": task_problem}
    if fates["ok"]:
        return {"fate": "ok", "reason": ""}
    if image_problem is not None:  # also for unannotated tasks: they could not be pre-annotated either
        return {"fate": "rejected", "reason": f"task {task_id}: image unusable: {image_problem}"}
    if not entries:
        return {"fate": "skipped", "reason": f"task {task_id}: no annotation yet; a candidate for pre-annotation"}
    if fates["rejected"]:
        return {"fate": "rejected", "reason": f"task {task_id}: every submitted annotation was rejected"}
    return {"fate": "skipped", "reason": f"task {task_id}: every annotation was cancelled"}


def rejected_items(raw_dir: Path) -> list[dict]:
    """Report entries for the export items pull could not read as tasks (data/raw/rejected.jsonl)."""
    return [{"task_id": None, "export_item": item["position"], "image": None, "annotations": [], "fate": "rejected",
             "reason": f"{item['reason']}; fix the export"} for item in read_rejected(raw_dir)]


def config_warnings(project: dict, rules: Rules) -> list[str]:
    """Mismatches between the project's label config and base.classes, if the config is known."""
    if not project.get("label_config"):
        return []
    tags = label_tags(project["label_config"])
    wanted = [tag for name, tag in tags.items() if not rules.control_tags or name in rules.control_tags]
    config_labels = {label for tag in wanted for label in tag.labels}
    warnings = [f"label {label!r} of the label config is not in base.classes: regions using it are rejected"
                for label in sorted(config_labels - set(rules.classes))]
    missing = [name for name in rules.control_tags if name not in tags]
    warnings += [f"control tag {name!r} of labelstudio.control_tags is not in the label config" for name in missing]
    return warnings


def run(raw_dir: Path, images_dir: Path, out_dir: Path, report_path: Path, base: BaseParams, ls: LabelStudioParams,
        params: ValidateParams, scheduler: str | None = None) -> dict:
    """Validate the snapshot in `raw_dir`; returns the report's counts.

    Tasks are checked by `pipeline.taskmap` (local processes, or the Dask cluster at `scheduler`
    or $DASK_SCHEDULER_ADDRESS); only this process touches files.
    """
    if params.unpainted is not None and params.unpainted not in base.names:
        raise PipelineError(f"validate.unpainted={params.unpainted!r} is not in base.classes {base.names}; use one of them or null")
    rules = Rules(tuple(base.names), tuple(ls.control_tags),
                  IGNORE_INDEX if params.unpainted is None else base.names.index(params.unpainted), params.max_image_side)
    project = read_project(raw_dir)
    counts: Counter = Counter()
    backend = choose_backend(scheduler, params.workers)
    with replace_dir(out_dir) as staging, streamed_report(report_path, "tasks") as report, \
            open(annotation_maps.index_path(staging), "wb") as index:
        kernel = partial(validate_payload, rules=rules)
        with open(tasks_path(raw_dir), "rb") as lines, tqdm(desc=f"validate on {backend.describe()}", unit="task") as bar:
            payloads = (task_payload(line, images_dir, rules.max_image_side) for line in lines)
            try:
                for result in backend.map(kernel, payloads):
                    _write_result(unpack(result), staging, report, index, counts)
                    bar.update()
            finally:
                backend.close()
        for entry in rejected_items(raw_dir):
            report.add(entry)
            counts["tasks_rejected"] += 1
            counts["tasks"] += 1
        summary = {
            "counts": dict(sorted(counts.items())),
            "config_warnings": config_warnings(project, rules),
            "project": {"id": project.get("id"), "title": project.get("title")},
        }
        report.finish(summary)
    return summary["counts"]


def _write_result(parts: dict[str, bytes], staging: Path, report, index, counts: Counter) -> None:
    """Write one task's files, report entry and index line (the driver's side of the map)."""
    for name, content in parts.items():
        if name.startswith("file:"):
            target = staging / name[len("file:"):]
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(content)
    entry = orjson.loads(parts["report"])
    report.add_encoded(parts["report"].decode())
    counts[f"tasks_{entry['fate']}"] += 1
    counts.update(f"annotations_{a['fate']}" for a in entry["annotations"])
    counts["annotations"] += len(entry["annotations"])
    counts["tasks"] += 1
    if parts["index"]:
        index.write(parts["index"] + b"\n")

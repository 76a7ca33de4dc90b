"""validate: decode and check every annotation of the snapshot; one label map per (task, annotator).

Every task and every annotation of the export gets exactly one fate in the report:
  ok        decoded; its label map is in data/annotations/<task_id>/u<annotator id>.png
  rejected  something is wrong; the reason names the task, the annotation and the fix
  skipped   not used on purpose: cancelled by the annotator, superseded by the same
            annotator's newer annotation of the task, or (for a task) no annotation yet,
            which makes it a candidate for pre-annotation
so the counts add up to the export's. An annotation whose annotator is unknown (a deleted user)
is its own annotator, `anon-a<annotation id>` (see pipeline.labelstudio.annotators); export
items pull could not read as tasks (data/raw/rejected.jsonl) are reported as rejected tasks.
One bad annotation never hides the good annotations of the same task. Overlaps between classes
inside one annotation: the later region wins (see pipeline.labelstudio.reading).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import orjson
from tqdm import tqdm

from pipeline.artifacts import annotations as annotation_maps
from pipeline.artifacts.reports import streamed_report
from pipeline.artifacts.snapshot import read_project, read_rejected, tasks_path
from pipeline.core.atomic import replace_dir, write_json
from pipeline.core.constants import IGNORE_INDEX
from pipeline.core.errors import PipelineError
from pipeline.core.images import read_size
from pipeline.core.params import BaseParams, LabelStudioParams, ValidateParams
from pipeline.core.taskmap import choose_backend, pack, unpack
from pipeline.dataset.cooccurrence import COMBINATIONS, encode_index_map, pixel_keys
from pipeline.dataset.masks import encode_label_map
from pipeline.labelstudio.annotators import annotator_of
from pipeline.labelstudio.config import CLASSES_FILE, DatasetSpec, dataset_spec, read_label_config
from pipeline.labelstudio.reading import annotation_to_label_map
from pipeline.labelstudio.tasks import image_name, is_cancelled, superseded_annotations


@dataclass(frozen=True)
class Rules:
    """What validate checks against: classes, image and control tags, unpainted value, limits."""

    classes: tuple[str, ...]
    image_tag: str | None
    control_tags: tuple[str, ...]
    unpainted_value: int
    max_image_side: int
    brush_threshold: int


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
    framed = {
        "report": orjson.dumps(report, option=orjson.OPT_SORT_KEYS),
        "index": b"" if index is None else orjson.dumps(index, option=orjson.OPT_SORT_KEYS),
    }
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
    annotations = [
        a
        if isinstance(a, dict)
        else {"id": None, "result": None, "_malformed": f"is a {type(a).__name__}, not an object"}
        for a in (task.get("annotations") if isinstance(task.get("annotations"), list) else [])
    ]
    size, image_problem, task_problem = header.get("size"), image.get("error"), record.get("problem")
    if task_problem is not None:
        image_problem = f"the task is rejected: {task_problem}"
    elif image_problem is None:
        image_problem = header.get("error")
    superseded = superseded_annotations(annotations)
    entries, maps, arrays, files = [], {}, {}, {}
    seen_ids: set[int] = set()
    for position, annotation in enumerate(annotations):
        entry, label_map = _check_annotation(
            task_id, annotation, position, superseded, seen_ids, size, image_problem, rules
        )
        entries.append(entry)
        if label_map is not None:
            key = entry["annotator"]
            relative = annotation_maps.map_file(task_id, key)
            files[relative] = encode_label_map(label_map)
            maps[key] = {"file": relative, "annotation_id": entry["annotation_id"], "email": entry["email"]}
            arrays[key] = label_map
    report = {
        "task_id": task_id,
        "image": image.get("file"),
        "annotations": entries,
        **_task_fate(task_id, entries, image_problem, task_problem),
    }
    index = None
    if maps:
        # The label co-occurrence table and each pixel's row in it let merge estimate annotator
        # models and paint the consensus without reading every annotator's map again.
        tuples, pixels = pixel_keys(arrays, len(rules.classes))
        combinations = f"{task_id}/{COMBINATIONS}"
        files[combinations] = encode_index_map(pixels.reshape(size))
        index = {
            "task_id": task_id,
            "image": image["file"],
            "height": size[0],
            "width": size[1],
            "image_name": image_name(image.get("ref")),
            "data": task.get("data", {}),
            "maps": maps,
            "cooccurrence": {**tuples.to_dict(), "pixels": combinations},
        }
    return report, index, files


def _check_annotation(
    task_id: int,
    annotation: dict,
    position: int,
    superseded: dict,
    seen_ids: set,
    size,
    image_problem: str | None,
    rules: Rules,
):
    annotation_id = annotation.get("id")
    author = annotator_of(annotation, position)
    key, email = author.key, author.email
    entry = {
        "annotation_id": annotation_id if _is_int(annotation_id) else None,
        "annotator": key,
        "email": email,
        "annotator_known": author.known,
        "lead_time": annotation.get("lead_time"),
        "from_prediction": bool(annotation.get("parent_prediction")),
        "regions": 0,
        "overlap_pixels": 0,
        "ignored": {},
    }
    who = email or (key if author.known else f"an unknown annotator (deleted user; identity {key})")
    where = f"task {task_id}, annotation {annotation_id} by {who}"
    if "_malformed" in annotation:
        shown = annotation_id if _is_int(annotation_id) else position + 1
        reason = f"task {task_id}, annotation {shown}: {annotation['_malformed']}; fix the export"
        return {**entry, "fate": "rejected", "reason": reason}, None
    if not _is_int(annotation_id) or annotation_id in seen_ids:
        problem = (
            "appears twice in the task"
            if _is_int(annotation_id)
            else f"id {str(annotation_id)[:40]!r} is not an integer"
        )
        reason = f"task {task_id}, annotation #{position + 1} by {who}: {problem}; export the project again"
        return {**entry, "fate": "rejected", "reason": reason}, None
    seen_ids.add(annotation_id)
    if is_cancelled(annotation):
        return {**entry, "fate": "skipped", "reason": f"{where}: cancelled (skipped) by the annotator"}, None
    if annotation_id in superseded:
        reason = f"{where}: superseded by the same annotator's newer annotation {superseded[annotation_id]}"
        return {**entry, "fate": "skipped", "reason": reason}, None
    if image_problem is not None:
        unusable = (
            image_problem if image_problem.startswith("the task is rejected") else f"image unusable: {image_problem}"
        )
        return {**entry, "fate": "rejected", "reason": f"{where}: {unusable}"}, None
    try:
        decoded = annotation_to_label_map(
            annotation.get("result"),
            rules.classes,
            height=size[0],
            width=size[1],
            from_names=rules.control_tags or None,
            to_name=rules.image_tag,
            unlabeled_value=rules.unpainted_value,
            brush_threshold=rules.brush_threshold,
        )
    except PipelineError as error:
        said = str(error)
        # Most region errors are fixed in the editor; the ones that need something else say so themselves.
        fix = (
            ""
            if any(word in said for word in ("resubmit", "delete", "Remove"))
            else "; fix or delete the region in Label Studio and resubmit"
        )
        return {**entry, "fate": "rejected", "reason": f"{where}: {said}{fix}"}, None
    entry.update(
        fate="ok", reason="", regions=decoded.regions, overlap_pixels=decoded.overlap_pixels, ignored=decoded.ignored
    )
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
    return [
        {
            "task_id": None,
            "export_item": item["position"],
            "image": None,
            "annotations": [],
            "fate": "rejected",
            "reason": f"{item['reason']}; fix the export",
        }
        for item in read_rejected(raw_dir)
    ]


def config_warnings(label_config: str | None, spec: DatasetSpec) -> list[str]:
    """What of the label config is not turned into pixels, so that nobody wonders where it went."""
    if not label_config:
        return []
    warnings = []
    for control in read_label_config(label_config).controls.values():
        if control.name in spec.control_tags:
            continue
        if control.kind == "other":
            warnings.append(
                f"<{control.tag} name={control.name!r}> is not a segmentation control: annotations holding "
                "its results are rejected"
            )
        elif control.kind == "ignored":
            warnings.append(
                f"<{control.tag} name={control.name!r}> is not painted: its results are counted per annotation"
            )
        else:
            warnings.append(
                f"<{control.tag} name={control.name!r}> is not in labelstudio.control_tags or points at "
                f"another image: its regions are not painted (their pixels become 255)"
            )
    return warnings


def rules_for(spec: DatasetSpec, params: ValidateParams) -> Rules:
    """Rules from the resolved dataset spec; the unpainted class must be one of its classes."""
    if params.unpainted is not None and params.unpainted not in spec.names:
        raise PipelineError(
            f"validate.unpainted={params.unpainted!r} is not in the classes {spec.names}; use one of "
            "them or null (ignore)"
        )
    if isinstance(params.brush_alpha_threshold, bool) or not 1 <= params.brush_alpha_threshold <= 255:
        raise PipelineError(
            f"validate.brush_alpha_threshold={params.brush_alpha_threshold!r}: use a whole number "
            "in 1..255 (128 keeps the pixels a stroke covers at least half)"
        )
    unpainted = IGNORE_INDEX if params.unpainted is None else spec.names.index(params.unpainted)
    return Rules(
        tuple(spec.names),
        spec.image_tag,
        spec.control_tags,
        unpainted,
        params.max_image_side,
        params.brush_alpha_threshold,
    )


def write_classes(path: Path, spec: DatasetSpec) -> None:
    """The classes every later stage uses, in id order with colours, and where they came from."""
    write_json(
        path,
        {
            "classes": [{"name": c.name, "color": list(c.color)} for c in spec.classes],
            "image_tag": spec.image_tag,
            "control_tags": list(spec.control_tags),
        },
    )


def run(
    raw_dir: Path,
    images_dir: Path,
    out_dir: Path,
    report_path: Path,
    base: BaseParams,
    ls: LabelStudioParams,
    params: ValidateParams,
    scheduler: str | None = None,
) -> dict:
    """Validate the snapshot in `raw_dir`; returns the report's counts.

    Tasks are checked by `pipeline.core.taskmap` (local processes, or the Dask cluster at `scheduler`
    or $DASK_SCHEDULER_ADDRESS); only this process touches files.
    """
    project = read_project(raw_dir)
    spec = dataset_spec(project.get("label_config"), base, ls, params.unpainted)
    rules = rules_for(spec, params)
    counts: Counter = Counter()
    ignored: Counter = Counter()  # results not painted, by type, over the annotations that are ok
    backend = choose_backend(scheduler, params.workers)
    with (
        replace_dir(out_dir) as staging,
        streamed_report(report_path, "tasks") as report,
        open(annotation_maps.index_path(staging), "wb") as index,
    ):
        write_classes(staging / CLASSES_FILE, spec)
        kernel = partial(validate_payload, rules=rules)
        with (
            open(tasks_path(raw_dir), "rb") as lines,
            tqdm(desc=f"validate on {backend.describe()}", unit="task") as bar,
        ):
            payloads = (task_payload(line, images_dir, rules.max_image_side) for line in lines)
            try:
                for result in backend.map(kernel, payloads):
                    _write_result(unpack(result), staging, report, index, counts, ignored)
                    bar.update()
            finally:
                backend.close()
        for entry in rejected_items(raw_dir):
            report.add(entry)
            counts["tasks_rejected"] += 1
            counts["tasks"] += 1
        summary = {
            "counts": dict(sorted(counts.items())),
            "ignored_results": dict(sorted(ignored.items())),
            "config_warnings": config_warnings(project.get("label_config"), spec),
            "classes": spec.names,
            "image_tag": spec.image_tag,
            "control_tags": list(spec.control_tags),
            "project": {"id": project.get("id"), "title": project.get("title")},
        }
        report.finish(summary)
    return summary["counts"]


def _write_result(parts: dict[str, bytes], staging: Path, report, index, counts: Counter, ignored: Counter) -> None:
    """Write one task's files, report entry and index line (the driver's side of the map)."""
    for name, content in parts.items():
        if name.startswith("file:"):
            target = staging / name[len("file:") :]
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(content)
    entry = orjson.loads(parts["report"])
    report.add_encoded(parts["report"].decode())
    counts[f"tasks_{entry['fate']}"] += 1
    counts.update(f"annotations_{a['fate']}" for a in entry["annotations"])
    counts["annotations"] += len(entry["annotations"])
    for annotation in entry["annotations"]:
        ignored.update(annotation.get("ignored") or {})
    counts["tasks"] += 1
    if parts["index"]:
        index.write(parts["index"] + b"\n")

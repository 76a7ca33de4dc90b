"""Label Studio's task rules, decided once: which annotations count, task links, local-files references.

Which annotations count: a cancelled annotation ("skip" in the editor) never counts; when one
annotator submitted a task several times, only their newest submission counts (by
`created_at`, then id) and the older ones are superseded. Every stage that reads annotations
(validate, pre-annotation selection, review-stats) asks here.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

from pipeline.core.errors import UnsafeReferenceError
from pipeline.labelstudio.annotators import annotator_of

LOCAL_FILES_PATH = "/data/local-files"


def is_cancelled(annotation: dict) -> bool:
    return bool(annotation.get("was_cancelled"))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def superseded_annotations(annotations: list) -> dict[int, object]:
    """For each superseded annotation id, the id of the same KNOWN annotator's newest one.

    Annotations without a known annotator (pipeline.labelstudio.annotators) are never
    superseded: each is its own identity. Ids and dates of any type are ordered without
    comparing across types. Items that are not objects are left out.
    """
    newest: dict[str, tuple] = {}
    for position, annotation in enumerate(annotations):
        if not isinstance(annotation, dict):
            continue
        author = annotator_of(annotation, position)
        if is_cancelled(annotation) or not author.known:
            continue
        identifier = annotation.get("id")
        order = (str(annotation.get("created_at") or ""), identifier if _is_int(identifier) else -1, position)
        if author.key not in newest or order > newest[author.key][0]:
            newest[author.key] = (order, annotation)
    superseded = {}
    for position, annotation in enumerate(annotations):
        if not isinstance(annotation, dict):
            continue
        winner = newest.get(annotator_of(annotation, position).key)
        if not is_cancelled(annotation) and winner and winner[1] is not annotation and _is_int(annotation.get("id")):
            superseded[annotation["id"]] = winner[1].get("id")
    return superseded


def counted_annotations(task: dict) -> list[dict]:
    """The annotations of a task that count: submitted, not cancelled, not superseded."""
    annotations = task.get("annotations") if isinstance(task.get("annotations"), list) else []
    superseded = superseded_annotations(annotations)
    return [a for a in annotations if isinstance(a, dict) and not is_cancelled(a) and a.get("id") not in superseded]


def is_annotated(task: dict) -> bool:
    """A task with at least one annotation that counts."""
    return bool(counted_annotations(task))


def task_link(project_id: int | None, task_id: int) -> str:
    """The task in the data manager, relative to LABEL_STUDIO_URL (which never enters a report).

    "" without a project.
    """
    return f"/projects/{project_id}/data?task={task_id}" if project_id is not None else ""


def local_file_reference(relative: str) -> str:
    """The task data reference LS serves a document-root-relative file under."""
    return f"{LOCAL_FILES_PATH}/?d={relative}"


def local_file_relative(reference: str) -> str | None:
    """The document-root-relative path of a `/data/local-files/?d=...` reference; None for other references.

    Raises UnsafeReferenceError when the path is absolute or climbs out with `..`.
    """
    parts = urlsplit(reference)
    if not parts.path.rstrip("/").endswith(LOCAL_FILES_PATH):
        return None
    values = parse_qs(parts.query).get("d")
    if not values:
        raise UnsafeReferenceError(f"{reference!r} names no file (?d=...); re-import the task with a local-files path")
    relative = unquote(values[0])
    if relative.startswith("/") or ".." in PurePosixPath(relative).parts:
        raise UnsafeReferenceError(f"local file path {relative!r} leaves the document root; use a path relative to it")
    return relative


def image_name(reference: str | None) -> str:
    """The file name of a task image reference (`/data/local-files/?d=a/b.png` -> `b.png`)."""
    if not reference:
        return ""
    parts = urlsplit(reference)
    if parts.path.rstrip("/").endswith(LOCAL_FILES_PATH):
        path = unquote((parse_qs(parts.query).get("d") or [""])[0])
    else:
        path = unquote(parts.path)
    return PurePosixPath(path).name

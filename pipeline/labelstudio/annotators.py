"""Who made an annotation: a stable, file-safe key per annotator, never a guess.

The export expands `completed_by` into {"id", "email", ...} (or leaves the bare id). Keys:
  u<id>               a known user id (an integer, as Label Studio gives it)
  u<safe text>-<hash> an id that is text (hand-edited exports): unsafe characters such as "/"
                      become "_", and a short hash of the original keeps "a/b" and "a_b" apart
  anon-a<annotation>  no usable id (a deleted user: `completed_by` null, or anything odd):
                      one identity PER ANNOTATION, so two deleted users are never pooled into
                      one person, and nobody's work is "superseded" by someone else's
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Annotator:
    key: str  # file-safe, deterministic; the label map is <task>/<key>.png
    email: str | None
    known: bool  # False: no usable user id in the export


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]


def _text_key(text: str) -> str:
    safe = UNSAFE.sub("_", text)[:64]
    return f"u{safe}" if safe == text and safe and not safe.startswith(".") else f"u{safe}-{_short_hash(text)}"


def annotator_of(annotation: dict, position: int = 0) -> Annotator:
    """The annotator of one annotation; `position` (its index in the task) names it when the id is unusable too."""
    author = annotation.get("completed_by")
    email = None
    if isinstance(author, dict):
        email = author.get("email") if isinstance(author.get("email"), str) else None
        author = author.get("id")
    if isinstance(author, int) and not isinstance(author, bool):
        return Annotator(f"u{author}", email, True)
    if isinstance(author, str) and author.strip():
        return Annotator(_text_key(author), email, True)
    annotation_id = annotation.get("id")
    if isinstance(annotation_id, int) and not isinstance(annotation_id, bool):
        return Annotator(f"anon-a{annotation_id}", email, False)
    return Annotator(f"anon-p{position}", email, False)

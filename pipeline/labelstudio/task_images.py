"""Task images as pull and the ML backend read them: which data key holds the image, and fetching it.

`image_field` reads the <Image> tag from the label config, `image_reference` takes the task's
reference, `fetch_image` stores its bytes under their content hash, through the server's
fetcher or from a local document root (`image_source` builds one from pull's params).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.atomic import replace_file
from pipeline.core.errors import FetchError, UnsafeReferenceError
from pipeline.core.images import image_suffix
from pipeline.core.params import PullParams
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.config import DEFAULT_DATA_KEY, image_tag_of, read_label_config
from pipeline.labelstudio.fetch import MAX_IMAGE_BYTES, ImageFetcher
from pipeline.labelstudio.references import describe_url, local_file_path, resolve


@dataclass(frozen=True)
class ImageSource:
    """Where task images come from: the server (through the fetcher), or a local document root.

    With a server, local-files references are still checked against the document root when it
    is known here (pull.document_root or LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT), so a symlink
    leaving it is refused before the server is asked.
    """

    fetcher: ImageFetcher | None
    document_root: Path | None


def image_source(client: LabelStudioClient | None, params: PullParams) -> ImageSource:
    """The image source pull's rules give: the server's fetcher (when there is a client) and the document root."""
    root = params.document_root or os.environ.get("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT") or None
    root = Path(root) if root else None
    fetcher = ImageFetcher(client.fetch_settings(params.allowed_origins, root)) if client is not None else None
    return ImageSource(fetcher, root)


def read_local_image(reference: str, document_root: Path) -> bytes:
    """The bytes of a local-files reference of a saved export, read from `document_root`."""
    target = resolve(reference, None)
    if target.kind != "local-files":
        raise UnsafeReferenceError(
            f"{describe_url(reference)} is not a /data/local-files/?d=... reference; "
            "without a server only local files resolve"
        )
    path = local_file_path(target.local_path, document_root)
    if not path.is_file():  # missing, a folder, a FIFO or a device: nothing to read, nothing to block on
        raise FetchError(f"local file {target.local_path!r} is not a regular file under {document_root}")
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise FetchError(f"local file {target.local_path!r} is over the limit of {MAX_IMAGE_BYTES:,} bytes")
    return path.read_bytes()


@dataclass(frozen=True)
class ImageField:
    """Which task data key holds the image: the `$value` of the configured <Image>, and that tag's name."""

    image_tag: str
    data_key: str


def image_field(label_config: str | None, image_tag: str | None) -> ImageField:
    """From the label config (labelstudio.image_tag, when set, must be one of its <Image> tags)."""
    if not label_config:  # an export file carries no config: the param names the data key itself
        return ImageField(image_tag or DEFAULT_DATA_KEY, image_tag or DEFAULT_DATA_KEY)
    image = image_tag_of(read_label_config(label_config), image_tag)
    return ImageField(image.name, image.data_key)


def image_reference(task: dict, field: ImageField) -> str | dict:
    """The image reference of a task, or {"error": why} when its data holds none (or several)."""
    data = task.get("data")
    value = data.get(field.data_key) if isinstance(data, dict) else None
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list):
        return {
            "error": f"task data {field.data_key!r} holds a list of {len(value)} images (a multi-image "
            f"<Image valueList> task); multi-image tasks are not supported: import one image per task"
        }
    keys = sorted(data) if isinstance(data, dict) else []
    return {
        "error": f"task data has no image under {field.data_key!r} (the value of <Image name={field.image_tag!r}>); "
        f"its keys are {keys[:10]}; fix the task data or the label config"
    }


def fetch_image(
    reference: str | dict, previous: dict | None, source: ImageSource, images: Path, task_id: int | None = None
) -> dict:
    """Fetch one task image into `images` (by content hash); returns its record or why it failed.

    Every failure of this one image (refused reference, any status, redirect loop, timeout, not
    an image) is recorded for its task; only an unreachable server fails the pull.
    """
    if isinstance(reference, dict):
        return {"ref": None, **reference}
    known = previous if previous and (images / previous["file"]).exists() else None
    try:
        if source.fetcher is None:
            content, etag = read_local_image(reference, source.document_root), None
            suffix = image_suffix(content[:16])
            if suffix is None:
                raise FetchError(
                    f"local file of {describe_url(reference)} is not a PNG, JPEG, GIF, BMP, TIFF or WebP image"
                )
        else:
            fetched = source.fetcher.fetch(reference, known and known.get("etag"), task_id)
            content, etag, suffix = fetched.content, fetched.etag, fetched.suffix
    except (UnsafeReferenceError, FetchError) as error:
        return {"ref": reference, "error": str(error)}
    except OSError as error:
        return {"ref": reference, "error": f"cannot read the local file ({error.strerror or type(error).__name__})"}
    if content is None:  # unchanged on the server
        return dict(known)
    digest = hashlib.sha256(content).hexdigest()
    relative = f"{digest[:2]}/{digest}{suffix}"
    target = images / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with replace_file(target, "wb") as handle:  # a file under its hash is complete or absent
            handle.write(content)
    return {"ref": reference, "file": relative, "sha256": digest, "etag": etag}

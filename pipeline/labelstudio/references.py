"""Which task image references may be fetched, from where, and with which credentials.

A task's image reference is hostile: anyone who can import a task chooses it. A reference is
resolved against an allow-list of SHAPES, never against the origin alone:

  upload       <LS>/data/upload/<...>                     files uploaded to Label Studio
  local-files  <LS>/data/local-files/?d=<relative path>   files under the server's document root
  storage      <LS>/tasks/<id>/resolve/?fileuri=...       cloud storage, resolved by the server
               (also /presign/, and /projects/<id>/...); s3://, gs://, azure-blob:// URIs
               become this route for their task
  external     http(s)://<origin in pull.allowed_origins>/<anything>

Every other path on the Label Studio origin (its API above all: /api/current-user/token) is
refused, as is every other origin and scheme. Only the first three shapes get the Label Studio
token; an external origin never does. Redirects are resolved by the same rules (`resolve`
on the Location, relative to the URL that answered).
"""

from __future__ import annotations

import base64
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urljoin, urlsplit, urlunsplit

from pipeline.core.errors import UnsafeReferenceError

CLOUD_SCHEMES = ("s3", "gs", "azure-blob", "azure-spi")
MAX_REFERENCE_LENGTH = 8192
STORAGE_ROUTE = re.compile(r"/(tasks|projects)/\d+/(resolve|presign)/?")
UPLOAD_PREFIX = "/data/upload/"
LOCAL_FILES_ROUTE = re.compile(r"/data/local-files/?")
DEFAULT_PORTS = {"http": 80, "https": 443}
SECRET_QUERY_KEYS = re.compile(r"sig|signature|credential|token|key|auth|secret|password|session", re.I)


@dataclass(frozen=True)
class Target:
    """A reference that may be fetched: the URL, its shape, and whether the LS token goes with it."""

    url: str
    kind: str  # upload | local-files | storage | external
    send_token: bool
    local_path: str | None = None  # local-files: the path relative to the document root


def origin_of(url: str) -> str:
    """scheme://host[:port], lower-cased, default port dropped: the unit of trust."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        raise UnsafeReferenceError(f"{describe_url(url)} has an invalid port") from None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" if port in (None, DEFAULT_PORTS.get(scheme)) else f"{scheme}://{host}:{port}"


def describe_url(url: str) -> str:
    """The URL for messages: query values that look like signatures or keys are blanked."""
    try:
        parts = urlsplit(url)
        pairs = [pair.partition("=") for pair in parts.query.split("&")] if parts.query else []
        query = "&".join(f"{k}{sep}{'***' if SECRET_QUERY_KEYS.search(k) else v}" for k, sep, v in pairs)
        netloc = parts.netloc.rpartition("@")[2]  # never user:password@
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))[:300]
    except ValueError:
        return repr(url[:100])


def _refuse(reference: str, why: str) -> UnsafeReferenceError:
    return UnsafeReferenceError(f"image reference {describe_url(reference)} refused: {why}")


def _cloud_route(reference: str, task_id: int | None) -> str:
    if task_id is None:
        raise _refuse(reference, "a cloud storage URI resolves only for a task of the live project")
    encoded = base64.urlsafe_b64encode(reference.encode()).decode()
    return f"/tasks/{task_id}/resolve/?fileuri={encoded}"


def check_relative_path(relative: str) -> str:
    """A local-files path, refused when it is absolute or climbs out of the document root."""
    if not relative or "\x00" in relative or "\\" in relative:
        raise UnsafeReferenceError(f"local file path {relative!r} is empty or holds a NUL or a backslash")
    if relative.startswith("/") or ".." in relative.split("/"):
        raise UnsafeReferenceError(f"local file path {relative!r} leaves the document root; use a path relative to it")
    return posixpath.normpath(relative)


def local_file_path(relative: str, document_root: Path) -> Path:
    """The file behind a local-files path, never outside `document_root`, symlinks included."""
    check_relative_path(relative)
    root = Path(document_root).resolve()
    try:
        path = (root / relative).resolve()  # follows symlinks: a link pointing outside is caught here
    except (OSError, RuntimeError) as error:  # a symlink loop, a name too long
        raise UnsafeReferenceError(f"local file {relative!r} cannot be resolved ({type(error).__name__})") from None
    if not path.is_relative_to(root):
        raise UnsafeReferenceError(f"local file {relative!r} resolves outside the document root (a symlink leaving it)")
    return path


def _label_studio_target(reference: str, absolute: str, base_path: str) -> Target:
    parts = urlsplit(absolute)
    path = unquote(parts.path)
    if base_path and path.startswith(base_path + "/"):
        path = path[len(base_path) :]
    if "\x00" in path or "\\" in path or ".." in path.split("/") or "//" in path:
        raise _refuse(reference, "its path climbs out of where images live")
    clean = urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
    if path.startswith(UPLOAD_PREFIX) and len(path) > len(UPLOAD_PREFIX):
        return Target(clean, "upload", True)
    query = parse_qs(parts.query, keep_blank_values=True)
    if LOCAL_FILES_ROUTE.fullmatch(path):
        values = query.get("d", [])
        if len(values) != 1 or set(query) != {"d"}:
            raise _refuse(reference, "a local-files reference needs exactly one d=<path relative to the document root>")
        return Target(clean, "local-files", True, check_relative_path(values[0]))
    if STORAGE_ROUTE.fullmatch(path):
        if len(query.get("fileuri", [])) != 1:
            raise _refuse(reference, "a storage route needs exactly one fileuri=")
        return Target(clean, "storage", True)
    raise _refuse(
        reference,
        f"{path[:80]!r} on the Label Studio server is not where images live "
        "(uploads, local files, storage routes); it may be the API",
    )


def resolve(
    reference: object, ls_url: str | None, allowed_origins: tuple[str, ...] = (), task_id: int | None = None
) -> Target:
    """The Target of a task's image reference (or of a redirect's absolute URL); UnsafeReferenceError if refused."""
    try:
        return _resolve(reference, ls_url, allowed_origins, task_id)
    except ValueError as error:  # urllib's own complaints: an unbalanced IPv6 bracket, a bad port
        raise UnsafeReferenceError(
            f"image reference {str(reference)[:80]!r} refused: not a valid URL ({error})"
        ) from None


def _resolve(reference: object, ls_url: str | None, allowed_origins: tuple[str, ...], task_id: int | None) -> Target:
    if not isinstance(reference, str) or not reference.strip():
        raise UnsafeReferenceError(f"image reference {str(reference)[:80]!r} is not a non-empty string")
    if len(reference) > MAX_REFERENCE_LENGTH or any(ord(c) < 32 or ord(c) == 127 for c in reference):
        raise _refuse(reference, "too long or holds control characters")
    scheme = urlsplit(reference).scheme.lower()
    if scheme in CLOUD_SCHEMES:
        reference = _cloud_route(reference, task_id)
    elif scheme not in ("", "http", "https"):
        raise _refuse(reference, f"scheme {scheme!r} is not http(s); inline data and other schemes are not fetched")
    if ls_url is None and urlsplit(reference).scheme == "":
        ls_url = "http://label-studio.invalid"  # a saved export: its relative references name the server's shapes
    absolute = urljoin((ls_url or "").rstrip("/") + "/", reference)
    parts = urlsplit(absolute)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _refuse(reference, "it is not an http(s) URL with a host")
    if "@" in parts.netloc:
        raise _refuse(reference, "credentials inside a URL are never used")
    origin = origin_of(absolute)
    if ls_url is not None and origin == origin_of(ls_url):
        return _label_studio_target(reference, absolute, urlsplit(ls_url).path.rstrip("/"))
    if origin in {origin_of(o) for o in allowed_origins}:
        return Target(urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, "")), "external", False)
    raise _refuse(
        reference,
        f"it is on {origin}, neither the Label Studio server nor in pull.allowed_origins "
        "(add the origin there if it is trusted)",
    )

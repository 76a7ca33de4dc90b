"""Fetch task images by their references, safely: `fetch` (one) or `ImageFetcher.fetch` (many).

- The reference is resolved by `pipeline.labelstudio.references` (allowed shapes only); the
  Label Studio token goes only with the shapes that need it, on the server's origin.
- Other origins get no credentials of ours, only the headers a user configured for that
  origin in the environment variable SEGPIPE_ORIGIN_HEADERS (JSON: {"https://cdn.example.org":
  {"Authorization": "Bearer ..."}}); never the Label Studio token. No cookie is ever kept,
  so a session cookie of the server cannot reach another port of the same host.
- Redirects are followed by hand, each hop resolved by the same rules, at most MAX_REDIRECTS.
- The answer must be an image: an image (or generic binary) content type AND image magic
  bytes; the body is read up to a byte limit.
- local-files references are checked against the document root on this machine, when it is
  known, before anything is fetched: a symlink leaving the root is refused.
- Transient failures (connection errors, timeouts, 5xx, 429) are retried for a bounded time.
  Any failure of one file raises FetchError naming the status and the URL (the caller rejects
  that task); only an unreachable Label Studio raises LabelStudioError (the pull cannot go on).
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from pipeline.core.errors import FetchError, LabelStudioError, PipelineError, UnsafeReferenceError
from pipeline.core.images import image_suffix
from pipeline.labelstudio.references import Target, describe_url, local_file_path, origin_of, resolve

ORIGIN_HEADERS_ENV = "SEGPIPE_ORIGIN_HEADERS"
MAX_REDIRECTS = 5
MAX_IMAGE_BYTES = 512 * 2**20
BINARY_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
REDIRECTS = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class FetchSettings:
    """Where images may come from and how to ask; `ls_headers` are the server's credentials."""

    ls_url: str | None
    ls_headers: Mapping[str, str] = field(default_factory=dict)
    allowed_origins: tuple[str, ...] = ()
    origin_headers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    document_root: Path | None = None
    timeout_s: float = 30.0
    retry_total_s: float = 30.0
    max_bytes: int = MAX_IMAGE_BYTES


@dataclass(frozen=True)
class Fetched:
    """An image's bytes (None: unchanged since `etag`), its ETag and canonical suffix."""

    content: bytes | None
    etag: str | None
    suffix: str | None


class _Transient(Exception):
    """A retryable answer (5xx, 429), carried through tenacity."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def origin_headers_from_env(
    environ: Mapping[str, str] = os.environ, ls_url: str | None = None
) -> dict[str, dict[str, str]]:
    """Per-origin request headers from SEGPIPE_ORIGIN_HEADERS; never for the Label Studio origin."""
    text = environ.get(ORIGIN_HEADERS_ENV, "").strip()
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        raise PipelineError(
            f'{ORIGIN_HEADERS_ENV} is not JSON; expected {{"https://origin": {{"Header": "value"}}}}'
        ) from None
    if not isinstance(raw, dict) or not all(
        isinstance(h, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in h.items())
        for h in raw.values()
    ):
        raise PipelineError(f"{ORIGIN_HEADERS_ENV} must map origins to {{header: value}} objects of strings")
    headers = {origin_of(origin): dict(values) for origin, values in raw.items()}
    if ls_url and origin_of(ls_url) in headers:
        raise PipelineError(
            f"{ORIGIN_HEADERS_ENV} names the Label Studio origin; its credentials come from LABEL_STUDIO_API_KEY only"
        )
    return headers


def _no_cookies() -> http.cookiejar.CookieJar:
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


class ImageFetcher:
    """Fetches task images under `settings`; one HTTP connection pool, closed with `close()`."""

    def __init__(self, settings: FetchSettings):
        self.settings = settings
        # trust_env=False: no proxy variables and no ~/.netrc credentials sent to arbitrary hosts.
        self._http = httpx.Client(
            timeout=settings.timeout_s, follow_redirects=False, trust_env=False, cookies=_no_cookies()
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ImageFetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def resolve(self, reference: object, task_id: int | None = None) -> Target:
        """The Target of a reference under these settings (UnsafeReferenceError when refused)."""
        target = resolve(reference, self.settings.ls_url, self.settings.allowed_origins, task_id)
        if target.kind == "local-files" and self.settings.document_root is not None:
            local_file_path(target.local_path, self.settings.document_root)  # refuses symlinks leaving the root
        return target

    def fetch(self, reference: object, etag: str | None = None, task_id: int | None = None) -> Fetched:
        """The image behind a task reference; UnsafeReferenceError, FetchError or (server gone) LabelStudioError."""
        target, seen = self.resolve(reference, task_id), []
        while True:
            seen.append(target.url)
            response = self._get(target, etag)
            try:
                if response.status_code not in REDIRECTS:
                    return self._read(target, response, etag)
                location = response.headers.get("Location")
            finally:
                response.close()
            if not location:
                raise FetchError(
                    f"{describe_url(target.url)} answered HTTP {response.status_code} without a Location",
                    response.status_code,
                )
            try:
                target = resolve(
                    str(httpx.URL(target.url).join(location)), self.settings.ls_url, self.settings.allowed_origins
                )
            except UnsafeReferenceError as error:
                raise UnsafeReferenceError(
                    f"{describe_url(target.url)} redirected (HTTP {response.status_code}) "
                    f"to a place images are not taken from: {error}"
                ) from None
            if target.url in seen:
                raise FetchError(
                    f"redirect loop at {describe_url(target.url)} (after {len(seen)} hops)", response.status_code
                )
            if len(seen) > MAX_REDIRECTS:
                raise FetchError(
                    f"more than {MAX_REDIRECTS} redirects from {describe_url(seen[0])}", response.status_code
                )

    def _headers(self, target: Target, etag: str | None) -> dict[str, str]:
        if target.send_token:
            headers = dict(self.settings.ls_headers)
        else:
            headers = dict(self.settings.origin_headers.get(origin_of(target.url), {}))
        if etag:
            headers["If-None-Match"] = etag
        return headers

    def _get(self, target: Target, etag: str | None) -> httpx.Response:
        """Send one request, retrying transient failures; the response is open (streamed)."""

        def attempt() -> httpx.Response:
            response = self._http.send(
                self._http.build_request("GET", target.url, headers=self._headers(target, etag)), stream=True
            )
            if response.status_code >= 500 or response.status_code == 429:
                response.close()
                raise _Transient(response.status_code)
            return response

        started = time.monotonic()
        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, (_Transient, httpx.TransportError))),
            stop=stop_after_delay(self.settings.retry_total_s),
            wait=wait_exponential(multiplier=0.2, max=5.0),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Transient as error:
            raise FetchError(
                f"{describe_url(target.url)} answered HTTP {error.status} (retried for "
                f"{time.monotonic() - started:.1f} s)",
                error.status,
            ) from None
        except httpx.TransportError as error:
            elapsed = time.monotonic() - started
            server = self.settings.ls_url
            if target.send_token and server and isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout)):
                raise LabelStudioError(
                    f"download {describe_url(target.url)}: cannot reach Label Studio at {server} "
                    f"({type(error).__name__}) after retrying for {elapsed:.1f} s; is the server running "
                    "and LABEL_STUDIO_URL right?"
                ) from None
            raise FetchError(
                f"fetching {describe_url(target.url)} failed: {type(error).__name__} (retried for {elapsed:.1f} s)"
            ) from None

    def _read(self, target: Target, response: httpx.Response, etag: str | None) -> Fetched:
        where, status = describe_url(target.url), response.status_code
        if status == 304 and etag:
            return Fetched(None, etag, None)
        if status != 200:
            raise FetchError(f"{where} answered HTTP {status}", status)
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not (content_type.startswith("image/") or content_type in BINARY_TYPES):
            raise FetchError(f"{where} answered {content_type!r}, not an image; nothing was stored", status)
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.settings.max_bytes:
            raise FetchError(
                f"{where} is {int(declared):,} bytes, over the limit of {self.settings.max_bytes:,}", status
            )
        body = bytearray()
        try:
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > self.settings.max_bytes:
                    raise FetchError(f"{where} is over the limit of {self.settings.max_bytes:,} bytes", status)
        except httpx.TransportError as error:
            raise FetchError(f"reading {where} failed: {type(error).__name__}", status) from None
        suffix = image_suffix(bytes(body[:16]))
        if suffix is None:
            raise FetchError(
                f"{where} answered content that is not a PNG, JPEG, GIF, BMP, TIFF or WebP image; nothing was stored",
                status,
            )
        return Fetched(bytes(body), response.headers.get("ETag"), suffix)


def fetch(
    reference: object, settings: FetchSettings, *, etag: str | None = None, task_id: int | None = None
) -> Fetched:
    """One image under `settings`, with a connection opened and closed for it (use ImageFetcher for many)."""
    with ImageFetcher(settings) as fetcher:
        return fetcher.fetch(reference, etag, task_id)

"""The pages' static files (``static/``), read once from the package and served by name.

Pages link each file with its content hash (``/static/status.js?v=…``): a browser may keep a
versioned URL for good, and a new release changes the URL. An unversioned or stale URL is
cached briefly and revalidated with its ETag.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources

__all__ = ["STATIC_PREFIX", "Asset", "find_asset", "template"]

STATIC_PREFIX = "/static"

_MEDIA_TYPES = {
    "status.css": "text/css",
    "status.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}


_PACKAGE = "contact_import.web.pages"


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    body: bytes
    media_type: str
    version: str  # the first 16 hex digits of the body's SHA-256

    @property
    def url(self) -> str:
        return f"{STATIC_PREFIX}/{self.name}?v={self.version}"

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


@functools.cache
def find_asset(name: str) -> Asset | None:
    """The static file called ``name``; None for anything not on the list."""
    media_type = _MEDIA_TYPES.get(name)
    if media_type is None:
        return None
    body = resources.files(_PACKAGE).joinpath("static", name).read_bytes()
    return Asset(name, body, media_type, hashlib.sha256(body).hexdigest()[:16])


@functools.cache
def template(name: str) -> str:
    """The text of ``templates/<name>`` (a ``string.Template``)."""
    return resources.files(_PACKAGE).joinpath("templates", name).read_text("utf-8")

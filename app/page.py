"""The browser page at GET / (app/page.html; its files in app/static/)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from flask import Request, Response

STATIC = Path(__file__).resolve().parent / "static"
# Outside static/: the raw page, without its versioned asset URLs and its token setting, is not served as a file.
PAGE = Path(__file__).resolve().parent / "page.html"
ASSETS = ("page.css", "page.js", "icon.svg")
# Asset URLs carry a hash of their content, so a browser may keep them a day and still never mixes versions.
ASSET_MAX_AGE = 86400
AUTH_MARKER = 'data-auth="off"'


@dataclass(frozen=True)
class Page:
    html: bytes

    @classmethod
    def build(cls, auth: bool) -> "Page":
        """page.html with versioned asset URLs; ``auth`` tells the page to ask for the token first."""
        html = PAGE.read_text(encoding="utf-8")
        for name in ASSETS:
            digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
            html = html.replace(f'"/static/{name}"', f'"/static/{name}?v={digest}"')
        if auth:
            html = html.replace(AUTH_MARKER, 'data-auth="on"')
        return cls(html.encode("utf-8"))

    def response(self, request: Request) -> Response:
        """The page, revalidated on every visit (ETag), so a new version shows at once."""
        response = Response(self.html, mimetype="text/html")
        response.headers["Cache-Control"] = "no-cache"
        response.set_etag(hashlib.sha256(self.html).hexdigest()[:16])
        return response.make_conditional(request)

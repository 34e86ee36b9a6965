"""The ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) pages, served offline: their scripts and
styles ship in ``engine/serving/static`` (versions, licences and hashes in ``static/NOTICE``) and are
served from the app under ``/static/<name>``, from a fixed list (no path from the request reaches
the file system). The pages name no other host, Swagger UI's remote validator is off, and a
Content-Security-Policy keeps the browser's fetches, images and fonts on the endpoint itself.
Must not import the runtime, the API or the CLI.
"""

from __future__ import annotations

import functools
import html
from importlib import resources

ASSETS = {  # name -> media type; the only files /static serves
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-init.js": "text/javascript; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "NOTICE": "text/plain; charset=utf-8",
    "LICENSE.swagger-ui": "text/plain; charset=utf-8",
    "LICENSE.redoc": "text/plain; charset=utf-8",
}
CSP = "connect-src 'self'; img-src 'self' data:; font-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"

_SWAGGER = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="icon" type="image/png" href="{root}/static/favicon-32x32.png">
<link rel="stylesheet" href="{root}/static/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{root}/openapi.json"></div>
<script src="{root}/static/swagger-ui-bundle.js"></script>
<script src="{root}/static/swagger-init.js"></script>
</body>
</html>
"""

_REDOC = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="icon" type="image/png" href="{root}/static/favicon-32x32.png">
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<redoc spec-url="{root}/openapi.json" hide-download-button></redoc>
<script src="{root}/static/redoc.standalone.js"></script>
</body>
</html>
"""


def swagger_page(title: str, root: str = "") -> str:
    """The Swagger UI page (``root``: the ASGI root_path behind a proxy)."""
    return _SWAGGER.format(title=html.escape(title), root=html.escape(root))


def redoc_page(title: str, root: str = "") -> str:
    """The ReDoc page."""
    return _REDOC.format(title=html.escape(title), root=html.escape(root))


@functools.cache
def asset(name: str) -> tuple[bytes, str] | None:
    """(bytes, media type) of a shipped asset, or None if ``name`` is not one (read once, kept)."""
    media = ASSETS.get(name)
    if media is None:
        return None
    return resources.files("engine.serving").joinpath("static", name).read_bytes(), media

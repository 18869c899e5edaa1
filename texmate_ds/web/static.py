"""Static files (``/static/<name>``) from ``web/static/``, with conditional GET.

Files are read with ``pkgutil.get_data`` (so they work inside the .pyz) and
kept in memory: there are a handful of small ones. Only files that exist
are kept, so the cache holds at most what the package ships, whatever
names visitors ask for (a cache of misses grew by 160 MB for 20,000 made-up
names). Their content can only
change with a new version of texmate_ds, that is with a restart, so the
ETag is a hash of the content and Last-Modified is the time the site
started. Answers say ``Cache-Control: no-cache``: the browser asks every
time and mostly gets a body-less 304.
"""

import email.utils
import hashlib
import mimetypes
import pkgutil
import re

from texmate_ds.web import app

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


_loaded = {}


def _load(name):
    """(content, ETag, content type) of static file `name`; None if none."""
    found = _loaded.get(name)
    if found is None:
        found = _read(name)
        if found is not None:
            _loaded[name] = found
    return found


def _read(name):
    try:
        content = pkgutil.get_data(__package__, "static/" + name)
    except OSError:
        return None
    etag = '"%s"' % hashlib.sha256(content).hexdigest()[:32]
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype == "image/svg+xml":
        ctype += "; charset=utf-8"
    return content, etag, ctype


def _not_modified(environ, etag, modified):
    """RFC 9110 section 13.2.2: If-None-Match decides when present."""
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        tags = [t.strip() for t in if_none_match.split(",")]
        return "*" in tags or etag in tags or "W/" + etag in tags
    since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if since:
        try:
            return email.utils.parsedate_to_datetime(since).timestamp() >= modified
        except (TypeError, ValueError):
            return False  # a date we cannot read: send the file
    return False


@app.public
def static_file(request, name):
    found = _load(name) if _NAME.fullmatch(name) else None
    if found is None:
        raise app.HTTPError(404, "no static file %r" % name)
    content, etag, ctype = found
    modified = int(request.site.started)
    headers = [("ETag", etag), ("Last-Modified", email.utils.formatdate(modified, usegmt=True)),
               ("Cache-Control", "no-cache")]
    if _not_modified(request.environ, etag, modified):
        return app.Response(304, b"", None, headers)
    return app.Response(200, content, ctype, headers)


ROUTES = [app.Route("/static/<name>", static_file, "static")]

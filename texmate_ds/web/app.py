"""The web framework's building blocks: requests, responses, errors,
redirects, the routing table and the guards views declare.

Nothing here renders HTML or touches the database: `html.py` lays pages
out, `site.py` ties these pieces into the WSGI application, and the views
live in modules named for what they show.

* A route is a `Route`: ``Route("/units/<code>/", unit_page, "unit")``,
  with ``methods=("GET", "POST")`` where it takes more than GET, and
  ``files=True`` where its form carries files (multipart/form-data, read
  by `texmate_ds.multipart`; every other route refuses that with 415).
  ``body_limit`` is the longest body its POST may have (a form's
  MAX_FORM_BYTES unless it says more): the HTTP server asks the site
  (``Site.body_limit``, which finds the route as `Router.find` will)
  before it reads a byte of a body, and answers 413 beyond it. Patterns
  are bottle style: ``<code>`` captures one path segment as the keyword
  argument ``code`` (a str); ``<id:int>`` captures digits as an int. A GET
  route answers HEAD too.
* Its name is for reverse lookup, bottle's ``build`` and starlette's
  ``url_path_for``: ``Router.url_for("unit", code="A1")`` (or positional
  arguments in the pattern's order) gives ``/units/A1/``, each segment
  percent-encoded; ``request.url_for`` in views, ``{% url 'unit' code %}``
  in templates. So an address is written once, in its route.
* `group(prefix, routes, guard)` mounts routes under a prefix, each behind
  the group's guard as well as its view's (the admin: ``/admin`` and
  `staff`). A group guard is ``admit(request)``: None lets the request
  on, a Response (a redirect) answers instead, or it raises HTTPError. It
  runs once the view's own guard has admitted the request, just before
  the view.
* `Router.match(method, path)` returns ``(view, kwargs)`` or raises
  `HTTPError` 404, or 405 with an ``Allow`` header when only the method is
  wrong, or 501 for a method no route has. Routes without parameters are
  found in a dict; only the others are tried one by one.
* A view is ``view(request, **kwargs) -> Response`` and declares who may
  reach it with one guard decorator: `public`, `page`, `signed_in` or
  `data`. The guard also decides how refusals and errors look: text/plain
  for data views, an HTML page for the rest. A view without a guard cannot
  be routed (`Router` refuses it), so nothing is open by omission.
"""

import functools
import http
import re
from urllib.parse import parse_qsl, quote

from texmate_ds import multipart
from texmate_ds.loop import printable  # noqa: F401  (the web logs with app.printable)
from texmate_ds.web.access import Access

# Where the browser keeps the session token and, before sign-in, the
# anonymous CSRF token.
SESSION_COOKIE = "txm_session"
CSRF_COOKIE = "txm_csrf"
# The form field every state-changing form carries.
CSRF_FIELD = "csrf_token"
# Urlencoded form bodies larger than this are refused (413); so is any
# body larger than this on a route that does not say it takes more.
MAX_FORM_BYTES = 65536
FORM_TYPE = "application/x-www-form-urlencoded"


class HTTPError(Exception):
    """A refusal: `status` (int), a one-line `reason` shown to the client,
    and extra `headers` (e.g. ``Allow``, ``Retry-After``)."""

    def __init__(self, status, reason, headers=()):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = list(headers)


def unauthorized(reason):
    """401 asking for a Bearer token (RFC 6750)."""
    return HTTPError(401, reason, [("WWW-Authenticate", 'Bearer realm="texmate_ds"')])


class Response:
    """`body` is bytes, str (sent as UTF-8) or an iterable of bytes, which
    is streamed chunk by chunk. `content_type` None sends none (304)."""

    def __init__(self, status=200, body=b"", content_type="text/html; charset=utf-8",
                 headers=()):
        self.status = status
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.headers = list(headers)
        if content_type is not None:
            self.headers.insert(0, ("Content-Type", content_type))

    @property
    def status_line(self):
        return status_line(self.status)


class Later:
    """A view's answer that takes long to work out (a graph over a million
    samples, statistics over a year, a password hash): ``compute(store)``
    returns a value and ``finish(value)`` the `Response` (no `finish`: the
    value is the Response). Under texmate_ds's own server `compute` runs on
    a worker thread with that thread's store, so the loop serves meters
    meanwhile, and `finish` back on the loop thread; under any other WSGI
    server both run at once on the site's store. `compute` never uses the
    request's store, and reads (its store sees committed data); writes
    belong in `finish`, which runs as the view would have (a POST's in
    its savepoint). The one exception is a write too long for the loop,
    the admin's CSV import: its `compute` writes and commits on its own
    store in one transaction of its own, as ``manage`` does from another
    process."""

    def __init__(self, compute, finish=None):
        self.compute = compute
        self.finish = finish


def run_chore(request, name, step, done=None):
    """Have a long write done in chunks (`texmate_ds.chores`): ``step()``
    does one bounded chunk of writes through ``request.store`` and returns
    True once nothing is left; ``done(chore)`` follows once, when it is
    over (``chore.outcome``: finished, failed or stopped). Under
    texmate_ds's server a chunk goes each loop turn, after this answer, so
    meters are served meanwhile; under any other WSGI server every chunk
    runs once the view has returned, each committed. Either way nothing
    starts before the view has returned, and a view that fails leaves no
    chore behind. Returns the `chores.Chore` (its ``progress``); 503 when
    the server has as many chores queued as it takes."""
    return request.site.run_chore(request, name, step, done)


def active_chores(request):
    """The chores the server has queued (`chores.Chore`: ``name``,
    ``progress``, ``steps``), the next to take a step first; none under
    another WSGI server, where a chore is over before its view answers."""
    return request.site.active_chores(request)


def status_line(status):
    """``404 Not Found`` for 404."""
    return "%d %s" % (status, http.HTTPStatus(status).phrase)


def text(status, body, headers=()):
    """A text/plain answer, one line per line of `body`."""
    return Response(status, body, "text/plain; charset=utf-8", headers)


# Reserved and unreserved URL characters and '%': quote() leaves a URL that
# is already valid alone and encodes anything else (spaces, non-ASCII).
_URL_SAFE = "/?#[]@!$&'()*+,;=:%-._~"


def redirect(location, status=302):
    return Response(status, b"", None, [("Location", quote(location, safe=_URL_SAFE))])


def local_path(target):
    """`target` if it is a path on this site (``/...``), else ``/``: a
    ``next`` parameter must never send a visitor to another host."""
    if (not target.startswith("/") or target.startswith("//") or "\\" in target
            or not target.isprintable()):
        return "/"
    return target


# -- requests -----------------------------------------------------------------

class Params(dict):
    """Query or form parameters: name -> value (str). A name given more
    than once is a 400 when read as one value (``params["x"]``, ``get``),
    rather than a guess at which was meant; `getlist` reads every value
    of a name a form may repeat (checkboxes, a multiple select)."""

    def __init__(self, pairs, what):
        super().__init__()
        self.what = what
        self.lists = {}
        for name, value in pairs:
            self.lists.setdefault(name, []).append(value)
            self.setdefault(name, value)

    def _single(self, name):
        if len(self.lists.get(name, ())) > 1:
            raise HTTPError(400, "%s: %r given twice" % (self.what, name[:40]))

    def __getitem__(self, name):
        self._single(name)
        return super().__getitem__(name)

    def get(self, name, default=None):
        self._single(name)
        return super().get(name, default)

    def getlist(self, name):
        return list(self.lists.get(name, ()))


def _pairs(data, what):
    """Urlencoded `data` (str) as `Params`; a non-UTF-8 name or value is a
    400."""
    try:
        pairs = parse_qsl(data, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise HTTPError(400, "%s is not valid UTF-8" % what) from None
    return Params(pairs, what)


def decoded_path(path_info):
    """The path a view sees: WSGI hands PATH_INFO over as latin-1 text,
    the browser sent UTF-8."""
    return path_info.encode("latin-1").decode("utf-8", "replace") or "/"


def cookies(header):
    """{name: value} of a Cookie header (the first of a name repeated)."""
    cookies = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        cookies.setdefault(name, value)
    return cookies


class Request:
    """One HTTP request as the views see it.

    `path` is the decoded path; `query` and `form` are `Params` (parsed
    when first used; a bad one raises HTTPError 400); `files` holds the
    form's files, {name: `multipart.Upload`}, on a route that takes them
    (`route`, set once the request is routed); `user` is the signed-in
    user (a `store.User`), or None; `bearer` is True when an API token signed
    it in. `site` is the application (its `store`, `settings`, `metrics`).
    `access` says what the visitor may do and which units they see.
    """

    def __init__(self, environ, site):
        self.environ = environ
        self.site = site
        self.store = site.store
        self.settings = site.settings
        # Methods are case-sensitive (RFC 9110 9.1): "get" is not GET.
        self.method = environ["REQUEST_METHOD"]
        self.path = decoded_path(environ.get("PATH_INFO", ""))
        self.query_string = environ.get("QUERY_STRING", "")
        self.cookies = cookies(environ.get("HTTP_COOKIE", ""))
        self.remote_addr = environ.get("REMOTE_ADDR", "")
        self.user = None
        self.bearer = False
        # The guard whose style errors take (set by the site as it routes).
        self.guard = None
        self.session = None  # auth.Session when signed in by cookie
        self.set_cookies = []  # Set-Cookie header values for the answer
        self.route = None   # the Route, once routed
        # (Chores or None, chore) for each run_chore: the site runs or
        # cancels them once the view is done.
        self.chores = []
        self._form = None
        self._files = {}

    @property
    def full_path(self):
        return self.path + ("?" + self.query_string if self.query_string else "")

    @functools.cached_property
    def query(self):
        return _pairs(self.query_string, "query string")

    @property
    def form(self):
        if self._form is None:
            self._form = self._read_form()
        return self._form

    @property
    def files(self):
        """{name: `multipart.Upload`} of a multipart form, on a route with
        ``files=True`` (empty otherwise). Each is closed, and its
        temporary file gone, once the answer is made (see site.py)."""
        self.form
        return self._files

    def close(self):
        """Close the form's uploads."""
        for upload in self._files.values():
            upload.close()

    def _read_form(self):
        if self.method in ("GET", "HEAD"):
            return Params((), "form")
        ctype = self.environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise HTTPError(400, "bad Content-Length") from None
        files = self.route is not None and self.route.files
        if length and files and ctype == multipart.FORM_DATA:
            return self._read_multipart(length)
        if length and ctype != FORM_TYPE:
            raise HTTPError(415, "forms must be sent as %s" % (
                FORM_TYPE + " or " + multipart.FORM_DATA if files else FORM_TYPE))
        if length > MAX_FORM_BYTES:
            raise HTTPError(413, "form larger than %d bytes" % MAX_FORM_BYTES)
        body = self.environ["wsgi.input"].read(length) if length > 0 else b""
        try:
            data = body.decode("ascii")
        except UnicodeDecodeError:
            raise HTTPError(400, "form body: urlencoded text expected") from None
        return _pairs(data, "form")

    def _read_multipart(self, length):
        # Our server has refused a longer body already; another WSGI
        # server may not have asked.
        if length > self.route.body_limit:
            raise HTTPError(413, "form larger than %d bytes" % self.route.body_limit)
        try:
            fields, self._files = multipart.read_form(self.environ)
        except multipart.MultipartError as error:
            raise HTTPError(400, "form: " + error.reason) from None
        return Params(fields.items(), "form")

    def url_for(self, name, *args, **kwargs):
        """The path of the route `name` (see `Router.url_for`)."""
        return self.site.router.url_for(name, *args, **kwargs)

    @functools.cached_property
    def access(self):
        """What this visitor may do and see (`access.Access`), worked out
        when first asked."""
        return Access(self.store, self.user)

    @property
    def csrf_token(self):
        """The token this visitor's forms must carry (see site.py)."""
        return self.site.csrf_token(self)

    def set_cookie(self, name, value, max_age=None):
        """Send a cookie: HttpOnly, SameSite=Lax, whole site; Secure when the
        request came over HTTPS. `max_age` None: until the browser closes."""
        parts = ["%s=%s" % (name, value), "Path=/", "HttpOnly", "SameSite=Lax"]
        if max_age is not None:
            parts.append("Max-Age=%d" % max_age)
        if self.environ.get("wsgi.url_scheme") == "https":
            parts.append("Secure")
        self.set_cookies.append("; ".join(parts))


# -- guards -------------------------------------------------------------------

def with_next(request, name, target):
    """The route `name`'s path asking to go on to `target` afterwards."""
    return request.url_for(name) + "?next=" + quote(target, safe="")


def to_login(request):
    return redirect(with_next(request, "login", request.full_path))


def _admit_anyone(request):
    return None


def _admit_page(request):
    if request.user is None:
        return to_login(request) if request.settings.LOGIN_REQUIRED else None
    if request.user.must_change_password:
        return redirect(with_next(request, "password", request.full_path))
    return None


def _admit_signed_in(request):
    return to_login(request) if request.user is None else None


def _admit_data(request):
    if request.user is None:
        if request.settings.LOGIN_REQUIRED:
            raise unauthorized("sign in, or send Authorization: Bearer TOKEN")
    elif request.user.must_change_password:
        raise HTTPError(403, "change the default password first, on %s"
                        % request.url_for("password"))
    return None


class Guard:
    """Who may reach a view, and how its refusals look.

    `admit(request)` returns None to let the request in, a Response (a
    redirect) to answer instead, or raises HTTPError. `bearer`: an
    ``Authorization: Bearer`` header signs the request in. `text_errors`:
    errors are one text/plain line rather than an HTML page.
    """

    def __init__(self, name, admit, bearer=False, text_errors=False):
        self.name = name
        self.admit = admit
        self.bearer = bearer
        self.text_errors = text_errors

    def __call__(self, view):
        view.guard = self
        return view

    def __repr__(self):
        return "<guard %s>" % self.name


# Anyone, signed in or not: /login/, /healthz, static files.
public = Guard("public", _admit_anyone)
# A page: anonymous visitors go to /login/ when LOGIN_REQUIRED; a user who
# must change the password goes to /password/ first.
page = Guard("page", _admit_page)
# A page that always needs a signed-in user (even with LOGIN_REQUIRED: no)
# and stays reachable while the password must change: /password/.
signed_in = Guard("signed_in", _admit_signed_in)
# A data endpoint: session or Bearer token; anonymous -> 401 when
# LOGIN_REQUIRED; errors in text/plain.
data = Guard("data", _admit_data, bearer=True, text_errors=True)


def require_staff(request):
    """For views only staff may see (/metrics): 401 anonymous, 403 others."""
    if request.user is None:
        raise unauthorized("staff only: sign in, or send Authorization: Bearer TOKEN")
    if not request.user.is_staff:
        raise HTTPError(403, "staff only")


def staff(request):
    """A group guard: staff only. On a page an anonymous visitor is sent to
    sign in; otherwise as `require_staff`."""
    if request.user is None and not request.guard.text_errors:
        return to_login(request)
    require_staff(request)
    return None


# -- routing ------------------------------------------------------------------

_PARAM = re.compile(r"<([a-z_][a-z0-9_]*)(?::(int))?>")


def _takes_body(method):
    return method not in ("GET", "HEAD")


class Route:
    """`view` answering `methods` at `pattern`, known as `name` (None: it
    cannot be looked up). `files`: its form may be multipart/form-data,
    with files (`Request.files`). `body_limit`: the longest request body
    it takes, in bytes (a GET or HEAD never takes one)."""

    def __init__(self, pattern, view, name=None, methods=("GET",), files=False,
                 body_limit=MAX_FORM_BYTES):
        if not isinstance(getattr(view, "guard", None), Guard):
            raise TypeError("view %s for %s has no guard (public, page, signed_in, "
                            "data)" % (view.__name__, pattern))
        self.pattern, self.view, self.name, self.methods = pattern, view, name, tuple(methods)
        if files and not any(map(_takes_body, self.methods)):
            raise ValueError("the route %s takes files but no method with a body" % pattern)
        self.files, self.body_limit = files, body_limit
        # The pattern as literal text and (parameter, is an int) pairs.
        self.parts, end = [], 0
        for found in _PARAM.finditer(pattern):
            self.parts += [pattern[end:found.start()], (found.group(1), bool(found.group(2)))]
            end = found.end()
        self.parts.append(pattern[end:])
        self.parameters = [part for part in self.parts if isinstance(part, tuple)]
        self.regex = re.compile("".join(
            "(?P<%s>%s)" % (part[0], "[0-9]{1,18}" if part[1] else "[^/]+")
            if isinstance(part, tuple) else re.escape(part) for part in self.parts))

    def answers(self, method):
        return method in self.methods or (method == "HEAD" and "GET" in self.methods)

    def arguments(self, found):
        args = found.groupdict()
        for name, is_int in self.parameters:
            if is_int:
                args[name] = int(args[name])
        return args

    def build(self, args, kwargs):
        names = [name for name, _ in self.parameters]
        if args and kwargs:
            raise TypeError("url_for(%r): arguments by position or by name, not both" % self.name)
        values = dict(zip(names, args)) if args else kwargs
        if len(args) > len(names) or sorted(values) != sorted(names):
            raise TypeError("url_for(%r) takes %s, not %s" % (
                self.name, ", ".join(names) or "no arguments",
                ", ".join(map(str, args)) or ", ".join(kwargs)))
        path = []
        for part in self.parts:
            if isinstance(part, str):
                path.append(part)
                continue
            value = values[part[0]]
            if part[1]:
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError("url_for(%r): %s must be a whole number, not %r" % (
                        self.name, part[0], value))
                path.append(str(value))
            elif str(value) == "":
                raise ValueError("url_for(%r): %s is empty" % (self.name, part[0]))
            else:
                path.append(quote(str(value), safe=""))
        return "".join(path)


def group(prefix, routes, guard=None):
    """`routes` under `prefix` (``/admin``: their patterns follow it, so
    ``/`` there is ``/admin/``), each also behind `guard` (see above)."""
    if not prefix.startswith("/") or prefix.endswith("/"):
        raise ValueError("a group's prefix starts with / and does not end with one: %r"
                         % prefix)
    return [Route(prefix + route.pattern, _guarded(route.view, guard), route.name,
                  route.methods, route.files, route.body_limit) for route in routes]


def _guarded(view, guard):
    if guard is None:
        return view

    @functools.wraps(view)      # keeps the view's own guard, and its name
    def guarded(request, **args):
        refusal = guard(request)
        return view(request, **args) if refusal is None else refusal
    return guarded


class Router:
    """The routing table, from a list of `Route`. `largest_body` is the
    longest body any of them takes."""

    def __init__(self, routes):
        self.static = {}        # path -> {method: Route}
        self.dynamic = []
        self.names = {}
        self.largest_body = MAX_FORM_BYTES
        taken = set()
        for route in routes:
            for method in route.methods:
                if (method, route.pattern) in taken:
                    raise ValueError("two routes for %s %s" % (method, route.pattern))
                taken.add((method, route.pattern))
            if route.name is not None:
                if route.name in self.names:
                    raise ValueError("two routes named %r" % route.name)
                self.names[route.name] = route
            if route.parameters:
                self.dynamic.append(route)
            else:
                routes_at = self.static.setdefault(route.pattern, {})
                routes_at.update((method, route) for method in route.methods)
            if any(map(_takes_body, route.methods)):
                self.largest_body = max(self.largest_body, route.body_limit)
        self.methods = {method for method, _ in taken} | {"HEAD"}

    def match(self, method, path):
        """``(view, kwargs)`` for `method` on `path`, as `find` has it."""
        route, args = self.find(method, path)
        return route.view, args

    def find(self, method, path):
        """``(Route, kwargs)`` for `method` on `path`; HTTPError 404 or 405,
        or 501 for a method no route has (RFC 9110 15.6.2)."""
        if method not in self.methods:
            raise HTTPError(501, "the method %s is not implemented here" % printable(method))
        allowed = []
        routes_at = self.static.get(path)
        if routes_at is not None:
            route = routes_at.get(method) or (routes_at.get("GET") if method == "HEAD" else None)
            if route is not None:
                return route, {}
            allowed.extend(routes_at)
        for route in self.dynamic:
            found = route.regex.fullmatch(path)
            if found is None:
                continue
            if route.answers(method):
                return route, route.arguments(found)
            allowed.extend(route.methods)
        if allowed:
            if "GET" in allowed:
                allowed.append("HEAD")
            raise HTTPError(405, "%s is not allowed here" % method,
                            [("Allow", ", ".join(sorted(set(allowed))))])
        raise HTTPError(404, "no page at this address")

    def url_for(self, name, *args, **kwargs):
        """The path of the route `name` with its parameters filled in, by
        position or by name: LookupError for no such route, TypeError or
        ValueError for arguments that do not fit it."""
        route = self.names.get(name)
        if route is None:
            raise LookupError("no route named %r" % name)
        return route.build(args, kwargs)

"""The site: every view module's routes in one table, and the WSGI
application that takes each request through the same steps:

1. sign in from the session cookie;
2. route (404, or 405 with Allow; ``/login`` -> 301 ``/login/``); where the
   view's guard takes tokens, an ``Authorization: Bearer`` header signs in
   instead of the cookie;
3. the guard admits, redirects to /login/ or /password/, or refuses;
4. any other method than GET/HEAD must carry the CSRF token in its form,
   unless a Bearer token signed it in (a browser never sends one by itself):
   403 and the view never runs. On a route that takes files the form may
   be multipart, read whole for the check (each file into a temporary
   file, closed once the answer is made);
5. the view answers. An `app.HTTPError` becomes a one-line answer in the
   guard's style; any other exception is logged with its traceback and
   answers 500 without one. Either way the writes of a POST's view are
   undone (`Database.atomic`), while the rest of the shared transaction, the
   meters' uploads, goes on to its commit, and the chores it asked for
   (`app.run_chore`) are cancelled before their first chunk.

The site's own HTTP apps ([httpapps]) are mounted beside the site, not in
it (`http.Mounted`), and run no step of it: `Site.mount` only tells each
request who signed in, under ``environ["texmate.user"]`` (`USER`): an
`access.Visitor`, or None for a visitor not signed in by the session
cookie or who must still change the default password (the UI lets such a
one no further than /password/, nor may an app). What to do with an
anonymous visitor is the app's to decide. An app with tables of its own
(its admin.py's models) finds their rows under ``environ["texmate.tables"]``
(`TABLES`), by model name.

CSRF tokens: a signed-in visitor's forms carry the session's secret. A
visitor without a session (the sign-in form) gets a random ``txm_csrf``
cookie and forms carry its HMAC (signed double submit) under the site's
key, made once and kept in the database (`store.site_secrets`): any
process sharing the database checks a form another one served, and a
restart changes nothing.
"""

import hmac
import logging
import re
import secrets
import time
import types

from texmate_ds import auth, chores

# The environ keys under which our own HTTP server offers its worker pool
# and its chores, and what the pool raises when this client has its share
# of it in use already.
from texmate_ds.http import CHORES, OFFLOAD, Busy, largest_body_of, limit_of
from texmate_ds.web import (
    access,
    account,
    admin,
    app,
    html,
    live,
    ops,
    pages,
    static,
    units,
)

log = logging.getLogger("texmate_ds.web")

ROUTES = (account.ROUTES + pages.ROUTES + units.ROUTES + admin.ROUTES + live.ROUTES
          + ops.ROUTES + static.ROUTES)

# Sent with every answer: no MIME sniffing, no framing, no leaking of URLs
# (a `next` parameter) to other sites.
SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
]

_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")

# The environ keys under which a site HTTP app finds who signed in, and
# the rows of its own tables (those its admin.py declares), by model name.
USER = "texmate.user"
TABLES = "texmate.tables"

# The name of the key a visitor's CSRF token is signed with, among the
# site's secrets.
CSRF_SECRET = "csrf"


class Site:
    """The web UI as a WSGI callable (see the package docstring)."""

    def __init__(self, store, settings, metrics=None, routes=ROUTES, live=None,
                 admin_models=()):
        self.store = store
        self.settings = settings
        self.metrics = metrics
        # The server's event bus and loop, for /events (`live.Live`); None
        # under another WSGI server.
        self.live = live
        self.router = app.Router(routes)
        # The admin's models (web/admin), which its views look up by name:
        # the built-in ones and those the HTTP apps declare.
        self.admin = admin.ADMIN.extended(admin_models)
        # What http.HTTPServer lets a request's head announce at most.
        self.largest_body = self.router.largest_body
        self.started = time.time()
        self.throttle = auth.Throttle()

    def __call__(self, environ, start_response):
        request = app.Request(environ, self)
        response = self.respond(request)
        if isinstance(response, app.Later):
            later = response
            offload = environ.get(OFFLOAD)
            if offload is None:
                value = self._failures(request, lambda: later.compute(self.store))
                response = self._finish(request, later, value)
            else:
                try:
                    return offload(
                        lambda store: self._computed(request, later, store),
                        lambda value: self._answer(
                            request, self._finish(request, later, value), start_response))
                except Busy:
                    response = self._error(request, request.guard, app.HTTPError(
                        503, "too many slow requests from your address at once; retry in a "
                             "moment", [("Retry-After", "1")]))
        return self._answer(request, response, start_response)

    def _computed(self, request, later, store):
        """`later` worked out on a worker's `store`, whose cached rows go
        first if another connection changed them (the loop's, another
        process's), as every request's do."""
        store.notice_others()
        return self._failures(request, lambda: later.compute(store))

    def mount(self, application, models=()):
        """The site HTTP app `application` as the server mounts it beside
        the site: each request with ``environ[USER]`` (the module
        docstring), and ``environ[TABLES]`` the rows of its admin `models`
        (`tables.TableAdmin` s) by model name."""
        return _SiteApp(self, application, {
            model.name.split(".", 1)[1]: self.store.app_tables.rows(model.table)
            for model in models})

    def visitor(self, environ):
        """The `access.Visitor` a request's session cookie signs in, or None."""
        secret = app.cookies(environ.get("HTTP_COOKIE", "")).get(app.SESSION_COOKIE)
        session = auth.find_session(self.store, secret)
        if session is None or session.user.must_change_password:
            return None
        return access.Visitor(self.store, session.user)

    def body_limit(self, method, path):
        """The longest request body the server reads for `method` on `path`
        (PATH_INFO; http.HTTPServer asks before reading any, and answers
        413 beyond it): none for GET and HEAD, else the `body_limit` of the
        route the request will reach; a form's MAX_FORM_BYTES where none
        answers (it will be refused all the same)."""
        if method in ("GET", "HEAD"):
            return 0
        try:
            route, _ = self.router.find(method, app.decoded_path(path))
        except app.HTTPError:
            return app.MAX_FORM_BYTES
        return route.body_limit

    def _finish(self, request, later, value):
        """A `Later`'s Response from its computed value (which is already
        an error answer when `compute` failed)."""
        if later.finish is None or isinstance(value, app.Response):
            return value
        return self._failures(request, lambda: self._saving(request, lambda: later.finish(value)))

    def _saving(self, request, answer):
        """`answer()`; a POST's inside its savepoint, so that it leaves no
        writes behind when it fails (`Database.atomic`). Then the chores it
        asked for (`run_chore`) are cancelled if it failed, and without the
        server's loop run to their end now that its writes are in."""
        try:
            if request.method in ("GET", "HEAD"):
                response = answer()
            else:
                with self.store.atomic():
                    response = answer()
        except BaseException:
            for owner, chore in request.chores:
                if owner is not None:
                    owner.cancel(chore)
            request.chores = []
            raise
        waiting, request.chores = request.chores, []
        for owner, chore in waiting:
            if owner is None:
                chores.run_at_once(self.store, chore)
        return response

    def run_chore(self, request, name, step, done):
        """See `app.run_chore`: the server's Chores (environ CHORES) when it
        has them, else a chore that `_saving` runs at once."""
        owner = request.environ.get(CHORES)
        if owner is None:
            chore = chores.Chore(name, step, done)
        else:
            try:
                chore = owner.submit(name, step, done)
            except chores.Busy:
                raise app.HTTPError(503, "the server has as many long jobs queued as it "
                                         "takes; retry in a minute", [("Retry-After", "60")])
        request.chores.append((owner, chore))
        return chore

    @staticmethod
    def active_chores(request):
        """See `app.active_chores`."""
        owner = request.environ.get(CHORES)
        return [] if owner is None else owner.active()

    def _answer(self, request, response, start_response):
        # The view (or a Later's compute and finish) is done with the
        # form's files: their disk is freed now, not when garbage is.
        request.close()
        headers = response.headers + SECURITY_HEADERS
        headers += [("Set-Cookie", cookie) for cookie in request.set_cookies]
        body = response.body
        if isinstance(body, bytes):
            headers.append(("Content-Length", str(len(body))))
            body = [body]
        if request.method == "HEAD":
            if hasattr(body, "close"):
                body.close()
            body = []
        start_response(response.status_line, headers)
        return body

    def respond(self, request):
        """The view's answer: a Response, or an `app.Later` to compute."""
        request.guard = app.page  # errors before routing look like pages
        return self._failures(request, lambda: self._run_view(request))

    def _run_view(self, request):
        self._sign_in_by_cookie(request)
        try:
            request.route, args = self.router.find(request.method, request.path)
        except app.HTTPError as error:
            twin = self._slash_twin(request) if error.status == 404 else None
            if twin is None:
                raise
            return twin
        view = request.route.view
        request.guard = guard = view.guard
        if guard.bearer:
            self._sign_in_by_token(request)
        refusal = guard.admit(request)
        if refusal is not None:
            return refusal
        if request.method not in ("GET", "HEAD") and not request.bearer:
            self._check_csrf(request)
        return self._saving(request, lambda: view(request, **args))

    def _failures(self, request, answer):
        """`answer()`, with an `app.HTTPError` answered in the guard's style
        and any other exception logged and answered 500 without details."""
        try:
            return answer()
        except app.HTTPError as error:
            return self._error(request, request.guard, error)
        except Exception:
            log.exception("%s %s failed", request.method, app.printable(request.full_path))
            return self._error(request, request.guard, app.HTTPError(
                500, "internal error; it has been logged"))

    def _sign_in_by_token(self, request):
        """An Authorization header, when sent, decides alone who this is."""
        header = request.environ.get("HTTP_AUTHORIZATION")
        if header is None:
            return
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise app.unauthorized("Authorization: expected Bearer TOKEN")
        request.session = None
        request.user = auth.token_user(self.store, secret.strip())
        if request.user is None:
            raise app.unauthorized("unknown or revoked API token")
        request.bearer = True

    def _sign_in_by_cookie(self, request):
        secret = request.cookies.get(app.SESSION_COOKIE)
        request.session = auth.find_session(self.store, secret)
        if request.session is not None:
            request.user = request.session.user
        elif secret:
            # Expired or ended elsewhere: the browser may as well forget it.
            request.set_cookie(app.SESSION_COOKIE, "", max_age=0)

    def _slash_twin(self, request):
        """301 to `path/` when only that has a route (``/login``)."""
        if request.path.endswith("/"):
            return None
        try:
            self.router.match(request.method, request.path + "/")
        except app.HTTPError:
            return None
        return app.redirect(request.path + "/" + (
            "?" + request.query_string if request.query_string else ""), 301)

    @staticmethod
    def _error(request, guard, error):
        if guard.text_errors:
            return app.text(error.status, error.reason + "\n", error.headers)
        return html.error_page(request, error)

    # -- CSRF -----------------------------------------------------------------

    def csrf_token(self, request):
        if request.session is not None:
            return request.session.csrf
        visitor = request.cookies.get(app.CSRF_COOKIE, "")
        if not _TOKEN.fullmatch(visitor):
            visitor = request.cookies[app.CSRF_COOKIE] = secrets.token_urlsafe(32)
            request.set_cookie(app.CSRF_COOKIE, visitor)
        key = self.store.site_secrets.get(CSRF_SECRET)
        return hmac.new(key, visitor.encode(), "sha256").hexdigest()

    def _check_csrf(self, request):
        given = request.form.get(app.CSRF_FIELD, "")
        if not hmac.compare_digest(given.encode(), request.csrf_token.encode()):
            raise app.HTTPError(403, "this form has expired or did not come from this "
                                     "site (CSRF check failed): reload it and try again")



class _SiteApp:
    """A site HTTP app mounted by `Site.mount`: the app's own body limits
    (what `http.Mounted` asks of it), and `USER` in each request."""

    def __init__(self, site, application, tables):
        self.site = site
        self.application = application
        self.tables = types.MappingProxyType(tables)
        self.largest_body = largest_body_of(application)

    def body_limit(self, method, path):
        return limit_of(self.application, method, path)

    def __call__(self, environ, start_response):
        environ[USER] = self.site.visitor(environ)
        environ[TABLES] = self.tables
        return self.application(environ, start_response)

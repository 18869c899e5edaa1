"""The web UI as a WSGI application (docs/web.md).

``make_app(store, settings, metrics=None)`` returns the WSGI callable. The
server passes its own `store.Database` (the one the TTP side uses) and a
zero-argument `metrics` callable returning Prometheus text (None: /metrics
answers 404). Any WSGI server can run it; the tests use wsgiref.

The contract for view modules
-----------------------------

Modules: `app` (framework: Request, Response, HTTPError, redirect, routes
and their names, groups, guards), `html` (page templates, the layout,
error pages, paging), `site` (the routing table and the WSGI callable),
and the views: `account` (sign-in, sign-out, password), `pages` (home,
displays), `units` (unit page, data endpoints), `ops` (/healthz,
/metrics), `static`.

Adding a route: append ``app.Route(pattern, view, name,
methods=("GET",))`` to your module's ``ROUTES`` list (`site.ROUTES`
concatenates them). ``/units/<code>/`` passes ``code=`` (str, one path
segment); ``/views/<id:int>/`` passes an int. A GET route answers HEAD as
well. ``/x`` redirects to ``/x/`` when only the latter exists. Routes that
share a prefix, or a guard, are a group: ``app.group("/admin", [...],
app.staff)`` (patterns in it start with ``/``; ``"/"`` is ``/admin/``).

A route whose form carries files says ``files=True``, and one whose body
may be longer than a form's 64 KiB says how long:
``app.Route("/units/<code>/import/", import_csv, "unit_import",
methods=("GET", "POST"), files=True, body_limit=256 * 1024 * 1024)``
(a group keeps both). The server answers 413 to a longer Content-Length
before the body is sent; a route without ``files`` answers a multipart
form 415.

Addresses are written once, in the routes: a view links with
``request.url_for("unit", code=unit.code)`` (or ``request.url_for("unit",
unit.code)``), a template with ``{% url 'unit' row.unit.code %}``; both
percent-encode each parameter. Route names: ``home``, ``display``,
``login``, ``logout``, ``password``, ``unit``, ``unit_graph``,
``unit_csv``, ``unit_json``, ``unit_stats``, ``unit_last``, ``healthz``,
``metrics``, ``static``.

A view is ``view(request, **captured) -> app.Response`` and carries
exactly one guard decorator (a view without one is refused at start):

* ``@app.page``: HTML pages. Anonymous -> 302 ``/login/?next=...`` when
  LOGIN_REQUIRED; a user who must change the password -> /password/.
* ``@app.data``: data endpoints. ``Authorization: Bearer TOKEN`` or the
  session signs in; anonymous -> 401 with ``WWW-Authenticate: Bearer`` when
  LOGIN_REQUIRED; errors are one text/plain line.
* ``@app.signed_in``: always needs a user (the password page).
* ``@app.public``: anyone (sign-in page, /healthz, static files).
* ``app.require_staff(request)`` inside a view: 401 anonymous, 403 others.

A group's guard runs after the view's, before the view: ``admit(request)``
returns None (go on) or a Response (a redirect), or raises HTTPError.
``app.staff`` sends an anonymous visitor of a page to sign in and refuses
everyone else but staff with 403.

The `request` (`app.Request`): ``method``, ``path``, ``query`` and
``form`` (`app.Params`: dicts of str; ``form`` from an urlencoded POST
body, or a multipart one on a ``files`` route), ``files``, ``cookies``,
``user`` (a `store.User`, or None), ``access`` (what they may do and
which units they see: a view showing a unit asks
``request.access.sees(unit)`` and answers 404 when not; lists pass
``request.access.seen_by`` to the store), ``bearer``, ``store``,
``settings``, ``site``, ``route``, ``csrf_token``, ``environ``,
``url_for(name, ...)``. A non-UTF-8 parameter is a 400 before the view
sees it, and so is a malformed multipart body (with the reason); a
parameter given twice is a 400 when read as one value (``form["x"]``,
``form.get``), while ``form.getlist("x")`` reads a field a form repeats
(checkboxes). Every POST is checked
against the CSRF token before the view runs; forms write ``{% csrf_token
%}`` (a form with files also ``enctype="multipart/form-data"``).

``request.files`` is {name: `multipart.Upload`}: ``upload.filename``
(the client's name for it, to show, never a path to write to),
``upload.content_type`` (the client's word), ``upload.size`` (bytes) and
``upload.file``, a temporary file at its start; read it in pieces
(``for line in io.TextIOWrapper(upload.file, "utf-8", newline="")`` or
``upload.file.read(65536)``), never whole. A file input left empty is not
in it. The files are closed, and gone from the disk, once the view's
answer is made (a `Later`'s once its ``finish`` has run): a view reads
them before it returns, or in its `Later`'s ``compute``.

Answers: ``app.Response(status, body, content_type="text/html;
charset=utf-8", headers=[...])`` where body is bytes, str, or an iterable of
bytes (streamed: large answers are generators yielding chunks, never one
big string). ``app.text(status, body)`` for text/plain, ``app.redirect(url,
status=302)``. ``raise app.HTTPError(status, "one-line reason",
headers=[...])`` refuses (text/plain for data views, an HTML page
otherwise). Any other exception answers 500 and is logged with its
traceback, which the browser never sees.

HTML: ``html.render(request, "name.html", title, status=200, headers=(),
**context)`` renders ``templates/name.html`` in the template language of
`texmate_ds.templates` (Django's, a subset: ``{{ x.y|filter }}``, ``{% if
%}``, ``{% for %}``, ``{% url %}``, ``{% include %}``...). A page starts
``{% extends "base.html" %}`` and fills ``{% block content %}`` (and
``{% block head %}`` for extra <head> lines); it gets ``title`` and
``user`` besides the view's context. No HTML is built in Python: a view
passes data (rows as dicts or objects, numbers formatted as text, times
as timestamps for the ``date`` filter) and the template lays it out.
Every value is escaped unless it is ``templates.Markup`` (wrap an SVG
string built with escaped labels in it). Links in a row, separated by
dots: pass [(href, text)] and write ``{% include "links.html" with
links=quick %}``; page links: pass an ``html.Pager`` and write ``{%
include "pager.html" with pager=units_pager %}``.

CSS classes (static/style.css): ``<div class="table-scroll"><table
class="data">`` with ``td.num`` for numbers; ``nav.pager`` for page links;
``form.stacked`` (``label`` around each input, ``.row`` for inputs side by
side), ``form.inline`` for a lone button; ``figure.graph`` around an
``<img>``/``<svg>`` with ``figcaption``; ``.cards`` of ``section.card``
(with a ``dl``) for displays; ``p.error``, ``p.notice``, ``.muted``.

Slow reads: a view whose answer needs a read over a range of any size
(a graph, statistics) returns ``app.Later(compute)``, where
``compute(store)`` builds the Response from that store only. texmate_ds's
server runs it on a worker thread with a read-only connection of its own
(``environ["texmate.offload"]``), so meters are served meanwhile; any other
WSGI server runs it at once on the site's store.

Database writes: views call the repositories (``request.store.units``,
``.samples``, ``.accounts``, ``.displays``), whose writes join the shared
transaction; they never commit. In the server the group-commit turn hook
commits before the next select(); elsewhere `committing` does it after
each request. A POST's view runs inside `Database.atomic()`: if it raises,
its writes are undone and the rest of the transaction is kept.

Long writes (deleting a unit's million samples): a view never does them
itself, it calls ``app.run_chore(request, name, step, done=None)``, where
``step()`` writes one bounded chunk through ``request.store`` and returns
True once nothing is left (``chores.DeleteSamples(request.store, unit,
before, total)`` is the step for samples), and ``done(chore)`` writes the
action log entry once it is over (``chore.outcome``: ``"finished"``,
``"failed"``, or ``"stopped"`` by a server stop, what went staying gone).
texmate_ds's server offers its `chores.Chores` (``environ["texmate.chores"]``):
a chunk per loop turn, each committed with the meters' uploads of that turn,
so meters are answered meanwhile; ``app.active_chores(request)`` lists what
is queued with each one's ``progress`` ("400,000 of 1,000,000"), and when
16 are queued `run_chore` answers 503. Any other WSGI server runs every chunk
once the view has returned, committing after each. Either way no chunk
starts before the view has returned, and a view that raises leaves no
chore behind; the view answers at once (a redirect to a page that shows
the progress or the log), never with the result.
"""

from texmate_ds.web import site


def make_app(store, settings, metrics=None, live=None, admin_models=()):
    """The web UI's WSGI callable on `store` (see the module docstring);
    `live` (a `live.Live`: the server's event bus and loop) opens /events;
    `admin_models` are the HTTP apps' (`admin.tables.TableAdmin`), added
    to the admin's own."""
    return site.Site(store, settings, metrics, live=live, admin_models=admin_models)


def committing(wsgi_app, store):
    """`wsgi_app` for a WSGI server outside texmate_ds's loop (wsgiref in
    the tests): each request first notices other connections' commits,
    and its writes are committed once the view has answered."""
    def serve(environ, start_response):
        store.notice_others()
        try:
            return wsgi_app(environ, start_response)
        finally:
            store.commit()
    return serve

"""HTML pages: the web's templates, what every page is given, error
pages and paging.

* Pages are templates in ``web/templates/`` (the language is
  `texmate_ds.templates`), read with ``pkgutil.get_data`` so they work
  inside the .pyz, parsed once and kept. Each extends ``base.html``: the
  title, the navigation (the user's name, the password page, the sign-out
  form; or the sign-in link), the stylesheet, and the blocks ``head`` and
  ``content``.
* `render` gives a template the view's context plus ``title`` and
  ``user`` (None for visitors), and serves ``{% url %}`` from the router
  and ``{% csrf_token %}`` from the request. The token is asked for only
  by a page that has a form: for a visitor without a session it sets a
  cookie, which pages without forms must not send.
* Every value a template writes is escaped unless it is
  `templates.Markup` (an SVG built with escaped labels), so forgetting to
  escape cannot happen by omission; and HTML answers carry a
  Content-Security-Policy that allows no inline script, so an escaping
  slip still runs nothing.
"""

import base64
import pkgutil
import re
from urllib.parse import urlencode

from texmate_ds import templates
from texmate_ds.web import app

HTML_HEADERS = [
    ("Content-Security-Policy",
     "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; "
     "form-action 'self'; frame-ancestors 'none'"),
    ("Cache-Control", "no-cache"),
]


def _load(name):
    return pkgutil.get_data(__package__, "templates/" + name).decode("utf-8")


PAGES = templates.Pages(_load, app.CSRF_FIELD)


def render(request, name, title, status=200, headers=(), **context):
    """The page `name` (a template) filled with `context`; `headers` are
    added to the answer's."""
    context.update(title=title, user=None if request.bearer else request.user,
                   notice=_take_notice(request))
    page = PAGES.get(name).render(context, request.url_for, lambda: request.csrf_token)
    return app.Response(status, page, headers=HTML_HEADERS + list(headers))


# A line for the next page this visitor sees ("The unit A1 was added."),
# carried across the redirect after a POST in a cookie, and read once.
NOTICE_COOKIE = "txm_notice"
NOTICE_MAX = 300


def flash(request, text):
    """Show `text` on the next page rendered for this visitor."""
    data = text[:NOTICE_MAX].encode("utf-8")
    request.set_cookie(NOTICE_COOKIE, base64.urlsafe_b64encode(data).decode("ascii"))


def _take_notice(request):
    value = request.cookies.get(NOTICE_COOKIE)
    if not value:
        return ""
    request.set_cookie(NOTICE_COOKIE, "", max_age=0)
    try:
        text = base64.urlsafe_b64decode(value.encode("ascii")).decode("utf-8")
    except (ValueError, UnicodeError):
        return ""
    return text[:NOTICE_MAX]


def error_page(request, error):
    """An `app.HTTPError` as an HTML page with its one-line reason."""
    return render(request, "error.html", app.status_line(error.status), status=error.status,
                  headers=error.headers, reason=error.reason)


PAGE_SIZE = 50


class Pager:
    """One page of a list of `total` items, chosen by the query parameter
    `param` (1-based). A bad number is a 400, one past the end a 404.
    ``pager.html`` shows it: `previous` and `next` are the query strings of
    the pages around it (None at either end), the rest of the query kept."""

    def __init__(self, request, total, param="page", size=PAGE_SIZE):
        text = request.query.get(param, "1")
        if not re.fullmatch("[0-9]{1,9}", text) or int(text) < 1:
            raise app.HTTPError(400, "%s: a page number from 1, not %r" % (param, text))
        self.number = int(text)
        self.count = max(1, -(-total // size))
        if self.number > self.count:
            raise app.HTTPError(404, "%s %d: there are %d pages" % (param, self.number, self.count))
        self.offset = (self.number - 1) * size
        self.size = size

        def query(number):
            return urlencode(dict(request.query, **{param: number}))
        self.previous = query(self.number - 1) if self.number > 1 else None
        self.next = query(self.number + 1) if self.number < self.count else None

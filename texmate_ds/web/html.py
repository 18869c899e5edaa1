"""HTML: one escaping rule, tiny templates, and the page layout.

* A template is a file in ``web/templates/`` (read with ``pkgutil.get_data``,
  so it works inside the .pyz) with ``{{ name }}`` slots, nothing more: no
  loops, no conditions. Views build repeated parts (table rows) with
  `fill` on a short string and pass them in.
* Every value put into a slot is escaped, unless it is `Markup`: HTML that
  was already built by `fill` or `join` (or an SVG string built with
  escaped labels). That is the only way to insert raw HTML, so forgetting
  to escape cannot happen by omission.
* `render` fills a page template and wraps it in ``layout.html`` (title,
  navigation with the user's name and the sign-out form, the stylesheet).
  HTML answers carry a Content-Security-Policy that allows no inline script,
  so an escaping slip still runs nothing.
"""

import functools
import html
import pkgutil
import re
from urllib.parse import urlencode

from texmate_ds.web import app

_SLOT = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")

HTML_HEADERS = [
    ("Content-Security-Policy",
     "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; "
     "form-action 'self'; frame-ancestors 'none'"),
    ("Cache-Control", "no-cache"),
]


class Markup(str):
    """Text that is already HTML; slots insert it as it is."""


def escape(value):
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def fill(template, **context):
    """`template` with each ``{{ name }}`` replaced by escape(context[name])."""
    return Markup(_SLOT.sub(lambda m: escape(context[m.group(1)]), template))


def join(parts, separator=""):
    """Concatenate HTML parts; plain strings among them are escaped."""
    return Markup(escape(separator).join(escape(p) for p in parts))


@functools.lru_cache(maxsize=None)
def template(name):
    return pkgutil.get_data(__package__, "templates/" + name).decode("utf-8")


_NAV_USER = """\
<span class="who">{{ username }}</span>
<a href="/password/">Password</a>
<form class="inline" method="post" action="/logout/">{{ csrf }}<button>Sign out</button></form>"""
_NAV_ANONYMOUS = '<a href="/login/">Sign in</a>'


def csrf_field(request):
    """The hidden input every state-changing form carries."""
    return fill('<input type="hidden" name="{{ name }}" value="{{ token }}">',
                name=app.CSRF_FIELD, token=request.csrf_token)


def _nav(request):
    if request.user is None or request.bearer:
        return Markup(_NAV_ANONYMOUS)
    return fill(_NAV_USER, username=request.user.username, csrf=csrf_field(request))


def render(request, name, title, status=200, head="", headers=(), **context):
    """A whole HTML page: template `name` filled with `context`, inside the
    layout. `head` is extra Markup for <head> (a meta refresh); `headers`
    are added to the answer's."""
    body = fill(template(name), **context)
    page = fill(template("layout.html"), title=title, head=escape(head),
                nav=_nav(request), content=body)
    return app.Response(status, page, headers=HTML_HEADERS + list(headers))


def error_page(request, error):
    """An `app.HTTPError` as an HTML page with its one-line reason."""
    return render(request, "error.html", app.status_line(error.status), status=error.status,
                  headers=error.headers, reason=error.reason)


def error(reason):
    """A form's one-line complaint, or nothing when `reason` is empty."""
    return fill('<p class="error">{{ reason }}</p>', reason=reason) if reason else Markup()


PAGE_SIZE = 50
_PAGER = ('<nav class="pager">{{ previous }}<span>page {{ number }} of {{ count }}</span>'
          '{{ next }}</nav>')


class Pager:
    """One page of a list of `total` items, chosen by the query parameter
    `param` (1-based). A bad number is a 400, one past the end a 404."""

    def __init__(self, request, total, param="page", size=PAGE_SIZE):
        text = request.query.get(param, "1")
        if not re.fullmatch("[0-9]{1,9}", text) or int(text) < 1:
            raise app.HTTPError(400, "%s: a page number from 1, not %r" % (param, text))
        self.request = request
        self.param = param
        self.number = int(text)
        self.count = max(1, -(-total // size))
        if self.number > self.count:
            raise app.HTTPError(404, "%s %d: there are %d pages" % (param, self.number, self.count))
        self.offset = (self.number - 1) * size
        self.size = size

    def _link(self, number, label):
        query = dict(self.request.query, **{self.param: number})
        return fill('<a href="?{{ query }}">{{ label }}</a>', query=urlencode(query), label=label)

    def links(self):
        """The page links (`nav.pager`), or nothing when it all fits one page."""
        if self.count == 1:
            return Markup()
        return fill(_PAGER, number=self.number, count=self.count,
                    previous=self._link(self.number - 1, "previous") if self.number > 1 else "",
                    next=self._link(self.number + 1, "next") if self.number < self.count else "")

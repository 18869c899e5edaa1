"""`ModelAdmin`, a model's declaration in the admin, and `AdminSite`, the
registry of them.

A model's admin says what it has and how to reach its rows; the views
in `views` (one change list, one form, one delete, one log writer) do
the rest for every model alike:

* ``name`` (URL segment, permission prefix and the action log's model:
  ``units``), ``singular`` and ``plural`` for people;
* ``columns``: the change list's `Column` s, the first linking to the
  row; a column with an ``order`` key sorts (``?o=code``, ``?o=-code``);
* ``search``: what ``?q=`` searches, said in a line (None: no search);
* ``filters``: `Filter` s, query parameters the list narrows by;
* ``actions``: bulk actions on the selected rows (``delete_selected``
  and the model's own, each a method ``action_<name>``);
* ``read_only``: rows are never added or changed here (samples);
* `form` builds the add or change `forms.Form`; `check` adds the errors
  only the model knows (a code taken); `save` writes and returns the row
  and what changed; `delete` deletes; `dependents` says what goes with a
  row; `find` and `get` read rows, for this visitor (their units only);
* `allows(request, action, row)`: the permission, ``units.change``, by
  default; a model narrows it (nobody deletes themselves).

Rows are whatever the store returns (namedtuples); `key` gives a row's
``<pk>`` and `describe` its one-line text for pages and the log.
"""

import collections
from urllib.parse import urlencode

from texmate_ds.web import app
from texmate_ds.web.access import ACTIONS

# A change list column: `name` is passed to `ModelAdmin.cell`; `order`
# the sort key the store takes (None: not sortable); `kind` how it is
# shown: text, num, time (a timestamp), bool.
Column = collections.namedtuple("Column", "name heading order kind", defaults=(None, "text"))
# A change list filter: the query parameter, its label and [(value, text)]
# (None: typed in, with the `placeholder` shown while empty).
Filter = collections.namedtuple("Filter", "param label choices placeholder",
                                defaults=("YYYY-MM-DD or -7d",))
# What a change list shows: its rows, how many in all (None: not counted)
# and the query strings of the pages around it (None: none).
Listing = collections.namedtuple("Listing", "rows total first previous next last page pages",
                                 defaults=(None, None, None, None, None, None))

PAGE_SIZE = 100
SEARCH_MAX = 100


class ModelAdmin:
    name = None
    singular = None
    plural = None
    description = ""     # a line for the index
    columns = ()
    search = None
    actions = ("delete_selected",)
    read_only = False
    default_order = None
    page_size = PAGE_SIZE
    # Fields whose values the log never shows (a secret's name suffices).
    secret_fields = ()
    # After adding, go on to the change form (a user: groups, permissions).
    continue_after_add = False
    # Query parameters of the model's own paging (samples: keyset).
    paging_params = ()

    @property
    def heading(self):
        """The plural as a heading: ``Units``, ``API tokens``."""
        return self.plural[:1].upper() + self.plural[1:]

    # -- who may

    def allows(self, request, action, row=None):
        """May this visitor `action` (view, add, change, delete) this model
        (or `row` of it)?"""
        return request.access.may(self.name, action)

    def require(self, request, action, row=None):
        if not self.allows(request, action, row):
            raise app.HTTPError(403, "you may not %s %s" % (action, self.plural))

    def filters(self, request):
        """The list's `Filter` s (choices None: typed in, like a date)."""
        return []

    def list_columns(self, request, query):
        """The change list's columns for `query` (a unit's fields)."""
        return self.columns

    def tools(self, request, query):
        """Forms of the model's own above the change list: [{"action",
        "label", "unit", "input": None or {"name", "placeholder"}}], each
        posted to the list with its action and run by ``tool_<action>``."""
        return []

    # -- rows

    def key(self, row):
        return row.id

    def describe(self, row):
        return str(row)

    def get(self, request, pk):
        """The row `pk` names (its id as text), or None (so also for a row
        this visitor may not see)."""
        raise NotImplementedError

    def find(self, request, query):
        """The `Listing` for `query` (a `Query`); by default a page by
        number of what `search_rows` finds."""
        total, rows = self.search_rows(request, query, (query.page - 1) * self.page_size,
                                       self.page_size)
        return numbered(query, total, rows, self.page_size)

    def search_rows(self, request, query, offset, limit):
        """(how many in all, the rows from `offset`) of `query`."""
        raise NotImplementedError

    def cell(self, request, row, name):
        return getattr(row, name)

    # -- forms

    def form(self, request, row):
        """The `forms.Form` adding (row None) or changing `row`."""
        raise NotImplementedError

    def check(self, request, form, row):
        """Errors only the model can find, added with ``form.fail``."""

    def unique(self, form, field, found, row):
        """Refuse `field`'s value when `found`, the row that has it, is
        another row than `row` (None: adding)."""
        if found is not None and (row is None or found.id != row.id):
            form.fail(field, "a %s with this %s exists already" % (
                self.singular, form.field(field).label.lower()))

    def work(self, form, row):
        """None, or a function to run off the loop before `save` (a
        password hash), whose result `save` finds in ``form.worked``."""
        return None

    def save(self, request, form, row):
        """Store the form's `cleaned` values: (the row, {field: [old, new]}),
        or (a Response, ...) for a page of its own instead of the redirect."""
        raise NotImplementedError

    def delete(self, request, row):
        """Delete `row` now (None; the views log it), or start deleting it
        in the background and return the line saying so (the model logs
        it when it is over)."""
        raise NotImplementedError

    def dependents(self, request, row):
        """Lines saying what else goes when `row` is deleted."""
        return []

    def links(self, request, row):
        """[(href, text)] of the row's own pages, shown on its form."""
        return []

    def list_links(self, request):
        """[(href, text)] of the model's own pages, above its change list."""
        return []


def row_id(pk):
    """`pk` (a URL segment) as a row id, or None if it is not one."""
    return int(pk) if pk.isdigit() and len(pk) < 19 else None


class Query:
    """A change list's query string read and checked: `q`, `o`, `p`, and
    the filters' parameters (`given`: param -> value)."""

    def __init__(self, request, model, params):
        query = request.query
        self.q = query.get("q", "").strip()
        if len(self.q) > SEARCH_MAX:
            raise app.HTTPError(400, "q: %d characters at most" % SEARCH_MAX)
        self.o = query.get("o", model.default_order or "")
        sortable = {column.order for column in model.columns if column.order}
        if self.o and self.o.lstrip("-") not in sortable:
            raise app.HTTPError(400, "o: sort by one of %s" % ", ".join(sorted(sortable)))
        page = query.get("p", "1")
        if not page.isdigit() or len(page) > 9 or int(page) < 1:
            raise app.HTTPError(400, "p: a page number from 1, not %r" % page[:20])
        self.page = int(page)
        self.given = {param: query.get(param, "") for param in list(params)
                      + list(model.paging_params)}
        unknown = sorted(set(query) - {"q", "o", "p"} - set(params)
                         - set(model.paging_params))
        if unknown:
            raise app.HTTPError(400, "unknown parameter %r" % unknown[0][:40])
        self.request = request

    def string(self, **changes):
        """This query string with `changes` (None removes a parameter)."""
        values = dict(self.request.query)
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})


def numbered(query, total, rows, size):
    """The Listing of page `query.page` of `total` rows."""
    pages = max(1, -(-total // size))
    if query.page > pages:
        raise app.HTTPError(404, "p %d: there are %d pages" % (query.page, pages))
    return Listing(rows, total,
                   first=query.string(p=None) if query.page > 1 else None,
                   previous=query.string(p=query.page - 1) if query.page > 1 else None,
                   next=query.string(p=query.page + 1) if query.page < pages else None,
                   last=query.string(p=pages) if query.page < pages else None,
                   page=query.page, pages=pages)


class AdminSite:
    """The models of the admin, by name, in the order registered (the
    index lists them so, and the users' and groups' permissions)."""

    def __init__(self):
        self.models = {}

    def register(self, model):
        if model.name in self.models or model.name == "log":
            raise ValueError("an admin model named %r exists already" % model.name)
        self.models[model.name] = model
        return model

    def extended(self, models):
        """A registry of these models and then `models` (the HTTP apps'
        `tables.TableAdmin` s), leaving this one as it is: each site has
        its own, so one that mounts apps changes no other."""
        site = AdminSite()
        for model in list(self.models.values()) + list(models):
            site.register(model)
        return site

    def lookup(self, name):
        model = self.models.get(name)
        if model is None:
            raise app.HTTPError(404, "no admin model %r" % name[:40])
        return model

    def permissions(self):
        """Every permission there is: [(model name, plural, [codename])]."""
        return [(model.name, model.plural, ["%s.%s" % (model.name, action)
                                            for action in ACTIONS])
                for model in self.models.values()] + [("log", "action log", [LOG_VIEW])]


# Reading the action log is a permission of its own.
LOG_VIEW = "log.view"

"""The admin's views, written once for every model (`options.ModelAdmin`):
the index, the change list with its bulk actions, the add and change
form, the delete confirmation, and the action log.

Every write goes through `record`, the one log writer: an entry per
change, in the same transaction as the change (a POST's view runs in
its savepoint, so a failure leaves neither). A page or action the
visitor may not use answers 403 and changes nothing; a row they may not
see is a 404 like a row that does not exist.
"""

import json
from urllib.parse import urlencode

from texmate_ds.store.actionlog import SECRET
from texmate_ds.web import app, html, ranges
from texmate_ds.web.admin.options import LOG_VIEW, Query, row_id

# The most rows one bulk action takes (a page is 100).
MAX_SELECTED = 1000


def record(request, model, action, row, changes=None, message=""):
    """The action log entry for `action` on `row` of `model`, by this
    visitor, in the current transaction. A secret field's change is
    written as "(changed)", never its value."""
    shown = {name: SECRET if name in model.secret_fields else values
             for name, values in (changes or {}).items()}
    request.store.log.record(request.user.username, action, model.name, model.key(row),
                             model.describe(row), _loggable(shown), message)


def _loggable(changes):
    """Values as JSON keeps them: sets as sorted lists."""
    return {name: values if values == SECRET else [
        sorted(v) if isinstance(v, (set, frozenset)) else v for v in values]
        for name, values in changes.items()}


def _render(request, template, title, model=None, **context):
    return html.render(request, template, title, model=model, **context)


def _visible_models(request):
    return [model for model in request.site.admin.models.values()
            if model.allows(request, "view")]


# -- the index -----------------------------------------------------------------

@app.page
def index(request):
    models = [{"model": model, "add": not model.read_only and model.allows(request, "add")}
              for model in _visible_models(request)]
    recent = request.store.log.entries(actor=request.user.username, limit=10)
    return _render(request, "admin/index.html", "Administration", models=models,
                   recent=[_entry(entry) for entry in recent],
                   log=request.access.may("log", "view"))


# -- the change list -----------------------------------------------------------

@app.page
def change_list(request, model):
    model = request.site.admin.lookup(model)
    model.require(request, "view")
    if request.method == "POST":
        return _bulk_action(request, model)
    filters = model.filters(request)
    query = Query(request, model, [f.param for f in filters])
    listing = model.find(request, query)
    shown = model.list_columns(request, query)
    columns = [{"heading": column.heading, "kind": column.kind,
                "sort": _sort_link(query, column)} for column in shown]
    rows = [{"key": model.key(row), "cells": [
        {"value": model.cell(request, row, column.name), "kind": column.kind,
         "link": index == 0} for index, column in enumerate(shown)]}
        for row in listing.rows]
    actions = [(name, text) for name, text in _actions(request, model)]
    return _render(
        request, "admin/change_list.html", model.heading, model=model,
        query=query, columns=columns, rows=rows, listing=listing, actions=actions,
        total=None if listing.total is None else "{:,}".format(listing.total),
        filters=[{"param": f.param, "label": f.label, "value": query.given[f.param],
                  "choices": f.choices, "placeholder": f.placeholder} for f in filters],
        add=not model.read_only and model.allows(request, "add"),
        list_links=model.list_links(request), tools=model.tools(request, query),
        chores=[{"name": chore.name, "progress": chore.progress}
                for chore in app.active_chores(request)])


def _sort_link(query, column):
    """(query string, arrow) of the column's heading link; None unsortable."""
    if column.order is None:
        return None
    current = query.o
    ascending = current == column.order
    return (query.string(o=("-" if ascending else "") + column.order, p=None),
            "▲" if ascending else "▼" if current == "-" + column.order else "")


def _actions(request, model):
    """[(name, text)] of the bulk actions this visitor may run."""
    found = []
    for name in model.actions:
        method = getattr(model, "action_" + name, None) or globals()["_" + name]
        if model.allows(request, method.permission):
            found.append((name, method.text % {"plural": model.plural}))
    return found


def _bulk_action(request, model):
    form = request.form
    name = form.get("action", "")
    tool = getattr(model, "tool_" + name, None) if name.isidentifier() else None
    if tool is not None:
        return tool(request)
    if name not in dict(_actions(request, model)):
        raise app.HTTPError(400 if name not in model.actions else 403,
                            "no action %r here" % name[:40])
    method = getattr(model, "action_" + name, None)
    if method is not None:
        return method(request)
    return _delete_selected(request, model)


def selected(request, model):
    """The rows of the `selected` ids posted (those the visitor may see)."""
    keys = request.form.getlist("selected")
    if not keys:
        raise app.HTTPError(400, "select one or more %s first" % model.plural)
    if len(keys) > MAX_SELECTED:
        raise app.HTTPError(400, "%d %s at most at once" % (MAX_SELECTED, model.plural))
    rows = [model.get(request, key) for key in keys]
    return [row for row in rows if row is not None]


def _delete_selected(request, model):
    rows = selected(request, model)
    refused = [model.describe(row) for row in rows if not model.allows(request, "delete", row)]
    if refused:
        raise app.HTTPError(403, "you may not delete %s" % ", ".join(refused)[:200])
    if request.form.get("confirm") != "yes":
        return _render(request, "admin/delete_selected.html", "Delete %s?" % model.plural,
                       model=model, rows=[(model.key(row), model.describe(row),
                                           model.dependents(request, row)) for row in rows])
    background = 0
    for row in rows:
        if model.delete(request, row) is None:
            record(request, model, "delete", row)
        else:              # going in the background: the model logs it when done
            background += 1
    html.flash(request, "%d %s deleted%s." % (
        len(rows), model.plural if len(rows) != 1 else model.singular,
        " (%d of them in the background)" % background if background else ""))
    return app.redirect(request.url_for("admin_list", model.name), 303)


_delete_selected.permission = "delete"
_delete_selected.text = "Delete the selected %(plural)s"


# -- add and change ------------------------------------------------------------

def _row(request, model, pk):
    row = model.get(request, pk)
    if row is None:
        raise app.HTTPError(404, "no such %s" % model.singular)
    return row


@app.page
def add(request, model):
    model = request.site.admin.lookup(model)
    if model.read_only:
        raise app.HTTPError(404, "%s are not added here" % model.plural)
    model.require(request, "add")
    return _form_page(request, model, None)


@app.page
def change(request, model, pk):
    model = request.site.admin.lookup(model)
    model.require(request, "view")
    row = _row(request, model, pk)
    if model.read_only or not model.allows(request, "change", row):
        if request.method == "POST":
            raise app.HTTPError(403, "you may not change %s" % model.plural)
        return _detail_page(request, model, row)
    return _form_page(request, model, row)


def _form_page(request, model, row):
    form = model.form(request, row)
    status = 200
    if request.method == "POST":
        if form.bind(request.form):
            model.check(request, form, row)
        if form.valid:
            work = model.work(form, row)
            if work is None:
                return _saved(request, model, form, row)
            # A password hash: worked out off the loop, saved back on it.
            return app.Later(lambda store: work(),
                             lambda worked: _saved(request, model, form, row, worked))
        status = 400
    title = ("Add %s" % model.singular) if row is None else model.describe(row)
    return _render(request, "admin/change_form.html", title, model=model, form=form,
                   fields=form.rows(), row=row, status=status,
                   key=None if row is None else model.key(row),
                   links=[] if row is None else _row_links(request, model, row),
                   delete=row is not None and model.allows(request, "delete", row))


def _saved(request, model, form, row, worked=None):
    form.worked = worked
    saved, changes = model.save(request, form, row)
    if isinstance(saved, app.Response):    # a page of its own (a new token)
        return saved
    if row is None:
        record(request, model, "add", saved)
        done = "The %s “%s” was added." % (model.singular, model.describe(saved))
    else:
        record(request, model, "change", saved, changes,
               "" if changes else "no fields changed")
        done = "The %s “%s” was changed." % (model.singular, model.describe(saved))
    form_data = request.form
    if "_continue" in form_data or (row is None and model.continue_after_add):
        target = request.url_for("admin_change", model.name, str(model.key(saved)))
        done += " You may edit it again below."
    elif "_addanother" in form_data:
        target = request.url_for("admin_add", model.name)
        done += " You may add another %s below." % model.singular
    else:
        target = request.url_for("admin_list", model.name)
    html.flash(request, done)
    return app.redirect(target, 303)


def _detail_page(request, model, row):
    form = model.form(request, row)
    return _render(request, "admin/detail.html", model.describe(row), model=model,
                   rows=form.rows(), links=_row_links(request, model, row),
                   delete=model.allows(request, "delete", row),
                   key=model.key(row))


def _row_links(request, model, row):
    """The row's own pages, and its history in the log for who may read it."""
    links = model.links(request, row)
    if request.access.may("log", "view"):
        links.append((request.url_for("admin_log") + "?" + urlencode(
            {"model": model.name, "object": model.key(row)}), "History"))
    return links


# -- delete --------------------------------------------------------------------

@app.page
def delete(request, model, pk):
    model = request.site.admin.lookup(model)
    row = _row(request, model, pk)
    if not model.allows(request, "delete", row):
        raise app.HTTPError(403, "you may not delete this %s" % model.singular)
    if request.method == "GET":
        return _render(request, "admin/delete.html", "Delete %s?" % model.describe(row),
                       model=model, key=model.key(row), what=model.describe(row),
                       dependents=model.dependents(request, row))
    later = model.delete(request, row)
    if later is None:
        record(request, model, "delete", row)
        later = "The %s “%s” was deleted." % (model.singular, model.describe(row))
    html.flash(request, later)
    return app.redirect(request.url_for("admin_list", model.name), 303)


# -- the action log ------------------------------------------------------------

LOG_PAGE = 100


@app.page
def log(request):
    if not request.access.may("log", "view"):
        raise app.HTTPError(403, "you may not read the action log (%s)" % LOG_VIEW)
    query = request.query
    unknown = sorted(set(query) - {"actor", "model", "object", "from", "to", "before"})
    if unknown:
        raise app.HTTPError(400, "unknown parameter %r" % unknown[0][:40])
    start, end = ranges.moment(query, "from"), ranges.moment(query, "to", day_end=True)
    before = query.get("before", "")
    if before and row_id(before) is None:
        raise app.HTTPError(400, "before: an entry id")
    entries = request.store.log.entries(
        model=query.get("model") or None, actor=query.get("actor") or None,
        object_id=query.get("object") or None, since=start,
        until=end, before_id=int(before) if before else None, limit=LOG_PAGE + 1)
    older = None
    if len(entries) > LOG_PAGE:
        entries = entries[:LOG_PAGE]
        older = urlencode(dict(query, before=str(entries[-1].id)))
    models = sorted(set(request.site.admin.models) | {"sign_in_attempts"})
    return _render(request, "admin/log.html", "Action log",
                   entries=[_entry(entry) for entry in entries], older=older,
                   models=models, given={name: query.get(name, "")
                                         for name in ("actor", "model", "object", "from",
                                                      "to")})


def _entry(entry):
    """An Entry for the page: its changes as (field, old, new) lines."""
    changes = []
    for name, values in sorted(entry.changes.items()):
        if values == SECRET:
            changes.append((name, "", SECRET))
        else:
            changes.append((name, _shown(values[0]), _shown(values[1])))
    return {"entry": entry, "changes": changes}


def _shown(value):
    if value is None:
        return "—"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)

"""The unit page and the data endpoints: ``/units/<code>/`` with its
graphs and statistics, and ``graph.svg``, ``samples.csv``,
``samples.json``, ``stats.json``, ``last.json`` under it (docs/web.md, "Data
endpoints"). Owned by the data side of the web UI; the site includes
`ROUTES` in its routing table.

* Parameters are read by `ranges` (400 with a reason); an unknown unit is
  a 404, a parameter an endpoint does not take a 400. Checks come first:
  a streamed answer never starts with an error waiting in it.
* Graph layout follows the unit's graph options (`Units.graph_options`):
  each configured axis holds the fields it lists that were asked for, and
  asked-for fields on no configured axis share one more, unlabeled axis
  (with no axes configured, that is one axis with every field). The page
  draws one graph per axis; ``graph.svg`` draws every axis in one graph.
* The store does the heavy lifting: graph rows come decimated from SQL,
  statistics are SQL aggregates, and CSV and JSON are generators that
  fetch a page of rows per chunk (`export`), a chunk per loop turn. The
  page, graph.svg and stats.json read ranges of any size in one go, so
  they answer with an `app.Later`: on the server that read runs on a
  worker thread and the loop goes on serving meters.
"""

import json
from urllib.parse import urlencode

from texmate_ds import export, svg_graph, templates, times
from texmate_ds.rules import GRAPH_PIXELS
from texmate_ds.web import app, html, ranges

JSON_TYPE = "application/json"
LIMITS = range(1, 100001)       # samples.json's limit
DEFAULT_LIMIT = 1000
QUICK_RANGES = (("last hour", "-1h"), ("day", "-1d"), ("week", "-1w"),
                ("month", "-30d"), ("year", "-1y"))


# -- shared steps -------------------------------------------------------------

def _unit(request, code, *parameters):
    """The unit, once the query holds only `parameters`."""
    unit = request.store.units.get(code)
    if unit is None or not request.access.sees(unit):
        raise app.HTTPError(404, "no such unit")
    unknown = sorted(set(request.query) - set(parameters))
    if unknown:
        raise app.HTTPError(400, "unknown parameter %r; this address takes %s" % (
            unknown[0][:40], ", ".join(parameters) or "none"))
    return unit


def _title(unit):
    return "%s (%s)" % (unit.name, unit.code) if unit.name not in ("", unit.code) else unit.code


def _axes(options, fields):
    """[(label, field numbers)] for the asked-for `fields` (see above)."""
    axes = [(axis.label, [f for f in axis.fields if f in fields])
            for axis in options.axes]
    placed = {f for _, numbers in axes for f in numbers}
    axes.append(("", [f for f in fields if f not in placed]))
    return [(label, numbers) for label, numbers in axes if numbers]


def _graph(request, store, unit, axes, start, end, width, height, title):
    """The SVG text of one graph of `axes`."""
    columns = svg_graph.columns(width, len(axes), request.settings.MAX_PLOT_POINTS)
    fields = [f for _, numbers in axes for f in numbers]
    rows = store.samples.plot_rows(unit, fields, start, end, columns)
    named = [(label, [unit.titled(f - 1) for f in numbers]) for label, numbers in axes]
    return svg_graph.render(rows, named, start, end, width, height, title)


def _json(value):
    return app.Response(200, json.dumps(value) + "\n", JSON_TYPE)


def _encoded(chunks):
    for chunk in chunks:
        yield chunk.encode("utf-8")


def _moment(ts):
    """A sample's time for JSON: its timestamp text, None for none."""
    return None if ts is None else times.text(ts)


# -- the page -----------------------------------------------------------------

# The page links its data relative to itself (``samples.csv?from=...``).
_DOWNLOADS = (("unit_csv", "CSV"), ("unit_json", "JSON"), ("unit_stats", "statistics (JSON)"),
              ("unit_graph", "graph (SVG)"))


@app.page
def unit_page(request, code):
    unit = _unit(request, code, "from", "to")
    start, end = ranges.time_range(request.query)
    return app.Later(lambda store: _unit_page(request, store, unit, start, end))


def _unit_page(request, store, unit, start, end):
    fields = unit.reported
    stats = store.samples.stats(unit, fields, start, end)
    # The links name the range shown in absolute times: "-1h" would move.
    shown = urlencode({"from": times.text(start), "to": times.text(end)})
    return html.render(
        request, "unit.html", _title(unit),
        description=unit.description, start=start, end=end,
        # To the second, unless the whole range is shorter than one.
        time_format="exact" if end - start < times.SECOND else "shown",
        count=max(entry["count"] for entry in stats),
        from_text=request.query.get("from", ""), to_text=request.query.get("to", ""),
        quick=_quick_links(store, unit),
        graphs=_page_graphs(request, store, unit, fields, start, end),
        stats=[_stats_row(unit, field, entry) for field, entry in zip(fields, stats)],
        downloads=[("%s?%s" % (_beside(request, name, unit), shown), text)
                   for name, text in _DOWNLOADS])


def _beside(request, name, unit):
    """The route `name` of `unit` as a link from the unit page: its last segment."""
    return request.url_for(name, unit.code).rsplit("/", 1)[1]


def _page_graphs(request, store, unit, fields, start, end):
    """A figure per axis, captioned with its label (or its fields' names)."""
    options = store.units.graph_options(unit)
    return [{"caption": label or ", ".join(unit.titled(f - 1) for f in numbers),
             "svg": templates.Markup(_graph(request, store, unit, [(label, numbers)], start, end,
                                            options.width, options.height, ""))}
            for label, numbers in _axes(options, fields)]


def _quick_links(store, unit):
    links = [("?" + urlencode({"from": relative}), text) for text, relative in QUICK_RANGES]
    first, last = store.samples.first(unit), store.samples.last(unit)
    if first is not None:
        links.append(("?" + urlencode({"from": times.text(first[1]),
                                       "to": times.text(last[1])}), "all"))
    return links


def _stats_row(unit, field, entry):
    first, last = entry["first"] or (None, None), entry["last"] or (None, None)
    return {"name": unit.titled(field - 1), "count": entry["count"],
            "min": _number(entry["min"]), "max": _number(entry["max"]),
            "mean": _number(entry["mean"]), "stddev": _number(entry["stddev"]),
            "first": _number(first[1]), "first_at": first[0],
            "last": _number(last[1]), "last_at": last[0]}


def _number(value):
    """Ten significant digits on the page (JSON gives every digit)."""
    return "–" if value is None else "%.10g" % value


# -- data endpoints -----------------------------------------------------------

# An SVG opened on its own is a document that could run script: ours has
# none, and this says a browser must not run any (defence in depth, should
# a label ever slip past the escaping).
SVG_HEADERS = [("Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")]


@app.data
def graph_svg(request, code):
    unit = _unit(request, code, "from", "to", "fields", "width", "height")
    start, end = ranges.time_range(request.query)
    fields = ranges.field_numbers(request.query, unit)
    options = request.store.units.graph_options(unit)
    width = ranges.bounded_int(request.query, "width", options.width, GRAPH_PIXELS)
    height = ranges.bounded_int(request.query, "height", options.height, GRAPH_PIXELS)
    return app.Later(lambda store: app.Response(200, _graph(
        request, store, unit, _axes(options, fields), start, end, width, height, _title(unit)),
        "image/svg+xml", SVG_HEADERS))


@app.data
def samples_csv(request, code):
    unit = _unit(request, code, "from", "to", "fields")
    start, end = ranges.time_range(request.query)
    fields = ranges.field_numbers(request.query, unit)
    name = "%s_%s_%s.csv" % (unit.code, times.compact(start), times.compact(end))
    return app.Response(200, _encoded(export.csv_chunks(request.store, unit, start, end, fields)),
                        "text/csv; charset=utf-8",
                        [("Content-Disposition", 'attachment; filename="%s"' % name)])


@app.data
def samples_json(request, code):
    unit = _unit(request, code, "from", "to", "fields", "limit")
    start, end = ranges.time_range(request.query)
    fields = ranges.field_numbers(request.query, unit)
    limit = ranges.bounded_int(request.query, "limit", DEFAULT_LIMIT, LIMITS)
    return app.Response(200, _encoded(export.json_chunks(
        request.store, unit, start, end, fields, limit)), JSON_TYPE)


@app.data
def stats_json(request, code):
    unit = _unit(request, code, "from", "to", "fields")
    start, end = ranges.time_range(request.query)
    fields = ranges.field_numbers(request.query, unit)
    return app.Later(lambda store: _stats_json(store, unit, fields, start, end))


def _stats_json(store, unit, fields, start, end):
    stats = store.samples.stats(unit, fields, start, end)
    return _json({"unit": unit.code, "from": _moment(start), "to": _moment(end), "fields": [
        {"field": field, "name": unit.label(field - 1), "measure": unit.measure(field - 1),
         "count": entry["count"],
         "min": entry["min"], "max": entry["max"], "mean": entry["mean"],
         "stddev": entry["stddev"], "first": _value_at(entry["first"]),
         "last": _value_at(entry["last"])}
        for field, entry in zip(fields, stats)]})


def _value_at(edge):
    return None if edge is None else {"timestamp": _moment(edge[0]), "value": edge[1]}


@app.data
def last_json(request, code):
    unit = _unit(request, code)
    row = request.store.samples.last(unit)
    return _json({"unit": unit.code, "fields": [unit.label(i) for i in range(unit.fields)],
                  "sample": None if row is None else [row[0], _moment(row[1])] + list(row[2:])})


ROUTES = app.group("/units/<code>", [
    app.Route("/", unit_page, "unit"),
    app.Route("/graph.svg", graph_svg, "unit_graph"),
    app.Route("/samples.csv", samples_csv, "unit_csv"),
    app.Route("/samples.json", samples_json, "unit_json"),
    app.Route("/stats.json", stats_json, "unit_stats"),
    app.Route("/last.json", last_json, "unit_last"),
])

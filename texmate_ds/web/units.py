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
  asked-for fields on no configured axis get one axis per unit of measure
  (fields without one share an axis), so flow in m³/h and pressure in bar
  are never squeezed onto one scale. An axis is labelled with its label,
  else its fields' unit of measure. The page draws one graph per axis,
  twice: at the unit's graph width and phone-sized (`PHONE_WIDTH`), and
  the stylesheet shows the one that suits the screen, so graph text is
  readable on both without script. ``graph.svg`` draws every axis in one
  graph.
* Default range: with neither ``from`` nor ``to`` the page shows the last
  24 hours, unless they hold no samples (then the 24 hours up to the
  newest) or the samples sit in a sliver of them (then from the first of
  them), and says so (`_default_range`).
* Numbers: values as the meter sent them, with thousands separators;
  mean and standard deviation to about four significant digits, and at
  most one decimal more than the data's own (`_statistic`).
* The store does the heavy lifting: graph rows come decimated from SQL,
  statistics are SQL aggregates, and CSV and JSON are generators that
  fetch a page of rows per chunk (`export`), a chunk per loop turn. The
  page, graph.svg and stats.json read ranges of any size in one go, so
  they answer with an `app.Later`: on the server that read runs on a
  worker thread and the loop goes on serving meters.
"""

import json
import math
from urllib.parse import urlencode

from texmate_ds import export, svg_graph, templates, times, ttp
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


def _axes(unit, options, fields):
    """[(label, field numbers)] for the asked-for `fields` (see above)."""
    axes = [(axis.label, [f for f in axis.fields if f in fields])
            for axis in options.axes]
    placed = {f for _, numbers in axes for f in numbers}
    by_measure = {}
    for field in fields:
        if field not in placed:
            by_measure.setdefault(unit.measure(field - 1), []).append(field)
    axes.extend(("", numbers) for numbers in by_measure.values())
    return [(label or _measures(unit, numbers), numbers) for label, numbers in axes if numbers]


def _measures(unit, numbers):
    """The units of measure of fields `numbers`, each once: an axis label."""
    measures = [unit.measure(f - 1) for f in numbers]
    return ", ".join(m for i, m in enumerate(measures) if m and m not in measures[:i])


def _graph_rows(request, store, unit, axes, start, end, width):
    columns = svg_graph.columns(width, len(axes), request.settings.MAX_PLOT_POINTS)
    fields = [f for _, numbers in axes for f in numbers]
    return store.samples.plot_rows(unit, fields, start, end, columns)


def _graph(unit, axes, rows, start, end, width, height, title):
    """The SVG text of one graph of `axes` drawn from `rows`."""
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


PHONE_WIDTH = 360       # the phone-sized graph, about a phone's width in CSS px
DEFAULT_SPAN = times.DAY
SLIVER = 10             # samples in less than 1/SLIVER of the default span: zoom in


@app.page
def unit_page(request, code):
    unit = _unit(request, code, "from", "to", "live")
    start, end = ranges.time_range(request.query)
    defaulted = not (request.query.get("from") or request.query.get("to"))
    live = ranges.flag(request.query, "live")
    return app.Later(lambda store: _unit_page(request, store, unit, start, end, defaulted, live))


def _unit_page(request, store, unit, start, end, defaulted, live):
    note, asked_end = "", end
    if defaulted:
        start, end, note = _default_range(store, unit, end)
    fields = unit.reported
    stats = store.samples.stats(unit, fields, start, end)
    # The links name the range shown in absolute times: "-1h" would move.
    shown = urlencode({"from": times.text(start), "to": times.text(end)})
    return html.render(
        request, "unit.html", _title(unit),
        description=unit.description, start=start, end=end, note=note,
        # To the second, unless the whole range is shorter than one.
        time_format="exact" if end - start < times.SECOND else "shown",
        count="{:,}".format(max(entry["count"] for entry in stats)),
        from_text=request.query.get("from", ""), to_text=request.query.get("to", ""),
        # Live only makes sense for a range that ends now.
        live=live, may_live=not request.query.get("to") and end >= asked_end,
        events=request.url_for("events") + "?" + urlencode({"units": unit.code}),
        quick=_quick_links(store, unit),
        graphs=_page_graphs(request, store, unit, fields, start, end),
        stats=[_stats_row(unit, field, entry, end) for field, entry in zip(fields, stats)],
        downloads=[("%s?%s" % (_beside(request, name, unit), shown), text)
                   for name, text in _DOWNLOADS])


def _default_range(store, unit, now):
    """(start, end, what the page says of it) for a page opened without a
    range: the last `DEFAULT_SPAN` up to `now` (or to the newest sample, when
    the meter's clock is ahead of ours), or where the data is (see the
    module docstring)."""
    newest = store.samples.last(unit)
    end = now if newest is None else max(now, _second_up(newest[1]))
    start, moved = end - DEFAULT_SPAN, False
    if newest is not None and newest[1] < start:
        end = _second_up(newest[1])
        start, moved = end - DEFAULT_SPAN, True
    first = store.samples.oldest_page(unit, 1, start, end)
    sliver = bool(first) and end - first[0][1] < DEFAULT_SPAN // SLIVER
    if sliver:
        start = first[0][1] - max(times.SECOND, (end - first[0][1]) // 20)
        start -= start % times.SECOND
        held = _duration(newest[1] - first[0][1])
    if moved:
        note = "No samples in the last 24 hours: showing the newest%s." % (
            " (%s of them)" % held if sliver else "")
    elif sliver:
        note = "The last 24 hours hold only %s of samples: showing those." % held
    else:
        note = ""
    return max(start, times.FIRST_DAY), end, note


def _second_up(ts):
    return -(-ts // times.SECOND) * times.SECOND


def _duration(us):
    """A span for people: 40 s, 5 min, 3 h."""
    seconds = max(1, round(us / times.SECOND))
    for size, name in ((3600, "h"), (60, "min")):
        if seconds >= size:
            return "%s %s" % (round(seconds / size), name)
    return "%d s" % seconds


def _beside(request, name, unit):
    """The route `name` of `unit` as a link from the unit page: its last segment."""
    return request.url_for(name, unit.code).rsplit("/", 1)[1]


def _page_graphs(request, store, unit, fields, start, end):
    """A graph per axis, at the unit's graph size and phone-sized, with
    the values it plots for a script to read."""
    options = store.units.graph_options(unit)
    phone_height = min(max(200, options.height * 5 // 6), 400)
    graphs = []
    for label, numbers in _axes(unit, options, fields):
        axes = [(label, numbers)]
        rows = _graph_rows(request, store, unit, axes, start, end, options.width)
        phone_rows = svg_graph.rebucket(rows, start, end, svg_graph.columns(
            PHONE_WIDTH, 1, request.settings.MAX_PLOT_POINTS))
        names = [unit.titled(f - 1) for f in numbers]
        graphs.append({
            "label": label or ", ".join(names),
            # Grown to fill the page, but not so far that its text looms.
            "widest": options.width * 3 // 2,
            "wide": templates.Markup(_graph(unit, axes, rows, start, end, options.width,
                                            options.height, "")),
            "phone": templates.Markup(_graph(unit, axes, phone_rows, start, end, PHONE_WIDTH,
                                             phone_height, "")),
            "readings": json.dumps(svg_graph.readings(rows, names, start),
                                   separators=(",", ":"))})
    return graphs


def _quick_links(store, unit):
    links = [("?" + urlencode({"from": relative}), text) for text, relative in QUICK_RANGES]
    first, last = store.samples.first(unit), store.samples.last(unit)
    if first is not None:
        links.append(("?" + urlencode({"from": times.text(first[1]),
                                       "to": times.text(last[1])}), "all"))
    return links


def _stats_row(unit, field, entry, end):
    first, last = entry["first"] or (None, None), entry["last"] or (None, None)
    decimals = max(_decimals(entry[key]) for key in ("min", "max"))
    return {"name": unit.titled(field - 1), "count": "{:,}".format(entry["count"]),
            "min": _reading(entry["min"]), "max": _reading(entry["max"]),
            "mean": _statistic(entry["mean"], decimals),
            "stddev": _statistic(entry["stddev"], decimals),
            "first": _reading(first[1]), "first_at": _when(first[0], end),
            "last": _reading(last[1]), "last_at": _when(last[0], end)}


def _when(ts, end):
    """A time in the statistics: the time of day alone on the range's last
    day, else date and time; to the second."""
    if ts is None:
        return ""
    text = times.shown(ts)
    return text[11:] if text[:10] == times.shown(end)[:10] else text


def _decimals(value):
    """The decimals of a value as the meter sent it (None: 0)."""
    text = "" if value is None else ttp.format_value(value)
    return 0 if "." not in text or "e" in text else len(text) - text.index(".") - 1


def _reading(value):
    """A value as the meter sent it, with thousands separators."""
    if value is None:
        return "\u2013"
    text = ttp.format_value(value)
    if "e" in text or "n" in text:     # 1e+20, inf, nan: as they are
        return text
    whole, point, fraction = text.partition(".")
    return "{:,}".format(int(whole)) + point + fraction if whole != "-0" else text


def _statistic(value, decimals):
    """A computed value (mean, std. dev.): about four significant digits,
    at most one decimal more than the data's own, with thousands separators."""
    if value is None:
        return "\u2013"
    if not math.isfinite(value) or value == 0:
        return _reading(value)
    significant = 3 - math.floor(math.log10(abs(value)))
    return "{:,.{}f}".format(value, max(0, min(significant, decimals + 1)))


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
    axes = _axes(unit, options, fields)
    return app.Later(lambda store: app.Response(200, _graph(
        unit, axes, _graph_rows(request, store, unit, axes, start, end, width),
        start, end, width, height, _title(unit)), "image/svg+xml", SVG_HEADERS))


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

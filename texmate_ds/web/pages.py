"""The home page (every unit the visitor may see and every multiple-meter
display, 50 a page) and the display pages (/views/<id>/: the newest sample of each chosen unit
and channel, reloading itself at the display's refresh rate with a meta
refresh without script; with it, `static/display.js` updates each value
as its sample is committed, from ``/events``, and says whether it is
live). A display shows only the channels of units the visitor may see.

Both show each unit's status at a glance (`texmate_ds.status`): a badge
that says live, late, silent or no samples, and how long ago the server
last heard from it. The page writes them as they are when it is made, so
they are right without script; `static/status.js` then ticks the ages
every second and moves the badges on from live to late to silent as
time passes, and back to live when ``/events`` brings a sample (the home
page listens for its own units; on a display, display.js tells it). The
thresholds come with each badge, so the script only compares. The
statuses read the units table only (`Units.heard`): no sample is read,
and "problems first" sorts in SQL (`Units.page`), one pass over the
units table (11 ms for 10,000 units), on a worker thread.

A display's channels each have a trend line of the hour up to the unit's
newest sample (by the meter's clock, which may not be the server's; from
the first sample in that hour when there is less than an hour), at most
60 points: the store's decimated rows (`Samples.plot_rows`, each
bucket's minimum and maximum, so no peak is lost), drawn by the
template. Reading an hour of a fast meter is a range read, so the page
is made off the loop (`app.Later`). The lines stay as drawn until the
page loads again (the values and badges update live)."""

from urllib.parse import urlencode

from texmate_ds import status, times, ttp
from texmate_ds.web import app, html

# The home page's orders: by code, or "problems first" (status.STATES).
ORDERS = ("code", "status")
# A trend line: the last hour in at most 2 x TREND_BUCKETS points, in a
# box of TREND_WIDTH x TREND_HEIGHT (the template's viewBox), a margin of
# TREND_MARGIN above and below so the line is never cut.
TREND_SPAN = times.HOUR
TREND_BUCKETS = 30
TREND_WIDTH, TREND_HEIGHT, TREND_MARGIN = 120, 30, 2


def _statuses(store, units, now):
    """{unit id: status.Status} of `units` at `now`."""
    heard = store.units.heard(units)
    return {unit.id: status.status(unit, *heard.get(unit.id, (None, None, 0)), now)
            for unit in units}


def _events(request, units):
    """The /events address for the samples of `units`."""
    return request.url_for("events") + "?" + urlencode(
        {"units": ",".join(sorted(unit.code for unit in units))})


@app.page
def home(request):
    """Units the visitor may see, with the counts the units table keeps
    (constant time however many samples), their statuses and their
    active alarms, and every display. ``order=status`` lists problems
    first: that sorts every unit, so it is made off the loop."""
    order = request.query.get("order", "code")
    if order not in ORDERS:
        raise app.HTTPError(400, "order: %s, not %s" % (" or ".join(ORDERS), times.quoted(order)))
    if order == "status":
        return app.Later(lambda store: _home_page(request, store, order))
    return _home_page(request, request.store, order)


def _home_page(request, store, order):
    seen_by = request.access.seen_by
    units = html.Pager(request, store.units.count(seen_by=seen_by))
    displays = html.Pager(request, store.displays.count(), "displays_page")
    active = store.alarms.active_counts()
    now = times.now()
    listed = store.units.page(units.offset, units.size, seen_by=seen_by, order=order, now=now)
    statuses = _statuses(store, [unit for unit, _, _ in listed], now)
    rows = [{"unit": unit, "count": "{:,}".format(count), "newest": newest,
             "alarms": active.get(unit.id, 0), "status": statuses[unit.id]}
            for unit, count, newest in listed]
    home_url = request.url_for("home")
    return html.render(request, "home.html", "Units", units=rows, units_pager=units,
                       displays=store.displays.page(displays.offset, displays.size),
                       displays_pager=displays, now=now, order=order,
                       orders=[("code", "By code", home_url),
                               ("status", "Problems first", home_url + "?order=status")],
                       events=_events(request, [unit for unit, _, _ in listed]) if listed else "")


def _value(sample, field):
    """Field `field` (1-based) of a (id, ts, v1, ...) row, as text."""
    value = sample[field + 1] if sample else None
    return "—" if value is None else ttp.format_value(value)


def trend_points(rows, index, start, end):
    """The trend line of the `index`-th field (0-based) of `rows` (from
    `Samples.plot_rows`, over `start`..`end`): {"points": the polyline's
    "x,y x,y ..." in the TREND box, oldest left, "low", "high": its
    lowest and highest value as text}; None with fewer than two points
    (nothing to draw a line through).

    A bucket gives its minimum and maximum, at its first and its last
    time. Which came first is not kept, so they go in the order that
    carries on the way the line came (up from below, down from above):
    a steady rise or fall draws as a line, not as a staircase."""
    buckets = [(row[0], row[1], row[2 + 2 * index], row[3 + 2 * index]) for row in rows
               if row[2 + 2 * index] is not None]
    found = []
    for number, (first, last, low, high) in enumerate(buckets):
        middle = (low + high) / 2
        if found:
            falling = found[-1][1] > middle
        else:  # the first bucket looks at the next one instead
            falling = number + 1 < len(buckets) and sum(buckets[number + 1][2:]) / 2 < middle
        if falling:
            low, high = high, low
        found.append((first, low))
        if (last, high) != (first, low):
            found.append((last, high))
    if len(found) < 2:
        return None
    values = [value for _, value in found]
    bottom, top = min(values), max(values)
    span, height = (top - bottom) or 1.0, TREND_HEIGHT - 2 * TREND_MARGIN
    # A flat line sits in the middle rather than on the floor.
    lift = 0.0 if top > bottom else height / 2
    points = " ".join(
        "%.1f,%.1f" % ((ts - start) * TREND_WIDTH / max(end - start, 1),
                       TREND_HEIGHT - TREND_MARGIN - lift - (value - bottom) * height / span)
        for ts, value in found)
    return {"points": points, "low": ttp.format_value(bottom), "high": ttp.format_value(top)}


def _card(store, unit, fields, unit_status):
    sample = store.samples.last(unit)
    # A unit may have fewer fields now than when the display was made.
    fields = [field for field in fields if field <= unit.fields]
    trends = [None] * len(fields)
    if sample is not None:
        end = sample[1]
        # The hour, or from its first sample when it holds less than an
        # hour of them: five minutes of a new meter fill the line too.
        first = store.samples.oldest_page(unit, 1, end - TREND_SPAN, end)
        start = min(first[0][1], end - 1)
        rows = store.samples.plot_rows(unit, fields, start, end, TREND_BUCKETS)
        trends = [trend_points(rows, index, start, end) for index in range(len(fields))]
    return {"unit": unit, "last": sample[1] if sample else None, "status": unit_status,
            "values": [{"label": unit.label(field - 1), "value": _value(sample, field),
                        "measure": unit.measure(field - 1), "field": field, "trend": trend}
                       for field, trend in zip(fields, trends)]}


def _display_page(request, store, found, channels):
    now = times.now()
    statuses = _statuses(store, [unit for unit, _ in channels], now)
    return html.render(request, "display.html", found.name, refresh=found.refresh, now=now,
                       events=_events(request, [unit for unit, _ in channels]),
                       trend_box="0 0 %d %d" % (TREND_WIDTH, TREND_HEIGHT),
                       cards=[_card(store, unit, fields, statuses[unit.id])
                              for unit, fields in channels])


@app.page
def display(request, display_id):
    found = request.store.displays.get(display_id)
    if found is None:
        raise app.HTTPError(404, "no display %d" % display_id)
    channels = [(unit, fields) for unit, fields in request.store.displays.channels(found)
                if request.access.sees(unit)]
    return app.Later(lambda store: _display_page(request, store, found, channels))


ROUTES = [
    app.Route("/", home, "home"),
    app.Route("/views/<display_id:int>/", display, "display"),
]

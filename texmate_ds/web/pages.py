"""The home page (every unit the visitor may see and every multiple-meter
display, 50 a page) and the display pages (/views/<id>/: the newest sample of each chosen unit
and channel, reloading itself at the display's refresh rate with a meta
refresh without script; with it, `static/display.js` updates each value
as its sample is committed, from ``/events``, and says whether it is
live). A display shows only the channels of units the visitor may see."""

from urllib.parse import urlencode

from texmate_ds import ttp
from texmate_ds.web import app, html


@app.page
def home(request):
    """Units the visitor may see, with the counts the units table keeps
    (constant time however many samples) and their active alarms, and
    every display."""
    store, seen_by = request.store, request.access.seen_by
    units = html.Pager(request, store.units.count(seen_by=seen_by))
    displays = html.Pager(request, store.displays.count(), "displays_page")
    active = store.alarms.active_counts()
    rows = [{"unit": unit, "count": "{:,}".format(count), "newest": newest,
             "alarms": active.get(unit.id, 0)}
            for unit, count, newest in store.units.page(units.offset, units.size,
                                                        seen_by=seen_by)]
    return html.render(request, "home.html", "Units", units=rows, units_pager=units,
                       displays=store.displays.page(displays.offset, displays.size),
                       displays_pager=displays)


def _value(sample, field):
    """Field `field` (1-based) of a (id, ts, v1, ...) row, as text."""
    value = sample[field + 1] if sample else None
    return "—" if value is None else ttp.format_value(value)


def _card(store, unit, fields):
    sample = store.samples.last(unit)
    return {"unit": unit, "last": sample[1] if sample else None,
            # A unit may have fewer fields now than when the display was made.
            "values": [(unit.label(field - 1), _value(sample, field), unit.measure(field - 1),
                        field)
                       for field in fields if field <= unit.fields]}


@app.page
def display(request, display_id):
    found = request.store.displays.get(display_id)
    if found is None:
        raise app.HTTPError(404, "no display %d" % display_id)
    channels = [(unit, fields) for unit, fields in request.store.displays.channels(found)
                if request.access.sees(unit)]
    return html.render(request, "display.html", found.name, refresh=found.refresh,
                       events=request.url_for("events") + "?" + urlencode(
                           {"units": ",".join(sorted(unit.code for unit, _ in channels))}),
                       cards=[_card(request.store, unit, fields) for unit, fields in channels])


ROUTES = [
    app.Route("/", home, "home"),
    app.Route("/views/<display_id:int>/", display, "display"),
]

"""The home page (every unit and every multiple-meter display, 50 a page)
and the display pages (/views/<id>/: the newest sample of each chosen unit
and channel, reloading itself at the display's refresh rate with a meta
refresh, so it needs no JavaScript; live push comes later)."""

from urllib.parse import quote

from texmate_ds import times, ttp
from texmate_ds.web import app, html

_UNIT_ROW = """\
<tr><td><a href="/units/{{ code_url }}/">{{ name }}</a></td><td>{{ code }}</td>\
<td>{{ last }}</td><td class="num">{{ count }}</td>\
<td><a href="/units/{{ code_url }}/">graphs</a> · \
<a href="/units/{{ code_url }}/samples.csv">CSV</a></td></tr>"""
_NO_UNITS = ('<tr><td colspan="5" class="muted">No units yet: add one with '
             '<code>texmate_ds manage addunit</code>.</td></tr>')
_DISPLAY_ROW = """\
<tr><td><a href="/views/{{ id }}/">{{ name }}</a></td><td class="num">{{ refresh }} s</td></tr>"""
_NO_DISPLAYS = ('<tr><td colspan="2" class="muted">No displays yet: add one with '
                '<code>texmate_ds manage adddisplay</code>.</td></tr>')

_CARD = """\
<section class="card">
<h2><a href="/units/{{ code_url }}/">{{ name }}</a></h2>
<p class="muted">{{ code }} · {{ last }}</p>
<dl>{{ values }}</dl>
</section>"""
_VALUE = "<dt>{{ label }}</dt><dd>{{ value }}</dd>"


def _unit_names(unit):
    """Slots naming a unit: its name (or code), code, code for a URL."""
    return {"name": unit.name or unit.code, "code": unit.code,
            "code_url": quote(unit.code, safe="")}


def _rows(items, row, empty):
    rows = [html.fill(row, **item) for item in items]
    return html.join(rows) if rows else html.Markup(empty)


@app.page
def home(request):
    units = html.Pager(request, request.store.units.count())
    displays = html.Pager(request, request.store.displays.count(), "displays_page")
    # Counting a million samples per unit takes a while: off the loop.
    return app.Later(lambda store: _home(request, store, units, displays))


def _home(request, store, units, displays):
    unit_rows = [
        dict(_unit_names(unit), last=times.shown(newest) if newest is not None else "—",
             count="{:,}".format(count))
        for unit, count, newest in store.units.page(units.offset, units.size)]
    return html.render(
        request, "home.html", "Units",
        units=_rows(unit_rows, _UNIT_ROW, _NO_UNITS), units_pager=units.links(),
        displays=_rows([display._asdict()
                        for display in store.displays.page(displays.offset, displays.size)],
                       _DISPLAY_ROW, _NO_DISPLAYS),
        displays_pager=displays.links())


def _value(sample, field):
    """Field `field` (1-based) of a (id, ts, v1, ...) row, as text."""
    value = sample[field + 1] if sample else None
    return "—" if value is None else ttp.format_value(value)


def _card(store, unit, fields):
    sample = store.samples.last(unit)
    values = html.join(
        html.fill(_VALUE, label=unit.label(field - 1), value=_value(sample, field))
        # A unit may have fewer fields now than when the display was made.
        for field in fields if field <= unit.fields)
    return html.fill(_CARD, values=values, **_unit_names(unit),
                     last=times.shown(sample[1]) if sample else "no samples yet")


@app.page
def display(request, display_id):
    found = request.store.displays.get(display_id)
    if found is None:
        raise app.HTTPError(404, "no display %d" % display_id)
    refresh = html.fill('<meta http-equiv="refresh" content="{{ seconds }}">',
                        seconds=found.refresh)
    cards = html.join(_card(request.store, unit, fields)
                      for unit, fields in request.store.displays.channels(found))
    return html.render(request, "display.html", found.name, head=refresh,
                       refresh=found.refresh, cards=cards)


ROUTES = [
    ("GET", "/", home),
    ("GET", "/views/<display_id:int>/", display),
]

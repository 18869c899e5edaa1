"""What people may configure: graph sizes and axes, and displays.

One place for each rule, checked by whoever takes the setting from a
person (``manage`` now, the web's admin later; the web's ``graph.svg``
takes its width and height within `GRAPH_PIXELS`) before the store writes
it. The store enforces only what its schema does. A broken rule raises
ValueError saying what is wrong, for the person who typed it.
"""

# Graph width and height in pixels.
GRAPH_PIXELS = range(100, 4001)


def check_graph_options(unit, options):
    """`options` (store.GraphOptions) fit for `unit`: sizes within
    GRAPH_PIXELS, each axis naming fields the unit has."""
    for what, pixels in (("width", options.width), ("height", options.height)):
        if pixels not in GRAPH_PIXELS:
            raise ValueError("graph %s: %d to %d pixels" % (
                what, GRAPH_PIXELS.start, GRAPH_PIXELS.stop - 1))
    for axis in options.axes:
        if not axis.fields or not set(axis.fields) <= set(range(1, unit.fields + 1)):
            raise ValueError("axis %r: field numbers from 1 to %d" % (axis.label, unit.fields))


def check_field_count(unit, options, shown):
    """`unit` as it would be (its new field count) still has every field
    its graph axes (`options`, store.GraphOptions) and the displays
    (`shown`, 1-based fields) name: fewer fields may not orphan them."""
    check_graph_options(unit, options)
    beyond = sorted(field for field in shown if field > unit.fields)
    if beyond:
        raise ValueError("a display shows field(s) %s of unit %s, which would have %d"
                         % (", ".join(map(str, beyond)), unit.code, unit.fields))


def check_display(name, refresh, channels):
    """A display needs a name, a refresh of a second or more, and channels,
    each (Unit, 1-based field) a field the unit has, none twice."""
    if not name.strip() or refresh < 1 or not channels:
        raise ValueError("a display needs a name, a refresh of 1 s or more, and channels")
    for unit, field in channels:
        if not 1 <= field <= unit.fields:
            raise ValueError("unit %s has fields 1 to %d, not %d"
                             % (unit.code, unit.fields, field))
    if len({(unit.id, field) for unit, field in channels}) < len(channels):
        raise ValueError("a channel is named twice")

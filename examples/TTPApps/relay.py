"""relay: a source unit's newest sample in the meter's own field order (TTP /relay/<unit> <key>).

A meter that shows or acts on another unit's values may want them in
another order than that unit sends them: a panel whose L1 is the level
that pump A1 sends third. With

    [ttpapps]
    relay: on
    relay.SOURCE: A1
    relay.FIELDS: 3,1,2

A1's newest sample (by its timestamp, as ``dl last``) goes to the meter
with A1's field 3 as its L1, field 1 as L2, field 2 as L3:

    TTP /dl/B7/last/A1 k7   ->   OK <12 2024-03-01 08:00:00 L1=10 L2=20 L3=30>
    TTP /relay/B7 k7        ->   OK <12 2024-03-01 08:00:00 L1=30 L2=10 L3=20>

The answer is dl's, made by the same `ttp.format_sample` (docs/protocol.md,
"dl: download samples"), so a meter that reads dl answers reads this one.
A field may be named twice or left out; ``FIELDS`` empty relays them all
in A1's order.

Who may ask is dl's rule, asked of the store as dl asks it
(`units.may_read`): the source itself, a unit whose configured source it
is (``manage addunit --source A1``), or one allowed to read it (``--reads
A1``). In dl's order, the answers are: ``405``/``402``/``403`` for the
asking unit (`server.authenticate`), ``400`` for anything after its code,
``405`` when no unit is SOURCE, ``403`` when the meter may not read it,
``404`` when it has no sample yet.

The options are checked once, in `start`, so a mistake in txm.conf stops
the server at start, named, rather than failing each request. A FIELDS
number beyond the source's fields is only known when a request comes (a
unit's fields can change while the server runs): that request fails with
``500``, and the log says why.

The limit: one source and one order, for every meter that asks, since an
option holds one value. For a second mapping, copy the file under another
name with another code (``Extension``), and give that one its options.
"""

from texmate_ds import ttp

OPTIONS = {
    "SOURCE": ("", "the unit whose newest sample is relayed (its code; required)"),
    "FIELDS": ("", "its fields in the meter's order, from 1 (3,1,2); empty: all, in order"),
}

# Named here for readers and linters: once the app is loaded the server
# replaces it with a read-only {KEY: value} of OPTIONS, txm.conf's values
# (docs/configuration.md, "App options").
options = {}

# FIELDS as numbers, set by `start`; empty: every field of the source.
order = ()


def start(server):
    """Check the options once, before the server listens: what is raised
    here stops the start with its message."""
    global order
    source = options["SOURCE"]
    if not (0 < len(source) <= 32 and source.isascii() and source.isalnum()):
        raise ValueError("relay.SOURCE: %r is not a unit code (1 to 32 letters and digits)"
                         % source)
    try:
        order = tuple(int(n) for n in options["FIELDS"].split(",")) if options["FIELDS"] else ()
    except ValueError:
        order = None
    if order is None or not all(1 <= n <= 32 for n in order):
        raise ValueError("relay.FIELDS: %r is not field numbers 1 to 32 separated by commas"
                         % options["FIELDS"])


class RelayProducer(ttp.Answer):
    """The source's newest sample, its fields picked and ordered by FIELDS."""

    def __init__(self, server, request, unit, key):
        reader = server.authenticate(unit, key)
        if request.argument:
            raise ttp.TTPError(400)
        source = server.store.units.get(options["SOURCE"])
        if source is None:
            raise ttp.TTPError(405)
        if not server.store.units.may_read(reader, source):
            raise ttp.TTPError(403)
        fields = order or range(1, source.fields + 1)
        if max(fields) > source.fields:
            # Logged with the request, answered 500: the site's mistake, not the meter's.
            raise ValueError("relay.FIELDS names field %d, but %s has %d fields"
                             % (max(fields), source.code, source.fields))
        row = server.store.samples.last(source)
        if row is None:
            raise ttp.TTPError(404)
        # A stored row is (id, timestamp, value of field 1, ..., of field N).
        picked = row[:2] + tuple(row[1 + n] for n in fields)
        super().__init__("OK %s\r" % ttp.format_sample(picked))


Extension = {"code": "relay", "producer": RelayProducer, "start": start}

"""watch: an alarm when a watched unit goes over its limit; any meter may ask (TTP /watch/<unit>/<watched> <key> -> OK 1|0).

An example of an app reacting to other units' uploads (docs/protocol.md,
"Reacting to other units' uploads"): at start it subscribes to the
``sample`` events of the units in `LIMITS`, and for each sample one of them
uploads it compares the value with the limit. Going over raises an alarm of
that unit, once, through the server's own alarm path (stored, its letters
queued to the unit's mailing list and webhook, the ``alarm`` event
published after the commit), as if the meter had sent ``al``; coming back
under the limit ends it, and the next time over is a new alarm. Any meter
(B7, say, with a pump to stop) can ask where a watched unit stands:

    TTP /watch/B7/A1 k7   ->   OK 1   (A1's last value is over its limit)

Copy it into TTPApps/, edit `LIMITS`, and turn it on with ``watch: on``
under ``[ttpapps]`` in txm.conf.
"""

from texmate_ds import alarms, ttp

# The units watched: code -> (field, from 1; limit; level of its alarm).
LIMITS = {"A1": (1, 100.0, 50)}

# The watched units whose last value is over their limit.
over = set()


def start(server):
    """Once, when the server starts, before it listens."""
    for code in LIMITS:
        if is_over(code, newest(server, code)):
            over.add(code)  # over already at start: no new alarm
    server.subscribe(["sample"], lambda event: uploaded(server, event), units=LIMITS)


def uploaded(server, event):
    """Each sample a watched unit uploads, once committed."""
    if event.topic == "overflowed":
        # Samples were missed (too many in one loop turn): the newest stored
        # of each unit stands for them.
        for code in LIMITS:
            judge(server, code, newest(server, code))
    else:
        judge(server, event.data["unit"], event.data["values"])


def newest(server, code):
    """The values of the newest sample stored for `code`, or None."""
    unit = server.store.units.get(code)
    row = server.store.samples.last(unit) if unit else None
    return row[2:] if row else None


def is_over(code, values):
    field, limit, _ = LIMITS[code]
    return values is not None and values[field - 1] is not None and values[field - 1] > limit


def judge(server, code, values):
    if not is_over(code, values):
        over.discard(code)
    elif code not in over:
        field, limit, level = LIMITS[code]
        unit = server.store.units.get(code)
        alarm = alarms.raise_alarm(server.store, unit, level, (
            "L%d is %s" % (field, ttp.format_value(values[field - 1])),
            "over the limit of %s" % ttp.format_value(limit)))
        alarms.announce(server, unit, alarm)
        over.add(code)  # after the alarm: one that failed is raised with the next sample


class WatchProducer(ttp.Answer):
    """``OK 1`` when the watched unit's last value is over its limit, else
    ``OK 0``; ``404`` for a unit that is not watched."""

    def __init__(self, server, request, unit, key):
        server.authenticate(unit, key)
        if request.argument not in LIMITS:
            raise ttp.TTPError(404)
        super().__init__("OK %d\r" % (request.argument in over))


Extension = {"code": "watch", "producer": WatchProducer, "start": start}

"""time: the server's clock, for meters to set theirs (TTP /time/<unit> <key> -> OK <time>).

A meter that keeps its clock by the server's asks, and sets its own from
the answer:

    TTP /time/A1 k1   ->   OK 2026-12-01 12:00:00

The time is written as meters write theirs (docs/protocol.md,
"Timestamps"), so the meter reads it back with the code that writes its
uploads. It is cut to the whole second, as a meter's clock shows it: the
meter is then behind by less than a second, plus the answer's trip.

Which clock: `times.now()` is ``time.time()`` in microseconds since 1970, UTC,
whatever time zone the server's machine is set to. So the answer is UTC,
shifted by ``time.OFFSET_MINUTES`` for meters kept on local time
(``time.OFFSET_MINUTES: 60`` for UTC+1, ``-300`` for UTC-5). The offset is
fixed: it does not follow daylight saving time; meters that do need it
changed twice a year (or this app made to use `zoneinfo`).

Like the bundled up, dl and al, it authenticates the unit first
(``405``, ``402``, ``403`` for a disabled one), then looks at the rest:
anything after the unit code is ``400``.

Copy it into TTPApps/ and turn it on with ``time: on`` under ``[ttpapps]``
in txm.conf. (The module is imported under a private name,
``_txm_ttpapp_time``, so naming it ``time`` hides no standard module.)
"""

from texmate_ds import times, ttp

OPTIONS = {"OFFSET_MINUTES": (0, "minutes added to the server's UTC clock (60: UTC+1)")}

# Named here for readers and linters: once the app is loaded the server
# replaces it with a read-only {KEY: value} of OPTIONS, txm.conf's values
# (docs/configuration.md, "App options").
options = {}


class TimeProducer(ttp.Answer):
    """``OK Y-M-D H:M:S``: the server's clock plus the offset, to the second."""

    def __init__(self, server, request, unit, key):
        server.authenticate(unit, key)
        if request.argument:
            raise ttp.TTPError(400)
        now = times.now() + options["OFFSET_MINUTES"] * times.MINUTE
        super().__init__("OK %s\r" % times.text(now - now % times.SECOND))


Extension = {"code": "time", "producer": TimeProducer}

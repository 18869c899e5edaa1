"""al: store an alarm a meter raises (TTP /al/<unit>/<level>/<d0;d1;...> <key>)."""

from texmate_ds import alarms, ttp


class AlProducer(ttp.Answer):
    """Authenticates, then reads the level (0-99) and the data items
    (`ttp.parse_alarm`): anything malformed is ``400`` and stores nothing.
    The alarm and the letters that tell of it are written together
    (`alarms.raise_alarm`), ``d0`` kept as the meter's time when it reads
    as a timestamp. The ``OK`` is held until the group commit with
    ``COMMIT_INTERVAL: 1``, as an upload's is, and the ``alarm`` event
    published after it (docs/protocol.md, "al: raise an alarm")."""

    def __init__(self, server, request, unit, key):
        unit = server.authenticate(unit, key)
        level, data = ttp.parse_alarm(request.argument)
        alarm = alarms.raise_alarm(server.store, unit, level, data,
                                   meter_ts=alarms.meter_time(data))
        alarms.announce(server, unit, alarm)
        super().__init__("OK\r")


Extension = {"code": "al", "producer": AlProducer, "run_before": None, "run_after": None}

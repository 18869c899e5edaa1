"""up: store samples a meter uploads (TTP /up/<unit>/<TS;v1;...>... <key>)."""

from texmate_ds import ttp


class UpProducer(ttp.Answer):
    """Validates every sample first (all or nothing), then stores them.

    Duplicates (a timestamp already stored, or repeated in the request) are
    skipped and reported with their 1-based offsets and timestamps as sent;
    the others are stored (docs/protocol.md, "up: upload samples"). With ``COMMIT_INTERVAL: 1`` the
    channel holds this answer until the group commit.

    Each sample stored is published as a ``sample`` event once the
    transaction holding it has committed (events.py), never before and never
    for one rolled back; with nobody listening to the unit, that costs a
    lookup.
    """

    def __init__(self, server, request, unit, key):
        unit = server.authenticate(unit, key)
        samples = ttp.parse_samples(request.argument, unit.fields)
        duplicates = server.store.samples.add(unit, [s[:2] for s in samples])
        if duplicates:
            text = "406 Duplicate sample %s\r" % "".join(
                "%d<%s>" % (i + 1, samples[i][2]) for i in duplicates)
        else:
            text = "OK\r"
        super().__init__(text)
        if len(duplicates) < len(samples) and server.events.wants("sample", unit.code):
            skipped = set(duplicates)
            stored = [s[0] for i, s in enumerate(samples) if i not in skipped]
            server.after_commit(_publisher(server, unit, stored))


def _publisher(server, unit, timestamps):
    """The after_commit callback of an upload: a ``sample`` event for each
    of `timestamps` of `unit` if their transaction committed, as stored (the
    id is the store's)."""
    def publish(committed):
        if not committed:
            return
        for ts in timestamps:
            row = server.store.samples.at(unit, ts)
            if row is not None:
                server.events.publish("sample", unit=unit.code, id=row[0], timestamp=row[1],
                                      values=row[2:])
    return publish


Extension = {"code": "up", "producer": UpProducer, "run_before": None, "run_after": None}

"""up: store samples a meter uploads (TTP /up/<unit>/<TS;v1;...>... <key>)."""

from texmate_ds import ttp


class UpProducer(ttp.Answer):
    """Validates every sample first (all or nothing), then stores them.

    Duplicates (a timestamp already stored, or repeated in the request) are
    skipped and reported with their 1-based offsets and timestamps as sent;
    the others are stored (docs/protocol.md, "up: upload samples"). The
    store learns which are duplicates when it writes the samples, which
    on PostgreSQL waits for the loop turn's other uploads
    (`Samples.add_later`): the answer is made when the channel first asks
    for it, after the group commit with ``COMMIT_INTERVAL: 1`` (the
    channel holds it until then), at the end of the turn otherwise.

    Each sample stored is published as a ``sample`` event once the
    transaction holding it has committed (events.py), never before and never
    for one rolled back; with nobody listening to the unit, that costs a
    lookup. Where several processes may share the database (PostgreSQL),
    the relay publishes it instead, as it hears the commit's notice, so
    that every process's bus gets every commit's events in one order
    (relay.py).
    """

    def __init__(self, server, request, unit, key):
        unit = server.authenticate(unit, key)
        samples = ttp.parse_samples(request.argument, unit.fields)
        self.upload = server.store.samples.add_later(unit, [s[:2] for s in samples])
        self.samples = samples
        super().__init__("")
        if not server.store.events_relayed and server.events.wants("sample", unit.code):
            server.after_commit(_publisher(server, self.upload, [s[0] for s in samples]))

    def more(self):
        if self.upload is not None:
            duplicates = self.upload.result()
            self.upload = None
            if duplicates:
                self.data = "406 Duplicate sample %s\r" % "".join(
                    "%d<%s>" % (i + 1, self.samples[i][2]) for i in duplicates)
            else:
                self.data = "OK\r"
        return super().more()


def _publisher(server, upload, timestamps):
    """The after_commit callback of an upload: a ``sample`` event for each
    of `timestamps` stored (not among `upload`'s duplicates) if their
    transaction committed, as stored (the id is the store's)."""
    def publish(committed):
        if not committed or upload.duplicates is None:
            return
        skipped = set(upload.duplicates)
        unit = upload.unit
        for index, ts in enumerate(timestamps):
            if index in skipped:
                continue
            row = server.store.samples.at(unit, ts)
            if row is not None:
                server.events.publish("sample", unit=unit.code, id=row[0], timestamp=row[1],
                                      values=row[2:])
    return publish


Extension = {"code": "up", "producer": UpProducer, "run_before": None, "run_after": None}

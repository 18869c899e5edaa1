"""up: store samples a meter uploads (TTP /up/<unit>/<TS;v1;...>... <key>)."""

from texmate_ds import ttp


class UpProducer(ttp.Answer):
    """Validates every sample first (all or nothing), then stores them.

    Duplicates (a timestamp already stored, or repeated in the request) are
    skipped and reported with their 1-based offsets and timestamps as sent;
    the others are stored (ttp.md section 5). With ``COMMIT_INTERVAL: 1`` the
    channel holds this answer until the group commit.
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


Extension = {"code": "up", "producer": UpProducer, "run_before": None, "run_after": None}

"""dl: send stored samples back to a meter (TTP /dl/<unit>/<selector>[/<source>] <key>)."""

from texmate_ds import times, ttp

# Samples fetched from the store per chunk of a `from` answer.
PAGE = 100


def _source(server, reader, code):
    """The unit whose samples `reader` asked for (docs/protocol.md, "dl: download samples")."""
    if code:
        source = server.store.units.get(ttp.check_unit_code(code))
        if source is None:
            raise ttp.TTPError(405)
    elif reader.source_id is not None:
        source = server.store.units.get_by_id(reader.source_id)
    else:
        source = reader
    if not server.store.units.may_read(reader, source):
        raise ttp.TTPError(403)
    return source


def DlProducer(server, request, unit, key):
    """Picks the producer for the selector; errors raise TTPError."""
    reader = server.authenticate(unit, key)
    selector, _, code = request.argument.partition("/")
    source = _source(server, reader, code)
    samples = server.store.samples
    if selector == "last":
        return _one(samples.last(source))
    if selector == "first":
        return _one(samples.first(source))
    if selector == "next":
        return NextProducer(samples, reader, source)
    if selector.startswith("from<") and selector.endswith(">"):
        return FromProducer(samples, source, _timestamp(selector[5:-1]),
                            server.settings.DL_MAX_SAMPLES)
    if selector.startswith("<") and selector.endswith(">"):
        return _one(samples.at(source, _timestamp(selector[1:-1])))
    raise ttp.TTPError(400)


def _timestamp(text):
    try:
        return times.parse(text)
    except times.BadTime:
        raise ttp.TTPError(400) from None


def _one(row):
    if row is None:
        raise ttp.TTPError(404)
    return ttp.Answer("OK %s\r" % ttp.format_sample(row))


class NextProducer:
    """Mailbox read. The store is asked only when this answer's turn comes,
    and the cursor moves only once the answer is written to the socket
    (`flushed`), so pipelined ``next`` requests each get the following
    sample and a dropped connection means the sample comes again."""

    def __init__(self, samples, reader, source):
        self.samples = samples
        self.reader = reader
        self.source = source
        self.sample_id = None
        self.done = False

    def more(self):
        if self.done:
            return ""
        self.done = True
        row = self.samples.after_id(
            self.source, self.samples.cursor(self.reader, self.source))
        if row is None:
            return ttp.error_text(404)
        self.sample_id = row[0]
        return "OK %s\r" % ttp.format_sample(row)

    def flushed(self):
        if self.sample_id is not None:
            self.samples.set_cursor(self.reader, self.source, self.sample_id)


class FromProducer:
    """Every sample from a timestamp on, at most `limit`, a page per chunk.
    Nothing is fetched until this answer's turn comes, so answers queued
    behind a slow reader hold no rows."""

    def __init__(self, samples, source, start, limit):
        self.samples = samples
        self.source = source
        self.start = start
        self.left = limit
        self.prefix = "OK "
        self.done = False

    def more(self):
        if self.done:
            return ""
        page = self.samples.between(self.source, self.start, limit=min(PAGE, self.left))
        self.left -= len(page)
        if not page:
            self.done = True
            return ttp.error_text(404) if self.prefix else "\r"
        text = self.prefix + "".join(ttp.format_sample(row) for row in page)
        self.prefix = ""
        self.start = page[-1][1] + 1
        if not self.left or len(page) < PAGE:
            self.done = True
            text += "\r"
        return text


Extension = {"code": "dl", "producer": DlProducer, "run_before": None, "run_after": None}

"""dl: send stored samples back to a meter (TTP /dl/<unit>/<selector>[/<source>] <key>)."""

from texmate_ds import times, ttp

# Samples fetched from the store per chunk of a `from` answer.
PAGE = 100


def _source(server, reader, code):
    """The unit whose samples `reader` asked for (docs/protocol.md, "dl: download samples")."""
    if code:
        source = server.store.get_unit(ttp.check_unit_code(code))
        if source is None:
            raise ttp.TTPError(405)
    elif reader.source_id is not None:
        source = server.store.get_unit_by_id(reader.source_id)
    else:
        source = reader
    if not server.store.may_read(reader, source):
        raise ttp.TTPError(403)
    return source


def DlProducer(server, request, unit, key):
    """Picks the producer for the selector; errors raise TTPError."""
    reader = server.authenticate(unit, key)
    selector, _, code = request.argument.partition("/")
    source = _source(server, reader, code)
    store = server.store
    if selector == "last":
        return _one(store.last_sample(source))
    if selector == "first":
        return _one(store.first_sample(source))
    if selector == "next":
        return NextProducer(store, reader, source)
    if selector.startswith("from<") and selector.endswith(">"):
        return FromProducer(store, source, _timestamp(selector[5:-1]),
                            server.settings.DL_MAX_SAMPLES)
    if selector.startswith("<") and selector.endswith(">"):
        return _one(store.sample_at(source, _timestamp(selector[1:-1])))
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

    def __init__(self, store, reader, source):
        self.store = store
        self.reader = reader
        self.source = source
        self.sample_id = None
        self.done = False

    def more(self):
        if self.done:
            return ""
        self.done = True
        row = self.store.sample_after_id(
            self.source, self.store.get_cursor(self.reader, self.source))
        if row is None:
            return ttp.error_text(404)
        self.sample_id = row[0]
        return "OK %s\r" % ttp.format_sample(row)

    def flushed(self):
        if self.sample_id is not None:
            self.store.set_cursor(self.reader, self.source, self.sample_id)


class FromProducer:
    """Every sample from a timestamp on, at most `limit`, a page per chunk.
    Nothing is fetched until this answer's turn comes, so answers queued
    behind a slow reader hold no rows."""

    def __init__(self, store, source, start, limit):
        self.store = store
        self.source = source
        self.start = start
        self.left = limit
        self.prefix = "OK "
        self.done = False

    def more(self):
        if self.done:
            return ""
        page = self.store.samples_range(self.source, self.start, limit=min(PAGE, self.left))
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

"""``/events``: live updates as Server-Sent Events (docs/web.md, "Live
updates").

A stream is a long-lived answer the loop pulls a piece at a time
(`Stream`, a WSGI iterable with ``ready`` and ``long_lived``, see
http.WSGIResponse): it subscribes to the event bus (`texmate_ds.events`)
for the ``sample`` and ``alarm`` topics of the units asked for, is woken
(``environ["texmate.wake"]``) when an event lands in its queue, and sends
what is queued. So events go out only after their commit (that is when
they are published), and a stream costs nothing between events but its
queue.

* Who sees what: ``?units=A1,B7`` (default: every unit the visitor may
  see); a unit they may not see, or that does not exist, is a 403 before
  the stream starts. By session or API token (the data guard).
* Resume: a client that reconnects with ``Last-Event-ID`` (a sample id,
  or ``a`` and an alarm id) first gets what its units stored after it,
  from the store, `RESUME_MAX` at most (more: ``resync``), then the live
  stream. The store's resume reads give only what is committed
  (``store.committed()``: the loop's connection also sees its open
  transaction, whose samples and alarms are published when it commits),
  and they and the subscription are made in one go on the loop, so each
  event goes out once, and never before its commit. Where several
  processes share a PostgreSQL database, the resume reads what any of
  them stored, and an event committed already, by any process, but
  whose notice had not reached this one's bus yet (relay.py), is then
  sent from the store and not again from the bus. There every bus
  publishes in the order of the ids (relay.py), so the id a client had
  last marks all it had, whatever units it watches.
* A ``: keep-alive`` comment every `KEEPALIVE` seconds; the idle sweep
  spares a live stream (``long_lived``). Tests shorten the interval with
  the environment variable ``TXM_LIVE_TIME_SCALE`` (a factor above 0 and
  at most 1 applied to `KEEPALIVE`, read when the server starts), as
  mail.py's ``TXM_MAIL_TIME_SCALE`` shortens its retries: it is no
  setting and an operator has no use for it.
* A subscriber that cannot keep up (its queue of `QUEUE` events full) is
  sent ``event: resync`` and the stream ends: the bus never waits for it
  and it never holds more than its queue.
* At most ``MAX_EVENT_STREAMS`` streams are open; beyond, 503 with
  ``Retry-After``.

Only texmate_ds's own server runs streams (it gives the site its bus and
loop, `Live`); under another WSGI server ``/events`` answers 404.
"""

import collections
import json

from texmate_ds import times
from texmate_ds.events import OVERFLOWED
from texmate_ds.http import WAKE
from texmate_ds.web import app

KEEPALIVE = 15          # seconds between comments on a quiet stream
QUEUE = 1000            # events a stream may have waiting
RESUME_MAX = 1000       # stored events a reconnecting stream is sent
TOPICS = ("sample", "alarm")
EVENT_TYPE = "text/event-stream; charset=utf-8"
SCALE_VARIABLE = "TXM_LIVE_TIME_SCALE"
# Frames of the newest events kept for the other streams (`Live.frame`):
# streams take an event within a turn or two of its publishing, so the
# newest 256 hold nearly every one asked for; a miss only makes it again.
FRAMES_KEPT = 256


class Live:
    """What the server lends the site for streams: the event bus, the loop
    (for the keep-alive timers) and the cap on open streams."""

    def __init__(self, bus, loop, max_streams):
        self.bus = bus
        self.loop = loop
        self.max_streams = max_streams
        self.open = 0
        self.scale = times.time_scale(SCALE_VARIABLE)   # of KEEPALIVE: 1 but in tests
        # (topic, id) -> (the payload, its frame) of the events published
        # last: every stream of a unit sends the same bytes, made once, not
        # once each. The payload is the very one published (an id can come
        # again: SQLite gives a deleted newest row's id to the next).
        self._frames = collections.OrderedDict()

    def frame(self, event):
        """The bytes of `event` as a stream sends them."""
        data = event.data
        key = (event.topic, data["id"])
        found = self._frames.get(key)
        if found is not None and found[0] is data:
            return found[1]
        if event.topic == "sample":
            frame = sample_frame(data["unit"], data["id"], data["timestamp"], data["values"])
        else:
            frame = alarm_frame(data["unit"], data["id"], data["level"], data["data"],
                                data["received"])
        self._frames[key] = (data, frame)
        self._frames.move_to_end(key)
        if len(self._frames) > FRAMES_KEPT:
            self._frames.popitem(last=False)
        return frame


def _frame(kind, event_id, payload):
    return ("event: %s\nid: %s\ndata: %s\n\n" % (
        kind, event_id, json.dumps(payload, separators=(", ", ": ")))).encode("utf-8")


def sample_frame(unit_code, sample_id, ts, values):
    return _frame("sample", sample_id, {"unit": unit_code, "id": sample_id,
                                        "timestamp": times.text(ts), "values": list(values)})


def alarm_frame(unit_code, alarm_id, level, data, received):
    return _frame("alarm", "a%d" % alarm_id, {"unit": unit_code, "id": alarm_id,
                                              "level": level, "data": list(data),
                                              "received": times.text(received)})


RESYNC = b"event: resync\ndata: {}\n\n"
KEEPALIVE_FRAME = b": keep-alive\n\n"


class Stream:
    """One client's event stream (see the module docstring): the chunks
    waiting to go (`pending`), then whatever the subscription brings."""

    long_lived = True

    def __init__(self, live, units, pending, wake, resumed=frozenset()):
        self.live = live
        self.pending = list(pending)
        # (topic, id) of the events resumed from the store, not to be sent
        # twice when their commit's notice publishes them afterwards.
        self.resumed = resumed
        self.wake = wake
        self.ended = False
        self.subscription = live.bus.subscribe(TOPICS, units, size=QUEUE, wake=wake)
        self.timer = live.loop.call_later(KEEPALIVE * live.scale, self._keepalive)
        live.open += 1

    @property
    def ready(self):
        return bool(self.pending) or self.ended or len(self.subscription) > 0

    def _take(self):
        """The frames of the events queued. After ``resync`` nothing more is
        sent, not even a keep-alive."""
        for event in self.subscription.take():
            if event is OVERFLOWED:
                self.pending.append(RESYNC)
                self.ended = True
                return
            if self.resumed and (event.topic, event.data["id"]) in self.resumed:
                continue
            self.pending.append(self._frame(event))

    def _keepalive(self):
        if not self.ended:
            self.pending.append(KEEPALIVE_FRAME)
            self.timer = self.live.loop.call_later(KEEPALIVE * self.live.scale, self._keepalive)
            self.wake()

    def __iter__(self):
        return self

    def __next__(self):
        if not self.pending:
            self._take()
        if not self.pending:
            if self.ended:
                raise StopIteration
            return b""          # nothing yet: `ready` keeps the loop from asking
        chunk = b"".join(self.pending)
        self.pending = []
        if chunk.endswith(RESYNC):
            self.ended = True
        return chunk

    def _frame(self, event):
        return self.live.frame(event)

    def close(self):
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None
            self.timer.cancel()
            self.live.open -= 1


def _units(request):
    """The unit codes asked for, each one the visitor sees (403 otherwise);
    None for every unit when they see all and asked for none."""
    text = request.query.get("units", "").strip()
    store, access = request.store, request.access
    if not text:
        if access.seen_by is None:
            return None
        return {unit.code for unit in store.units.all() if access.sees(unit)}
    codes = [code.strip() for code in text.split(",") if code.strip()]
    if len(codes) > 1000:
        raise app.HTTPError(400, "units: 1,000 at most")
    for code in codes:
        unit = store.units.get(code)
        if unit is None or not access.sees(unit):
            raise app.HTTPError(403, "units: you may not watch %s" % app.printable(code[:40]))
    return set(codes)


def _resumed(request, units):
    """(the frames of what `units` stored after the client's Last-Event-ID,
    the (topic, id) of their events)."""
    last = request.environ.get("HTTP_LAST_EVENT_ID", "").strip()
    if not last:
        return [], frozenset()
    alarm = last.startswith("a")
    digits = last[1:] if alarm else last
    if not (digits.isdigit() and len(digits) < 19):
        return [], frozenset()  # not one of ours: nothing to resume from
    store = request.store.committed()
    chosen = [unit for unit in store.units.all()
              if (units is None or unit.code in units) and request.access.sees(unit)]
    if alarm:
        found = store.alarms.after(chosen, int(digits), RESUME_MAX + 1)
        frames = [alarm_frame(unit.code, a.id, a.level, a.data, a.received) for unit, a in found]
        ids = frozenset(("alarm", a.id) for _, a in found)
    else:
        found = store.samples.after_id_of(chosen, int(digits), RESUME_MAX + 1)
        frames = [sample_frame(unit.code, row[0], row[1], row[2:]) for unit, row in found]
        ids = frozenset(("sample", row[0]) for _, row in found)
    if len(frames) > RESUME_MAX:
        return [RESYNC], frozenset()    # too much missed: the client starts over
    return frames, ids


@app.data
def events(request):
    live = request.site.live
    if live is None:
        raise app.HTTPError(404, "live updates need texmate_ds's own server")
    unknown = sorted(set(request.query) - {"units"})
    if unknown:
        raise app.HTTPError(400, "unknown parameter %r; this address takes units"
                            % unknown[0][:40])
    units = _units(request)
    if live.open >= live.max_streams:
        raise app.HTTPError(503, "as many live streams are open as the server takes "
                                 "(MAX_EVENT_STREAMS); retry in a moment",
                            [("Retry-After", "5")])
    frames, resumed = _resumed(request, units)
    stream = Stream(live, units, [b"retry: 3000\n\n"] + frames, request.environ[WAKE], resumed)
    return app.Response(200, stream, EVENT_TYPE,
                        [("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")])


ROUTES = [app.Route("/events", events, "events")]

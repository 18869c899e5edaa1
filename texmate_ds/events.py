"""Events: what happened (a sample stored) reaches whoever listens (a live
display's stream, later mail) without the publisher knowing them, and only
once it is committed.

`TOPICS` is the one table of what can be published: each topic's payload
fields and its publisher. Every payload names its unit by code (``unit``),
so a subscriber can listen to some units only.

    topic   payload fields                  published by
    sample  unit, id, timestamp, values     apps/up.py, for each sample stored,
                                            once its upload's transaction committed
    alarm   unit, id, kind, level, data,    alarms.py (`announce`), for each alarm
            meter_ts, received              raised (by apps/al.py, or the silent-
                                            meter check), once it committed

and, where several processes share a PostgreSQL database, relay.py for
both, for what another process stored, once its commit is heard of.

``unit`` (a unit added, changed or removed) joins the table with its
publisher, the admin panel: a topic is declared with the code that
publishes it, so nobody subscribes to a promise and no payload is guessed
at before its use.

Design. The bus, its publishers and its subscribers live on the loop
thread; another thread publishes through ``loop.call_soon_threadsafe``.

* `Bus.subscribe(topics, units, size, wake)` returns a `Subscription`: a
  queue of at most `size` `Event` s of those topics, for the unit codes in
  `units` (None: every unit). ``wake()``, if given, is called when an event
  lands in the empty queue (a stream's ``Channel.wake``), and the
  subscriber takes what is queued with `Subscription.take` when it is ready
  to.
* `Bus.publish(topic, **payload)` queues one `Event` for every matching
  subscription and returns. It never waits for a subscriber, and nothing a
  subscriber does makes it raise: a subscription whose queue is full is
  dropped, its last item `OVERFLOWED` (it is woken to see it), so a
  subscriber that cannot keep up holds `size` events at most and starts
  over (a stream sends ``resync``); one whose ``wake`` raises is logged and
  dropped. Only the publisher's own mistake raises: a topic not in
  `TOPICS`, or other payload fields than declared.
* `Bus.wants(topic, unit)` lets a publisher skip building a payload
  nobody listens to: with no subscriber an upload costs a dict lookup.
  `Bus.listened(topic)` asks the same of any unit (the relay, which
  reads another process's rows only when someone may want them).
"""

import collections
import logging

log = logging.getLogger("texmate_ds.events")

Topic = collections.namedtuple("Topic", "fields publisher")

TOPICS = {
    # unit: the unit code; id: the sample's id in the store (what dl shows);
    # timestamp: the meter's, integer microseconds (times.py); values: the
    # floats as stored, in field order.
    "sample": Topic(frozenset(("unit", "id", "timestamp", "values")), "apps/up.py"),
    # unit: the unit code; id: the alarm's id in the store; kind: meter,
    # silent or back; level: 0-99; data: the data items, a tuple of text;
    # meter_ts: the meter's time (µs) when d0 read as a timestamp, else None;
    # received: the server's time (µs).
    "alarm": Topic(frozenset(("unit", "id", "kind", "level", "data", "meter_ts", "received")),
                   "alarms.py"),
}

Event = collections.namedtuple("Event", "topic data")
Event.__doc__ = """One published event: its `topic` and its payload `data`
(a dict of the topic's fields)."""

# A dropped subscription's last item: it overflowed and missed events.
OVERFLOWED = Event("overflowed", {})


def _topic(name):
    topic = TOPICS.get(name)
    if topic is None:
        raise ValueError("no event topic %r (declared: %s)" % (name, ", ".join(sorted(TOPICS))))
    return topic


class _Listeners:
    """The subscriptions to one topic: for every unit, and by unit code."""

    __slots__ = ("every", "by_unit")

    def __init__(self):
        self.every = set()
        self.by_unit = {}


class Subscription:
    """A subscriber's bounded queue; made by `Bus.subscribe`."""

    def __init__(self, bus, topics, units, size, wake):
        if size < 1:
            raise ValueError("a subscription holds at least one event, not %r" % size)
        self.bus = bus
        self.topics = topics
        self.units = units
        self.size = size
        self.wake = wake
        self.overflowed = False
        self.closed = False
        self._queue = collections.deque()

    def __len__(self):
        return len(self._queue)

    def take(self):
        """The events queued, oldest first, and an empty queue; `OVERFLOWED`
        comes last once the subscription was dropped for it."""
        events = list(self._queue)
        self._queue.clear()
        return events

    def close(self):
        """Stop listening (again is harmless)."""
        self.bus._drop(self)

    def _put(self, event):
        if self.closed:
            return  # dropped by another subscriber's wake during this publish
        queue = self._queue
        if len(queue) >= self.size:
            log.info("an event subscriber fell %d events behind; dropped", self.size)
            self.overflowed = True
            self.bus._drop(self)
            queue.append(OVERFLOWED)
        else:
            queue.append(event)
            if len(queue) > 1:
                return  # woken for the first already, not taken yet
        if self.wake is None:
            return
        try:
            self.wake()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:
            log.exception("waking an event subscriber failed; dropped")
            self.bus._drop(self)


class Bus:
    """The server's event bus (``server.events`` to TTP apps)."""

    def __init__(self):
        self._listeners = {name: _Listeners() for name in TOPICS}

    def subscribe(self, topics, units=None, *, size, wake=None):
        """A `Subscription` to the events of `topics` (names in TOPICS) for
        the unit codes in `units` (None: every unit), `size` of them queued
        at most; ``wake()`` is called when an event lands in its empty
        queue, and when it is dropped."""
        topics = tuple(topics)
        for name in topics:
            _topic(name)
        units = None if units is None else frozenset(units)
        sub = Subscription(self, topics, units, size, wake)
        for name in topics:
            listeners = self._listeners[name]
            if units is None:
                listeners.every.add(sub)
            else:
                for code in units:
                    listeners.by_unit.setdefault(code, set()).add(sub)
        return sub

    def _drop(self, sub):
        if sub.closed:
            return
        sub.closed = True
        for name in sub.topics:
            listeners = self._listeners[name]
            if sub.units is None:
                listeners.every.discard(sub)
                continue
            for code in sub.units:
                subs = listeners.by_unit[code]
                subs.discard(sub)
                if not subs:
                    del listeners.by_unit[code]

    def wants(self, topic, unit):
        """Whether anyone listens to `topic` for the unit code `unit`."""
        listeners = self._listeners[topic]
        return bool(listeners.every) or unit in listeners.by_unit

    def listened(self, topic):
        """Whether anyone listens to `topic` for any unit at all."""
        listeners = self._listeners[topic]
        return bool(listeners.every or listeners.by_unit)

    def publish(self, topic, **data):
        """Queue the event for every subscription to `topic` and its unit
        (``data["unit"]``); never waits, never fails for a subscriber."""
        fields = _topic(topic).fields
        if data.keys() != fields:
            raise ValueError("a %s event has the fields %s, not %s"
                             % (topic, ", ".join(sorted(fields)), ", ".join(sorted(data))))
        listeners = self._listeners[topic]
        subs = listeners.every | listeners.by_unit.get(data["unit"], set())
        if not subs:
            return
        event = Event(topic, data)
        for sub in subs:  # a copy: a subscription may drop itself
            sub._put(event)

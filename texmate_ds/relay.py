"""The relay: what every process sharing the database commits, told to
this one's bus in the order of the commits.

Several texmate_ds processes may share one PostgreSQL database
(docs/architecture.md, "Several processes on PostgreSQL"). Each drops its
own cached rows when it changes them; the rest it learns here:

* Every commit names what it stored (`store.notices`: samples by unit
  and timestamp, alarms by id) in a NOTIFY that PostgreSQL delivers only
  once the commit is done, to every listener in the order of the
  commits. `Relay` listens on a connection of its own
  (`store.Database.listening`) whose socket the loop watches
  (`loop.Loop.watch`): nothing polls and nothing waits. When a notice
  comes, the rows it names are read through the loop's store, one
  statement each for its samples and its alarms and none for a topic
  nobody on the bus listens to (`events.Bus.listened`), and those of the
  units the bus wants (`events.Bus.wants`) are published as ``sample`` and
  ``alarm`` events, in the order they were stored. A live stream or a
  TTP app here thus gets another process's uploads a moment after their
  commit.
* This process's own commits come back the same way, and their events
  are published here only then (``Database.events_relayed``: apps/up.py
  and `alarms.announce` leave them to the relay). Published at once
  after the commit, they could overtake an earlier commit of another
  process whose notice was still on its way; as it is, every process's
  bus publishes every commit in one order, which with ids given in
  commit order (``order_events`` of the dialect) is the order of the
  ids, and a stream's ``Last-Event-ID`` marks all it had (web/live.py).
* Other processes' changes to rows this process caches (units, read
  permissions: ``Units._changing``) drop the loop's store's cache as soon
  as they are heard, before the next request is read, rather than at the
  next turn's `notice_others`. (The web's workers notice on their own
  connections, before each piece of work.)
* A lost connection (PostgreSQL restarted) is made again every
  `RETRY_SECONDS` until it can be, each try on a thread of its own (a
  server that does not answer keeps a connect waiting), and the cache is
  then dropped once, since changes may have gone unheard meanwhile.
  Events committed in between, this process's own too, are not
  published here; a stream that connects again gets them from the store
  (``Last-Event-ID``).

On SQLite there is one process: `listening` gives None, the relay does
nothing, and each writer publishes its events after its commit.
"""

import logging
import threading

from texmate_ds.store import StoreError, notices

log = logging.getLogger("texmate_ds.relay")

# Seconds between two tries to listen again once the connection is lost.
RETRY_SECONDS = 1.0
# Alarm ids read in one statement (`store.sql.MAX_IN`).
_ALARMS_READ = 900


class Relay:
    """A loop service publishing on `bus` what the processes sharing
    `store` (the loop's), this one among them, commit, and dropping its
    cache when the others change cached rows."""

    def __init__(self, loop, store, bus):
        self.loop = loop
        self.store = store
        self.bus = bus
        self._listening = None
        self._fd = None
        self._retry = None
        self._failing = False
        self._stopped = False

    def start(self):
        """Listen from the start, on the loop thread: the database was
        reached a moment ago, and an event committed elsewhere from then on
        is published here."""
        self._stopped = False
        try:
            listening = self.store.listening()
        except StoreError as exc:
            self._lost("cannot listen to the other processes (%s)" % exc)
            return
        if listening is not None:
            self._listen_on(listening)

    def stop(self):
        self._stopped = True
        if self._retry is not None:
            self._retry.cancel()
        self._close()

    def _listen_on(self, listening):
        if self._stopped:
            listening.close()
            return
        if self._failing:
            log.info("listening to the other processes again")
            self._failing = False
        self._listening, self._fd = listening, listening.fileno()
        self.loop.watch(self._fd, self._heard)
        self.store.others_changed()

    def _lost(self, why):
        # One line an outage: the tries every RETRY_SECONDS say nothing more.
        if not self._failing:
            log.warning("%s: no commit's events are published here until listening "
                        "again (tried every %g s)", why, RETRY_SECONDS)
            self._failing = True
        if not self._stopped:
            self._retry = self.loop.call_later(RETRY_SECONDS, self._reconnect)

    def _reconnect(self):
        """Connect again on a thread of its own: a server that does not
        answer keeps a connect waiting up to its timeout, which the loop
        must not. The outcome comes back to the loop thread."""
        self._retry = None
        threading.Thread(target=self._connect, name="txm-relay-connect", daemon=True).start()

    def _connect(self):
        try:
            listening = self.store.listening()
        except StoreError as exc:
            why = "cannot listen to the other processes (%s)" % exc
            self.loop.call_soon_threadsafe(lambda: self._lost(why))
            return
        self.loop.call_soon_threadsafe(lambda: self._listen_on(listening))

    def _close(self):
        if self._listening is not None:
            self.loop.unwatch(self._fd)
            self._listening.close()
            self._listening = None

    def _heard(self):
        try:
            changed, payloads = self._listening.heard()
        except StoreError as exc:
            # Unwatched at once: the descriptor is closed already.
            self._close()
            self._lost(str(exc))
            return
        if changed:
            self.store.others_changed()
        for payload in payloads:
            try:
                self._publish(notices.decode(payload))
            except ValueError as exc:
                log.warning("a notice on the events channel was not understood: %s", exc)
            except StoreError as exc:
                log.warning("a commit's events could not be read, so are not "
                            "published here: %s", exc)

    def _publish(self, items):
        """Publish the events of one notice's `items` that the bus wants."""
        bus, store = self.bus, self.store
        samples, alarms = {}, {}
        if bus.listened("sample"):
            samples = store.samples.stored_at(
                (unit_id, ts) for topic, unit_id, keys in items if topic == "sample"
                for ts in keys)
        if bus.listened("alarm"):
            ids = [key for topic, _, keys in items if topic == "alarm" for key in keys]
            for start in range(0, len(ids), _ALARMS_READ):
                alarms.update((alarm.id, (unit, alarm)) for unit, alarm in store.alarms.query(
                    [("id", "in", tuple(ids[start:start + _ALARMS_READ]))]))
        for topic, unit_id, keys in items:
            for key in keys:
                if topic == "sample":
                    found = samples.get((unit_id, key))
                    if found is not None and bus.wants("sample", found[0]):
                        code, row = found
                        bus.publish("sample", unit=code, id=row[0], timestamp=row[1],
                                    values=row[2:])
                else:
                    found = alarms.get(key)
                    if found is not None and bus.wants("alarm", found[0].code):
                        unit, alarm = found
                        bus.publish("alarm", unit=unit.code, id=alarm.id, kind=alarm.kind,
                                    level=alarm.level, data=alarm.data,
                                    meter_ts=alarm.meter_ts, received=alarm.received)

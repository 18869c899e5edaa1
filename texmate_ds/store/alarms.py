"""Alarms, what tells people of them, and the outbox of messages to send.

* `Alarms`: alarms (what a meter raised with ``al``, or what the server
  saw: a meter gone silent, and back), each active until acknowledged;
  the alarm messages (subject and body templates per unit and level);
  the units' mailing lists.
* `Outbox`: every message an alarm makes (an email to one address, or a
  webhook's POST), written in the same transaction as the alarm, and
  what the mail service did with it: sent, retried (attempts, the next
  one's time, the last reply) or failed. A letter is claimed before each
  attempt (`Outbox.claim`), so that of several processes sharing the
  database only one tries it.

What a message says is `texmate_ds.alarms`' to work out (it renders the
templates); how and when it is sent, `texmate_ds.mail`'s. Times are
integer microseconds (`times.now`).
"""

import collections
import json
import logging

from texmate_ds import times
from texmate_ds.store.sql import UNITS_SEEN_BY, filters, matching, order_by, page
from texmate_ds.store.units import COLUMNS_AS_U, Unit

log = logging.getLogger("texmate_ds.store")

KINDS = ("meter", "silent", "back")

_ALARM = ("id", "unit_id", "kind", "level", "data", "meter_ts", "received", "acknowledged",
          "acknowledged_by", "note")
_SELECT_ALARM = "SELECT %s FROM alarms" % ", ".join(_ALARM)
# What `query` compares and sorts by: every column (of "a", beside its unit "u").
_ALARM_AS_A = {column: "a." + column for column in _ALARM}
_SELECT_WITH_UNIT = "SELECT %s, %s FROM alarms a JOIN units u ON u.id = a.unit_id" % (
    COLUMNS_AS_U, ", ".join(_ALARM_AS_A.values()))


class Alarm(collections.namedtuple("Alarm", _ALARM)):
    """An alarm as stored: `data` a tuple of text, `acknowledged` when (µs;
    None: still active), `meter_ts` the meter's time when ``d0`` read as
    one."""

    __slots__ = ()

    @classmethod
    def from_row(cls, row):
        return cls(*row[:4], tuple(json.loads(row[4])), *row[5:])

    @property
    def active(self):
        return self.acknowledged is None


# A subject and body template for a unit (None: the site's) and a level
# (None: every level).
Message = collections.namedtuple("Message", "id unit_id level subject body")
_SELECT_MESSAGE = "SELECT id, unit_id, level, subject, body FROM alarm_messages"

_LETTER = ("id", "alarm_id", "kind", "recipient", "subject", "body", "state", "created",
           "attempts", "next_attempt", "last_attempt", "last_reply")
_SELECT_LETTER = "SELECT %s FROM outbox" % ", ".join(_LETTER)
# One message of the outbox.
Letter = collections.namedtuple("Letter", _LETTER)
STATES = ("queued", "sent", "failed")


class Alarms:
    def __init__(self, db):
        self.db = db

    def add(self, unit, level, data, meter_ts=None, kind="meter", received=None):
        """The new Alarm of `unit`, in the shared transaction."""
        if kind not in KINDS:
            raise ValueError("kind %r: one of %s" % (kind, ", ".join(KINDS)))
        self.db.order_events()
        alarm_id = self.db.insert(
            "alarms", unit_id=unit.id, kind=kind, level=level,
            data=json.dumps(list(data), ensure_ascii=False), meter_ts=meter_ts,
            received=times.now() if received is None else received)
        if self.db.notices is not None:
            self.db.notices.add("alarm", unit.id, (alarm_id,))
        return self.get(alarm_id)

    def get(self, alarm_id):
        row = self.db.one(_SELECT_ALARM + " WHERE id = ?", (alarm_id,))
        return Alarm.from_row(row) if row else None

    def find(self, unit=None, active=None, seen_by=None, before=None, limit=100,
             start=None, end=None):
        """[Alarm], newest first: of `unit` (None: any), active or not
        (None: both), of units user `seen_by` may see (None: any), received
        from `start` to `end` (µs, None: unbounded), with an id below
        `before` (the page after one ending there)."""
        where, params = filters(
            ("unit_id = ?", unit.id if unit else None),
            ("acknowledged IS NULL" if active else "acknowledged IS NOT NULL",
             () if active is not None else None),
            ("unit_id IN (%s)" % UNITS_SEEN_BY, seen_by and (seen_by, seen_by)),
            ("received >= ?", start), ("received <= ?", end), ("id < ?", before))
        return [Alarm.from_row(row) for row in self.db.all(
            _SELECT_ALARM + " WHERE %s ORDER BY id DESC LIMIT ?" % where, params + [limit])]

    def query(self, conditions=(), order="received", limit=None, offset=0):
        """[(Unit, Alarm)] of the alarms for which all `conditions` hold
        (`sql.matching` over the alarm's columns), sorted by the column
        `order` (``-received``: descending; ties by id), `limit` of them
        (None: all) after the first `offset`: one statement, each alarm
        with its unit (the apps' querysets, `texmate_ds.models`)."""
        where, params = matching(_ALARM_AS_A, conditions)
        limits, more = page(limit, offset)
        width = len(Unit._fields)
        return [(Unit.from_row(row[:width]), Alarm.from_row(row[width:])) for row in self.db.all(
            "%s WHERE %s ORDER BY %s%s" % (_SELECT_WITH_UNIT, where,
                                           order_by(_ALARM_AS_A, order, "a.id"), limits),
            params + more)]

    def count_matching(self, conditions=()):
        """How many alarms `query` finds with those `conditions` in all."""
        where, params = matching(_ALARM_AS_A, conditions)
        return self.db.one("SELECT count(*) FROM alarms a WHERE " + where, params)[0]

    def after(self, units, alarm_id, limit):
        """[(Unit, Alarm)] of the committed alarms of `units` after alarm
        `alarm_id`, oldest first, `limit` at most (a live stream resuming:
        those of the open transaction are published when it commits)."""
        by_id = {unit.id: unit for unit in units}
        if not by_id:
            return []
        ids = tuple(sorted(by_id)[:900])
        where, params = filters(("id > ?", alarm_id),
                                ("unit_id IN (%s)" % ",".join("?" * len(ids)), ids))
        rows = self.db.all(_SELECT_ALARM + " WHERE %s ORDER BY id LIMIT ?" % where,
                           params + [limit])
        return [(by_id[row[1]], Alarm.from_row(row)) for row in rows]

    def active_counts(self):
        """{unit id: active alarms} of the units that have any."""
        return dict(self.db.all("SELECT unit_id, count(*) FROM alarms"
                                " WHERE acknowledged IS NULL GROUP BY unit_id"))

    def acknowledge(self, alarm, who, note=""):
        """Mark `alarm` acknowledged by `who` now; the alarm as it is now
        (unchanged if it was acknowledged already)."""
        self.db.write("UPDATE alarms SET acknowledged = ?, acknowledged_by = ?, note = ?"
                      " WHERE id = ? AND acknowledged IS NULL",
                      (times.now(), who, note, alarm.id))
        return self.get(alarm.id)

    def count(self, unit, before=None):
        """`unit`'s alarms, or those received before `before`."""
        where, params = filters(("unit_id = ?", unit.id), ("received < ?", before))
        return self.db.one("SELECT count(*) FROM alarms WHERE " + where, params)[0]

    def delete_ids(self, ids):
        """Delete those of `ids` that are alarms; how many went."""
        ids = list(dict.fromkeys(ids))
        gone = 0
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            gone += self.db.write("DELETE FROM alarms WHERE id IN (%s)" % ",".join(
                "?" * len(chunk)), chunk).rowcount
        return gone

    def delete_oldest(self, unit, limit, before=None):
        """Delete `unit`'s oldest `limit` alarms at most (received before
        `before` unless None); how many went (a chore's step)."""
        where, params = filters(("unit_id = ?", unit.id), ("received < ?", before))
        return self.db.write(
            "DELETE FROM alarms WHERE id IN (SELECT id FROM alarms WHERE %s"
            " ORDER BY received LIMIT ?)" % where, params + [limit]).rowcount

    # -- alarm messages

    def message(self, unit, level):
        """The Message an alarm of `unit` at `level` is told with: the
        unit's for that level, else the unit's for every level, else the
        site's; None when none is set (the built-in default then)."""
        row = self.db.one(
            _SELECT_MESSAGE + " WHERE (unit_id = ? AND (level = ? OR level IS NULL))"
            " OR (unit_id IS NULL AND level IS NULL)"
            " ORDER BY unit_id IS NULL, level IS NULL LIMIT 1", (unit.id, level))
        return Message(*row) if row else None

    def messages(self, unit):
        """The Messages set for `unit` (None: the site's), by level (every
        level's first)."""
        where = "unit_id IS NULL" if unit is None else "unit_id = ?"
        return [Message(*row) for row in self.db.all(
            _SELECT_MESSAGE + " WHERE %s ORDER BY level IS NOT NULL, level" % where,
            () if unit is None else (unit.id,))]

    def set_message(self, unit, level, subject, body):
        """Set the message of `unit` (None: the site) for `level` (None:
        every level)."""
        unit_id = None if unit is None else unit.id
        where = " AND ".join(
            ("%s IS NULL" % column) if value is None else ("%s = ?" % column)
            for column, value in (("unit_id", unit_id), ("level", level)))
        self.db.write("DELETE FROM alarm_messages WHERE " + where,
                      [value for value in (unit_id, level) if value is not None])
        self.db.insert("alarm_messages", unit_id=unit_id, level=level, subject=subject,
                       body=body)

    def delete_message(self, message_id):
        self.db.write("DELETE FROM alarm_messages WHERE id = ?", (message_id,))

    # -- mailing lists

    def mailing_list(self, unit):
        """The ids of the users on `unit`'s mailing list."""
        return {row[0] for row in self.db.all(
            "SELECT user_id FROM mailing_list WHERE unit_id = ?", (unit.id,))}

    def set_mailing_list(self, unit, user_ids):
        self.db.write("DELETE FROM mailing_list WHERE unit_id = ?", (unit.id,))
        self.db.executemany("INSERT INTO mailing_list (unit_id, user_id) VALUES (?, ?)",
                            [(unit.id, user_id) for user_id in sorted(set(user_ids))])

    def recipients(self, unit):
        """The email addresses of the active users on `unit`'s list, once
        each, sorted."""
        return [row[0] for row in self.db.all(
            "SELECT DISTINCT u.email FROM mailing_list m JOIN users u ON u.id = m.user_id"
            " WHERE m.unit_id = ? AND u.is_active = 1 AND u.email <> '' ORDER BY u.email",
            (unit.id,))]


class Outbox:
    """The outbox of one connection.

    `on_queued` is the mail service's wake-up: each ``fn()`` in it is
    called (on the thread that commits) once a transaction that queued
    letters here (`add`, `retry`) has committed, so the service sends them
    at once rather than at its next look. A hook that raises is logged and
    skipped; it can never undo the commit."""

    def __init__(self, db):
        self.db = db
        self.on_queued = []
        self._queued = False
        db.on_end.append(self._ended)

    def _ended(self, committed):
        queued, self._queued = self._queued, False
        if committed and queued:
            for wake in self.on_queued:
                try:
                    wake()
                except Exception:
                    log.exception("an outbox wake-up hook failed (%r)", wake)

    def add(self, alarm_id, kind, recipient, subject, body):
        """Queue a message, due now, in the shared transaction; its id."""
        now = times.now()
        letter_id = self.db.insert("outbox", alarm_id=alarm_id, kind=kind, recipient=recipient,
                                   subject=subject, body=body, created=now, next_attempt=now)
        self._queued = True
        return letter_id

    def get(self, letter_id):
        row = self.db.one(_SELECT_LETTER + " WHERE id = ?", (letter_id,))
        return Letter(*row) if row else None

    def due(self, now, limit):
        """The queued Letters whose next attempt is due, soonest first."""
        return [Letter(*row) for row in self.db.all(
            _SELECT_LETTER + " WHERE state = 'queued' AND next_attempt <= ?"
            " ORDER BY next_attempt, id LIMIT ?", (now, limit))]

    def claim(self, letter, now):
        """`letter` as it is now if it is still queued, due at `now`, and
        not held by another connection; else None (the caller ends the
        transaction). Where several processes share the database it is
        then held by this connection's transaction (begun) until the
        commit of its `attempted`: another process's mail service passes
        over it meanwhile (``FOR NO KEY UPDATE SKIP LOCKED``) and finds it no
        longer queued once that commits, so each letter is tried by one
        process."""
        row = self.db.one_locked(
            _SELECT_LETTER + " WHERE id = ? AND state = 'queued' AND next_attempt <= ?",
            (letter.id, now), skip_locked=True)
        return Letter(*row) if row else None

    def next_due(self):
        """When the soonest queued Letter is due, or None."""
        return self.db.one("SELECT min(next_attempt) FROM outbox WHERE state = 'queued'")[0]

    def attempted(self, letter, state, reply, next_attempt=None):
        """Record an attempt at `letter`: its new `state` (sent, failed, or
        queued again until `next_attempt`) and the server's `reply`."""
        if state not in STATES:
            raise ValueError("state %r: one of %s" % (state, ", ".join(STATES)))
        now = times.now()
        self.db.write(
            "UPDATE outbox SET state = ?, attempts = attempts + 1, last_attempt = ?,"
            " last_reply = ?, next_attempt = ? WHERE id = ?",
            (state, now, reply[:500], next_attempt if next_attempt is not None else now,
             letter.id))
        self.db.insert("outbox_attempts", letter_id=letter.id, at=now, state=state,
                       reply=reply[:500])

    def attempts(self, letter, limit=100):
        """[(when, state after it, the reply)] of the attempts at `letter`,
        the newest `limit` of them, oldest first."""
        rows = self.db.all("SELECT at, state, reply FROM outbox_attempts WHERE letter_id = ?"
                           " ORDER BY id DESC LIMIT ?", (letter.id, limit))
        return rows[::-1]

    def retry(self, letter):
        """Queue `letter` again, due now (the admin's "retry"), unless a
        mail service has it in hand (`claim`), trying it now: the loop
        never waits for a network call's row lock."""
        self.db.write("UPDATE outbox SET state = 'queued', next_attempt = ? WHERE id IN"
                      " (SELECT id FROM outbox WHERE id = ?%s)" % self.db.dialect.skip_locked,
                      (times.now(), letter.id))
        self._queued = True

    def find(self, state=None, alarm_id=None, before=None, limit=100, seen_by=None):
        """[Letter], newest first, in `state` (None: any), of `alarm_id`;
        with `seen_by` (a user id) only those of alarms of units that user
        may see."""
        where, params = filters(
            ("state = ?", state), ("alarm_id = ?", alarm_id), ("id < ?", before),
            ("alarm_id IN (SELECT id FROM alarms WHERE unit_id IN (%s))" % UNITS_SEEN_BY,
             seen_by and (seen_by, seen_by)))
        return [Letter(*row) for row in self.db.all(
            _SELECT_LETTER + " WHERE %s ORDER BY id DESC LIMIT ?" % where, params + [limit])]

    def states_of(self, alarm_ids):
        """{alarm id: {state: letters}} of those alarms that have letters."""
        ids = list(alarm_ids)
        found = {}
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            for alarm_id, state, count in self.db.all(
                    "SELECT alarm_id, state, count(*) FROM outbox WHERE alarm_id IN (%s)"
                    " GROUP BY alarm_id, state" % ",".join("?" * len(chunk)), chunk):
                found.setdefault(alarm_id, {})[state] = count
        return found

    def counts(self):
        """{state: how many}."""
        return dict(self.db.all("SELECT state, count(*) FROM outbox GROUP BY state"))

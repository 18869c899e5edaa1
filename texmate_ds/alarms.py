"""Alarms: raising them, and writing what tells people of them.

An alarm is raised by a meter (``al``, `apps/al.py`) or by the server
itself (a meter gone silent, and back: `SilentMeters`). Either way
`raise_alarm` does the same three things in one savepoint of the shared
transaction, so that they are all on disk or none is:

1. the alarm is stored (``store.alarms.add``);
2. its message is rendered: the unit's alarm message for that level (or
   the unit's for every level, or the site's: ``store.alarms.message``),
   subject and body each a template in the sandbox policy of
   `templates.py`, else the built-in default;
3. one letter per address of the unit's mailing list, and one ``webhook``
   letter when the unit has a webhook URL, are queued in the outbox
   (``store.outbox.add``), rendered once, here.

Nothing is sent here. The mail service (`mail.py`) sends the outbox on its
own thread and connection; it learns that letters wait through the
store's hook ``store.outbox.on_queued`` (a list of ``fn()``, called on the
loop thread after each commit that queued letters: the service appends
its thread-safe wake-up there). A letter is thus never sent for an
alarm that was rolled back, and never lost for one that committed.

`announce` publishes the ``alarm`` event (events.py) once the alarm's
transaction has committed, as uploads publish ``sample``.

Templates. The names an alarm message may use are `NAMES`:

* ``level``: the level, an int;
* ``unit``: a `templates.Record` that writes as the unit's code, with the
  keys ``code``, ``name``, ``description`` and ``fields`` (the field
  names, ``L1``... for a field without one);
* ``data``: the data items, a list of text (``data.0``, ``data.1``...);
* ``received``: when the server received the alarm, ``YYYY-MM-DD
  HH:MM:SS`` (the ``date`` filter reformats it);
* ``kind``: ``meter``, ``silent`` or ``back``.

`check_message` refuses a subject or body that does not parse (the admin
calls it when one is saved), naming the template, the line and the
reason. A template that parses can still fail when rendered (past the
sandbox's loop or output budget with some data): that part of the
message then falls back to the built-in default, and the log says why.
An alarm is never lost to its message. A subject is one line: its runs of
white space become one space; rendered empty, it is the default's.
"""

import functools
import json
import logging

from texmate_ds import templates, times

log = logging.getLogger("texmate_ds.alarms")

NAMES = ("level", "unit", "data", "received", "kind")

# Units whose silence changed that one check handles at most, so that a
# thousand meters behind one broken link cost a few short loop turns
# rather than one long one; the rest follow at once, a batch a turn.
SILENT_BATCH = 100

# The lock a silent-meter check holds (`store.Database.exclusive`) to its
# commit, so that of several processes sharing a database one at a time
# looks (the store's migrations take 0x7478_6D00).
SWEEP_LOCK = 0x7478_6D01

# Characters of a template's failure shown in the log.
_SHOWN = 300


class MessageError(ValueError):
    """An alarm message that cannot be saved: `template` ("subject" or
    "body"), `line` (from 1) and `reason`."""

    def __init__(self, template, line, reason):
        super().__init__("%s, line %d: %s" % (template, line, reason))
        self.template = template
        self.line = line
        self.reason = reason


@functools.lru_cache(maxsize=64)
def _compiled(source):
    # A site has a few messages and each alarm renders one: parse each once.
    return templates.sandbox(source, NAMES)


def check_message(subject, body):
    """Refuse (`MessageError`) a subject or body template that does not
    parse in the sandbox with `NAMES`; the subject is checked first."""
    for which, source in (("subject", subject), ("body", body)):
        try:
            _compiled(source)
        except templates.TemplateSyntaxError as exc:
            raise MessageError(which, exc.line, exc.reason) from None


def context(unit, alarm):
    """The names an alarm message of `alarm` of `unit` is rendered with."""
    return {
        "level": alarm.level,
        "unit": templates.Record(unit.code, code=unit.code, name=unit.name,
                                 description=unit.description,
                                 fields=[unit.label(i) for i in range(unit.fields)]),
        "data": list(alarm.data),
        "received": times.shown(alarm.received),
        "kind": alarm.kind,
    }


def _who(unit):
    return "%s (%s)" % (unit.code, unit.name) if unit.name else unit.code


def default_subject(unit, alarm):
    """The built-in subject: the unit, the level and the time received."""
    when = times.shown(alarm.received)
    if alarm.kind == "silent":
        return "Silent meter %s: level %d alarm at %s" % (_who(unit), alarm.level, when)
    if alarm.kind == "back":
        return "%s is back online: level %d at %s" % (_who(unit), alarm.level, when)
    return "Alarm level %d from %s at %s" % (alarm.level, _who(unit), when)


_OPENINGS = {
    "meter": "Unit %s raised an alarm at level %d.",
    "silent": "Unit %s has gone silent (a level %d alarm).",
    "back": "Unit %s is back online (level %d).",
}


def default_body(unit, alarm):
    """The built-in body: what happened, when, and every data item."""
    lines = [_OPENINGS[alarm.kind] % (_who(unit), alarm.level), "",
             "Received: %s (server time)" % times.shown(alarm.received)]
    if alarm.meter_ts is not None:
        lines.append("Meter time: %s" % times.text(alarm.meter_ts))
    if alarm.data:
        lines.append("Data:")
        lines.extend("  d%d: %s" % item for item in enumerate(alarm.data))
    else:
        lines.append("Data: none")
    return "\n".join(lines) + "\n"


def _escaped(text):
    text = text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
    return text.encode("unicode_escape").decode("ascii")


def _rendered(source, names, part, unit, alarm):
    """`source` rendered, or None (logged) if it fails."""
    try:
        return _compiled(source).render(names)
    except Exception as exc:  # a template must never cost an alarm
        log.warning("unit %s, level %d: the %s of its alarm message failed (%s: %s); "
                    "the built-in %s is sent instead", unit.code, alarm.level, part,
                    type(exc).__name__, _escaped(str(exc)), part)
        return None


def render(message, unit, alarm):
    """(subject, body) telling of `alarm` of `unit` with `message` (a
    store Message, or None for the built-in default); each part that
    fails falls back to the default's."""
    subject = body = None
    if message is not None:
        names = context(unit, alarm)
        subject = _rendered(message.subject, names, "subject", unit, alarm)
        body = _rendered(message.body, names, "body", unit, alarm)
    subject = " ".join(subject.split()) if subject is not None else ""
    if not subject:
        subject = default_subject(unit, alarm)
    if body is None:
        body = default_body(unit, alarm)
    return subject, body


def webhook_body(unit, alarm, subject):
    """The JSON a webhook is posted: the alarm, its unit, and ``text`` (the
    subject, which chat tools show as the message)."""
    return json.dumps({
        "id": alarm.id,
        "unit": {"id": unit.id, "code": unit.code, "name": unit.name},
        "kind": alarm.kind,
        "level": alarm.level,
        "data": list(alarm.data),
        "meter_time": None if alarm.meter_ts is None else times.text(alarm.meter_ts),
        "received": times.text(alarm.received),
        "text": subject,
    }, ensure_ascii=False)


def meter_time(data):
    """The meter's timestamp (µs) when the first data item reads as one
    (docs/protocol.md, "Timestamps"), else None."""
    if not data:
        return None
    try:
        return times.parse(data[0])
    except times.BadTime:
        return None


def raise_alarm(store, unit, level, data, kind="meter", meter_ts=None, received=None):
    """Store an alarm of `unit` and queue its letters, all or nothing, in
    the shared transaction (the caller's commit makes them count); the
    Alarm. `received` defaults to now."""
    with store.atomic():
        alarm = store.alarms.add(unit, level, data, meter_ts=meter_ts, kind=kind,
                                 received=received)
        subject, body = render(store.alarms.message(unit, level), unit, alarm)
        for address in store.alarms.recipients(unit):
            store.outbox.add(alarm.id, "email", address, subject, body)
        if unit.webhook_url:
            store.outbox.add(alarm.id, "webhook", unit.webhook_url, subject,
                             webhook_body(unit, alarm, subject))
    return alarm


def announce(server, unit, alarm):
    """Publish the ``alarm`` event of `alarm` once its transaction has
    committed (never for one rolled back); with nobody listening to the
    unit, that costs a lookup. Where the relay publishes it, nothing."""
    if server.store.events_relayed or not server.events.wants("alarm", unit.code):
        return

    def publish(committed):
        if committed:
            server.events.publish("alarm", unit=unit.code, id=alarm.id, kind=alarm.kind,
                                  level=alarm.level, data=alarm.data, meter_ts=alarm.meter_ts,
                                  received=alarm.received)
    server.after_commit(publish)


class SilentMeters:
    """The silent-meter check, a service on the loop: every `interval`
    seconds, one query (``store.units.silence``) finds the units that have
    sent nothing for their ``silent_minutes`` and have no silent alarm
    yet, and those silent that uploaded since. The first get a ``silent``
    alarm at their ``silent_level`` and are marked silent; the others a
    ``back`` alarm, and are silent no more. So each silence is told once,
    and its end once. At most `SILENT_BATCH` units a turn; a full batch
    looks again on the next turn (after its commit).

    Several processes sharing a database each run this service, one look
    at a time: a look takes `SWEEP_LOCK` first and holds it until its
    alarms commit; a process that finds it taken skips that look, and its
    next one sees the units the other marked."""

    def __init__(self, server, interval, clock=times.now):
        self.server = server
        self.interval = interval
        self.clock = clock
        self.checks = 0

    def start(self):
        self.server.loop.every(self.interval, self.check)

    def stop(self):
        pass  # what a check wrote is committed by the group commit's stop

    def check(self):
        """One look; the alarms raised. Never raises: a failure is logged
        (and the next look tries again)."""
        self.checks += 1
        store = self.server.store
        now = self.clock()
        try:
            if not store.exclusive(SWEEP_LOCK):
                return []       # another process is at it; the next look comes
            changed = store.units.silence(now, SILENT_BATCH)
        except Exception:
            log.exception("the silent-meter check failed")
            return []
        raised = []
        for unit, since, last in changed:
            try:
                with store.atomic():
                    raised.append(self._tell(store, unit, since, last, now))
            except Exception:
                log.exception("the silent-meter alarm of unit %s failed", unit.code)
        if len(changed) == SILENT_BATCH and raised:
            self.server.loop.call_later(0, self.check)
        return raised

    def _tell(self, store, unit, since, last, now):
        if since is None:
            minutes = unit.silent_minutes
            alarm = raise_alarm(store, unit, unit.silent_level, (
                "no data since %s" % times.shown(last),
                "expected every %s" % ("minute" if minutes == 1 else "%d minutes" % minutes)),
                kind="silent", received=now)
            store.units.set_silent_since(unit, now)
            log.info("unit %s: no data since %s; silent-meter alarm %d raised",
                     unit.code, times.shown(last), alarm.id)
        else:
            alarm = raise_alarm(store, unit, unit.silent_level, (
                "data again at %s" % times.shown(last),
                "silent alarm raised at %s" % times.shown(since)),
                kind="back", received=now)
            store.units.set_silent_since(unit, None)
            log.info("unit %s: data again at %s; back-online alarm %d raised",
                     unit.code, times.shown(last), alarm.id)
        announce(self.server, unit, alarm)
        return alarm

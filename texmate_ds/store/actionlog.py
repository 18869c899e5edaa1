"""The action log: who added, changed or deleted what, and when.

Whoever changes something people configured (``manage`` now, the web's
admin later) calls `record` before committing, so the entry joins the
same shared transaction as the change: both are stored, or neither.
The log is append-only; nothing here updates or deletes an entry.

Secrets never reach it: a change to a field named in `SECRET_FIELDS` (a
unit's key, a user's password) is written as ``"(changed)"``, whatever
the caller passed (the string in place of the [old, new] pair), so no
caller can leak one by mistake; a caller may pass ``"(changed)"`` for a
field of its own that it keeps secret (a webhook's address).
"""

import collections
import json

from texmate_ds import times
from texmate_ds.store.sql import filters

SECRET_FIELDS = frozenset({"key", "password"})
SECRET = "(changed)"
ACTIONS = ("add", "change", "delete")

# `at` in microseconds; `changes` a dict {field: [old, new] or SECRET} (empty: none).
Entry = collections.namedtuple(
    "Entry", "id at actor action model object_id object_repr changes message")
_SELECT = "SELECT %s FROM action_log" % ", ".join(Entry._fields)


class ActionLog:
    def __init__(self, db):
        self.db = db

    def record(self, actor, action, model, object_id, object_repr, changes=None, message=""):
        """Add an entry within the shared transaction; its id. `actor` is a
        username or ``manage:<OS user>``; `action` one of `ACTIONS`;
        `model` what kind of thing (``unit``, ``user``, ``samples``...);
        `changes` {field: [old, new]} for a change (a secret field's value
        is not read: None will do)."""
        if action not in ACTIONS:
            raise ValueError("action %r: one of %s" % (action, ", ".join(ACTIONS)))
        shown = {field: SECRET if field in SECRET_FIELDS or values == SECRET else list(values)
                 for field, values in (changes or {}).items()}
        return self.db.insert(
            "action_log", at=times.now(), actor=actor, action=action, model=model,
            object_id=str(object_id), object_repr=object_repr,
            changes=json.dumps(shown, sort_keys=True, ensure_ascii=False), message=message)

    def entries(self, model=None, actor=None, since=None, object_id=None, limit=100,
                until=None, before_id=None):
        """[Entry], newest first: those of `model` (and `object_id`), by
        `actor`, at or after `since` and at or before `until` (µs), with an
        id below `before_id` (the page after one ending there); None
        matches any."""
        where, params = filters(
            ("model = ?", model), ("object_id = ?", None if object_id is None else str(object_id)),
            ("actor = ?", actor), ("at >= ?", since), ("at <= ?", until),
            ("id < ?", before_id))
        rows = self.db.all(_SELECT + " WHERE " + where + " ORDER BY id DESC LIMIT ?",
                           params + [limit])
        return [Entry(*row[:7], json.loads(row[7]), row[8]) for row in rows]

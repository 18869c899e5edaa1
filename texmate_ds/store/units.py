"""Units (meters): their rows, who may download whose samples, and each
unit's graph options.

Every TTP request looks its unit up by code, and a ``dl`` from another
unit asks whether the reader may, so both answers are cached here, and
so is a code of no unit (a meter set up wrong asks again and again;
`MISSING_MAX` such codes at most). The cache is emptied when this
connection changes units, when a transaction or an atomic block that
may have read them is undone, and (through `Database.notice_others`,
every loop turn, and before a code remembered missing is answered
missing again) when another connection such as ``manage`` committed
anything.
"""

import collections
import hmac
import json

from texmate_ds import status, times
from texmate_ds.store.errors import NotFound
from texmate_ds.store.sql import (
    UNITS_SEEN_BY,
    filters,
    matching,
    order_by,
    page,
    searching,
)

_COLUMNS = ("id", "code", "key", "name", "description", "fields", "field_names", "enabled",
            "source_id", "field_units", "report_fields", "webhook_url", "silent_minutes",
            "silent_level", "expected_interval")
_SELECT = "SELECT %s FROM units" % ", ".join(_COLUMNS)
# `Units.silence`: the units falling silent, and those silent that spoke.
_SILENCE = (
    "SELECT %s, silent_since, coalesce(last_received, created) FROM units"
    " WHERE (silent_since IS NULL AND silent_minutes IS NOT NULL AND enabled = 1"
    " AND coalesce(last_received, created) + silent_minutes * ? < ?)"
    " OR (silent_since IS NOT NULL AND last_received > silent_since) LIMIT ?"
    % ", ".join(_COLUMNS))
# Ids in one IN (...) query; SQLite before 3.32 allows 999 parameters.
_IN_CHUNK = 900
# Codes asked for and not found that `get` remembers, so that a meter
# sending a wrong code costs one read, not one a request (a round trip on
# the loop, on PostgreSQL); past this many they are all forgotten.
MISSING_MAX = 1000
# What `query` compares and sorts by: every column but the key (a secret).
_BY_NAME = {column: column for column in _COLUMNS if column != "key"}
# The same columns of the table aliased "u", for joins (displays).
COLUMNS_AS_U = ", ".join("u." + column for column in _COLUMNS)
# What `Units.page` sorts by: the admin's sortable columns.
ORDERS = {"code": "u.code", "name": "u.name", "fields": "u.fields",
          "samples": "u.sample_count", "last": "u.last_ts", "enabled": "u.enabled"}


def status_order(greatest):
    """SQL: "problems first", the place in `status.STATES` of unit ``u``'s
    state at the time ``?`` (given twice), with `status.thresholds`
    written out over its columns, so that a sort by it agrees with the
    badges; then by code. `greatest` is the engine's two-argument max().
    Every unit's rank is worked out from its own row (no sample is read),
    and the sort is one pass over the units table: the figure is in
    docs/performance.md."""
    every = "coalesce(u.expected_interval * %d, u.usual_interval, %d)" % (
        times.SECOND, status.UNKNOWN_INTERVAL)
    silent = "coalesce(u.silent_minutes * %d, %s(%d * %s, %d))" % (
        times.MINUTE, greatest, status.SILENT_FACTOR, every, status.SILENT_FLOOR)
    late = "%s(%d * %s, %d)" % (greatest, status.LATE_FACTOR, every, status.LATE_FLOOR)
    rank = status.STATES.index
    return ("CASE WHEN u.last_received IS NULL THEN %d WHEN ? - u.last_received > %s THEN %d"
            " WHEN ? - u.last_received > %s THEN %d ELSE %d END, u.code" % (
                rank("never"), silent, rank("silent"), late, rank("late"), rank("live")))


class Unit(collections.namedtuple("Unit", _COLUMNS, defaults=((), (), "", None, 1, None))):
    """A unit as stored: `field_names` and `field_units` (each field's
    unit of measure) tuples of text, maybe shorter than `fields`;
    `enabled` a bool; `source_id` the unit ``dl`` reads by default (None:
    itself); `report_fields` the 1-based fields exports and the unit page
    offer (empty: all); `webhook_url` where its alarms are posted ("":
    nowhere); `silent_minutes` how long without a sample raises a
    silent-meter alarm (None: never) at `silent_level`; `expected_interval`
    the seconds it should upload within (None: its usual spacing counts;
    `texmate_ds.status`)."""

    __slots__ = ()

    @classmethod
    def from_row(cls, row):
        (unit_id, code, key, name, description, fields, field_names, enabled,
         source_id, field_units, report_fields, webhook_url, silent_minutes,
         silent_level, expected_interval) = row
        return cls(unit_id, code, key, name, description, fields, _texts(field_names),
                   bool(enabled), source_id, _texts(field_units),
                   tuple(int(n) for n in report_fields.split(",")) if report_fields else (),
                   webhook_url, silent_minutes, silent_level, expected_interval)

    def check_key(self, key):
        """Is `key` this unit's? In constant time."""
        try:
            # ASCII text compares as it is (every key a meter can send is),
            # sparing two encodings per request.
            return hmac.compare_digest(self.key, key)
        except TypeError:  # non-ASCII on either side: compared as UTF-8
            return hmac.compare_digest(self.key.encode(), key.encode())

    def label(self, index):
        """Name of 0-based field `index`: its configured name or L1, L2, ..."""
        if index < len(self.field_names) and self.field_names[index]:
            return self.field_names[index]
        return "L%d" % (index + 1)

    def measure(self, index):
        """Unit of measure of 0-based field `index` ("" if none is set)."""
        return self.field_units[index] if index < len(self.field_units) else ""

    def titled(self, index):
        """The field's name with its unit of measure: ``Flow (m³/h)``."""
        measure = self.measure(index)
        return "%s (%s)" % (self.label(index), measure) if measure else self.label(index)

    @property
    def reported(self):
        """The 1-based fields reports offer: `report_fields`, else all."""
        return [f for f in self.report_fields if f <= self.fields] or list(
            range(1, self.fields + 1))

    @property
    def described(self):
        """The unit for people in a line: ``A1 (Pump)``, or its code alone."""
        return "%s (%s)" % (self.code, self.name) if self.name else self.code

    def __repr__(self):
        return "<Unit %s>" % self.code


def _texts(column):
    return tuple(column.split(",")) if column else ()


def _joined(values):
    """Tuple columns as stored: comma-joined text (numbers too)."""
    return ",".join(str(value) for value in values)


# Settings stored comma-joined (the callers' rules keep commas out of them).
_JOINED = ("field_names", "field_units", "report_fields")

# A graph axis: its label and the 1-based field numbers it shows.
Axis = collections.namedtuple("Axis", "label fields")
# A unit's graph options: size in pixels, and its axes (none: one axis
# with every field).
GraphOptions = collections.namedtuple("GraphOptions", "width height axes")


class Units:
    def __init__(self, db):
        self.db = db
        self._by_code = {}
        self._missing = set()  # codes of no unit (MISSING_MAX at most)
        self._reads = {}  # (reader id, source id) -> may read
        self._status_order = status_order(db.dialect.greatest)
        db.on_stale.append(self._forget)

    def _forget(self):
        self._by_code.clear()
        self._missing.clear()
        self._reads.clear()

    def _changing(self):
        """Before a write to what is cached: here, and in every other
        process once it commits."""
        self._forget()
        self.db.changed_shared()

    def add(self, code, key, fields, name="", description="", field_names=(), enabled=True,
            source=None):
        """The new unit; Conflict if the code is taken."""
        self._changing()
        self.db.insert("units", code=code, key=key, name=name, description=description,
                       fields=fields, field_names=_joined(field_names), enabled=int(enabled),
                       source_id=source.id if source else None, created=times.now())
        return self.get(code)

    def change(self, unit, **values):
        """Set columns of `unit` (code, key, name, description, fields,
        field_names, field_units, report_fields (sequences), enabled,
        source_id, the silent-meter alarm's, webhook_url, expected_interval);
        the unit as it is now. Conflict if a new code is taken."""
        self._changing()
        for column in _JOINED:
            if column in values:
                values[column] = _joined(values[column])
        if "enabled" in values:
            values["enabled"] = int(values["enabled"])
        if values:
            self.db.write("UPDATE units SET %s WHERE id = ?" % ", ".join(
                "%s = ?" % column for column in values), (*values.values(), unit.id))
        return self.get_by_id(unit.id)

    def delete(self, unit):
        """Delete `unit`. The schema takes the rest with it: its samples,
        cursors, read permissions and display channels (ON DELETE CASCADE),
        and units reading it by default fall back to themselves (ON DELETE
        SET NULL)."""
        self._changing()
        self.db.write("DELETE FROM units WHERE id = ?", (unit.id,))

    def dependents(self, unit):
        """What goes or changes with `unit` when it is deleted, but its
        samples: {what: count} of its dl cursors (as reader or source),
        read permissions (either way) and display channels, and the codes
        of the units that have it as their source."""
        either = "SELECT count(*) FROM %s WHERE reader_id = ? OR source_id = ?"
        counts = {
            "dl cursors": self.db.one(either % "dl_cursors", (unit.id, unit.id))[0],
            "read permissions": self.db.one(either % "unit_reads", (unit.id, unit.id))[0],
            "display channels": self.db.one(
                "SELECT count(*) FROM display_channels WHERE unit_id = ?", (unit.id,))[0],
        }
        sourced = [code for (code,) in self.db.all(
            "SELECT code FROM units WHERE source_id = ? AND id <> ? ORDER BY code",
            (unit.id, unit.id))]
        return counts, sourced

    def get(self, code):
        """The unit with that code, or None. Both are remembered until a
        unit changes, through this connection or (noticed) another; a
        code remembered missing is looked at again once another connection
        committed, as far as it can tell without a round trip (`notice_others`):
        a unit just added answers at once."""
        unit = self._by_code.get(code)
        if unit is None:
            if code in self._missing:
                self.db.notice_others()
                if code in self._missing:
                    return None
            row = self.db.one(_SELECT + " WHERE code = ?", (code,))
            if row is None:
                if len(self._missing) >= MISSING_MAX:
                    self._missing.clear()
                self._missing.add(code)
                return None
            unit = self._by_code[code] = Unit.from_row(row)
        return unit

    def get_by_id(self, unit_id):
        row = self.db.one(_SELECT + " WHERE id = ?", (unit_id,))
        return Unit.from_row(row) if row else None

    def all(self):
        """Every unit, by code."""
        return [Unit.from_row(row) for row in self.db.all(_SELECT + " ORDER BY code")]

    def query(self, conditions=(), order="code", limit=None, offset=0):
        """[Unit] for which all `conditions` hold (`sql.matching` over the
        columns but the key), sorted by the column `order` (``-code``: descending; ties
        by id), `limit` of them (None: all) after the first `offset`: one
        statement (the apps' querysets, `texmate_ds.models`)."""
        where, params = matching(_BY_NAME, conditions)
        limits, more = page(limit, offset)
        return [Unit.from_row(row) for row in self.db.all(
            "%s WHERE %s ORDER BY %s%s" % (_SELECT, where, order_by(_BY_NAME, order, "id"),
                                           limits), params + more)]

    def count_matching(self, conditions=()):
        """How many units `query` finds with those `conditions` in all."""
        where, params = matching(_BY_NAME, conditions)
        return self.db.one("SELECT count(*) FROM units WHERE " + where, params)[0]

    def count(self, search=None, seen_by=None):
        """How many units `page` would list in all."""
        where, params = self._where(search, seen_by)
        return self.db.one("SELECT count(*) FROM units u WHERE " + where, params)[0]

    def page(self, offset, limit, search=None, seen_by=None, order="code", now=None):
        """[(Unit, sample count, newest timestamp or None)] sorted by the
        column `order` (``-code``: descending; see `ORDERS`), or with
        ``status`` worst state at `now` first (`texmate_ds.status`): those
        whose code, name or description hold `search`, and with `seen_by`
        (a user id) only the units that user was given access to
        (`accounts`). The counts are the ones kept in the units table:
        constant time."""
        where, params = self._where(search, seen_by)
        if order == "status":
            ordering, params = self._status_order, params + [now, now]
        else:
            ordering = order_by(ORDERS, order, "u.code")
        self.db.samples.write_counts()
        rows = self.db.all(
            "SELECT %s, u.sample_count, u.last_ts FROM units u WHERE %s ORDER BY %s"
            " LIMIT ? OFFSET ?" % (COLUMNS_AS_U, where, ordering),
            params + [limit, offset])
        return [(Unit.from_row(row[:-2]), row[-2], row[-1]) for row in rows]

    def heard(self, units):
        """{unit id: (last_received, usual interval, sample count)} of
        `units`, as the units table keeps them (`texmate_ds.status`)."""
        ids = sorted({unit.id for unit in units})
        self.db.samples.write_counts()
        found = {}
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start:start + _IN_CHUNK]
            found.update((row[0], tuple(row[1:])) for row in self.db.all(
                "SELECT id, last_received, usual_interval, sample_count FROM units"
                " WHERE id IN (%s)" % ",".join("?" * len(chunk)), chunk))
        return found

    def _where(self, search, seen_by):
        return filters(searching(self.db.dialect, ("u.code", "u.name", "u.description"), search),
                       ("u.id IN (%s)" % UNITS_SEEN_BY, seen_by and (seen_by, seen_by)))

    def counts(self, unit):
        """(sample count, newest timestamp or None) as the table keeps them."""
        self.db.samples.write_counts(unit.id)
        row = self.db.one("SELECT sample_count, last_ts FROM units WHERE id = ?", (unit.id,))
        return tuple(row) if row else (0, None)

    # -- silent meters (docs/protocol.md, "Silent meters")

    def silence(self, now, limit):
        """[(Unit, silent_since, newest upload)] of at most `limit` units
        whose silence changed at `now`: enabled units with `silent_minutes` set, no
        silent-meter alarm yet (silent_since None) and no upload (or, with
        none ever, no creation) for that long; and units with silent_since
        set that uploaded since. "Newest upload" is `last_received` (the
        server's clock), or `created` for a unit that never uploaded.

        One pass over the units table, with no index to keep on the hot
        upload path: the figure is in docs/performance.md."""
        self.db.samples.write_counts()
        rows = self.db.all(_SILENCE, (times.MINUTE, now, limit))
        return [(Unit.from_row(row[:-2]), row[-2], row[-1]) for row in rows]

    def set_silent_since(self, unit, when):
        """Mark `unit` silent since `when` (None: not silent)."""
        self.db.write("UPDATE units SET silent_since = ? WHERE id = ?", (when, unit.id))

    # -- who may download whose samples (ttp.md section 6)

    def allow_read(self, reader, source):
        self._changing()
        self.db.write(self.db.dialect.insert_ignoring("unit_reads", ("reader_id", "source_id")),
                      (reader.id, source.id))

    def reads(self, reader):
        """The codes of the units `reader` was allowed to read, by code."""
        return [code for (code,) in self.db.all(
            "SELECT u.code FROM unit_reads r JOIN units u ON u.id = r.source_id"
            " WHERE r.reader_id = ? ORDER BY u.code", (reader.id,))]

    def set_reads(self, reader, sources):
        """`reader` may read exactly `sources` (besides itself and its source)."""
        self._changing()
        self.db.write("DELETE FROM unit_reads WHERE reader_id = ?", (reader.id,))
        for source in sources:
            self.allow_read(reader, source)

    def may_read(self, reader, source):
        """May `reader` download `source`'s samples? Itself and its own
        source always; any other unit once `allow_read`."""
        if reader.id == source.id or reader.source_id == source.id:
            return True
        pair = (reader.id, source.id)
        allowed = self._reads.get(pair)
        if allowed is None:
            allowed = self._reads[pair] = self.db.one(
                "SELECT 1 FROM unit_reads WHERE reader_id = ? AND source_id = ?",
                pair) is not None
        return allowed

    # -- graph options (what is allowed is the callers' rule: texmate_ds.rules)

    def graph_options(self, unit):
        """The unit's GraphOptions; NotFound if the unit is gone."""
        row = self.db.one("SELECT graph_width, graph_height, graph_axes FROM units WHERE id = ?",
                          (unit.id,))
        if row is None:
            raise NotFound("no unit %s" % unit.code)
        width, height, axes = row
        return GraphOptions(width, height, tuple(
            Axis(axis["label"], tuple(axis["fields"])) for axis in json.loads(axes)))

    def set_graph_options(self, unit, options):
        self.db.write(
            "UPDATE units SET graph_width = ?, graph_height = ?, graph_axes = ? WHERE id = ?",
            (options.width, options.height,
             json.dumps([{"label": axis.label, "fields": list(axis.fields)}
                         for axis in options.axes]), unit.id))

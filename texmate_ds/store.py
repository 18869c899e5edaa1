"""The store: one SQLite file, its schema and migrations, every query, and
the group-commit writer.

Design:

* One `Store` is one ``sqlite3`` connection in autocommit mode; transactions
  are opened and committed explicitly, so the server decides when a batch of
  uploads becomes durable. WAL mode lets readers (the web UI, ``manage
  export``, ``manage backup``) work while the server writes.
* The schema carries its version in ``PRAGMA user_version``. `MIGRATIONS`
  is an append-only list of SQL scripts; `Store.syncdb()` applies the missing
  ones in one transaction, so an upgrade never half-happens and never drops
  data.
* Samples are keyed by (unit, timestamp) with timestamps as integer
  microseconds (the meter's clock, naive, counted from 1970-01-01) and values
  in columns ``v1``..``v32``, so range scans are index walks and statistics
  can be computed in SQL.
* `GroupCommit` is the writer service: uploads handled in one loop turn share
  one transaction, committed once before the next ``select()``; with
  ``COMMIT_INTERVAL: 1`` the answers of the requests that wrote are released
  only after that commit. With ``COMMIT_INTERVAL: N`` it commits every N
  uploads or ``COMMIT_DELAY`` ms, whichever comes first.

This module knows nothing of TTP or HTTP: it returns rows and raises
``sqlite3.Error``; callers decide what to answer.
"""

import contextlib
import hmac
import json
import logging
import os
import sqlite3
import time

from texmate_ds import times

log = logging.getLogger("texmate_ds.store")

MAX_FIELDS = 32
VALUE_COLUMNS = ["v%d" % i for i in range(1, MAX_FIELDS + 1)]
# Timestamps in one IN (...) query; SQLite before 3.32 allows 999 parameters.
_IN_CHUNK = 900
# Graph width and height in pixels.
GRAPH_PIXELS = range(100, 4001)

MIGRATIONS = [
    # 1: units, samples, dl cursors, users.
    """
    CREATE TABLE units (
        id INTEGER PRIMARY KEY,
        code TEXT NOT NULL UNIQUE,
        key TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        fields INTEGER NOT NULL CHECK (fields BETWEEN 1 AND 32),
        field_names TEXT NOT NULL DEFAULT '',
        enabled INTEGER NOT NULL DEFAULT 1,
        source_id INTEGER REFERENCES units(id) ON DELETE SET NULL,
        created INTEGER NOT NULL
    );
    CREATE TABLE unit_reads (
        reader_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
        source_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
        PRIMARY KEY (reader_id, source_id)
    ) WITHOUT ROWID;
    CREATE TABLE samples (
        id INTEGER PRIMARY KEY,
        unit_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
        ts INTEGER NOT NULL,
        received INTEGER NOT NULL,
        %s,
        UNIQUE (unit_id, ts)
    );
    -- (unit_id, rowid): the dl "next" mailbox walks a unit's samples in
    -- arrival order.
    CREATE INDEX samples_unit_id ON samples (unit_id);
    CREATE TABLE dl_cursors (
        reader_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
        source_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
        sample_id INTEGER NOT NULL,
        PRIMARY KEY (reader_id, source_id)
    ) WITHOUT ROWID;
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password TEXT NOT NULL,
        email TEXT NOT NULL DEFAULT '',
        first_name TEXT NOT NULL DEFAULT '',
        last_name TEXT NOT NULL DEFAULT '',
        is_active INTEGER NOT NULL DEFAULT 1,
        is_staff INTEGER NOT NULL DEFAULT 0,
        is_superuser INTEGER NOT NULL DEFAULT 0,
        must_change_password INTEGER NOT NULL DEFAULT 0,
        date_joined INTEGER NOT NULL,
        last_login INTEGER
    );
    """ % ",\n        ".join("%s REAL" % c for c in VALUE_COLUMNS),
    # 2: the web UI: sessions, API tokens, multiple-meter displays, and
    # each unit's graph options (axes: JSON list of {"label", "fields"}).
    """
    CREATE TABLE sessions (
        key_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        expires INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_user_id ON sessions (user_id);
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        created INTEGER NOT NULL,
        last_used INTEGER,
        UNIQUE (user_id, name)
    );
    CREATE TABLE displays (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        refresh INTEGER NOT NULL CHECK (refresh >= 1),
        created INTEGER NOT NULL
    );
    CREATE TABLE display_channels (
        display_id INTEGER NOT NULL REFERENCES displays(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        unit_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
        field INTEGER NOT NULL CHECK (field BETWEEN 1 AND 32),
        PRIMARY KEY (display_id, position),
        UNIQUE (display_id, unit_id, field)
    ) WITHOUT ROWID;
    CREATE INDEX display_channels_unit_id ON display_channels (unit_id);
    ALTER TABLE units ADD COLUMN graph_width INTEGER NOT NULL DEFAULT 800;
    ALTER TABLE units ADD COLUMN graph_height INTEGER NOT NULL DEFAULT 300;
    ALTER TABLE units ADD COLUMN graph_axes TEXT NOT NULL DEFAULT '[]';
    """,
    # 3: sign-in throttling (auth.Throttle): a row per password check that
    # failed or is still running, kept no longer than the longest window
    # (each admitted check deletes the older ones through the index on at).
    # In the database, so that `manage unlock` reaches the running server.
    """
    CREATE TABLE sign_in_attempts (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL,
        address TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX sign_in_attempts_username ON sign_in_attempts (username, at);
    CREATE INDEX sign_in_attempts_address ON sign_in_attempts (address, at);
    CREATE INDEX sign_in_attempts_at ON sign_in_attempts (at);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(Exception):
    pass


class Unit:
    """A unit (meter) as stored. `check_key` compares in constant time."""

    __slots__ = ("id", "code", "key", "name", "description", "fields",
                 "field_names", "enabled", "source_id", "_key_bytes")
    _COLUMNS = "id, code, key, name, description, fields, field_names, enabled, source_id"

    def __init__(self, row):
        (self.id, self.code, self.key, self.name, self.description,
         self.fields, field_names, enabled, self.source_id) = row
        self.field_names = field_names.split(",") if field_names else []
        self.enabled = bool(enabled)
        self._key_bytes = self.key.encode()

    def check_key(self, key):
        return hmac.compare_digest(self._key_bytes, key.encode())

    def label(self, index):
        """Name of 0-based field `index`: its configured name or L1, L2, ..."""
        if index < len(self.field_names) and self.field_names[index]:
            return self.field_names[index]
        return "L%d" % (index + 1)

    def __repr__(self):
        return "<Unit %s>" % self.code


class Store:
    def __init__(self, path, durable=True):
        self.path = path
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.conn = sqlite3.connect(path, isolation_level=None)
        # Refuse a newer schema before touching anything, even the journal mode.
        if self.version > SCHEMA_VERSION:
            version = self.version
            self.conn.close()
            raise SchemaTooNew(
                "%s has schema version %d; this texmate_ds knows up to %d: "
                "upgrade texmate_ds" % (path, version, SCHEMA_VERSION))
        self.conn.execute("PRAGMA busy_timeout = 5000")
        self.conn.execute("PRAGMA foreign_keys = ON")
        mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal" and path != ":memory:":
            log.warning("%s: journal mode is %s, not WAL", path, mode)
        self.conn.execute("PRAGMA synchronous = %s" % ("FULL" if durable else "NORMAL"))
        # Uploads written since the last commit (GroupCommit counts them).
        self.uploads_pending = 0
        # Samples written in the open transaction, and committed since this
        # store opened (/metrics).
        self.samples_pending = 0
        self.samples_stored = 0
        self._insert_sql = {}
        self._select_cols = {}
        # Units by code, for the per-request authentication. Emptied when
        # this connection changes units and, through `notice_others`, when
        # another connection (manage, the web) committed anything.
        self._units = {}
        self._reads = {}  # (reader id, source id) -> may read; emptied with _units
        self._data_version = None

    # -- schema ---------------------------------------------------------------

    @property
    def version(self):
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def syncdb(self):
        """Create or upgrade the schema in place; returns (old, new) versions."""
        old = self.version
        if old == SCHEMA_VERSION:
            return old, old
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for script in MIGRATIONS[old:]:
                for statement in script.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
            self.conn.execute("PRAGMA user_version = %d" % SCHEMA_VERSION)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return old, SCHEMA_VERSION

    # -- transactions ---------------------------------------------------------

    @property
    def dirty(self):
        return self.conn.in_transaction

    @property
    def changes(self):
        """Rows changed by this connection since it opened."""
        return self.conn.total_changes

    def _begin(self):
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")

    def commit(self):
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")
        self.uploads_pending = 0
        self.samples_stored += self.samples_pending
        self.samples_pending = 0

    def rollback(self):
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.uploads_pending = 0
        self.samples_pending = 0
        self._forget_units()  # they may have been read inside the lost transaction

    def close(self):
        self.commit()
        self.conn.close()

    def backup(self, path):
        """Copy the database with SQLite's online backup API."""
        target = sqlite3.connect(path)
        try:
            self.conn.backup(target)
        finally:
            target.close()

    # -- units ----------------------------------------------------------------

    def add_unit(self, code, key, fields, name="", description="",
                 field_names=(), enabled=True, source=None):
        self._forget_units()
        self._begin()
        self.conn.execute(
            "INSERT INTO units (code, key, name, description, fields, field_names,"
            " enabled, source_id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (code, key, name, description, fields, ",".join(field_names),
             int(enabled), source.id if source else None, times.now()))
        return self.get_unit(code)

    def get_unit(self, code):
        unit = self._units.get(code)
        if unit is None:
            row = self.conn.execute(
                "SELECT %s FROM units WHERE code = ?" % Unit._COLUMNS, (code,)).fetchone()
            if row is None:
                return None
            unit = self._units[code] = Unit(row)
        return unit

    def notice_others(self):
        """Forget cached units if another connection committed since the
        last call (cheap: one pragma). The server calls it every loop turn."""
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._data_version = version
            self._forget_units()

    def _forget_units(self):
        self._units.clear()
        self._reads.clear()

    def get_unit_by_id(self, unit_id):
        row = self.conn.execute(
            "SELECT %s FROM units WHERE id = ?" % Unit._COLUMNS, (unit_id,)).fetchone()
        return Unit(row) if row else None

    def list_units(self):
        return [Unit(r) for r in self.conn.execute(
            "SELECT %s FROM units ORDER BY code" % Unit._COLUMNS)]

    def allow_read(self, reader, source):
        self._forget_units()
        self._begin()
        self.conn.execute("INSERT OR IGNORE INTO unit_reads VALUES (?, ?)",
                          (reader.id, source.id))

    def may_read(self, reader, source):
        """May `reader` download `source`'s samples (ttp.md section 6)?"""
        if reader.id == source.id or reader.source_id == source.id:
            return True
        pair = (reader.id, source.id)
        allowed = self._reads.get(pair)
        if allowed is None:
            allowed = self._reads[pair] = self.conn.execute(
                "SELECT 1 FROM unit_reads WHERE reader_id = ? AND source_id = ?",
                pair).fetchone() is not None
        return allowed

    # -- samples --------------------------------------------------------------

    def add_samples(self, unit, samples):
        """Store `samples`, a list of (timestamp_us, values) for `unit`.

        Returns the 0-based indexes of the duplicates (a timestamp already
        stored, or repeated earlier in `samples`); the rest are stored. On an
        error nothing of this call is stored and the error propagates.
        """
        sql = self._insert_sql.get(unit.fields)
        if sql is None:
            sql = self._insert_sql[unit.fields] = (
                "INSERT OR IGNORE INTO samples (unit_id, ts, received, %s) VALUES (?, ?, ?%s)"
                % (", ".join(VALUE_COLUMNS[:unit.fields]), ", ?" * unit.fields))
        received = times.now()
        self._begin()
        self.uploads_pending += 1
        if len(samples) == 1:
            ts, values = samples[0]
            if self.conn.execute(sql, (unit.id, ts, received, *values)).rowcount == 1:
                self.samples_pending += 1
                return []
            return [0]
        duplicates = []
        seen = set()
        fresh = []
        for index, (ts, values) in enumerate(samples):
            if ts in seen:
                duplicates.append(index)
            else:
                seen.add(ts)
                fresh.append((index, ts, values))
        stored = self._existing_timestamps(unit, seen)
        if stored:
            duplicates.extend(i for i, ts, _ in fresh if ts in stored)
            duplicates.sort()
            fresh = [f for f in fresh if f[1] not in stored]
        # Several rows are not one statement: a savepoint keeps the call
        # all-or-nothing inside the shared group transaction.
        self.conn.execute("SAVEPOINT up")
        try:
            self.conn.executemany(
                sql, [(unit.id, ts, received, *values) for _, ts, values in fresh])
        except BaseException:
            self.conn.execute("ROLLBACK TO up")
            self.conn.execute("RELEASE up")
            raise
        self.conn.execute("RELEASE up")
        self.samples_pending += len(fresh)
        return duplicates

    def _existing_timestamps(self, unit, timestamps):
        found = set()
        timestamps = list(timestamps)
        for start in range(0, len(timestamps), _IN_CHUNK):
            chunk = timestamps[start:start + _IN_CHUNK]
            found.update(r[0] for r in self.conn.execute(
                "SELECT ts FROM samples WHERE unit_id = ? AND ts IN (%s)"
                % ",".join("?" * len(chunk)), (unit.id, *chunk)))
        return found

    def _columns(self, unit):
        cols = self._select_cols.get(unit.fields)
        if cols is None:
            cols = self._select_cols[unit.fields] = ", ".join(
                ["id", "ts"] + VALUE_COLUMNS[:unit.fields])
        return cols

    def _one(self, unit, where, params):
        return self.conn.execute(
            "SELECT %s FROM samples WHERE unit_id = ? %s LIMIT 1"
            % (self._columns(unit), where), (unit.id, *params)).fetchone()

    def last_sample(self, unit):
        """The newest sample by timestamp as (id, ts, v1, ...), or None."""
        return self._one(unit, "ORDER BY ts DESC", ())

    def first_sample(self, unit):
        return self._one(unit, "ORDER BY ts", ())

    def sample_at(self, unit, ts):
        return self._one(unit, "AND ts = ?", (ts,))

    def sample_after_id(self, unit, sample_id):
        """The first sample of `unit` stored after sample `sample_id`."""
        return self._one(unit, "AND id > ? ORDER BY id", (sample_id,))

    def samples_range(self, unit, start=None, end=None, limit=None):
        """Samples with start <= ts <= end (either bound may be None), oldest
        first. Timestamps are unique integers per unit, so a caller pages on
        with start = last ts + 1."""
        where = ""
        params = []
        if start is not None:
            where += " AND ts >= ?"
            params.append(start)
        if end is not None:
            where += " AND ts <= ?"
            params.append(end)
        sql = "SELECT %s FROM samples WHERE unit_id = ?%s ORDER BY ts" % (
            self._columns(unit), where)
        if limit is not None:
            sql += " LIMIT %d" % limit
        return self.conn.execute(sql, (unit.id, *params)).fetchall()

    def count_samples(self, unit):
        return self.conn.execute(
            "SELECT count(*) FROM samples WHERE unit_id = ?", (unit.id,)).fetchone()[0]

    def get_cursor(self, reader, source):
        row = self.conn.execute(
            "SELECT sample_id FROM dl_cursors WHERE reader_id = ? AND source_id = ?",
            (reader.id, source.id)).fetchone()
        return row[0] if row else 0

    def set_cursor(self, reader, source, sample_id):
        self._begin()
        self.conn.execute(
            "INSERT OR REPLACE INTO dl_cursors VALUES (?, ?, ?)",
            (reader.id, source.id, sample_id))

    # -- users ----------------------------------------------------------------

    def add_user(self, username, password_hash, email="", is_staff=False,
                 is_superuser=False, must_change_password=False):
        self._begin()
        cur = self.conn.execute(
            "INSERT INTO users (username, password, email, is_staff, is_superuser,"
            " must_change_password, date_joined) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (username, password_hash, email, int(is_staff), int(is_superuser),
             int(must_change_password), times.now()))
        return cur.lastrowid

    def count_users(self):
        return self.conn.execute("SELECT count(*) FROM users").fetchone()[0]

    def get_user(self, user_id=None, username=None):
        """The user as a dict, by id or by username; None if there is none."""
        self.conn.row_factory = sqlite3.Row
        try:
            if user_id is not None:
                row = self.conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
            else:
                row = self.conn.execute(
                    "SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        finally:
            self.conn.row_factory = None
        return dict(row) if row else None

    def set_password(self, user_id, password_hash, must_change=False):
        self._begin()
        return self.conn.execute(
            "UPDATE users SET password = ?, must_change_password = ? WHERE id = ?",
            (password_hash, int(must_change), user_id)).rowcount == 1

    # == the web UI ===========================================================
    # Sessions, API tokens, displays, unit lists and graph options. Like every
    # write above, these join the shared transaction and never commit: the
    # group commit (or whoever serves the web outside the loop) does.

    # Unit's columns of the units table aliased "u", for joins.
    _UNIT_AS_U = ", ".join("u." + column.strip() for column in Unit._COLUMNS.split(","))

    def _dicts(self, sql, params=()):
        cursor = self.conn.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor]

    @contextlib.contextmanager
    def atomic(self):
        """Writes inside the block are all or nothing, within the shared
        transaction and without committing it: a failing web request
        leaves no half of its changes behind."""
        self._begin()
        self.conn.execute("SAVEPOINT atomic")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO atomic")
            self.conn.execute("RELEASE atomic")
            self._forget_units()  # they may have been read inside the block
            raise
        self.conn.execute("RELEASE atomic")

    def record_login(self, user_id):
        self._begin()
        self.conn.execute("UPDATE users SET last_login = ? WHERE id = ?", (times.now(), user_id))

    # -- sessions (keys and tokens arrive hashed: the store never sees them)

    def add_session(self, key_hash, user_id, csrf, expires):
        self._begin()
        self.conn.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)",
                          (key_hash, user_id, csrf, expires))

    def get_session(self, key_hash):
        """(user id, csrf secret) of an unexpired session, or None."""
        return self.conn.execute(
            "SELECT user_id, csrf FROM sessions WHERE key_hash = ? AND expires > ?",
            (key_hash, times.now())).fetchone()

    def delete_session(self, key_hash):
        self._delete_sessions("key_hash = ?", (key_hash,))

    def delete_user_sessions(self, user_id, keep=None):
        """Every session of the user but `keep` (after a password change)."""
        self._delete_sessions("user_id = ? AND key_hash IS NOT ?", (user_id, keep))

    def delete_expired_sessions(self):
        self._delete_sessions("expires <= ?", (times.now(),))

    def _delete_sessions(self, where, params):
        self._begin()
        self.conn.execute("DELETE FROM sessions WHERE " + where, params)

    # -- sign-in attempts (auth.Throttle decides; these count and keep them).
    # Usernames arrive as auth folds them; times are microseconds.

    def add_sign_in_attempt(self, username, address, at):
        """A password check about to run; returns its id."""
        self._begin()
        return self.conn.execute(
            "INSERT INTO sign_in_attempts (username, address, at) VALUES (?, ?, ?)",
            (username, address, at)).lastrowid

    def nth_sign_in_attempt(self, n, since, username=None, address=None):
        """When the n-th newest attempt after `since` was made, counting
        only those of `username` and from `address` (None: any); None
        when there are fewer than n."""
        where, params = "at > ?", [since]
        if username is not None:
            where += " AND username = ?"
            params.append(username)
        if address is not None:
            where += " AND address = ?"
            params.append(address)
        row = self.conn.execute(
            "SELECT at FROM sign_in_attempts WHERE %s ORDER BY at DESC LIMIT 1 OFFSET ?"
            % where, params + [n - 1]).fetchone()
        return row[0] if row else None

    def delete_sign_in_attempt(self, attempt_id):
        self._begin()
        self.conn.execute("DELETE FROM sign_in_attempts WHERE id = ?", (attempt_id,))

    def delete_sign_in_attempts(self, before=None, username=None):
        """Attempts made before `before`, or of `username`, or (neither)
        every one; returns how many went."""
        where, params = "1", []
        if before is not None:
            where += " AND at < ?"
            params.append(before)
        if username is not None:
            where += " AND username = ?"
            params.append(username)
        self._begin()
        return self.conn.execute("DELETE FROM sign_in_attempts WHERE " + where,
                                 params).rowcount

    # -- API tokens

    def add_api_token(self, user_id, name, token_hash):
        self._begin()
        return self.conn.execute(
            "INSERT INTO api_tokens (user_id, name, token_hash, created) VALUES (?, ?, ?, ?)",
            (user_id, name, token_hash, times.now())).lastrowid

    def get_api_token(self, token_hash):
        """{"id", "user_id", "name", "created", "last_used"} or None."""
        rows = self._dicts("SELECT id, user_id, name, created, last_used FROM api_tokens"
                           " WHERE token_hash = ?", (token_hash,))
        return rows[0] if rows else None

    def touch_api_token(self, token_id):
        self._begin()
        self.conn.execute("UPDATE api_tokens SET last_used = ? WHERE id = ?",
                          (times.now(), token_id))

    def delete_api_token(self, user_id, name):
        self._begin()
        return self.conn.execute("DELETE FROM api_tokens WHERE user_id = ? AND name = ?",
                                 (user_id, name)).rowcount == 1

    # -- units with their sample count and newest timestamp, a page at a time

    def count_units(self):
        return self.conn.execute("SELECT count(*) FROM units").fetchone()[0]

    def units_page(self, offset, limit):
        """[(Unit, sample count, newest timestamp or None)] by code."""
        rows = self.conn.execute(
            "SELECT %s, (SELECT count(*) FROM samples WHERE unit_id = u.id),"
            " (SELECT max(ts) FROM samples WHERE unit_id = u.id)"
            " FROM units u ORDER BY u.code LIMIT ? OFFSET ?" % self._UNIT_AS_U, (limit, offset))
        return [(Unit(row[:-2]), row[-2], row[-1]) for row in rows]

    # -- graph options

    def graph_options(self, unit):
        """{"width": px, "height": px, "axes": [{"label": str, "fields": [1-based]}]};
        no axes means one axis with every field."""
        width, height, axes = self.conn.execute(
            "SELECT graph_width, graph_height, graph_axes FROM units WHERE id = ?",
            (unit.id,)).fetchone()
        return {"width": width, "height": height, "axes": json.loads(axes)}

    def set_graph_options(self, unit, width, height, axes):
        """Raises ValueError, saying what is wrong, for sizes outside
        GRAPH_PIXELS or axes that name fields the unit does not have."""
        for what, pixels in (("width", width), ("height", height)):
            if pixels not in GRAPH_PIXELS:
                raise ValueError("graph %s: %d to %d pixels" % (
                    what, GRAPH_PIXELS.start, GRAPH_PIXELS.stop - 1))
        for axis in axes:
            if not axis["fields"] or not set(axis["fields"]) <= set(range(1, unit.fields + 1)):
                raise ValueError("axis %r: field numbers from 1 to %d" % (
                    axis["label"], unit.fields))
        self._begin()
        self.conn.execute(
            "UPDATE units SET graph_width = ?, graph_height = ?, graph_axes = ? WHERE id = ?",
            (width, height, json.dumps([{"label": a["label"], "fields": list(a["fields"])}
                                        for a in axes]), unit.id))

    # -- multiple-meter displays

    def add_display(self, name, refresh, channels):
        """`channels`: [(Unit, 1-based field)] in display order. Raises
        ValueError for an empty name or list, or a field the unit lacks."""
        if not name.strip() or refresh < 1 or not channels:
            raise ValueError("a display needs a name, a refresh of 1 s or more, and channels")
        for unit, field in channels:
            if not 1 <= field <= unit.fields:
                raise ValueError("unit %s has fields 1 to %d, not %d"
                                 % (unit.code, unit.fields, field))
        if len({(unit.id, field) for unit, field in channels}) < len(channels):
            raise ValueError("a channel is named twice")
        self._begin()
        display_id = self.conn.execute(
            "INSERT INTO displays (name, refresh, created) VALUES (?, ?, ?)",
            (name, refresh, times.now())).lastrowid
        self.conn.executemany(
            "INSERT INTO display_channels VALUES (?, ?, ?, ?)",
            [(display_id, position, unit.id, field)
             for position, (unit, field) in enumerate(channels)])
        return display_id

    def get_display(self, display_id):
        """{"id", "name", "refresh", "channels": [(Unit, [fields])]} with a
        unit's fields together, units in display order; None if none."""
        found = self._dicts("SELECT id, name, refresh FROM displays WHERE id = ?", (display_id,))
        if not found:
            return None
        display = found[0]
        channels = {}
        for row in self.conn.execute(
                "SELECT %s, c.field FROM display_channels c JOIN units u ON u.id = c.unit_id"
                " WHERE c.display_id = ? ORDER BY c.position" % self._UNIT_AS_U, (display_id,)):
            unit_id = row[0]
            if unit_id not in channels:
                channels[unit_id] = (Unit(row[:-1]), [])
            channels[unit_id][1].append(row[-1])
        display["channels"] = list(channels.values())
        return display

    def count_displays(self):
        return self.conn.execute("SELECT count(*) FROM displays").fetchone()[0]

    def displays_page(self, offset, limit):
        """[{"id", "name", "refresh"}] by name."""
        return self._dicts("SELECT id, name, refresh FROM displays ORDER BY name, id"
                           " LIMIT ? OFFSET ?", (limit, offset))

    # == range queries for the web: statistics and graphs =====================
    # `fields` are 1-based field numbers; ranges are start <= ts <= end. Each
    # call fetches its whole answer: no cursor stays open between calls, as
    # the connection is shared with the TTP writer. (CSV and JSON page with
    # `samples_range`.)

    def field_stats(self, unit, fields, start, end):
        """Per field: {count, min, max, mean, stddev, first, last}, NULLs
        skipped; first/last are (ts, value), and like min..stddev None when
        the field has no value in the range. stddev is the population's.

        One scan computes every field's aggregates. The sums are taken of
        value - first value, so a large offset (a reading near 1e6 that
        varies by 0.01) does not drown the variance in rounding."""
        firsts = [self._edge_value(unit, field, start, end, "") for field in fields]
        lasts = [self._edge_value(unit, field, start, end, " DESC") for field in fields]
        shifts = [first[1] if first else 0.0 for first in firsts]
        columns = ", ".join(
            "count({0}), min({0}), max({0}), total({0} - ?), total(({0} - ?) * ({0} - ?))"
            .format(VALUE_COLUMNS[field - 1]) for field in fields)
        row = self.conn.execute(
            "SELECT %s FROM samples WHERE unit_id = ? AND ts BETWEEN ? AND ?" % columns,
            [shift for shift in shifts for _ in range(3)] + [unit.id, start, end]).fetchone()
        stats = []
        for index, shift in enumerate(shifts):
            count, low, high, total, squares = row[5 * index:5 * index + 5]
            entry = {"count": count, "min": low, "max": high, "mean": None, "stddev": None,
                     "first": firsts[index], "last": lasts[index]}
            if count:
                # Rounding can leave a flat series' variance a hair below 0.
                variance = max(0.0, (squares - total * total / count) / count)
                entry["mean"] = shift + total / count
                entry["stddev"] = variance ** 0.5
            stats.append(entry)
        return stats

    def _edge_value(self, unit, field, start, end, order):
        """(ts, value) of the field's first (or with " DESC" last) value in the range."""
        column = VALUE_COLUMNS[field - 1]
        return self.conn.execute(
            "SELECT ts, {0} FROM samples WHERE unit_id = ? AND ts BETWEEN ? AND ?"
            " AND {0} IS NOT NULL ORDER BY ts{1} LIMIT 1".format(column, order),
            (unit.id, start, end)).fetchone()

    def plot_rows(self, unit, fields, start, end, columns):
        """Rows for `svg_graph.render`: (first_ts, last_ts, lo_1, hi_1, ...)
        for each field in `fields`, oldest first.

        A range with at most two samples per column gives a row per sample,
        (ts, ts, v, v, ...). A larger one is cut into `columns` equal time
        buckets, and each non-empty bucket gives its first and last
        timestamp and each field's minimum and maximum: every peak and
        trough survives. Each bucket is one indexed range aggregate; for a
        million samples that is about twice as fast as one GROUP BY over
        the whole range, which sorts every row through a temporary B-tree."""
        where = "FROM samples WHERE unit_id = ? AND ts BETWEEN ? AND ?"
        # Counting stops at the limit, so a huge range costs nothing here.
        few = self.conn.execute(
            "SELECT count(*) FROM (SELECT 1 %s LIMIT ?)" % where,
            (unit.id, start, end, 2 * columns + 1)).fetchone()[0] <= 2 * columns
        names = [VALUE_COLUMNS[field - 1] for field in fields]
        if few:
            return self.conn.execute(
                "SELECT ts, ts, %s %s ORDER BY ts" % (
                    ", ".join("%s, %s" % (c, c) for c in names), where),
                (unit.id, start, end)).fetchall()
        sql = "SELECT min(ts), max(ts), %s %s" % (
            ", ".join("min(%s), max(%s)" % (c, c) for c in names), where)
        width = (end - start) // columns + 1
        rows = []
        for low in range(start, end + 1, width):
            row = self.conn.execute(sql, (unit.id, low, min(low + width - 1, end))).fetchone()
            if row[0] is not None:
                rows.append(row)
        return rows


class GroupCommit:
    """The store writer service: decides when the shared transaction commits.

    `after_commit(fn)` registers `fn(ok)` to run once the current
    transaction ends: ``ok`` is True when it committed, False when the commit
    failed and everything in it was rolled back. One that raises is logged,
    and the others still run.
    """

    def __init__(self, store, loop, interval, delay_ms):
        self.store = store
        self.loop = loop
        self.interval = interval
        self.delay = delay_ms / 1000.0
        self.durable = interval == 1
        self._waiting = []
        self._timer = None
        self.commits = 0
        self.commit_seconds = 0.0

    def start(self):
        self.loop.turn_hooks.append(self.turn)

    def stop(self):
        self.commit()

    def after_commit(self, fn):
        self._waiting.append(fn)

    def turn(self):
        """Runs before every select(): commit now, or make sure a timer will."""
        if self.durable:
            # Answers released by a commit let their channels read on, and
            # pipelined uploads among those write again: commit those too,
            # or they would wait for a select() that nothing wakes.
            while self.store.dirty:
                self.commit()
            return
        if not self.store.dirty:
            return
        if self.store.uploads_pending >= self.interval:
            self.commit()
        elif self._timer is None:
            self._timer = self.loop.call_later(self.delay, self.commit)

    def commit(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.store.dirty:
            return
        started = time.monotonic()
        try:
            self.store.commit()
            ok = True
        except sqlite3.Error as exc:
            log.error("commit failed, %d uploads rolled back: %s",
                      self.store.uploads_pending, exc)
            try:
                self.store.rollback()
            except sqlite3.Error as exc2:
                log.error("rollback failed too: %s", exc2)
            ok = False
        self.commits += 1
        self.commit_seconds += time.monotonic() - started
        waiting, self._waiting = self._waiting, []
        for fn in waiting:
            # Guarded each: one that fails must not leave the answers of
            # the others held.
            self.loop.call_guarded("an after_commit callback", fn, ok)

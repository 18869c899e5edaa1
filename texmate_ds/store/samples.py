"""Samples: what meters upload, and every way they are read back.

* A sample is keyed by (unit, timestamp): timestamps are integer
  microseconds of the meter's clock, unique per unit, and values sit in
  columns ``v1``..``v32``, so a range is an index walk and statistics are
  SQL aggregates.
* A sample read back is a plain tuple ``(id, ts, v1, ..., vN)`` for a unit
  of N fields (None for an empty value): the upload and download paths
  are the hot ones, and the wire and export code index the tuple.
* `add_later` is the upload path, and `add` the same waiting for its
  answer. Where a statement runs in this process (SQLite) an upload is
  written at once: one statement for one sample, and for several one
  look-up of the timestamps already stored and one ``executemany``.
  Where each statement is a round trip to a server (PostgreSQL) the
  uploads are held (`Upload`) until the connection's next statement or
  the commit, whichever comes first, and then written by one statement
  (`PostgreSQL.insert_samples`), which also counts them and tells them
  to the other processes: a loop turn's uploads cost one round trip, not
  one each (none of their own when the commit writes them: they go with
  the COMMIT), and every statement sees the samples uploaded before it.
  Which samples are duplicates is known once they are written: the
  ``up`` app answers when the channel asks. Nothing per sample in Python
  beyond building its row.
* Every write here (uploads, imports, deletes) also keeps the unit's
  sample count and newest timestamp in the units table, so that nobody
  counts a million rows to show them: SQLite's uploads tally them and
  write them once per unit just before the transaction commits,
  PostgreSQL's in the statement that stores them, the rest at once.
* ``dl next`` reads a source's samples in arrival order (by id) from a
  cursor per (reader, source), kept here. Where several processes write
  (PostgreSQL), ids are given as rows are written, not as they commit:
  so that a unit's ids still commit in order, and a cursor never passes
  over a sample committed after a later one, a transaction locks a
  unit's row before it writes samples of it (in the statement that
  writes them; `_lock` for an import). A second writer of the unit waits
  for the first's commit; one meter's are one process's.
* Each unit's usual interval (`texmate_ds.status`: the median spacing
  of its newest samples' timestamps), which its status on the home page
  and displays is judged by, is kept in the units table too, so that a
  page of units, or all of them in "problems first" order, reads no
  samples: measured (one indexed read of `status.NEWEST` timestamps)
  just before a commit, once a unit has `MEASURE_EVERY` more samples
  than at its last measure through this connection (at its first upload
  since the process started, and at each until it has two samples), and
  at once after an import or a delete.
* Range reads for the web (`stats`, `plot_rows`) fetch their whole answer
  in one call: no cursor stays open between calls on a connection the TTP
  side shares. CSV and JSON page through `between`.

`uploads_pending` (uploads since the last commit) is what the group commit
counts; `pending` and `stored` count samples written in the open
transaction and committed since the store opened (/metrics).
"""

from texmate_ds import status, times
from texmate_ds.store.errors import StoreError
from texmate_ds.store.sql import filters, matching, order_by, page

MAX_FIELDS = 32
VALUE_COLUMNS = ["v%d" % i for i in range(1, MAX_FIELDS + 1)]
# Earlier than any timestamp a meter can send (year 0).
_BEFORE_ALL = -(2 ** 62)
# Timestamps in one IN (...) query; SQLite before 3.32 allows 999 parameters.
_IN_CHUNK = 900
# The upload path keeps its unit's count and newest timestamp (in the
# units table, which the home page and the admin read) with one statement:
# (samples added, their newest ts twice, when they came, unit id).
_COUNT_ADDED = (
    "UPDATE units SET sample_count = sample_count + ?,"
    " last_ts = CASE WHEN last_ts IS NULL OR last_ts < ? THEN ? ELSE last_ts END,"
    " last_received = ? WHERE id = ?")
# A dl cursor: (reader id, source id).
_CURSOR = "SELECT sample_id FROM dl_cursors WHERE reader_id = ? AND source_id = ?"
# What `query` compares and sorts by (both unique within a unit).
_QUERIED = {"ts": "ts", "id": "id"}
# New samples of a unit before its usual interval is measured again: one
# indexed read per 20 samples, on the upload path.
MEASURE_EVERY = 20
# Samples in one statement of held uploads (`Samples.flush`): a turn of
# many large uploads is several.
_BATCH_ROWS = 10_000


class Upload:
    """One call's samples on their way to the store (`Samples.add_later`).
    ``duplicates``: the 0-based indexes of those not stored (a timestamp
    taken, or repeated earlier in the call), sorted; None until written.
    `result` gives them, writing what is held first."""

    __slots__ = ("_repository", "unit", "received", "fresh", "repeated", "duplicates")

    def __init__(self, repository, unit, given):
        self._repository = repository
        self.unit = unit
        self.received = times.now()
        self.duplicates = None
        # (index, ts, values) of the timestamps first in the call; the
        # indexes of the others.
        self.fresh = []
        self.repeated = []
        if len(given) == 1:
            ts, values = given[0]
            self.fresh.append((0, ts, values))
            return
        seen = set()
        for index, (ts, values) in enumerate(given):
            if ts in seen:
                self.repeated.append(index)
            else:
                seen.add(ts)
                self.fresh.append((index, ts, values))

    def result(self):
        """The duplicates; StoreError if the samples were never written (an
        earlier statement of their transaction failed, or it was rolled
        back), and the transaction is lost."""
        if self.duplicates is None:
            self._repository.flush()
            if self.duplicates is None:
                raise StoreError("the upload's samples were not written: their transaction "
                                 "failed first")
        return self.duplicates


class Samples:
    def __init__(self, db):
        self.db = db
        self.uploads_pending = 0
        self.pending = 0
        self.stored = 0
        self._insert_sql = {}
        # Where several processes write, a unit's row is locked before its
        # samples get ids (`_lock`, `flush`).
        self._locking = db.dialect.shared
        # Where each statement is a round trip, uploads are held to the
        # next statement or the commit (`add_later`); samples held since
        # the connection opened (`Database.changes`).
        self._batching = db.dialect.round_trips
        self._held = []
        self.held = 0
        self._select_cols = {}
        self._one_sql = {}
        # unit id -> [samples added, newest ts] by uploads of the open
        # transaction, written to the units table just before it commits
        # (where uploads are held, the statement that writes them counts
        # them).
        self._tally = {}
        # unit id -> samples stored through this connection since its usual
        # interval was measured. Not undone by a rollback: a measure then
        # comes a little early, or (when the rollback took the measure) a
        # few samples late; either way it is an estimate.
        self._unmeasured = {}
        db.on_end.append(self._ended)
        db.before_commit.append(self.write_counts)
        db.before_commit.append(self._measure_due)

    def _ended(self, committed):
        self._tally.clear()
        self._held.clear()
        if committed:
            self.stored += self.pending
        self.pending = 0
        self.uploads_pending = 0

    def insert_sql(self, fields):
        """The statement that stores a sample of `fields` values, as
        (unit_id, ts, received, v1, ...), skipping a timestamp taken."""
        sql = self._insert_sql.get(fields)
        if sql is None:
            sql = self._insert_sql[fields] = self.db.dialect.insert_ignoring(
                "samples", ["unit_id", "ts", "received"] + VALUE_COLUMNS[:fields])
        return sql

    def _lock(self, unit):
        """Hold `unit`'s row to the end of the open transaction, where
        several processes write, before a sample of it gets an id."""
        if self._locking:
            self.db.one_locked("SELECT id FROM units WHERE id = ?", (unit.id,))

    def add(self, unit, samples):
        """Store `samples`, a list of (timestamp_us, values) for `unit`.

        Returns the 0-based indexes of the duplicates (a timestamp already
        stored, or repeated earlier in `samples`); the rest are stored. On an
        error nothing of this call is stored and the error propagates.
        """
        return self.add_later(unit, samples).result()

    def add_later(self, unit, samples):
        """`add`, whose duplicates its `Upload` learns by the next statement
        on this connection or the commit, whichever comes first: where
        each statement is a round trip (PostgreSQL), the uploads of a loop
        turn are written by one. Inside an `atomic` block, at once."""
        db = self.db
        db.begin()
        self.uploads_pending += 1
        upload = Upload(self, unit, samples)
        if not self._batching:
            self._write(upload)
            return upload
        self.held += len(upload.fresh)
        # Counted towards a measure as held: a unit due one is measured
        # before this commit, its read writing them first.
        self._added(unit.id, len(upload.fresh))
        self._held.append(upload)
        if db.savepoints:
            self.flush()
        else:
            db.dialect.held = self.flush
        return upload

    def flush(self, commit=None):
        """Write the held uploads (`add_later`), in statements of
        `_BATCH_ROWS` rows at most: each unit's row locked first (where
        several processes write), a timestamp taken skipped. Of two
        uploads of one sample, the first stores it. With `commit` (the
        payloads of the dialect's `commit`), the last statement commits
        too: whether it did (not when nothing was held)."""
        held = self._held
        if not held:
            return False
        self._held = []
        self.db.dialect.held = None
        rows = []
        sent = set()
        for upload in held:
            unit_id, received = upload.unit.id, upload.received
            for _, ts, values in upload.fresh:
                if (unit_id, ts) not in sent:
                    sent.add((unit_id, ts))
                    rows.append((unit_id, ts, received, values))
        stored = set()
        insert = self.db.dialect.insert_samples
        for start in range(0, len(rows), _BATCH_ROWS):
            last = start + _BATCH_ROWS >= len(rows)
            stored.update(insert(rows[start:start + _BATCH_ROWS], commit if last else None))
        for upload in held:
            unit_id = upload.unit.id
            duplicates = upload.repeated
            timestamps = []
            for index, ts, _ in upload.fresh:
                if (unit_id, ts) in stored:
                    stored.discard((unit_id, ts))
                    timestamps.append(ts)
                else:
                    duplicates.append(index)
            duplicates.sort()
            self._stored(upload, timestamps)
        return commit is not None and bool(rows)

    def _write(self, upload):
        """Write one upload at once: where a statement costs no round trip
        (SQLite), one for one sample, and for several one look-up of the
        timestamps already stored and one ``executemany``."""
        db, unit, fresh = self.db, upload.unit, upload.fresh
        if len(fresh) == 1 and not upload.repeated:
            _, ts, values = fresh[0]
            if db.execute(self.insert_sql(unit.fields),
                          (unit.id, ts, upload.received, *values)).rowcount == 1:
                self._stored(upload, [ts])
            else:
                upload.repeated.append(0)
                self._stored(upload, [])
            return
        stored = self._existing_timestamps(unit, [ts for _, ts, _ in fresh])
        if stored:
            upload.repeated.extend(i for i, ts, _ in fresh if ts in stored)
            upload.repeated.sort()
            fresh = [f for f in fresh if f[1] not in stored]
        # Several rows are not one statement: an atomic block keeps the call
        # all-or-nothing inside the shared group transaction.
        if fresh:
            with db.atomic():
                db.executemany(self.insert_sql(unit.fields),
                               [(unit.id, ts, upload.received, *values)
                                for _, ts, values in fresh])
        self._stored(upload, [ts for _, ts, _ in fresh])

    def _stored(self, upload, timestamps):
        """`upload` is written, `timestamps` of it stored (the rest are in
        its `repeated`, now its duplicates): counted (held uploads, and
        told to other processes, by the statement that wrote them)."""
        upload.duplicates = upload.repeated
        if timestamps:
            self.pending += len(timestamps)
            if not self._batching:
                self._count(upload.unit.id, len(timestamps), max(timestamps), upload.received)

    # -- a staged bulk import (``manage import``): rows go to a temporary
    # table first, which takes no lock on the database, and then into
    # samples with one INSERT ... SELECT in a short transaction, so the
    # server's writes wait for the copy only, never for the reading.

    def stage(self, fields):
        """A new, empty staging table for samples of `fields` values; the
        statement that adds (ts, row, v1, ...) to it, skipping a timestamp
        staged already. `row` is the caller's number for the sample."""
        db = self.db
        db.dialect.use_temporary_files()
        db.execute("DROP TABLE IF EXISTS " + self._staged)
        db.execute(db.dialect.ddl("CREATE TEMPORARY TABLE staged_samples (ts INTEGER PRIMARY KEY,"
                                  " row INTEGER NOT NULL, %s)"
                                  % ", ".join("%s REAL" % c for c in VALUE_COLUMNS[:fields])))
        return db.dialect.insert_ignoring(self._staged, ["ts", "row"] + VALUE_COLUMNS[:fields])

    @property
    def _staged(self):
        return self.db.dialect.temporary("staged_samples")

    def staged_rows(self, timestamps):
        """{ts: row} of the staged samples among `timestamps`."""
        found = {}
        timestamps = list(timestamps)
        for start in range(0, len(timestamps), _IN_CHUNK):
            chunk = timestamps[start:start + _IN_CHUNK]
            found.update(self.db.all(
                "SELECT ts, row FROM %s WHERE ts IN (%s)"
                % (self._staged, ",".join("?" * len(chunk))), chunk))
        return found

    def staged_stored(self, unit, limit):
        """(count, [(row, ts), ...]): staged samples whose timestamp `unit`
        has stored already, and the first `limit` of them by row."""
        low, high = self.db.one("SELECT min(ts), max(ts) FROM " + self._staged)
        if low is None or not self.db.one(
                "SELECT count(*) FROM (SELECT 1 FROM samples WHERE unit_id = ?"
                " AND ts BETWEEN ? AND ? LIMIT 1) AS any_", (unit.id, low, high))[0]:
            return 0, []   # no stored sample in the staged range: no look-ups
        join = ("FROM %s AS t JOIN samples AS s"
                " ON s.unit_id = ? AND s.ts = t.ts" % self._staged)
        count = self.db.one("SELECT count(*) " + join, (unit.id,))[0]
        first = self.db.all("SELECT t.row, t.ts %s ORDER BY t.row LIMIT ?" % join,
                            (unit.id, limit))
        return count, first

    def add_staged(self, unit):
        """Copy the staged samples into `unit`'s, skipping timestamps taken,
        in the shared transaction (begun with the write lock if none is
        open); returns how many were stored. The caller commits."""
        db = self.db
        if not db.in_transaction:
            db.dialect.begin_writing()
        self._lock(unit)
        before = db.changes
        values = VALUE_COLUMNS[:unit.fields]
        db.execute(db.dialect.insert_ignoring(
            "samples", ["unit_id", "ts", "received"] + values,
            "SELECT ?, ts, ?, %s FROM %s ORDER BY ts" % (", ".join(values), self._staged)),
            (unit.id, times.now()))
        stored = db.changes - before
        self._recount(unit, stored)
        self.pending += stored
        return stored

    def drop_staged(self):
        self.db.execute("DROP TABLE IF EXISTS " + self._staged)

    def _existing_timestamps(self, unit, timestamps):
        found = set()
        timestamps = list(timestamps)
        for start in range(0, len(timestamps), _IN_CHUNK):
            chunk = timestamps[start:start + _IN_CHUNK]
            found.update(row[0] for row in self.db.all(
                "SELECT ts FROM samples WHERE unit_id = ? AND ts IN (%s)"
                % ",".join("?" * len(chunk)), (unit.id, *chunk)))
        return found

    # -- single samples and ranges, as (id, ts, v1, ...)

    def _columns(self, unit):
        cols = self._select_cols.get(unit.fields)
        if cols is None:
            cols = self._select_cols[unit.fields] = ", ".join(
                ["id", "ts"] + VALUE_COLUMNS[:unit.fields])
        return cols

    def _one(self, unit, where, params):
        # Made once per field count and query: dl asks this on every request.
        sql = self._one_sql.get((unit.fields, where))
        if sql is None:
            sql = self._one_sql[unit.fields, where] = (
                "SELECT %s FROM samples WHERE unit_id = ? %s LIMIT 1" % (self._columns(unit), where))
        return self.db.one(sql, (unit.id, *params))

    def last(self, unit):
        """The newest sample by timestamp, or None."""
        return self._one(unit, "ORDER BY ts DESC", ())

    def first(self, unit):
        return self._one(unit, "ORDER BY ts", ())

    def at(self, unit, ts):
        return self._one(unit, "AND ts = ?", (ts,))

    def after_id(self, unit, sample_id):
        """The first sample of `unit` stored after sample `sample_id`."""
        return self._one(unit, "AND id > ? ORDER BY id", (sample_id,))

    def get_by_id(self, sample_id):
        """(unit id, received, (id, ts, v1, ..., v32)) of that sample, or None."""
        row = self.db.one("SELECT unit_id, received, id, ts, %s FROM samples WHERE id = ?"
                          % ", ".join(VALUE_COLUMNS), (sample_id,))
        return None if row is None else (row[0], row[1], tuple(row[2:]))

    def newest_page(self, unit, limit, start=None, end=None, before=None, after=None):
        """A page of `limit` samples, newest first, with start <= ts <= end
        (None: unbounded): the newest of all, those older than `before`, or
        with `after` those just newer than it. Keyset paging: every page is
        an index walk from its edge, as fast at the millionth sample as at
        the first (no OFFSET)."""
        where, params = filters(("unit_id = ?", unit.id), ("ts >= ?", start),
                                ("ts <= ?", end), ("ts < ?", before), ("ts > ?", after))
        order = "ASC" if after is not None else "DESC"
        rows = self.db.all("SELECT %s FROM samples WHERE %s ORDER BY ts %s LIMIT ?" % (
            self._columns(unit), where, order), params + [limit])
        return rows[::-1] if after is not None else rows

    def oldest_page(self, unit, limit, start=None, end=None):
        """The oldest `limit` samples in the range, newest first."""
        return self.newest_page(unit, limit, start, end, after=(start or _BEFORE_ALL) - 1)

    def after_id_of(self, units, sample_id, limit):
        """[(Unit, (id, ts, v1, ...))] of the committed samples of `units`
        stored after sample `sample_id`, in the order stored, `limit` at
        most (a live stream resuming: those of the open transaction are
        published when it commits)."""
        by_id = {unit.id: unit for unit in units}
        if not by_id:
            return []
        ids = tuple(sorted(by_id)[:900])
        where, params = filters(("id > ?", sample_id),
                                ("unit_id IN (%s)" % ",".join("?" * len(ids)), ids))
        rows = self.db.all("SELECT unit_id, id, ts, %s FROM samples WHERE %s ORDER BY id LIMIT ?"
                           % (", ".join(VALUE_COLUMNS), where), params + [limit])
        return [(by_id[row[0]], tuple(row[1:3 + by_id[row[0]].fields])) for row in rows]

    def stored_at(self, keys):
        """{(unit id, ts): (unit code, (id, ts, v1, ..., vN))} of the
        samples stored at those keys (unit id, ts), N their unit's fields:
        what another process's notice names (`store.notices`), whatever
        units, in one statement (per 450 keys)."""
        keys = list(keys)
        found = {}
        for start in range(0, len(keys), _IN_CHUNK // 2):
            chunk = keys[start:start + _IN_CHUNK // 2]
            for row in self.db.all(
                    "SELECT u.code, u.fields, s.unit_id, s.id, s.ts, %s FROM samples s"
                    " JOIN units u ON u.id = s.unit_id WHERE (s.unit_id, s.ts) IN (VALUES %s)"
                    % (", ".join("s." + c for c in VALUE_COLUMNS),
                       ", ".join(["(?, ?)"] * len(chunk))),
                    [part for key in chunk for part in key]):
                found[row[2], row[4]] = (row[0], tuple(row[3:5 + row[1]]))
        return found

    def between(self, unit, start=None, end=None, limit=None):
        """Samples with start <= ts <= end (either bound may be None), oldest
        first. Timestamps are unique integers per unit, so a caller pages on
        with start = last ts + 1."""
        where, params = filters(("unit_id = ?", unit.id), ("ts >= ?", start),
                                ("ts <= ?", end))
        query = "SELECT %s FROM samples WHERE %s ORDER BY ts" % (self._columns(unit), where)
        if limit is not None:
            query += " LIMIT %d" % limit
        return self.db.all(query, params)

    def query(self, unit, conditions=(), order="ts", limit=None, offset=0):
        """`unit`'s samples (id, ts, v1, ...) for which all `conditions`
        hold (`sql.matching` over ts and id), sorted by `order` (``ts`` or
        ``id``, ``-ts``: descending), `limit` of them (None: all) after the
        first `offset`: one statement, for the apps' querysets
        (`texmate_ds.models`). By ts it is a walk of the (unit, ts) index
        from the range's edge; an OFFSET is stepped over there, never read
        into Python."""
        where, params = matching(_QUERIED, conditions)
        limits, more = page(limit, offset)
        return self.db.all("SELECT %s FROM samples WHERE unit_id = ? AND %s ORDER BY %s%s" % (
            self._columns(unit), where, order_by(_QUERIED, order, "id"), limits),
            [unit.id] + params + more)

    def count_matching(self, unit, conditions=()):
        """How many samples `query` finds with those `conditions` in all
        (the index alone is read)."""
        where, params = matching(_QUERIED, conditions)
        return self.db.one("SELECT count(*) FROM samples WHERE unit_id = ? AND " + where,
                           [unit.id] + params)[0]

    def count(self, unit, before=None):
        """The unit's samples, or those with ts < `before`."""
        where, params = filters(("unit_id = ?", unit.id), ("ts < ?", before))
        return self.db.one("SELECT count(*) FROM samples WHERE " + where, params)[0]

    def delete_oldest(self, unit, limit, before=None):
        """Delete the unit's oldest `limit` samples at most, only those with
        ts < `before` unless None, within the shared transaction; how many
        went. A caller deleting many commits after each call, so that no
        transaction holds the write lock for long."""
        where, params = "unit_id = ?", [unit.id]
        if before is not None:
            where += " AND ts < ?"
            params.append(before)
        gone = self.db.write(
            "DELETE FROM samples WHERE id IN (SELECT id FROM samples WHERE %s"
            " ORDER BY ts LIMIT ?)" % where, params + [limit]).rowcount
        self._recount(unit, -gone)
        return gone

    def delete_ids(self, unit, ids):
        """Delete those of `ids` that are samples of `unit`; the ids of those
        that went, in the order given (once each)."""
        ids = list(dict.fromkeys(ids))
        found = []
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start:start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            there = {row[0] for row in self.db.all(
                "SELECT id FROM samples WHERE unit_id = ? AND id IN (%s)" % marks,
                (unit.id, *chunk))}
            self.db.write("DELETE FROM samples WHERE unit_id = ? AND id IN (%s)" % marks,
                          (unit.id, *chunk))
            found.extend(i for i in chunk if i in there)
        self._recount(unit, -len(found))
        return found

    def _count(self, unit_id, added, newest, received):
        """Uploads of `added` samples, the newest at `newest`, come at
        `received`: tallied, and written once per unit at the commit (one
        statement for many uploads); inside a savepoint at once, so that it
        goes if the savepoint is undone."""
        self._added(unit_id, added)
        if self.db.savepoints:
            self.db.execute(_COUNT_ADDED, (added, newest, newest, received, unit_id))
            return
        tally = self._tally.get(unit_id)
        if tally is None:
            self._tally[unit_id] = [added, newest, received]
        else:
            tally[0] += added
            tally[2] = received
            if newest > tally[1]:
                tally[1] = newest

    def _added(self, unit_id, added):
        # A unit first seen by this connection is measured at this commit.
        self._unmeasured[unit_id] = self._unmeasured.get(unit_id, MEASURE_EVERY) + added

    def write_counts(self, unit_id=None):
        """Write the uploads' tally (or only unit `unit_id`'s) into the units
        table: before a commit, and before anyone reads the counts."""
        if unit_id is None:
            rows = [(added, newest, newest, received, uid)
                    for uid, (added, newest, received) in self._tally.items()]
            self._tally.clear()
        else:
            found = self._tally.pop(unit_id, None)
            rows = [] if found is None else [(found[0], found[1], found[1], found[2], unit_id)]
        if rows:
            self.db.executemany(_COUNT_ADDED, rows)

    def _recount(self, unit, added):
        """Keep the unit's count and newest timestamp (units table) right
        after `added` samples (negative: deleted) went in or out anyhow:
        the newest is looked up again, one index step (after the unit's
        tally is written, which could name a sample gone since)."""
        self.write_counts(unit.id)
        if added:
            self.db.execute(
                "UPDATE units SET sample_count = sample_count + ?,"
                " last_ts = (SELECT max(ts) FROM samples WHERE unit_id = ?) WHERE id = ?",
                (added, unit.id, unit.id))
            self._measure(unit.id)

    def _measure_due(self):
        """Measure the usual interval of every unit due (before a commit)."""
        for unit_id in [u for u, count in self._unmeasured.items() if count >= MEASURE_EVERY]:
            self._measure(unit_id)

    def _measure(self, unit_id):
        """Store the unit's usual interval as its newest samples give it."""
        usual = status.usual_interval(ts for (ts,) in self.db.all(
            "SELECT ts FROM samples WHERE unit_id = ? ORDER BY ts DESC LIMIT ?",
            (unit_id, status.NEWEST)))
        self.db.execute("UPDATE units SET usual_interval = ? WHERE id = ?", (usual, unit_id))
        # With fewer than two samples there is nothing to measure yet: the
        # next sample makes it due again.
        self._unmeasured[unit_id] = 0 if usual is not None else MEASURE_EVERY - 1

    # -- the dl "next" mailbox: the id of the last sample of `source` that
    # `reader` has had (0: none yet). Where several processes share the
    # database, a reader may ask through two at once: its cursor's row is
    # locked from the read to the commit of the move (`Database.one_locked`),
    # so the second process waits for the first one's move and reads on
    # from there, never sending the same sample, never skipping one. The
    # wait is for the other process's loop turn (its group commit). The
    # row is made (at 0) when missing, so there is always one to lock; a
    # second process making it too waits for the first to commit. The lock
    # every writer of samples takes before its row locks (`order_events`)
    # is taken first: a transaction that moved a cursor and then stores a
    # sample would otherwise wait for it while holding the cursor, which
    # another, holding it, may be waiting for (a deadlock, which PostgreSQL
    # breaks after a second by failing one of the two turns).

    def cursor(self, reader, source):
        key = (reader.id, source.id)
        self.db.order_events()
        row = self.db.one_locked(_CURSOR, key)
        if row is None:
            self.db.write(self.db.dialect.insert_ignoring(
                "dl_cursors", ("reader_id", "source_id", "sample_id")), key + (0,))
            row = self.db.one_locked(_CURSOR, key)
        return row[0]

    def set_cursor(self, reader, source, sample_id):
        self.db.write(self.db.dialect.insert_replacing(
            "dl_cursors", ("reader_id", "source_id", "sample_id"), ("reader_id", "source_id")),
            (reader.id, source.id, sample_id))

    # -- range queries for the web: statistics and graphs. `fields` are
    # 1-based field numbers; ranges are start <= ts <= end.

    def stats(self, unit, fields, start, end):
        """Per field: {count, min, max, mean, stddev, first, last}, NULLs
        skipped; first/last are (ts, value), and like min..stddev None when
        the field has no value in the range. stddev is the population's.

        One scan computes every field's aggregates. The sums are taken of
        value - first value, so a large offset (a reading near 1e6 that
        varies by 0.01) does not drown the variance in rounding; they are
        NULL, and unused, when the count is 0."""
        firsts = [self._edge_value(unit, field, start, end, "") for field in fields]
        lasts = [self._edge_value(unit, field, start, end, " DESC") for field in fields]
        shifts = [first[1] if first else 0.0 for first in firsts]
        columns = ", ".join(
            "count({0}), min({0}), max({0}), sum({0} - ?), sum(({0} - ?) * ({0} - ?))"
            .format(VALUE_COLUMNS[field - 1]) for field in fields)
        row = self.db.one(
            "SELECT %s FROM samples WHERE unit_id = ? AND ts BETWEEN ? AND ?" % columns,
            [shift for shift in shifts for _ in range(3)] + [unit.id, start, end])
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
        return self.db.one(
            "SELECT ts, {0} FROM samples WHERE unit_id = ? AND ts BETWEEN ? AND ?"
            " AND {0} IS NOT NULL ORDER BY ts{1} LIMIT 1".format(column, order),
            (unit.id, start, end))

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
        few = self.db.one(
            "SELECT count(*) FROM (SELECT 1 %s LIMIT ?) AS capped" % where,
            (unit.id, start, end, 2 * columns + 1))[0] <= 2 * columns
        names = [VALUE_COLUMNS[field - 1] for field in fields]
        if few:
            return self.db.all(
                "SELECT ts, ts, %s %s ORDER BY ts" % (
                    ", ".join("%s, %s" % (c, c) for c in names), where),
                (unit.id, start, end))
        sql = "SELECT min(ts), max(ts), %s %s" % (
            ", ".join("min(%s), max(%s)" % (c, c) for c in names), where)
        width = (end - start) // columns + 1
        rows = []
        for low in range(start, end + 1, width):
            row = self.db.one(sql, (unit.id, low, min(low + width - 1, end)))
            if row[0] is not None:
                rows.append(row)
        return rows

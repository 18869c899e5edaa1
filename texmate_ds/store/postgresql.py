"""The PostgreSQL dialect: the same methods as `sqlite.SQLite`, over one
connection of the optional ``psycopg`` (3.x) driver, imported here only,
and only when a PostgreSQL database is opened: the default install, the
``.pyz`` and every SQLite user never need it.

How it meets the store's SQL, which is written once, in SQLite's words:

* statements come with ``?`` placeholders; they are rewritten once to
  psycopg's ``%s`` (a ``%`` doubled, a ``?`` in a string literal left
  alone) and the rewrite is cached, bounded;
* migration scripts (the store's and the HTTP apps') are SQLite's text,
  cut by SQLite's own tokenizer and turned into PostgreSQL's by `ddl`:
  ``INTEGER`` is ``BIGINT`` (timestamps are microseconds), ``REAL`` is
  ``DOUBLE PRECISION`` (SQLite's is 8 bytes), ``INTEGER PRIMARY KEY``
  an identity column, ``WITHOUT ROWID`` goes, and ``COLLATE NOCASE`` is
  a case-insensitive ICU collation made by the first migration (which
  LIKE refuses: a search lowers its columns in the database's own
  collation, `lowered`);
* the schema version is the one row of ``texmate_schema`` (SQLite keeps
  it in the file's header), and a migration holds an advisory lock, so
  two processes starting together migrate once;
* another connection's commit is learnt by ``LISTEN``: a writer that
  changed rows others cache calls `changed_shared` inside its
  transaction, a ``NOTIFY`` PostgreSQL delivers only if it commits;
* a new row's id comes from ``RETURNING id``; rows changed are counted
  from each statement's row count (`changes`);
* psycopg prepares the statements run often, but for long lists of
  values (`_PREPARED_PARAMS`), which PostgreSQL plans better each time;
* `executemany` of a one-row INSERT sends statements of many rows: an
  upload of a thousand samples is a few round trips, not a thousand;
* a ``BEGIN`` waits for the transaction's first statement and goes
  with it, in one round trip (a pipeline);
* a loop turn's uploads are one statement (`insert_samples`): the store
  holds them (`held`) until the next statement, which writes them first,
  or the commit, which sends them with the COMMIT in one round trip: a
  turn of uploads alone is that one round trip, its ``BEGIN`` included;
* samples and alarms get their ids in the order their transactions
  commit, across processes (`order_events`), so that a live stream's
  ``Last-Event-ID`` is an exact place to resume from;
* there is no backup API: `backup` refuses and names ``pg_dump``.

Connection errors are told apart for the operator (`connect`): the
driver missing (with the ``pip install`` line), the server unreachable,
the login refused, the database missing.
"""

import collections
import logging
import shlex
import time

from texmate_ds.store import notices
from texmate_ds.store.errors import Conflict, NotFound, StoreError
from texmate_ds.store.sqlite import SQLite

log = logging.getLogger("texmate_ds.store")

# The notification channel of "rows others cache have changed".
STALE_CHANNEL = "texmate_stale"
# pg_advisory_xact_lock key of a migration: any constant of our own.
_MIGRATION_LOCK = 0x7478_6D00
# pg_advisory_xact_lock key held by a transaction from before it gives a
# sample or alarm its id to its end (`order_events`).
_EVENT_ORDER_LOCK = 0x7478_6D02
# Samples told in one notice by `insert_samples`: an item ("s", a unit id,
# ":", a timestamp and a space) is 42 bytes at most.
_TOLD_ROWS = notices.PAYLOAD_BYTES // 42
# Rewritten statements kept (the store's own are a few hundred).
_CACHE = 4096
# psycopg prepares a statement run 5 times; one with more parameters than
# this is not: those are lists of values (``ts IN (?, ...)``, 500 of them
# in the duplicate check), whose generic plan, blind to the values, scans
# every row of the unit (0.5 s a 1,000-sample upload into 50,000 samples).
# The store's other statements have 35 at most (a sample of 32 fields).
_PREPARED_PARAMS = 64
# Seconds to reach the server before the start fails.
CONNECT_TIMEOUT = 10
# `executemany` sends an INSERT of one row of values (`_one_row`) as
# statements of many rows: of a power of two rows each (so a few texts,
# kept by `_native`, serve any number), up to _MANY_ROWS and the
# protocol's 65535 parameters.
_MANY_ROWS = 1024
_MAX_PARAMETERS = 65535
# After a lost connection: seconds between tries to connect again, and
# the wait of each (libpq's shortest), the loop's longest on the network.
RETRY_SECONDS = 0.5
RECONNECT_TIMEOUT = 2
# What the ROLLBACK of a transaction lost with its connection gives: done
# already, by PostgreSQL as the connection ended (a cursor's attributes,
# as `execute` and its callers read them).
_ROLLED_BACK = collections.namedtuple("RolledBack", "description rowcount statusmessage")(
    None, 0, "ROLLBACK")


class Address(collections.namedtuple("Address", "name host port user password")):
    """Where a PostgreSQL database is: txm.conf's [database] keys. Empty
    host, user and password leave them to libpq (its socket folder, the
    login name, ``PGPASSWORD`` or ``~/.pgpass``)."""

    def __str__(self):
        where = self.host or "local socket"
        if not self.host.startswith("/"):
            where += ":%d" % self.port
        return "%r on %s%s (PostgreSQL)" % (
            self.name, where, " as %s" % self.user if self.user else "")


def _driver():
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            "DATABASE_ENGINE is postgresql, but its driver psycopg is not installed: "
            "run  python3 -m pip install 'psycopg[binary]'") from None
    return psycopg


def _translated(exc):
    """The store's exception for a driver error, with the server's own
    words and their detail, one line (not the statement quoted with a
    caret under it, which psycopg's text adds)."""
    state = getattr(exc, "sqlstate", None) or ""
    diag = getattr(exc, "diag", None)
    primary = diag and diag.message_primary
    if primary:
        text = primary + (": " + diag.message_detail if diag.message_detail else "")
    else:
        text = str(exc).strip()
    if state == "23505":
        return Conflict(text)
    if state == "23503":
        return NotFound(text)
    return StoreError(text)


_IGNORING = " ON CONFLICT DO NOTHING"


def _one_row(sql):
    """(head, its one row "(?, ...)", tail) of an INSERT of one row of
    values, maybe ignoring a taken key (not one updating it: two rows of
    one statement cannot update the same row); None for any other
    statement. String methods only: linear."""
    if not sql.startswith("INSERT INTO ") or ";" in sql:
        return None
    at = sql.rfind(" VALUES (")
    if at < 0:
        return None
    head, row, tail = sql[:at + 8], sql[at + 8:], ""
    if row.endswith(_IGNORING):
        row, tail = row[:-len(_IGNORING)], _IGNORING
    if not row.endswith(")") or row[1:-1].replace(", ?", "") != "?":
        return None
    return head, row, tail


def placeholders(sql):
    """`sql` with each ``?`` outside a string literal or quoted name made
    ``%s`` and every ``%`` doubled: one pass, linear."""
    out = []
    quote = None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        if ch == "%":
            out.append("%%")
            continue
        out.append(ch)
    return "".join(out)


def ddl(statement):
    """A statement of a migration script in SQLite's words, in PostgreSQL's."""
    words = statement.replace("INTEGER PRIMARY KEY",
                              "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
    words = words.replace(" INTEGER", " BIGINT").replace(" REAL", " DOUBLE PRECISION")
    words = words.replace(" WITHOUT ROWID", "").replace("COLLATE NOCASE", "COLLATE nocase")
    return words


def _describe_connect_failure(address, exc):
    """The operator's reading of a failed connect."""
    text = str(exc).strip()
    low = text.lower()
    if "password authentication failed" in low or "no password supplied" in low \
            or "authentication failed" in low or "role" in low and "does not exist" in low:
        why = "the login was refused"
    elif "database" in low and "does not exist" in low:
        why = "the database does not exist (create it: createdb %s)" % address.name
    elif "connection refused" in low or "could not connect" in low \
            or "timeout" in low or "no such file" in low or "translate host name" in low:
        why = "the server is unreachable"
    else:
        why = "the connection failed"
    return StoreError("%s: %s" % (why, text.splitlines()[0] if text else "no reason given"))


class PostgreSQL:
    """A connection to one PostgreSQL database (`Address`)."""

    complete_statement = SQLite.complete_statement
    # SQLite's two-argument max() and min().
    greatest, least = "greatest", "least"
    # LIKE refuses a nondeterministic collation (the case-insensitive
    # usernames' and group names' nocase): a search lowers the column in
    # the database's own collation.
    lowered = 'lower(%s COLLATE "default")'

    def __init__(self, address):
        self.address = address
        self.path = str(address)
        self._psycopg = _driver()
        states = self._psycopg.pq.TransactionStatus
        self._open_states = (states.INTRANS, states.INERROR, states.ACTIVE)
        self._sql = {}
        self._has_id = {}
        self._changes = 0
        self._stale = True      # True the first time, as SQLite's data_version
        self._broken = self._lost = False
        # A BEGIN not yet sent: it goes with the next statement (`_sent`).
        self._begun = False
        self._retry_at = 0.0
        # fn() writing what a repository held back to send with more (the
        # uploads of a loop turn, `Samples.add_later`): run before the next
        # statement, which sees them; a ROLLBACK drops it.
        self.held = None
        self._insert_samples = {}
        self._connect(CONNECT_TIMEOUT)

    def configure(self, durable):
        """Listen for other connections' changes. `durable` is the server's
        (synchronous_commit stays as the database has it: on, by default)."""
        self._conn.execute("LISTEN " + STALE_CHANNEL)

    def close(self):
        self._conn.close()

    # -- statements -------------------------------------------------------------

    def _native(self, sql):
        native = self._sql.get(sql)
        if native is None:
            if len(self._sql) >= _CACHE:
                self._sql.clear()
            native = self._sql[sql] = placeholders(sql)
        return native

    def execute(self, sql, params=()):
        """The cursor, for its rowcount."""
        cursor = self._run(sql, params)
        if cursor.description is None and cursor.rowcount > 0:
            self._changes += cursor.rowcount
        return cursor

    def executemany(self, sql, rows):
        """`sql` for each of `rows`; an INSERT of one row of values as
        statements of many rows (`_one_row`): a round trip for each."""
        one_row = _one_row(sql)
        if one_row is None:
            cursor = self._run(sql, rows, many=True)
            if cursor.rowcount > 0:
                self._changes += cursor.rowcount
            return cursor
        head, values, tail = one_row
        rows = list(rows)
        most = min(_MANY_ROWS, _MAX_PARAMETERS // values.count("?"))
        cursor = None
        done = 0
        while done < len(rows):
            count = 1 << (min(len(rows) - done, most).bit_length() - 1)
            cursor = self.execute(head + ", ".join([values] * count) + tail,
                                  [value for row in rows[done:done + count] for value in row])
            done += count
        return cursor

    def one(self, sql, params=()):
        return self._run(sql, params).fetchone()

    def all(self, sql, params=()):
        return self._run(sql, params).fetchall()

    def insert(self, table, values):
        """Insert `values` (column: value) into `table`; the new row's id
        (None for a table without one)."""
        sql = "INSERT INTO %s (%s) VALUES (%s)" % (
            table, ", ".join(values), ", ".join("?" * len(values)))
        if self._id_column(table):
            row = self._returning(sql + " RETURNING id", tuple(values.values()))
            return row[0]
        self.execute(sql, tuple(values.values()))
        return None

    def _returning(self, sql, params):
        cursor = self._run(sql, params)
        self._changes += max(cursor.rowcount, 0)
        return cursor.fetchone()

    def _id_column(self, table):
        """Has `table` (a name as the SQL writes it: quoted, maybe) an id?"""
        has = self._has_id.get(table)
        if has is None:
            has = self._has_id[table] = self.one(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(?)"
                " AND attname = 'id' AND NOT attisdropped", (table,))[0] > 0
        return has

    @staticmethod
    def insert_ignoring(table, columns, select=None):
        """As SQLite's: a row whose unique key is taken is skipped."""
        return "INSERT INTO %s (%s) %s ON CONFLICT DO NOTHING" % (
            table, ", ".join(columns),
            select or "VALUES (%s)" % ", ".join("?" * len(columns)))

    @staticmethod
    def insert_replacing(table, columns, key):
        """As SQLite's: the row with the same `key` is replaced."""
        key = (key,) if isinstance(key, str) else tuple(key)
        rest = [c for c in columns if c not in key]
        return "INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) DO %s" % (
            table, ", ".join(columns), ", ".join("?" * len(columns)), ", ".join(key),
            "UPDATE SET " + ", ".join("%s = EXCLUDED.%s" % (c, c) for c in rest)
            if rest else "NOTHING")

    def insert_samples(self, rows, commit=None):
        """Store `rows`, (unit_id, ts, received, values), in one statement
        whatever their number and units, count them in their units' rows
        (as `Samples.write_counts` does SQLite's) and tell them to the
        other processes at the commit (`store.notices`): each unit's row
        locked first, in id order (`row_lock`), after the lock of
        `order_events`, a taken (unit_id, ts) skipped, as is a row of a
        unit gone. Ids are given in the order of `rows`. The (unit_id, ts)
        stored. With `commit` (the payloads of `commit`), the statement
        goes with the COMMIT, in one round trip.

        Its parameters are one array a column, so that one prepared text
        serves every number of rows; the values are floats (psycopg
        dumps no list of mixed types), a unit's missing ones NULL."""
        fields = max(len(row[3]) for row in rows)
        sql = self._insert_samples.get(fields)
        if sql is None:
            columns = ["unit_id", "ts", "received"] + ["v%d" % i for i in range(1, fields + 1)]
            sql = self._insert_samples[fields] = (
                # `ordered` is one row, which the join needs before any id
                # is given: the lock is taken first.
                "WITH ordered AS (SELECT pg_advisory_xact_lock(%d)),"
                " unit AS (SELECT id FROM units, ordered WHERE id = ANY(?::bigint[])"
                " ORDER BY id%s OF units),"
                " stored AS (INSERT INTO samples (%s) SELECT %s FROM unnest(%s)"
                " WITH ORDINALITY AS r(%s, n) JOIN unit ON unit.id = r.unit_id ORDER BY r.n"
                " ON CONFLICT DO NOTHING RETURNING id, unit_id, ts, received),"
                " counted AS (UPDATE units SET sample_count = sample_count + s.added,"
                " last_ts = greatest(last_ts, s.newest),"
                " last_received = greatest(last_received, s.received)"
                " FROM (SELECT unit_id, count(*) AS added, max(ts) AS newest,"
                " max(received) AS received FROM stored GROUP BY unit_id) AS s"
                " WHERE units.id = s.unit_id),"
                # The notices of what was stored, in id order: an item a
                # sample (notices.encode's form), _TOLD_ROWS a payload.
                " told AS (SELECT pg_notify('%s', payload) FROM (SELECT string_agg("
                "'s' || unit_id || ':' || ts, ' ' ORDER BY id) AS payload FROM (SELECT id,"
                " unit_id, ts, (row_number() OVER (ORDER BY id) - 1) / %d AS part"
                " FROM stored) AS n GROUP BY part ORDER BY part) AS p)"
                # A SELECT in WITH runs only if read: once, before the rows.
                " SELECT unit_id, ts FROM stored WHERE (SELECT count(*) FROM told) >= 0" % (
                    _EVENT_ORDER_LOCK, self.row_lock, ", ".join(columns),
                    ", ".join("r." + c for c in columns),
                    ", ".join(["?::bigint[]"] * 3 + ["?::float8[]"] * fields),
                    ", ".join(columns), EVENTS_CHANNEL, _TOLD_ROWS))
        columns = [list(column) for column in zip(*[row[:3] for row in rows])]
        for i in range(fields):
            columns.append([None if i >= len(row[3]) or row[3][i] is None else float(row[3][i])
                            for row in rows])
        statement = (sql, [sorted(set(columns[0]))] + columns)
        # Not counted in `changes`: the samples were, as they were held.
        if commit is None:
            return self._run(*statement).fetchall()
        return self._commit([statement], commit).fetchall()

    @staticmethod
    def temporary(name):
        """The name of the session's temporary table `name`."""
        return "pg_temp." + name

    ddl = staticmethod(ddl)

    # -- transactions and their bookkeeping -------------------------------------

    @property
    def in_transaction(self):
        """A transaction open, or aborted by an error and not yet rolled
        back; on a lost connection, the transaction lost with it, until its
        ROLLBACK (see "a lost connection" below). A BEGIN not yet sent
        counts."""
        if self._begun:
            return True
        status = self._pq.transaction_status
        if status == self._psycopg.pq.TransactionStatus.UNKNOWN:
            return self._lost
        return status in self._open_states

    def commit(self, payloads=()):
        """COMMIT, and a StoreError unless PostgreSQL committed. The
        `payloads` are sent to every `Listening` connection first (a NOTIFY
        is delivered only once its transaction commits). Uploads still
        held are written in the same round trip (`held`), so that the
        lock their statement takes (`order_events`) is held only while
        PostgreSQL runs it and commits, never across a round trip."""
        held, self.held = self.held, None
        if held is None or not held(payloads):
            self._commit([], payloads)

    def _commit(self, statements, payloads):
        """`statements` [(sql, params)], the NOTIFYs of `payloads` and
        COMMIT, as one pipeline: one round trip. The first statement's
        cursor. A transaction an earlier statement failed in is rolled
        back by COMMIT, which says ROLLBACK and no error, and must not pass
        for committed (an OK would be a lie)."""
        statements = statements + [("SELECT pg_notify(?, ?)", (EVENTS_CHANNEL, payload))
                                   for payload in payloads]
        cursors = self._run_pipeline(statements + [("COMMIT", ())], commits=True)
        done = cursors[-1].statusmessage
        if done != "COMMIT":
            raise StoreError("the transaction was rolled back (%s), an earlier statement in it "
                             "having failed" % done)
        return cursors[0]

    @property
    def changes(self):
        """Rows inserted, changed or deleted through this connection."""
        return self._changes

    def _notified(self, notify):
        if notify.channel == STALE_CHANNEL and notify.pid != self._pq.backend_pid:
            self._stale = True

    def others_committed(self):
        """Did another connection commit a change to cached rows since the
        last call? (True the first time.) Reads what the socket holds
        without waiting: no round trip."""
        if self._broken:
            return True             # whatever others did meanwhile went unheard
        if not self.in_transaction:
            try:
                self._pq.consume_input()
                notify = self._pq.notifies()
            except self._psycopg.Error as exc:
                self._break(exc, lost=False)
                return True
            while notify is not None:
                if notify.be_pid != self._pq.backend_pid:
                    self._stale = True
                notify = self._pq.notifies()
        stale, self._stale = self._stale, False
        return stale

    def changed_shared(self):
        """Within the open transaction: rows other processes cache changed
        (sent on commit, dropped with a rollback)."""
        self.execute("NOTIFY " + STALE_CHANNEL)

    # -- schema -----------------------------------------------------------------

    def schema_version(self):
        if self.one("SELECT to_regclass('texmate_schema')")[0] is None:
            return 0
        row = self.one("SELECT version FROM texmate_schema")
        return row[0] if row else 0

    def set_schema_version(self, version):
        self.execute("DELETE FROM texmate_schema")
        self.execute("INSERT INTO texmate_schema (version) VALUES (?)", (version,))

    def begin_migration(self):
        """One migrating process at a time (an advisory lock held to the
        end of the transaction); the version's table and the collation the
        scripts name made if missing."""
        self.begin()
        self.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        self.execute("CREATE TABLE IF NOT EXISTS texmate_schema (version BIGINT NOT NULL)")
        if self.one("SELECT 1 FROM pg_collation WHERE collname = 'nocase'") is None:
            self.execute("CREATE COLLATION nocase (provider = icu,"
                         " locale = 'und-u-ks-level2', deterministic = false)")

    def begin(self):
        """A transaction, whose BEGIN waits for its first statement and
        goes with it (`_sent`): no round trip of its own."""
        self._begun = True

    def begin_writing(self):
        """A transaction: PostgreSQL's writers wait for each other's rows,
        not for the whole database."""
        self.begin()

    def use_temporary_files(self):
        """Temporary tables spill to disk past temp_buffers by themselves."""

    # -- backup -----------------------------------------------------------------

    def backup(self, path):
        """Refused, with the ``pg_dump`` command line that copies this
        database into `path` (consistent while the servers write)."""
        where = self.address
        words = ["pg_dump"]
        if where.host:
            words.append("--host=" + where.host)
        words.append("--port=%d" % where.port)
        if where.user:
            words.append("--username=" + where.user)
        words += ["--format=custom", "--file=" + path, where.name]
        raise StoreError("manage backup copies SQLite files only; for %s use PostgreSQL's own "
                         "tools: %s" % (where, " ".join(shlex.quote(w) for w in words)))

    # -- copying a database (store/copy.py) -------------------------------------
    # The names insert_rows and reset_ids take come quoted.

    def catalog(self):
        """{table: (its columns, [(column, table it refers to, column
        there)])} of the tables in the current schema but texmate_schema."""
        columns = {}
        for table, column in self.all(
                "SELECT c.relname, a.attname FROM pg_class c"
                " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0"
                " AND NOT a.attisdropped"
                " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'"
                " AND c.relname <> 'texmate_schema' ORDER BY c.relname, a.attnum"):
            columns.setdefault(table, []).append(column)
        found = {table: (tuple(names), []) for table, names in columns.items()}
        for table, column, other, there in self.all(
                "SELECT t.relname, a.attname, r.relname, b.attname FROM pg_constraint k"
                " JOIN pg_class t ON t.oid = k.conrelid JOIN pg_class r ON r.oid = k.confrelid"
                " CROSS JOIN LATERAL unnest(k.conkey, k.confkey) AS pair (own, theirs)"
                " JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = pair.own"
                " JOIN pg_attribute b ON b.attrelid = k.confrelid AND b.attnum = pair.theirs"
                " WHERE k.contype = 'f' AND t.relnamespace = current_schema()::regnamespace"):
            found[table][1].append((column, other, there))
        return found

    def begin_reading(self):
        """A transaction whose reads all see one snapshot."""
        self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def batches(self, sql, size):
        """The rows of the query `sql`, `size` at a time, through a cursor
        of the server's (within the open transaction), so that the client
        never holds more."""
        def declare(begin):
            self._alone(begin)
            return cursor.execute(self._native(sql))
        try:
            with self._conn.cursor(name="texmate_batches") as cursor:
                self._sent(sql, declare)
                while True:
                    rows = cursor.fetchmany(size)
                    if not rows:
                        return
                    yield rows
        except self._psycopg.Error as exc:
            raise _translated(exc) from exc

    def insert_rows(self, table, columns, rows):
        """By COPY: a few times faster than as many INSERTs."""
        copy = "COPY %s (%s) FROM STDIN" % (table, ", ".join(columns))

        def send(begin):
            self._alone(begin)
            with self._conn.cursor().copy(copy) as stream:
                for row in rows:
                    stream.write_row(row)
        self._sent(copy, send)
        self._changes += len(rows)

    def reset_ids(self, table):
        """Each identity column's next value past its highest (rows came in
        with their ids)."""
        for (column,) in self.all("SELECT attname FROM pg_attribute"
                                  " WHERE attrelid = ?::regclass AND attidentity <> ''",
                                  (table,)):
            self.execute('SELECT setval(pg_get_serial_sequence(?, ?), max("%s")) FROM %s'
                         % (column, table), (table, column))

    # -- a lost connection ------------------------------------------------------
    #
    # PostgreSQL restarted, or the network to it failed: psycopg's
    # connection is broken for good, and this one is replaced by a new
    # connection at the next statement (`_recover`). No statement that may
    # have changed something is sent again (only the first statements of
    # a transaction, with its BEGIN, are: uncommitted, they changed
    # nothing): one that failed with the connection is failed to its
    # caller (an upload answers 500), a COMMIT among them, which may or
    # may not have committed (the meter's next try then gets 406 for
    # samples it stored). A transaction open at the break is "lost": until
    # its ROLLBACK (the group commit's, after its COMMIT failed), which
    # needs no network (PostgreSQL rolled it back as the connection ended),
    # every statement fails, so none of it can pass for committed and no
    # later write lands outside it. Reconnecting is tried at most every
    # RETRY_SECONDS, each try waiting RECONNECT_TIMEOUT at most; between
    # tries statements fail at once, so a loop thread during an outage
    # answers 500s without waiting for the network.

    def _connect(self, timeout):
        """Connect (`_describe_connect_failure` says why not); `timeout` s at most."""
        psycopg, address = self._psycopg, self.address
        try:
            self._conn = psycopg.connect(
                dbname=address.name, host=address.host or None, port=address.port,
                user=address.user or None, password=address.password or None,
                connect_timeout=timeout, autocommit=True, application_name="texmate_ds")
        except psycopg.Error as exc:
            raise _describe_connect_failure(address, exc) from None
        self._pq = self._conn.pgconn
        self._conn.add_notify_handler(self._notified)

    def _run(self, sql, params, many=False):
        """Every statement's one way to the server: its cursor, or the
        store's error. With `params` None, `sql` goes as it is, in the
        simple protocol: several statements, no parameters."""
        if many:
            return self._sent(sql, lambda begin: self._cursor_many(sql, params, begin))
        if params is None:
            return self._sent(sql, lambda begin: self._simple(sql, begin))
        prepare = False if len(params) > _PREPARED_PARAMS else None

        def send(begin):
            if not begin:
                return self._conn.execute(self._native(sql), params, prepare=prepare)
            with self._conn.pipeline():
                self._conn.execute("BEGIN")
                return self._conn.execute(self._native(sql), params, prepare=prepare)
        return self._sent(sql, send)

    def _run_pipeline(self, statements, commits=False):
        """`statements` [(sql, params)] sent together and answered together
        (psycopg's pipeline mode): their cursors. After one fails, the
        server skips the rest, and its error is raised. `commits`: a
        COMMIT is among them."""
        def send(begin):
            with self._conn.pipeline():
                if begin:
                    self._conn.execute("BEGIN")
                return [self._conn.execute(self._native(sql), params)
                        for sql, params in statements]
        return self._sent(statements[0][0], send, commits)

    def _cursor_many(self, sql, rows, begin):
        self._alone(begin)
        cursor = self._conn.cursor()
        cursor.executemany(self._native(sql), rows)
        return cursor

    def _simple(self, sql, begin):
        self._alone(begin)
        return self._conn.execute(sql, prepare=False)

    def _alone(self, begin):
        """With `begin`, the transaction's BEGIN, in a round trip of its
        own, before what cannot go in a pipeline with it: several
        statements in one text, ``executemany``, a COPY, a server-side
        cursor."""
        if begin:
            self._conn.execute("BEGIN")

    def _sent(self, sql, send, commits=False):
        """What `send(begin)` gives, the held uploads written first
        (`held`), which the statement `sql` (the first, of several) must
        see, and `begin` True when the transaction's BEGIN is to go first;
        the store's error for the driver's. `commits`: a COMMIT is among
        what is sent."""
        held = self.held
        if held is not None:
            self.held = None
            if sql != "ROLLBACK":
                held(None)
        if sql == "ROLLBACK" and (self._begun or self._lost):
            # Nothing to undo: nothing was sent since the BEGIN, or the
            # server undid it as the connection ended.
            self._begun = self._lost = False
            return _ROLLED_BACK
        if self._broken:
            self._recover()
        begin, self._begun = self._begun, False
        before = self._pq.transaction_status
        try:
            return send(begin)
        except self._psycopg.Error as exc:
            if self._conn.broken:
                if begin and not commits:
                    # The transaction begins here and commits nothing
                    # yet: it goes again from its BEGIN on a new
                    # connection (once: `_recover` waits RETRY_SECONDS
                    # before the next try), so a drop while idle costs
                    # the next write nothing.
                    self._break(exc, lost=False)
                    self._begun = True
                    return self._sent(sql, send)
                # Lost with the connection: the transaction the server
                # had open, or the one that began here.
                self._break(exc, begin or before != self._psycopg.pq.TransactionStatus.IDLE)
            raise _translated(exc) from exc

    def _break(self, exc, lost):
        log.warning("lost the connection to %s%s: %s", self.address,
                    " with a transaction open (rolled back)" if lost else "",
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        self._broken, self._lost = True, lost
        self._stale = True
        self._retry_at = 0.0

    def _recover(self):
        """Before a statement on a broken connection: a new one, or StoreError."""
        if self._lost:
            raise StoreError("the connection to PostgreSQL was lost with the transaction"
                             " this statement belongs to: it is rolled back")
        now = time.monotonic()
        if now < self._retry_at:
            raise StoreError("no connection to %s (trying again shortly)" % (self.address,))
        self._retry_at = now + RETRY_SECONDS
        self._conn.close()
        try:
            self._connect(RECONNECT_TIMEOUT)
        except StoreError as exc:
            raise StoreError("no connection to %s: %s" % (self.address, exc)) from None
        self._conn.execute("LISTEN " + STALE_CHANNEL)
        self._broken = False
        self._stale = True          # what others committed meanwhile went unheard
        log.warning("connected to %s again", self.address)

    # -- several processes on one database ---------------------------------------
    # (`Database.one_locked`, `Database.exclusive`, `store.notices`, `Listening`)

    # Other processes may share this database: what they cache and publish
    # is told them at commit, and rows they may write too are locked.
    shared = True
    # Each statement waits for the server's answer: what can wait is sent
    # with more (`held`, `insert_samples`).
    round_trips = True
    # Appended to a SELECT of rows about to be written: held to the end of
    # the transaction, a second locking read elsewhere waits for it (or,
    # SKIP LOCKED, passes over the rows another connection holds). As
    # strong as an UPDATE of columns no foreign key points at: a row
    # referring to the locked one (a sample or cursor of a locked unit,
    # whose key check takes KEY SHARE) is still written meanwhile.
    row_lock = " FOR NO KEY UPDATE"
    skip_locked = " FOR NO KEY UPDATE SKIP LOCKED"

    def order_events(self):
        """Hold, to the end of the open transaction, the lock that every
        transaction giving samples or alarms their ids takes first
        (`insert_samples` in its statement; `Alarms.add`, and a ``dl next``
        before its cursor's row lock, through `Database.order_events`):
        another process's waits for this one's commit, so ids commit in
        the order they were given. A live stream watching several units
        then gets their events in id order (each process's bus publishes
        in commit order, relay.py), and the ``Last-Event-ID`` it resumes
        from (web/live.py) marks everything it had: with ids committing
        out of order, a sample given a lower id but committed after that
        one would be skipped, or one sent twice."""
        self.execute("SELECT pg_advisory_xact_lock(?)", (_EVENT_ORDER_LOCK,))

    def try_lock(self, key):
        """Within the open transaction: take the advisory lock `key` (an
        int of the caller's) unless another connection holds it; whether
        taken. Held to the transaction's end."""
        return self.one("SELECT pg_try_advisory_xact_lock(?)", (key,))[0]

    def listening(self):
        """A new `Listening` connection to this database, that leaves out
        what this connection sends."""
        return Listening(self)


# The notification channel of the events a commit stored (`store.notices`).
EVENTS_CHANNEL = "texmate_events"


class Listening:
    """A connection of its own that only listens: to the events every
    connection's commits tell (`store.notices`), its process's own among
    them, all in the order of their commits, and to other connections'
    changes of rows others cache (`PostgreSQL.changed_shared`). Nothing is
    asked of it after its ``LISTEN``, so whatever its socket (`fileno`)
    receives is a notification: the loop watches it and takes what came
    with `heard`, which never waits. The changes the connection `own`
    made are left out (its process dropped its cache itself), asked at
    each `heard`: it may have connected again since."""

    def __init__(self, own):
        self._own = own
        self._db = PostgreSQL(own.address)
        self._error = self._db._psycopg.Error
        self._pq = self._db._pq
        for channel in (EVENTS_CHANNEL, STALE_CHANNEL):
            self._db.execute("LISTEN " + channel)

    def fileno(self):
        return self._pq.socket

    def heard(self):
        """(whether other connections changed rows others cache, [the
        payloads of the events of every connection's commits]) received
        since the last call; StoreError once the connection is lost."""
        try:
            self._pq.consume_input()
            notify = self._pq.notifies()
        except self._error as exc:
            raise StoreError("listening: %s" % (str(exc).strip().splitlines() or ["lost"])[0]) \
                from None
        own = self._own._pq.backend_pid
        changed, events = False, []
        channel = EVENTS_CHANNEL.encode()
        while notify is not None:
            if notify.relname == channel:
                events.append(notify.extra.decode())
            elif notify.be_pid != own:
                changed = True
            notify = self._pq.notifies()
        return changed, events

    def close(self):
        self._db.close()

"""The SQLite dialect: one connection, and everything only SQLite speaks.

`Database` and the repositories write standard SQL with ``?`` placeholders
and never touch the driver; what differs between engines is here:

* opening and tuning the connection: autocommit mode (transactions are
  begun and committed explicitly, so the server decides when a batch of
  uploads becomes durable), WAL (readers such as the web's workers,
  ``manage export`` and ``manage backup`` work while the server writes),
  ``synchronous = FULL`` when every commit must be on disk, foreign keys,
  a busy timeout;
* the schema version (``PRAGMA user_version``) and the lock a migration
  takes (``BEGIN IMMEDIATE``);
* whether another connection committed (``PRAGMA data_version``) and how
  many rows this one changed (``total_changes``);
* a new row's id, insert-or-ignore and insert-or-replace;
* when a migration script's text holds a complete statement;
* the online backup API;
* the driver's errors, each turned into the store's own (`errors`) with
  the engine's message.

`postgresql.PostgreSQL` has the same methods.
"""

import logging
import os
import sqlite3

from texmate_ds.store.errors import Conflict, NotFound, StoreError

log = logging.getLogger("texmate_ds.store")


def _translated(exc):
    """The store's exception for a driver error. SQLite reports a primary
    key taken as a UNIQUE failure too."""
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        if text.startswith("UNIQUE constraint failed"):
            return Conflict(text)
        if text.startswith("FOREIGN KEY constraint failed"):
            return NotFound(text)
    return StoreError(text)


class SQLite:
    """A connection to one SQLite file (or ``:memory:``)."""

    # Is a migration script's text so far one or more whole statements?
    # (SQLite's own tokenizer: a ';' in a string literal, a comment or a
    # trigger body ends nothing.)
    complete_statement = staticmethod(sqlite3.complete_statement)
    # Two-argument max() and min(): PostgreSQL's greatest() and least().
    greatest, least = "max", "min"
    # A text column in lower case, for a search's LIKE (`sql.searching`).
    lowered = "lower(%s)"

    def __init__(self, path):
        """Open `path`, making its folder if missing, without changing
        anything in the file yet (`configure` does)."""
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        try:
            self._conn = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise _translated(exc) from exc
        self._data_version = None

    def configure(self, durable):
        self.execute("PRAGMA busy_timeout = 5000")
        self.execute("PRAGMA foreign_keys = ON")
        mode = self.one("PRAGMA journal_mode = WAL")[0]
        if mode != "wal" and self.path != ":memory:":
            log.warning("%s: journal mode is %s, not WAL", self.path, mode)
        self.execute("PRAGMA synchronous = %s" % ("FULL" if durable else "NORMAL"))

    def close(self):
        self._conn.close()

    # -- statements -----------------------------------------------------------
    # Each fetches inside its own try, so an error met while stepping
    # through rows is the store's too.

    def execute(self, sql, params=()):
        """The cursor, for its rowcount."""
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise _translated(exc) from exc

    def executemany(self, sql, rows):
        try:
            return self._conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise _translated(exc) from exc

    def one(self, sql, params=()):
        """The first row, or None."""
        try:
            return self._conn.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise _translated(exc) from exc

    def all(self, sql, params=()):
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _translated(exc) from exc

    def insert(self, table, values):
        """Insert `values` (column: value) into `table`; the new row's id,
        its INTEGER PRIMARY KEY."""
        return self.execute("INSERT INTO %s (%s) VALUES (%s)" % (
            table, ", ".join(values), ", ".join("?" * len(values))),
            tuple(values.values())).lastrowid

    @staticmethod
    def insert_ignoring(table, columns, select=None):
        """An INSERT of `columns` that skips a row whose unique key is taken
        (its cursor's rowcount says 0): of one row of values, or of the
        rows of the query `select`."""
        return "INSERT OR IGNORE INTO %s (%s) %s" % (
            table, ", ".join(columns),
            select or "VALUES (%s)" % ", ".join("?" * len(columns)))

    @staticmethod
    def insert_replacing(table, columns, key):
        """An INSERT of `columns` that replaces the row with the same `key`
        (SQLite's OR REPLACE goes by every unique key of the table, which
        for the tables this is used on is `key` alone)."""
        return "INSERT OR REPLACE INTO %s (%s) VALUES (%s)" % (
            table, ", ".join(columns), ", ".join("?" * len(columns)))

    def commit(self):
        self.execute("COMMIT")

    @staticmethod
    def temporary(name):
        """The name of the connection's temporary table `name`."""
        return "temp." + name

    @staticmethod
    def ddl(statement):
        """A migration script's statement as this engine runs it: the
        scripts are written in SQLite's words."""
        return statement

    # -- transactions and their bookkeeping -------------------------------------

    @property
    def in_transaction(self):
        return self._conn.in_transaction

    @property
    def changes(self):
        """Rows inserted, changed or deleted through this connection since
        it opened."""
        return self._conn.total_changes

    def others_committed(self):
        """Did another connection commit since the last call? (True the
        first time.) Cheap: one pragma, no file read."""
        version = self.one("PRAGMA data_version")[0]
        if version == self._data_version:
            return False
        self._data_version = version
        return True

    # -- schema -----------------------------------------------------------------

    def changed_shared(self):
        """Nothing to say: `others_committed` sees every commit."""

    def schema_version(self):
        return self.one("PRAGMA user_version")[0]

    def set_schema_version(self, version):
        """Inside the migration's transaction: the version moves with it."""
        self.execute("PRAGMA user_version = %d" % version)

    def begin_migration(self):
        """The write lock at once, so a second process migrating waits here
        and then sees the version this one left."""
        self.begin_writing()

    def begin(self):
        """A transaction (deferred: it locks at its first write)."""
        self.execute("BEGIN")

    def begin_writing(self):
        """A transaction holding the write lock from its start (waiting for
        it up to the busy timeout), so no stale read can make its first
        write fail."""
        self.execute("BEGIN IMMEDIATE")

    def use_temporary_files(self):
        """Temporary tables in a file, not in memory: a staged import of any
        size keeps the process's memory flat (the page cache is bounded)."""
        self.execute("PRAGMA temp_store = FILE")

    # -- backup -----------------------------------------------------------------

    def backup(self, path):
        """Copy the database to a new file `path` with SQLite's online backup
        API (consistent while others write)."""
        try:
            target = sqlite3.connect(path)
            try:
                self._conn.backup(target)
            finally:
                target.close()
        except sqlite3.Error as exc:
            raise _translated(exc) from exc

    # -- copying a database (store/copy.py) -------------------------------------
    # The names insert_rows and reset_ids take come quoted.

    def catalog(self):
        """{table: (its columns, [(column, table it refers to, column
        there)])} of every table but SQLite's own."""
        found = {}
        for (table,) in self.all("SELECT name FROM sqlite_master"
                                 " WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
            columns = self.all("SELECT name, pk FROM pragma_table_info(?)", (table,))
            key = [name for name, pk in sorted(columns, key=lambda c: c[1]) if pk]
            references = []
            for other, column, there, seq in self.all(
                    'SELECT "table", "from", "to", seq FROM pragma_foreign_key_list(?)',
                    (table,)):
                if there is None and other == table:
                    there = key[seq]     # REFERENCES naming no column: the key
                references.append((column, other, there))
            found[table] = (tuple(name for name, _ in columns), references)
        return found

    def begin_reading(self):
        """A transaction whose reads all see one snapshot: a deferred one
        takes it at its first read and keeps it (WAL)."""
        self.execute("BEGIN")

    def batches(self, sql, size):
        """The rows of the query `sql`, `size` at a time, as SQLite steps
        through them."""
        try:
            cursor = self._conn.execute(sql)
            while True:
                rows = cursor.fetchmany(size)
                if not rows:
                    return
                yield rows
        except sqlite3.Error as exc:
            raise _translated(exc) from exc

    def insert_rows(self, table, columns, rows):
        self.executemany("INSERT INTO %s (%s) VALUES (%s)" % (
            table, ", ".join(columns), ", ".join("?" * len(columns))), rows)

    def reset_ids(self, table):
        """Nothing: an INTEGER PRIMARY KEY's next id is past the highest."""

    # -- several processes: none (see PostgreSQL's) ------------------------------

    # One process has the file: SQLite's one writer at a time serialises
    # what PostgreSQL's row locks and advisory locks must.
    shared = False
    # Statements run in this process: each is written at once.
    round_trips = False
    row_lock = skip_locked = ""

    @staticmethod
    def try_lock(key):
        """Always taken: no other process does what one at a time may."""
        return True

    @staticmethod
    def listening():
        """Nothing to listen to: the one server process publishes its own
        events, and `others_committed` notices anyone else's commit."""
        return None

"""`Database`: one connection (through its dialect), its transaction, its
schema, and the repositories that speak through it."""

import contextlib

from texmate_ds.store import notices, schema
from texmate_ds.store.accounts import Accounts
from texmate_ds.store.actionlog import ActionLog
from texmate_ds.store.alarms import Alarms, Outbox
from texmate_ds.store.app_tables import AppTables
from texmate_ds.store.displays import Displays
from texmate_ds.store.errors import SchemaTooNew
from texmate_ds.store.postgresql import Address, PostgreSQL
from texmate_ds.store.samples import Samples
from texmate_ds.store.site_secrets import SiteSecrets
from texmate_ds.store.sqlite import SQLite
from texmate_ds.store.units import Units


def address(settings):
    """Where `settings` put the database: a file's path (SQLite) or a
    PostgreSQL `Address`, what `Database` opens."""
    if settings.DATABASE_ENGINE == "postgresql":
        return Address(settings.DATABASE_NAME, settings.DATABASE_HOST, settings.DATABASE_PORT,
                       settings.DATABASE_USER, settings.DATABASE_PASSWORD)
    return settings.DATABASE_NAME


class Database:
    """One connection to the database at `path` (a file's path, SQLite,
    or a PostgreSQL `Address`: `address(settings)`) and its repositories:
    ``db.units``, ``db.samples``, ``db.accounts``, ``db.displays``, ``db.log``,
    ``db.alarms``, ``db.outbox``, ``db.app_tables`` (the HTTP apps' own
    tables) and ``db.site_secrets``.

    Writes join one shared transaction, begun by the first write and ended
    only by `commit` or `rollback`: the group commit (or whoever runs the
    web outside the server) decides when, never the repositories. `atomic`
    makes a block all or nothing inside it.

    Repositories read with `one` and `all` and write with `insert` and
    `write` (which begin the transaction), `execute` and `executemany`
    after `begin`: standard SQL with ``?`` placeholders. The dialect's own statements
    (insert-or-ignore and the like) come from ``db.dialect``.
    """

    def __init__(self, path, durable=True):
        self.path = path
        self.dialect = (PostgreSQL if isinstance(path, Address) else SQLite)(path)
        # Refuse a newer schema before touching anything, even the journal mode.
        version = self.dialect.schema_version()
        if version > schema.VERSION:
            self.dialect.close()
            raise SchemaTooNew(
                "%s has schema version %d; this texmate_ds knows up to %d: "
                "upgrade texmate_ds" % (self.dialect.path, version, schema.VERSION))
        self.dialect.configure(durable)
        # Reads and writes within an open transaction go straight to the
        # dialect: the upload path pays for no extra call.
        self.execute = self.dialect.execute
        self.executemany = self.dialect.executemany
        self.one = self.dialect.one
        self.all = self.dialect.all
        # fn(committed) for each commit (True) and rollback (False).
        self.on_end = []
        # fn() just before each commit, writing within the transaction.
        self.before_commit = []
        # Savepoints open (`atomic` blocks): writes in one may be undone.
        self.savepoints = 0
        # fn() that drops rows a repository cached: after a rollback (of the
        # transaction or an atomic block, which may have read them) and
        # once another connection committed.
        self.on_stale = []
        self._committed = None
        self.units = Units(self)
        self.samples = Samples(self)
        self.accounts = Accounts(self)
        self.displays = Displays(self)
        self.log = ActionLog(self)
        self.alarms = Alarms(self)
        self.outbox = Outbox(self)
        self.app_tables = AppTables(self)
        self.site_secrets = SiteSecrets(self)
        # What a commit tells the other processes sharing the database
        # (`notices`): the samples and alarms it stored. None on SQLite.
        self.notices = notices.Outgoing(self) if self.dialect.shared else None
        # Whether the events of what this connection stores are published
        # by the relay as it hears the commit's notice (relay.py), in the
        # order of every process's commits, rather than by the writer once
        # it has committed (apps/up.py, `alarms.announce`).
        self.events_relayed = self.dialect.shared

    # -- schema ---------------------------------------------------------------

    @property
    def version(self):
        return self.dialect.schema_version()

    def migrate(self, target=schema.VERSION):
        """Create or upgrade the schema in place up to version `target` (the
        newest by default), in one transaction; returns (old, new) versions.
        Nothing happens to a database at `target` or beyond."""
        old = self.version
        if old >= target:
            return old, old
        self.dialect.begin_migration()
        try:
            # Another process may have migrated while this one waited for the lock.
            old = new = self.version
            for new in range(old + 1, target + 1):
                for statement in schema.statements(schema.script(new),
                                                   self.dialect.complete_statement):
                    self.execute(self.dialect.ddl(statement))
                self.dialect.set_schema_version(new)
            self.dialect.commit()
        except BaseException:
            self.execute("ROLLBACK")
            raise
        return old, new

    # -- transactions ---------------------------------------------------------

    @property
    def in_transaction(self):
        return self.dialect.in_transaction

    @property
    def changes(self):
        """Rows changed through this connection since it opened, or held
        to be written (`Samples.add_later`): a caller compares two readings
        to learn whether something in between wrote."""
        return self.dialect.changes + self.samples.held

    def begin(self):
        """Join the shared transaction, beginning it if none is open."""
        if not self.dialect.in_transaction:
            self.dialect.begin()

    def write(self, sql, params=()):
        """`execute` within the shared transaction; the cursor."""
        self.begin()
        return self.execute(sql, params)

    def insert(self, table, **values):
        """Insert a row (column=value) within the shared transaction; its new id."""
        self.begin()
        return self.dialect.insert(table, values)

    def committed(self):
        """A Database whose reads see only what is committed, for a live
        stream resuming (this one sees its open transaction's rows, which
        its commit will publish): a second connection, opened at the
        first call, on the same thread."""
        if self._committed is None:
            self._committed = Database(self.path, durable=False)
        self._committed.notice_others()
        return self._committed

    def changed_shared(self):
        """Say, within the open transaction, that rows other processes
        cache (units, permissions) changed: on PostgreSQL they hear it
        when it commits. (SQLite's readers learn of every commit.)"""
        self.begin()
        self.dialect.changed_shared()

    def commit(self):
        if self.dialect.in_transaction:
            for write in self.before_commit:
                write()
            if self.notices is None:
                self.dialect.commit()
            else:
                self.dialect.commit(self.notices.payloads())
        for ended in self.on_end:
            ended(True)

    def rollback(self):
        """Undo the open transaction. The repositories forget what it
        wrote even when the ROLLBACK itself fails (the connection gone:
        the server undoes it then), so nothing of it reaches a later
        commit."""
        try:
            if self.dialect.in_transaction:
                self.execute("ROLLBACK")
        finally:
            for ended in self.on_end:
                ended(False)
            self._stale()

    @contextlib.contextmanager
    def atomic(self):
        """Writes inside the block are all or nothing, within the shared
        transaction and without committing it: a failing web request
        leaves no half of its changes behind, and the uploads around it
        go on to their commit."""
        self.begin()
        self.execute("SAVEPOINT atomic")
        self.savepoints += 1
        try:
            yield
        except BaseException:
            self.savepoints -= 1
            self.execute("ROLLBACK TO atomic")
            self.execute("RELEASE atomic")
            self._stale()
            raise
        self.savepoints -= 1
        self.execute("RELEASE atomic")

    # -- several processes on one database (PostgreSQL's; see its dialect) ------

    def one_locked(self, sql, params=(), skip_locked=False):
        """The first row of the SELECT `sql`, or None, locked to the end of
        the shared transaction (begun if none is open) against another
        connection's locking read or write, which waits for it; with
        `skip_locked` a row another connection holds is passed over rather
        than waited for. On SQLite, whose one writer at a time serialises
        what this must, a plain read."""
        if self.dialect.shared:
            self.begin()
        return self.one(sql + (self.dialect.skip_locked if skip_locked
                               else self.dialect.row_lock), params)

    def order_events(self):
        """Take, within the shared transaction (begun if none is open), the
        lock that keeps samples' and alarms' ids in commit order across
        processes (the dialect's `order_events`). Nothing on SQLite: one
        writer at a time."""
        if self.dialect.shared:
            self.begin()
            self.dialect.order_events()

    def exclusive(self, key):
        """Whether this connection alone, of all the processes sharing the
        database, may now do what the lock `key` (an int of the caller's)
        stands for: taken unless another holds it, and held to the end of
        the shared transaction (begun if none is open). Always on SQLite:
        one process."""
        if self.dialect.shared:
            self.begin()
        return self.dialect.try_lock(key)

    def listening(self):
        """A connection of its own that hears what other connections
        commit (the dialect's ``Listening``: `store.notices` and changes to
        cached rows), leaving out this one's; None on SQLite."""
        return self.dialect.listening()

    def others_changed(self):
        """Another connection committed a change to rows this one caches
        (a `listening` connection heard it): drop them now."""
        self._stale()

    def notice_others(self):
        """Drop cached rows if another connection committed since the last
        call (cheap). The server calls it every loop turn."""
        if self.dialect.others_committed():
            self._stale()

    def _stale(self):
        for forget in self.on_stale:
            forget()

    def close(self):
        """Commit what is pending, then close."""
        self.commit()
        if self._committed is not None:
            self._committed.close()
        self.dialect.close()

    def backup(self, path):
        """Copy the database to the new file `path`, consistent while others
        write (safe while the server serves)."""
        self.dialect.backup(path)

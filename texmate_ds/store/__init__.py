"""The store: the database behind everything, by domain.

    db = store.Database(path)         # one connection; db.migrate() makes the schema
    unit = db.units.get("A1")
    db.samples.add(unit, [(ts, (1.5, 2.0))])
    db.commit()

Layout:

* `database.Database`: one connection through its *dialect*, the shared
  transaction (`begin`, `commit`, `rollback`, `atomic` for a savepoint),
  the change counter (`changes`), `notice_others` (did another process
  commit? then cached rows go), `migrate`, `backup`.
* `sqlite`: the SQLite dialect, the one place that names ``sqlite3`` and
  holds every statement only SQLite speaks (pragmas, insert-or-ignore,
  the backup API); `postgresql`, the same methods over the optional
  ``psycopg`` driver (imported there only, when a PostgreSQL database is
  opened). `address(settings)` is what `Database` opens: a file's path,
  or a `postgresql.Address`.
* Repositories, one per domain, each a small class over the Database
  speaking domain terms: `units` (units, download permissions, graph
  options), `samples` (uploads, single samples, ranges, statistics, graph
  rows, the ``dl next`` cursors), `accounts` (users, sessions, API tokens,
  sign-in attempts), `displays`, `log` (`actionlog`: the action log,
  who added, changed or deleted what; an entry is written in the same
  transaction as its change, and never holds a key or a password), and
  `alarms` and `outbox` (`store/alarms.py`: alarms, their messages and
  mailing lists, and the letters the mail service sends), and
  `app_tables` (the site's HTTP apps' own tables: their migrations,
  checked and versioned per app, and the rows of the tables their admin
  models declare).
* Rows are small namedtuples, one per table (`Unit`, `User`, `Session`,
  `ApiToken`, `Display`, `LogEntry`; `GraphOptions` and `Axis` for a unit's graph
  columns), except samples: a sample is a plain tuple ``(id, ts, v1,
  ...)``, the hot path's and the wire's form.
* `schema` and ``migrations/NNNN_*.sql``: the schema's history, one
  numbered script per version, run statement by statement in one
  transaction.
* `copy.copy_database`: every row of every table of one database into
  another, empty one, of either engine (``manage migrate-to-postgresql``).
* `groupcommit.GroupCommit`: the writer service that commits the shared
  transaction once per loop turn (or every N uploads).
* `sql`: SQL text the repositories share (a WHERE clause of optional
  filters; one of checked comparisons and a LIMIT/OFFSET, for the
  ``query`` methods `texmate_ds.models` reads through).
* `errors`: `StoreError` and its kinds `Conflict` (a unique key taken),
  `NotFound`, `SchemaTooNew`, `MigrationError` (an app's script).
  Callers catch these, never the driver's.

The store knows nothing of TTP, HTTP or what people may configure (the
callers' rules: `texmate_ds.rules`); it returns rows and raises its own
exceptions, and callers decide what to answer.
"""

from texmate_ds.store.accounts import ApiToken, Grants, Group, Session, User
from texmate_ds.store.actionlog import Entry as LogEntry
from texmate_ds.store.copy import copy_database
from texmate_ds.store.database import Database, address
from texmate_ds.store.displays import Display
from texmate_ds.store.errors import (
    Conflict,
    MigrationError,
    NotFound,
    SchemaTooNew,
    StoreError,
)
from texmate_ds.store.groupcommit import GroupCommit
from texmate_ds.store.samples import MAX_FIELDS
from texmate_ds.store.schema import VERSION as SCHEMA_VERSION
from texmate_ds.store.units import Axis, GraphOptions, Unit

__all__ = ["address", "ApiToken", "Axis", "Grants", "Group", "Conflict", "copy_database", "Database",
           "Display", "GraphOptions",
           "GroupCommit", "LogEntry", "MAX_FIELDS", "MigrationError", "NotFound", "SCHEMA_VERSION",
           "SchemaTooNew", "Session", "StoreError", "Unit", "User"]

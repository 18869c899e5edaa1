"""Copying a whole database into another, engine to engine: what ``manage
migrate-to-postgresql`` does (docs/scale-out.md, "Moving a site").

`copy_database(source, target, app_scripts)` takes two `Database` s, of
either engine, and leaves in the target every row of every table of the
source, ids and all, so that what points at a row by its id (a meter's
``dl next`` cursor, a browser's ``Last-Event-ID``, a session's user, a
letter's alarm) points at the same row afterwards. The source is only
read.

* **What is copied** comes from the catalog of the source (each dialect's
  `catalog`: its tables, their columns and foreign keys), not from a list
  here: a table a later migration adds, and the HTTP apps' own
  ``<app>_*`` tables, are copied without a word written for them. Left
  out are each engine's bookkeeping (the dialect does not list it) and
  `SCHEMA_TABLES`, which the target's migrations write themselves.
* **The target must hold no row** (its tables, if any, all empty): a copy
  never merges into a site. Its schema is then made by the same
  migrations as the source's, to the very versions the source is at (the
  store's, and each HTTP app's from the scripts `app_scripts` gives), so
  that every column has its twin; the server upgrades both alike later.
  A schema left by an earlier attempt that failed is taken as it is.
* **Order.** Both engines check a foreign key at the end of each
  statement (a COPY of a batch, an INSERT of a row), so a table is copied
  after the tables it refers to, and a column referring to its own table
  (a unit's source) is copied empty and filled in once the whole table
  is there.
* **Memory** holds one batch of `BATCH` rows: the source is read through
  a cursor (`dialect.batches`) and each batch written at once
  (`dialect.insert_rows`: PostgreSQL's COPY, SQLite's executemany).
* **All or nothing.** The rows go in in one transaction of the target,
  read from one snapshot of the source (`dialect.begin_reading`); each
  table's rows are counted on both sides before the commit, and a
  difference rolls everything back. Identity sequences are moved past the
  ids copied (`dialect.reset_ids`) before the commit (PostgreSQL does not
  undo that with a rollback: the next ids would only leave a gap).
"""

import collections

from texmate_ds.store.errors import StoreError

# Rows held at a time: a batch of samples is a few hundred KiB.
BATCH = 2000
# Tables the target's migrations fill (each HTTP app's version): their
# rows are compared with the source's, not copied.
SCHEMA_TABLES = ("app_schema",)

# A table as the catalog gives it: its name as that engine spells it, its
# columns, and (column, table, column there) for each foreign key column.
Table = collections.namedtuple("Table", "name columns references")


def _quoted(name):
    return '"%s"' % name


def catalog(db):
    """The tables of `db` by their name in lower case (engines fold
    unquoted names differently)."""
    return {name.lower(): Table(name, columns, references)
            for name, (columns, references) in db.dialect.catalog().items()}


def _count(db, table):
    return db.one("SELECT count(*) FROM %s" % _quoted(table.name))[0]


def _refuse_rows(target):
    """StoreError naming the target's tables that hold rows."""
    held = []
    for key, table in sorted(catalog(target).items()):
        if key not in SCHEMA_TABLES:
            rows = _count(target, table)
            if rows:
                held.append("%s (%d row%s)" % (table.name, rows, "" if rows == 1 else "s"))
    if held:
        raise StoreError("%s is not empty: it holds %s; copy into a new, empty database"
                         % (target.dialect.path, ", ".join(held)))


def _app_versions(db, tables):
    if "app_schema" not in tables:
        return {}
    return dict(db.all("SELECT app, version FROM app_schema"))


def _make_schema(source, target, app_scripts):
    """The target's schema at the source's versions, the store's and each
    app's: the catalogs of both (lower-case name -> Table)."""
    if not source.version:
        raise StoreError("%s has no schema: nothing to copy" % source.dialect.path)
    _refuse_rows(target)
    tables = catalog(source)
    target.migrate(source.version)
    if target.version != source.version:
        raise StoreError("%s has schema version %d, the source %d" % (
            target.dialect.path, target.version, source.version))
    wanted = _app_versions(source, tables)
    for app, version in sorted(wanted.items()):
        scripts = app_scripts.get(app)
        if scripts is None:
            raise StoreError("HTTP app %s: the source holds its tables (version %d), but its "
                             "migrations were not found" % (app, version))
        if len(scripts) < version:
            raise StoreError("HTTP app %s: the source is at version %d of its tables, its "
                             "package has %d migration(s)" % (app, version, len(scripts)))
        target.app_tables.migrate(app, scripts[:version])
    into = catalog(target)
    made = _app_versions(target, into)
    if made != wanted:
        raise StoreError("the HTTP apps' versions differ after migrating: source %s, target %s"
                         % (wanted, made))
    for what, names in (("the source only", set(tables) - set(into)),
                        ("the target only", set(into) - set(tables))):
        if names:
            raise StoreError("tables in %s: %s" % (what, ", ".join(sorted(names))))
    for key, table in sorted(tables.items()):
        theirs = {column.lower() for column in into[key].columns}
        ours = {column.lower() for column in table.columns}
        if ours != theirs:
            raise StoreError("table %s: columns differ (source only: %s; target only: %s)" % (
                table.name, ", ".join(sorted(ours - theirs)) or "none",
                ", ".join(sorted(theirs - ours)) or "none"))
    return tables, into


def _ordered(tables):
    """The lower-case names of `tables`, each after those it refers to
    (a reference to itself aside); StoreError for a cycle."""
    needs = {key: {ref.lower() for _, ref, _ in table.references} - {key}
             for key, table in tables.items()}
    order = []
    while needs:
        ready = sorted(key for key, refs in needs.items() if not refs & set(needs))
        if not ready:
            raise StoreError("tables refer to each other in a cycle: %s"
                             % ", ".join(sorted(needs)))
        order.extend(ready)
        for key in ready:
            del needs[key]
    return order


def _copy_table(source, target, table, into, copied):
    """Copy `table` (the source's) into `into` (the target's) in batches,
    a column referring to the table itself set afterwards: the rows written."""
    spelt = {column.lower(): column for column in into.columns}
    columns = [_quoted(spelt[column.lower()]) for column in table.columns]
    own = [(column, there) for column, ref, there in table.references
           if ref.lower() == table.name.lower()]
    later = [table.columns.index(column) for column, _ in own]
    rows = 0
    for batch in source.dialect.batches("SELECT %s FROM %s" % (
            ", ".join(_quoted(c) for c in table.columns), _quoted(table.name)), BATCH):
        if later:
            batch = [tuple(None if i in later else v for i, v in enumerate(row))
                     for row in batch]
        target.dialect.insert_rows(_quoted(into.name), columns, batch)
        rows += len(batch)
        copied(table.name, rows, False)
    for column, there in own:
        update = "UPDATE %s SET %s = ? WHERE %s = ?" % (
            _quoted(into.name), _quoted(spelt[column.lower()]), _quoted(spelt[there.lower()]))
        for batch in source.dialect.batches("SELECT %s, %s FROM %s WHERE %s IS NOT NULL" % (
                _quoted(column), _quoted(there), _quoted(table.name), _quoted(column)), BATCH):
            target.executemany(update, batch)
    target.dialect.reset_ids(_quoted(into.name))
    return rows


def copy_database(source, target, app_scripts, copied=lambda table, rows, done: None):
    """Copy every row of `source` into the empty `target` (both `Database`
    s), committed at once or not at all. `app_scripts`: {HTTP app name in
    lower case: its migrations [(file, text)]}, for the apps whose tables
    the source holds. `copied(table, rows, done)` is told of each batch
    and of each table done. [(table, rows)] in the order copied."""
    tables, into = _make_schema(source, target, app_scripts)
    done = []
    source.dialect.begin_reading()
    try:
        target.begin()
        for key in _ordered(tables):
            if key in SCHEMA_TABLES:
                continue
            table = tables[key]
            try:
                rows = _copy_table(source, target, table, into[key], copied)
            except StoreError as exc:
                raise StoreError("table %s: %s" % (table.name, exc)) from exc
            expected, found = _count(source, table), _count(target, into[key])
            if not expected == found == rows:
                raise StoreError("table %s: %d rows in the source, %d read, %d in the target"
                                 % (table.name, expected, rows, found))
            done.append((table.name, rows))
            copied(table.name, rows, True)
        target.commit()
    except BaseException:
        target.rollback()
        raise
    finally:
        source.rollback()
    return done

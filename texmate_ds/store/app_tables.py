"""The site's HTTP apps' own tables: their migrations, and their rows for
the admin (docs/web.md, "Apps' models").

Migrations. An app package may ship ``migrations/NNNN_what.sql``, numbered
as the store's own (`plugins.AppInfo.migrations` reads them). `migrate`
runs those the database lacks, after the store's own schema, in one
transaction per app, and keeps the app's version (how many of its scripts
ran) in ``app_schema``: a script that fails leaves the app's tables as
they were, with the file and SQLite's reason in a `MigrationError`.

Before it runs, each statement is checked (`check_statement`): it must be
CREATE TABLE, CREATE [UNIQUE] INDEX, ALTER TABLE, DROP TABLE, DROP INDEX,
INSERT, REPLACE, UPDATE or DELETE, and every table and index it names
must be the app's own, ``<app>_...`` (``notes_note`` for the app
``notes``), so that an app's script never touches the store's tables
nor another app's by mistake. The check reads only the statement's first
words, in one pass over its text (`_Words`: comments skipped, quoted names
unquoted), not a parser: it keeps a script in its lane, it is no sandbox
(an app is Python the site chose to run).

Rows. `declare` makes a `Table`, an app's table as the admin declares
it: its name (the app's own) and columns, checked as plain identifiers
when the app is loaded. `AppTables` (``db.app_tables``) reads and writes
a declared table through only those columns and its ``id`` (an INTEGER
PRIMARY KEY every such table has): `get`, `find` (search, sort, page),
`add`, `change`, `delete`, and `check` that the table has them. Names in
its SQL come from the declaration alone, double-quoted (a column may be
called ``order``) and in reads qualified by the table (`_column`); every
value is a ``?`` parameter.
"""

import collections
import functools
import keyword
import re

from texmate_ds.store import schema
from texmate_ds.store.errors import MigrationError, StoreError
from texmate_ds.store.sql import filters, order_by, searching

# A declared table name, and a column's (or an admin model's): plain, so
# that quoting it is enough.
_TABLE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
COLUMN = re.compile(r"[a-z][a-z0-9_]{0,62}")

# `columns`: the names besides ``id``; `searched` and `sorted` those the
# admin searches and sorts by; `row` the namedtuple of a row (id first).
Table = collections.namedtuple("Table", "name columns searched sorted row")


def _quoted(name):
    return '"%s"' % name


def _column(table, column):
    """`column` of `table` as a read names it: qualified, because SQLite
    takes a lone double-quoted name that is no column for a string (so a
    column missing would read as its own name, not fail)."""
    return "%s.%s" % (_quoted(table.name), _quoted(column))


def _own(app, name, what):
    """ValueError unless `name` is one of `app`'s: ``<app>_...``."""
    prefix = app.lower() + "_"
    if not name.lower().startswith(prefix) or len(name) == len(prefix):
        raise ValueError("%s %s is not the app's: an app's tables and indexes are named "
                         "%s..." % (what, name, prefix))


def declare(app, name, columns, searched=(), sorted_by=()):
    """The `Table` `name` of `app` with `columns` (besides ``id``), the
    admin searching `searched` and sorting by `sorted_by` (both among
    them). ValueError naming what is wrong."""
    if not isinstance(name, str) or not _TABLE.fullmatch(name):
        raise ValueError("table %r: letters, digits and _, from a letter" % (name,))
    _own(app, name, "table")
    columns = tuple(columns)
    for column in columns:
        if not isinstance(column, str) or not COLUMN.fullmatch(column) \
                or keyword.iskeyword(column) or column == "id":
            raise ValueError("column %r: lower-case letters, digits and _, from a letter; "
                             "not id, not a Python keyword" % (column,))
    if len(set(columns)) != len(columns):
        raise ValueError("a column is declared twice")
    for given, what in ((searched, "searched"), (sorted_by, "sorted by")):
        unknown = [column for column in given if column not in columns]
        if unknown:
            raise ValueError("%s %r is not a declared column" % (what, unknown[0]))
    return Table(name, columns, tuple(searched), tuple(sorted_by),
                 collections.namedtuple("Row", ("id",) + columns))


class AppTables:
    """The apps' tables: their schema versions and migrations, and the
    rows of declared `Table` s."""

    def __init__(self, db):
        self.db = db

    # -- migrations -------------------------------------------------------------

    def version(self, app):
        """How many of `app`'s scripts the database has run (0: none)."""
        row = self.db.one("SELECT version FROM app_schema WHERE app = ?", (app.lower(),))
        return row[0] if row else 0

    def migrate(self, app, scripts):
        """Run the `scripts` of `app` the database lacks, each checked,
        all in one transaction, and record its new version: (old, new)
        versions. `scripts` are [(file, text)], the first making version
        1. `MigrationError` naming the file for a statement refused or
        failed, and for a database further on than the scripts go."""
        old = self.version(app)
        if old == len(scripts):
            return old, old
        self.db.dialect.begin_migration()
        try:
            # Another process may have migrated while this one waited for the lock.
            old = self.version(app)
            if old > len(scripts):
                raise MigrationError(
                    "the database has its tables at version %d, but it has %d migration(s): "
                    "is this an older copy of the app?" % (old, len(scripts)))
            for path, text in scripts[old:]:
                self._run(app, path, text)
            self.db.execute(self.db.dialect.insert_replacing(
                "app_schema", ("app", "version"), "app"), (app.lower(), len(scripts)))
            self.db.dialect.commit()
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return old, len(scripts)

    def _run(self, app, path, text):
        try:
            statements = list(schema.statements(text, self.db.dialect.complete_statement))
        except schema.ScriptError as exc:
            raise MigrationError("%s: %s" % (path, exc)) from None
        # Every statement checked before the first runs.
        for number, statement in enumerate(statements, 1):
            try:
                check_statement(app, statement)
            except ValueError as exc:
                raise MigrationError("%s: statement %d (%s): %s" % (
                    path, number, _opening(statement), exc)) from None
        for number, statement in enumerate(statements, 1):
            try:
                self.db.execute(self.db.dialect.ddl(statement))
            except StoreError as exc:
                raise MigrationError("%s: statement %d (%s): %s" % (
                    path, number, _opening(statement), exc)) from None

    # -- rows of a declared table -----------------------------------------------

    def check(self, table):
        """StoreError (the engine's reason: no such table, no such column)
        unless `table` has its declared columns and an id."""
        self.db.all("SELECT %s FROM %s LIMIT 0" % (_select(table), _quoted(table.name)))

    def get(self, table, row_id):
        """The row `row_id` of `table` (its `Table.row`), or None."""
        row = self.db.one("SELECT %s FROM %s WHERE id = ?" % (
            _select(table), _quoted(table.name)), (row_id,))
        return table.row(*row) if row else None

    def find(self, table, search=None, order="", offset=0, limit=100):
        """(how many in all, this page of rows): those whose searched
        columns hold `search`, sorted by `order` (a sorted column,
        ``-column`` descending; "": newest first). ValueError for an
        order not declared."""
        where, params = filters(searching(self.db.dialect,
                                          [_column(table, c) for c in table.searched], search))
        allowed = {column: _column(table, column) for column in table.sorted}
        allowed["id"] = "id"
        total = self.db.one("SELECT count(*) FROM %s WHERE %s" % (
            _quoted(table.name), where), params)[0]
        rows = self.db.all("SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT ? OFFSET ?" % (
            _select(table), _quoted(table.name), where,
            order_by(allowed, order or "-id", "id")), params + [limit, offset])
        return total, [table.row(*row) for row in rows]

    def add(self, table, values):
        """The new row of `values` ({declared column: value})."""
        # Quoted keys: the dialect's insert writes them as they come.
        row_id = self.db.insert(_quoted(table.name), **{
            _quoted(column): value for column, value in _declared(table, values)})
        return self.get(table, row_id)

    def change(self, table, row_id, values):
        """Set `values` of the row `row_id`: the row as it is now, or None
        if it is gone."""
        given = _declared(table, values)
        if given:
            self.db.write("UPDATE %s SET %s WHERE id = ?" % (
                _quoted(table.name), ", ".join("%s = ?" % _quoted(c) for c, _ in given)),
                [value for _, value in given] + [row_id])
        return self.get(table, row_id)

    def delete(self, table, row_id):
        self.db.write("DELETE FROM %s WHERE id = ?" % _quoted(table.name), (row_id,))

    def rows(self, table):
        """`Rows`: `table`'s rows for its app's own code."""
        return Rows(self, table)


class Rows:
    """One declared table's rows, as its app's pages reach them
    (``environ["texmate.tables"]["note"]``): `get`, `find`, `add`,
    `change` and `delete` as `AppTables` has them, on this table only.
    Writes join the shared transaction, committed by the group commit."""

    __slots__ = ("get", "find", "add", "change", "delete")

    def __init__(self, tables, table):
        for name in self.__slots__:
            setattr(self, name, functools.partial(getattr(tables, name), table))


def _select(table):
    return ", ".join(("id",) + tuple(_column(table, column) for column in table.columns))


def _declared(table, values):
    """[(column, value)] of `values`; ValueError for a column not declared."""
    unknown = sorted(set(values) - set(table.columns))
    if unknown:
        raise ValueError("%s has no declared column %r" % (table.name, unknown[0]))
    return sorted(values.items())


def _opening(statement):
    """The statement's start, for a message: its first line of SQL."""
    lines = [line.strip() for line in statement.splitlines()
             if line.strip() and not line.strip().startswith("--")]
    first = lines[0] if lines else ""
    return first if len(first) <= 60 else first[:57] + "..."


# -- checking an app's statement -------------------------------------------------

# What each opening quote closes with: identifiers in "", ``, [] and
# string literals in ''. A doubled quote inside stands for one.
_CLOSING = {'"': '"', "`": "`", "[": "]", "'": "'"}
_ALLOWED = ("CREATE TABLE, CREATE INDEX, ALTER TABLE, DROP TABLE, DROP INDEX, INSERT, "
            "REPLACE, UPDATE and DELETE")


class _Words:
    """The words of an SQL statement, read lazily from its start in one
    pass: (kind, text), kind "word" (a bare word: a keyword or a name),
    "name" (a quoted name, unquoted), "string" or "mark" (one other
    character); comments are skipped. ``("end", "")`` past the end."""

    def __init__(self, text):
        self.text = text
        self.at = 0
        self.ahead = None

    def next(self):
        if self.ahead is not None:
            word, self.ahead = self.ahead, None
            return word
        return self._read()

    def peek(self):
        if self.ahead is None:
            self.ahead = self._read()
        return self.ahead

    def keyword(self):
        """The next bare word in capitals ("" for anything else)."""
        kind, text = self.next()
        return text.upper() if kind == "word" else ""

    def _read(self):
        text, end = self.text, len(self.text)
        while self.at < end:
            start, char = self.at, text[self.at]
            if char.isspace():
                self.at += 1
            elif text.startswith("--", start):
                self.at = _past(text, "\n", start + 2)
            elif text.startswith("/*", start):
                self.at = _past(text, "*/", start + 2)
            elif char in _CLOSING:
                close, parts, at = _CLOSING[char], [], start + 1
                while True:
                    found = text.find(close, at)
                    found = end if found < 0 else found
                    parts.append(text[at:found])
                    if close != "]" and text.startswith(close * 2, found):
                        parts.append(close)
                        at = found + 2
                        continue
                    self.at = found + 1
                    break
                return ("string" if char == "'" else "name"), "".join(parts)
            elif char.isalnum() or char == "_":
                at = start + 1
                while at < end and (text[at].isalnum() or text[at] in "_$"):
                    at += 1
                self.at = at
                return "word", text[start:at]
            else:
                self.at += 1
                return "mark", char
        return "end", ""


def _past(text, mark, start):
    """Where the text goes on after the next `mark` from `start`."""
    found = text.find(mark, start)
    return len(text) if found < 0 else found + len(mark)


def _is(word, keyword):
    """Is `word` (kind, text) the bare word `keyword`?"""
    return word[0] == "word" and word[1].upper() == keyword


def _name(words, what, if_clause=()):
    """The name of the table or index next in `words`, after the
    `if_clause` words (IF NOT EXISTS) if they are there; ValueError for
    no name or a name with a schema (``main.x``)."""
    if if_clause and _is(words.peek(), "IF"):
        for expected in if_clause:
            if words.keyword() != expected:
                raise ValueError("expected %s" % " ".join(if_clause))
    kind, name = words.next()
    if kind not in ("word", "name") or not name:
        raise ValueError("expected the %s's name" % what)
    if words.peek() == ("mark", "."):
        raise ValueError("%s named with a schema (%s.): name it without one" % (what, name))
    return name


def check_statement(app, statement):
    """None if `statement` may run in `app`'s migration, else ValueError
    saying why (see the module docstring)."""
    words = _Words(statement)
    first = words.keyword()
    exists, not_exists = ("IF", "EXISTS"), ("IF", "NOT", "EXISTS")
    if first == "CREATE":
        kind = words.keyword()
        if kind == "UNIQUE":
            kind = words.keyword()
        if kind not in ("TABLE", "INDEX"):
            raise ValueError("an app's migration may run %s only" % _ALLOWED)
        _own(app, _name(words, kind.lower(), not_exists), kind.lower())
        if kind == "INDEX":
            if words.keyword() != "ON":
                raise ValueError("expected ON and the table after the index's name")
            _own(app, _name(words, "table"), "table")
    elif first in ("ALTER", "DROP"):
        kind = words.keyword()
        if kind not in (("TABLE",) if first == "ALTER" else ("TABLE", "INDEX")):
            raise ValueError("an app's migration may run %s only" % _ALLOWED)
        _own(app, _name(words, kind.lower(), exists if first == "DROP" else ()), kind.lower())
        if first == "ALTER" and words.keyword() == "RENAME" and _is(words.peek(), "TO"):
            words.next()
            _own(app, _name(words, "table"), "table")
    elif first in ("INSERT", "REPLACE", "UPDATE", "DELETE"):
        if first in ("INSERT", "UPDATE") and _is(words.peek(), "OR"):
            words.next()
            words.next()                     # the conflict clause: OR IGNORE, OR REPLACE...
        if first != "UPDATE":
            expected = "FROM" if first == "DELETE" else "INTO"
            if words.keyword() != expected:
                raise ValueError("expected %s %s and the table" % (first, expected))
        _own(app, _name(words, "table"), "table")
    else:
        raise ValueError("an app's migration may run %s only" % _ALLOWED)

"""SQL text the repositories share: a WHERE clause of optional filters, a
search over some columns, a checked ORDER BY, the units a user was given
access to, and for the apps' querysets (`texmate_ds.models`) a WHERE
clause of checked comparisons and a LIMIT/OFFSET."""

# The ids of the units user ? may see, given to them directly or through
# a group (the same user id twice). Whether they see all units anyway
# (`all_units`, a superuser) is the caller's to know: it passes no user.
UNITS_SEEN_BY = (
    "SELECT unit_id FROM user_units WHERE user_id = ?"
    " UNION SELECT g.unit_id FROM group_units g JOIN user_groups m"
    " ON m.group_id = g.group_id WHERE m.user_id = ?")


def filters(*tests):
    """The WHERE clause of optional filters, and its parameters: each test
    is (SQL with one ``?``, value), or (SQL with several, a tuple of their
    values), and one whose value is None is left out. With none left, a
    clause that holds for every row."""
    given = [(text, value) for text, value in tests if value is not None]
    if not given:
        return "1 = 1", []
    params = []
    for _, value in given:
        params.extend(value if isinstance(value, tuple) else (value,))
    return " AND ".join(text for text, _ in given), params


def searching(dialect, columns, text):
    """A `filters` test: any of `columns` holds `text`, ignoring case
    (None or "" text: no test). ``%`` and ``_`` in it are literal. Each
    column is lowered as the `dialect` says (`lowered`)."""
    if not text:
        return "1 = 1", None
    pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace(
        "_", "\\_") + "%"
    return ("(%s)" % " OR ".join("%s LIKE ? ESCAPE '\\'" % (dialect.lowered % c)
                                 for c in columns),
            (pattern,) * len(columns))


def order_by(allowed, order, tie):
    """ORDER BY text for `order`, a key of `allowed` ({name: column}),
    ``-name`` descending, then `tie` (a unique column) so pages never
    overlap; ValueError for a name not allowed (never SQL from a client)."""
    name = order[1:] if order.startswith("-") else order
    if name not in allowed:
        raise ValueError("cannot sort by %r" % name)
    direction = " DESC" if order.startswith("-") else ""
    column = allowed[name]
    return "%s%s, %s%s" % (column, direction, tie, direction) if column != tie else \
        column + direction


# Values in one IN (...) of `matching`: SQLite before 3.32 allows 999
# parameters in a statement.
MAX_IN = 900
# The LIMIT of a page without one (OFFSET needs a LIMIT in standard SQL).
_NO_LIMIT = 2 ** 63 - 1
_COMPARISONS = ("=", "<", "<=", ">", ">=")


def matching(columns, conditions):
    """The WHERE clause and parameters of `conditions`, all of which must
    hold (none: every row). Each is (name, op, value): `name` a key of
    `columns` ({name: SQL column}), `op` one of ``= < <= > >=`` (a value
    to compare with), ``in`` (a tuple of at most `MAX_IN` values; empty:
    no row) or ``null`` (True: IS NULL, False: IS NOT NULL). A name or an
    op not allowed is a ValueError: no caller's text becomes SQL."""
    tests, params = [], []
    for name, op, value in conditions:
        if name not in columns:
            raise ValueError("cannot compare %r" % (name,))
        column = columns[name]
        if op in _COMPARISONS:
            tests.append("%s %s ?" % (column, op))
            params.append(value)
        elif op == "in":
            if len(value) > MAX_IN:
                raise ValueError("%s: %d values in one IN, more than %d"
                                 % (name, len(value), MAX_IN))
            tests.append("%s IN (%s)" % (column, ",".join("?" * len(value))) if value
                         else "1 = 0")
            params.extend(value)
        elif op == "null":
            tests.append("%s IS %sNULL" % (column, "" if value else "NOT "))
        else:
            raise ValueError("no comparison %r" % (op,))
    return " AND ".join(tests) or "1 = 1", params


def page(limit, offset):
    """`` LIMIT ? OFFSET ?`` and its parameters: `limit` rows (None: all)
    after the first `offset`."""
    return " LIMIT ? OFFSET ?", [_NO_LIMIT if limit is None else limit, offset]

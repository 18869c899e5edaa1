"""The store's side of the apps' querysets: `sql.matching` and `sql.page`,
and the repositories' `query`/`count_matching` methods over them, on an
in-memory database."""

import pytest

from texmate_ds.store import sql

COLUMNS = {"ts": "s.ts", "id": "s.id"}


def test_matching_builds_each_comparison_with_parameters():
    where, params = sql.matching(COLUMNS, [("ts", ">=", 5), ("ts", "<", 9), ("id", "in", (1, 2)),
                                           ("id", "null", False)])
    assert where == "s.ts >= ? AND s.ts < ? AND s.id IN (?,?) AND s.id IS NOT NULL"
    assert params == [5, 9, 1, 2]
    assert sql.matching(COLUMNS, []) == ("1 = 1", [])
    assert sql.matching(COLUMNS, [("id", "in", ())]) == ("1 = 0", [])
    assert sql.matching(COLUMNS, [("ts", "null", True)]) == ("s.ts IS NULL", [])


@pytest.mark.parametrize("condition, message", [
    (("ts; DROP TABLE samples", "=", 1), "cannot compare 'ts; DROP TABLE samples'"),
    (("v1", "=", 1), "cannot compare 'v1'"),
    (("ts", "LIKE", "%"), "no comparison 'LIKE'"),
    (("ts", "= 1 OR 1 =", 1), "no comparison"),
    (("id", "in", tuple(range(sql.MAX_IN + 1))), "id: 901 values in one IN, more than 900"),
])
def test_matching_refuses_what_it_does_not_know(condition, message):
    with pytest.raises(ValueError, match=message):
        sql.matching(COLUMNS, [condition])


def test_page_without_a_limit_still_has_one_for_its_offset():
    assert sql.page(10, 20) == (" LIMIT ? OFFSET ?", [10, 20])
    _, (limit, offset) = sql.page(None, 5)
    assert limit >= 2 ** 62 and offset == 5


@pytest.fixture
def db(store_db):
    return store_db


def test_units_query_and_count(db):
    for code in ("C3", "A1", "B2"):
        db.units.add(code, "k", 2 if code != "B2" else 1)
    assert [u.code for u in db.units.query()] == ["A1", "B2", "C3"]
    assert [u.code for u in db.units.query([("fields", "=", 2)], "-code")] == ["C3", "A1"]
    assert [u.code for u in db.units.query(order="code", limit=1, offset=1)] == ["B2"]
    assert [u.code for u in db.units.query(order="code", offset=2)] == ["C3"]
    assert db.units.count_matching([("code", "in", ("A1", "ZZ"))]) == 1
    with pytest.raises(ValueError, match="cannot sort by 'nope'"):
        db.units.query(order="nope")
    with pytest.raises(ValueError, match="cannot compare 'key'"):
        db.units.query([("key", "=", "k")])


def test_samples_query_stays_within_its_unit(db):
    a1, b7 = db.units.add("A1", "k", 2), db.units.add("B7", "k", 1)
    db.samples.add(a1, [(ts, (float(ts), None)) for ts in range(1, 11)])
    db.samples.add(b7, [(ts, (-1.0,)) for ts in range(1, 11)])
    rows = db.samples.query(a1, [("ts", ">", 3), ("ts", "<=", 8)], "-ts", 3, 1)
    assert [row[1:] for row in rows] == [(7, 7.0, None), (6, 6.0, None), (5, 5.0, None)]
    assert [row[1] for row in db.samples.query(b7, order="-id", limit=2)] == [10, 9]
    assert db.samples.count_matching(a1, [("ts", ">=", 9)]) == 2
    assert db.samples.count_matching(b7) == 10
    with pytest.raises(ValueError, match="cannot compare 'unit_id'"):
        db.samples.query(a1, [("unit_id", "=", b7.id)])


def test_alarms_query_joins_their_units(db):
    a1, b7 = db.units.add("A1", "k", 2), db.units.add("B7", "k", 1)
    db.alarms.add(a1, 2, ["x"], received=30)
    db.alarms.add(b7, 5, [], received=10)
    db.alarms.add(a1, 9, [], received=30)
    found = db.alarms.query()
    assert [(unit.code, alarm.level) for unit, alarm in found] == [("B7", 5), ("A1", 2), ("A1", 9)]
    assert [alarm.level for _, alarm in db.alarms.query(order="-received")] == [9, 2, 5]
    assert [alarm.level for _, alarm in db.alarms.query([("unit_id", "=", a1.id)], limit=1,
                                                        offset=1)] == [9]
    assert db.alarms.count_matching([("acknowledged", "null", True), ("level", ">", 4)]) == 2


def test_users_query_never_compares_passwords(db):
    db.accounts.add_user("Ops", "hash")
    db.accounts.add_user("admin", "hash", is_staff=True)
    assert [u.username for u in db.accounts.query_users()] == ["admin", "Ops"]
    assert [u.username for u in db.accounts.query_users([("username", "=", "OPS")])] == ["Ops"]
    assert db.accounts.count_users_matching([("is_staff", "=", 1)]) == 1
    with pytest.raises(ValueError, match="cannot compare 'password'"):
        db.accounts.query_users([("password", "=", "hash")])
    with pytest.raises(ValueError, match="cannot sort by 'password'"):
        db.accounts.query_users(order="password")

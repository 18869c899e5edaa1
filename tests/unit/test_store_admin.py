"""The store's side of the admin: sample counters kept in the units
table, groups, permissions and unit access, searching and sorting."""

import pytest

from texmate_ds import store


@pytest.fixture
def db(store_db):
    return store_db


def test_every_write_keeps_the_units_count_and_newest_timestamp(db):
    a1, b7 = db.units.add("A1", "k", 1), db.units.add("B7", "k", 1)
    assert db.units.counts(a1) == (0, None)
    db.samples.add(a1, [(50, (1.0,))])
    db.samples.add(a1, [(50, (1.0,))])                     # a duplicate
    db.samples.add(a1, [(10, (1.0,)), (70, (2.0,)), (10, (3.0,)), (50, (4.0,))])
    assert db.units.counts(a1) == (3, 70) and db.units.counts(b7) == (0, None)
    assert db.units.page(0, 10) == [(db.units.get("A1"), 3, 70), (db.units.get("B7"), 0, None)]
    assert db.samples.delete_oldest(a1, 1) == 1
    assert db.units.counts(a1) == (2, 70)
    newest = db.samples.last(a1)[0]
    assert db.samples.delete_ids(a1, [newest, 999, newest]) == [newest]
    assert db.units.counts(a1) == (1, 50)
    assert db.samples.delete_ids(b7, [db.samples.last(a1)[0]]) == []   # not B7's
    assert db.samples.delete_oldest(a1, 10) == 1
    assert db.units.counts(a1) == (0, None)


def test_a_staged_import_counts_what_it_stored(db):
    a1 = db.units.add("A1", "k", 1)
    db.samples.add(a1, [(5, (1.0,))])
    insert = db.samples.stage(1)
    db.executemany(insert, [(5, 1, 1.0), (9, 2, 2.0), (7, 3, 3.0)])
    assert db.samples.add_staged(a1) == 2
    assert db.units.counts(a1) == (3, 9)


def test_grants_are_the_users_own_and_their_groups(db):
    a1, b7, c3 = (db.units.add(code, "k", 1) for code in ("A1", "B7", "C3"))
    ann = db.accounts.add_user("ann", "x")
    assert db.accounts.grants(ann) == store.Grants(frozenset(), False, frozenset())
    ops = db.accounts.add_group("Operators")
    db.accounts.set_groups(ann.id, [ops.id])
    db.accounts.set_permissions("user", ann.id, ["samples.view"])
    db.accounts.set_permissions("group", ops.id, ["units.change", "samples.view"])
    db.accounts.set_units("user", ann.id, [a1.id])
    db.accounts.set_units("group", ops.id, [b7.id])
    grants = db.accounts.grants(ann)
    assert grants == store.Grants(frozenset({"samples.view", "units.change"}), False,
                                  frozenset({a1.id, b7.id}))
    assert [u.code for u, _, _ in db.units.page(0, 10, seen_by=ann.id)] == ["A1", "B7"]
    assert db.units.count(seen_by=ann.id) == 2
    db.accounts.change_group(ops.id, "Operators", all_units=True)
    assert db.accounts.grants(ann).all_units
    db.accounts.delete_group(ops.id)
    assert db.accounts.grants(ann) == store.Grants(frozenset({"samples.view"}), False,
                                                   frozenset({a1.id}))
    db.units.delete(a1)
    assert db.accounts.units_of("user", ann.id) == set()
    assert c3.code == "C3" and db.units.count() == 2


def test_users_are_changed_found_sorted_and_deleted(db):
    for name, email in (("ann", "ann@x.org"), ("bob", "b@x.org"), ("50%_off", "")):
        db.accounts.add_user(name, "x", email=email)
    assert db.accounts.find_users("ANN")[0] == 1
    total, found = db.accounts.find_users("%")        # literal, not a wildcard
    assert (total, [u.username for u in found]) == (1, ["50%_off"])
    assert [u.username for u in db.accounts.find_users(order="-username")[1]] == [
        "bob", "ann", "50%_off"]
    with pytest.raises(ValueError):
        db.accounts.find_users(order="password; DROP TABLE users")
    bob = db.accounts.get_user_by_name("bob")
    changed = db.accounts.change_user(bob.id, is_staff=True, first_name="Bob")
    assert (changed.is_staff, changed.first_name) == (True, "Bob")
    # A refused write in a savepoint, as the admin's views make them (on
    # PostgreSQL a failed statement ends the transaction otherwise).
    with pytest.raises(store.Conflict), db.atomic():
        db.accounts.change_user(bob.id, username="ANN")
    with pytest.raises(ValueError):
        db.accounts.change_user(bob.id, password="sneaky")
    db.accounts.add_api_token(bob.id, "cron", "h")
    db.accounts.delete_user(bob.id)
    assert db.accounts.get_user(bob.id) is None and db.accounts.api_tokens(bob.id) == []


def test_active_superusers_are_counted(db):
    root = db.accounts.add_user("root", "x", is_superuser=True)
    db.accounts.add_user("off", "x", is_superuser=True)
    db.accounts.change_user(db.accounts.get_user_by_name("off").id, is_active=False)
    assert db.accounts.count_active_superusers() == 1
    assert db.accounts.count_active_superusers(besides=root.id) == 0


def test_upload_counts_are_written_once_per_unit_at_the_commit(db, engine):
    a1 = db.units.add("A1", "k", 1)
    db.commit()
    for ts in range(1, 101):
        db.samples.add_later(a1, [(ts, (1.0,))])
    before = db.changes
    db.commit()
    # SQLite: one row for A1's counters, one for its usual interval
    # (measured once per MEASURE_EVERY samples, not per upload). On
    # PostgreSQL the one statement that writes the held samples counts
    # them too (its rows counted as they were held): the interval's row.
    assert db.changes == before + (1 if engine == "postgresql" else 2)
    assert db.units.counts(a1) == (100, 100)
    db.samples.add(a1, [(500, (1.0,))])
    db.rollback()                                         # its tally goes with it
    db.commit()
    assert db.units.counts(a1) == (100, 100)


def test_counts_read_in_the_transaction_see_its_uploads(db):
    a1 = db.units.add("A1", "k", 1)
    db.samples.add(a1, [(7, (1.0,))])
    assert db.units.counts(a1) == (1, 7)
    assert db.units.page(0, 1)[0][1:] == (1, 7)


def test_an_undone_savepoint_takes_its_uploads_counts_with_it(db):
    a1 = db.units.add("A1", "k", 1)
    db.samples.add(a1, [(1, (1.0,))])
    with pytest.raises(RuntimeError):
        with db.atomic():
            db.samples.add(a1, [(2, (1.0,))])
            db.samples.add(a1, [(3, (1.0,)), (4, (1.0,))])
            raise RuntimeError("the view failed")
    db.commit()
    assert db.units.counts(a1) == (1, 1) and db.samples.count(a1) == 1


def test_deleting_after_uploads_in_one_transaction_keeps_the_newest_right(db):
    a1 = db.units.add("A1", "k", 1)
    db.samples.add(a1, [(1, (1.0,)), (2, (1.0,))])
    db.commit()
    db.samples.add(a1, [(9, (1.0,))])                     # tallied, not yet written
    assert db.samples.delete_oldest(a1, 10) == 3          # ...and deleted in the same turn
    db.commit()
    assert db.units.counts(a1) == (0, None)

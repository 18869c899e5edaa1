"""The action log repository (store.actionlog): entries written in the
caller's transaction, secrets never stored, read back newest first."""

import json

import pytest

from texmate_ds import times


@pytest.fixture
def db(store_db):
    return store_db


def test_an_entry_reads_back_with_its_changes(db):
    before = times.now()
    entry_id = db.log.record("manage:ops", "change", "unit", 7, "A1 (Pump)",
                             {"name": ["", "Pump"], "fields": [4, 2]}, "by hand")
    db.commit()
    [entry] = db.log.entries()
    assert entry.id == entry_id and before <= entry.at <= times.now()
    assert entry[2:] == ("manage:ops", "change", "unit", "7", "A1 (Pump)",
                         {"name": ["", "Pump"], "fields": [4, 2]}, "by hand")


def test_a_key_or_password_is_never_stored(db):
    db.log.record("manage:ops", "change", "unit", 1, "A1",
                  {"key": ["old-secret", "new-secret"], "name": ["a", "b"]})
    db.log.record("ann", "change", "user", 2, "ann", {"password": ["x", "hash$y"]})
    db.commit()
    stored = db.all("SELECT changes FROM action_log ORDER BY id")
    assert [json.loads(c) for (c,) in stored] == [
        {"key": "(changed)", "name": ["a", "b"]}, {"password": "(changed)"}]
    assert not any("secret" in c or "hash" in c for (c,) in stored)


def test_an_entry_joins_the_callers_transaction(db):
    db.units.add("A1", "k", 1)
    db.log.record("manage:ops", "add", "unit", 1, "A1")
    db.rollback()
    assert db.log.entries() == [] and db.units.get("A1") is None
    with pytest.raises(RuntimeError):
        with db.atomic():
            db.log.record("manage:ops", "add", "unit", 1, "A1")
            raise RuntimeError
    db.commit()
    assert db.log.entries() == []


def test_an_unknown_action_is_refused(db):
    with pytest.raises(ValueError, match="action 'edit'"):
        db.log.record("ann", "edit", "unit", 1, "A1")


def test_entries_newest_first_and_filtered(db, monkeypatch):
    clock = iter(range(100, 200))
    monkeypatch.setattr(times, "now", lambda: next(clock))
    for actor, model, object_id in (("ann", "unit", 1), ("manage:ops", "user", 1),
                                    ("ann", "unit", 2), ("ann", "samples", 1)):
        db.log.record(actor, "change", model, object_id, "x")
    db.commit()

    def ids(**filters):
        return [(e.model, e.object_id, e.at) for e in db.log.entries(**filters)]

    assert ids() == [("samples", "1", 103), ("unit", "2", 102), ("user", "1", 101),
                     ("unit", "1", 100)]
    assert ids(model="unit") == [("unit", "2", 102), ("unit", "1", 100)]
    assert ids(model="unit", object_id=1) == [("unit", "1", 100)]
    assert ids(actor="manage:ops") == [("user", "1", 101)]
    assert ids(since=102) == [("samples", "1", 103), ("unit", "2", 102)]
    assert ids(limit=1) == [("samples", "1", 103)]

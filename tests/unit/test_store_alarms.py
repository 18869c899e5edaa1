"""The store's alarms, alarm messages, mailing lists and outbox."""

import pytest


@pytest.fixture
def fresh(store_db):
    """The store with units A1 (2 fields) and B7 (1)."""
    return store_db, store_db.units.add("A1", "k", 2), store_db.units.add("B7", "k", 1)


def test_alarms_are_stored_found_and_acknowledged(fresh):
    db, a1, b7 = fresh
    first = db.alarms.add(a1, 2, ["2009-1-16 15:30:45", "hi ✓"], meter_ts=5)
    second = db.alarms.add(b7, 0, [], kind="silent")
    assert first.data == ("2009-1-16 15:30:45", "hi ✓") and first.active
    assert [a.id for a in db.alarms.find()] == [second.id, first.id]
    assert [a.id for a in db.alarms.find(unit=a1)] == [first.id]
    assert db.alarms.active_counts() == {a1.id: 1, b7.id: 1}
    done = db.alarms.acknowledge(first, "ann", "seen")
    assert (done.active, done.acknowledged_by, done.note) == (False, "ann", "seen")
    assert db.alarms.acknowledge(done, "bob").acknowledged_by == "ann"     # once
    assert [a.id for a in db.alarms.find(active=True)] == [second.id]
    assert [a.id for a in db.alarms.find(active=False)] == [first.id]
    ann = db.accounts.add_user("ann", "x")
    db.accounts.set_units("user", ann.id, [b7.id])
    assert [a.id for a in db.alarms.find(seen_by=ann.id)] == [second.id]
    assert [a.id for a in db.alarms.find(before=second.id)] == [first.id]
    assert db.alarms.delete_oldest(a1, 10) == 1 and db.alarms.count(a1) == 0


def test_the_message_of_an_alarm_is_the_most_particular_one_set(fresh):
    db, a1, b7 = fresh
    assert db.alarms.message(a1, 2) is None
    db.alarms.set_message(None, None, "site {{ unit }}", "b")
    assert db.alarms.message(a1, 2).subject == "site {{ unit }}"
    db.alarms.set_message(a1, None, "unit", "b")
    assert db.alarms.message(a1, 2).subject == "unit"
    db.alarms.set_message(a1, 2, "level 2", "b")
    db.alarms.set_message(a1, 2, "level 2, again", "b")               # replaces
    assert db.alarms.message(a1, 2).subject == "level 2, again"
    assert db.alarms.message(a1, 3).subject == "unit"
    assert db.alarms.message(b7, 2).subject == "site {{ unit }}"
    assert [m.level for m in db.alarms.messages(a1)] == [None, 2]


def test_recipients_are_the_active_users_with_an_address(fresh):
    db, a1, _ = fresh
    ids = [db.accounts.add_user(name, "x", email=email).id
           for name, email in (("ann", "ann@x.org"), ("bob", ""), ("cy", "cy@x.org"))]
    db.accounts.change_user(ids[2], is_active=False)
    db.alarms.set_mailing_list(a1, ids)
    assert db.alarms.mailing_list(a1) == set(ids)
    assert db.alarms.recipients(a1) == ["ann@x.org"]


def test_the_outbox_queues_retries_and_records_every_attempt(fresh):
    db, a1, _ = fresh
    alarm = db.alarms.add(a1, 1, [])
    letter_id = db.outbox.add(alarm.id, "email", "ann@x.org", "subject", "body")
    letter = db.outbox.get(letter_id)
    assert letter.state == "queued" and db.outbox.due(letter.next_attempt, 10) == [letter]
    db.outbox.attempted(letter, "queued", "451 try later", next_attempt=letter.created + 30)
    assert db.outbox.due(letter.created, 10) == []
    assert db.outbox.next_due() == letter.created + 30
    db.outbox.attempted(letter, "failed", "550 no such user")
    failed = db.outbox.get(letter_id)
    assert (failed.state, failed.attempts, failed.last_reply) == ("failed", 2, "550 no such user")
    db.outbox.retry(failed)
    assert db.outbox.get(letter_id).state == "queued"
    assert db.outbox.counts() == {"queued": 1}
    assert [x.id for x in db.outbox.find(alarm_id=alarm.id)] == [letter_id]
    assert [(state, reply) for _, state, reply in db.outbox.attempts(failed)] == [
        ("queued", "451 try later"), ("failed", "550 no such user")]

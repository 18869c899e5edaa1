"""events.Bus: declared topics, filtering by unit, bounded queues, and
subscribers that can neither hold up nor break a publisher."""

import logging

import pytest

from texmate_ds import events
from texmate_ds.events import OVERFLOWED, Bus


def sample(unit="A1", id=1):
    return dict(unit=unit, id=id, timestamp=1_000_000 * id, values=(float(id),))


def test_subscribers_get_the_events_of_their_units_in_order():
    bus = Bus()
    a1 = bus.subscribe(["sample"], {"A1"}, size=10)
    both = bus.subscribe(["sample"], {"A1", "B7"}, size=10)
    every = bus.subscribe(["sample"], size=10)
    for n, unit in enumerate(["A1", "B7", "C3", "A1"], 1):
        bus.publish("sample", **sample(unit, n))
    assert [e.data["id"] for e in a1.take()] == [1, 4]
    assert [e.data["id"] for e in both.take()] == [1, 2, 4]
    assert [(e.topic, e.data["unit"]) for e in every.take()] == [
        ("sample", "A1"), ("sample", "B7"), ("sample", "C3"), ("sample", "A1")]
    assert a1.take() == [] and len(a1) == 0
    assert every.take() == []


def test_wants_tells_a_publisher_whether_anyone_listens():
    bus = Bus()
    assert not bus.wants("sample", "A1")
    sub = bus.subscribe(["sample"], {"A1"}, size=1)
    assert bus.wants("sample", "A1") and not bus.wants("sample", "B7")
    every = bus.subscribe(["sample"], size=1)
    assert bus.wants("sample", "B7")
    every.close()
    sub.close()
    sub.close()   # again: harmless
    assert not bus.wants("sample", "A1")
    bus.publish("sample", **sample())   # nobody listens: nothing to do
    assert sub.take() == []


def test_a_subscriber_is_woken_once_per_batch():
    bus = Bus()
    woken = []
    sub = bus.subscribe(["sample"], size=10, wake=lambda: woken.append(len(sub)))
    bus.publish("sample", **sample(id=1))
    bus.publish("sample", **sample(id=2))
    assert woken == [1]   # not again until the queue was taken
    assert len(sub.take()) == 2
    bus.publish("sample", **sample(id=3))
    assert woken == [1, 1]


def test_a_subscriber_that_overflows_is_told_and_dropped_and_others_go_on(caplog):
    bus = Bus()
    woken = []
    slow = bus.subscribe(["sample"], size=3, wake=lambda: woken.append("slow"))
    quick = bus.subscribe(["sample"], size=3)
    with caplog.at_level(logging.INFO, "texmate_ds.events"):
        for n in range(1, 6):
            bus.publish("sample", **sample(id=n))
            quick.take()
    assert woken == ["slow", "slow"]   # the first event, and the overflow
    assert slow.overflowed and slow.closed
    got = slow.take()
    assert [e.data["id"] for e in got[:-1]] == [1, 2, 3] and got[-1] is OVERFLOWED
    assert len(got) == 4   # bounded: `size` events and the marker
    assert "fell 3 events behind; dropped" in caplog.text
    bus.publish("sample", **sample(id=6))
    assert slow.take() == []
    assert [e.data["id"] for e in quick.take()] == [6]
    assert not quick.overflowed


def test_a_wake_that_raises_is_logged_and_drops_only_its_subscriber(caplog):
    bus = Bus()

    def broken():
        raise RuntimeError("the stream broke")
    bad = bus.subscribe(["sample"], size=5, wake=broken)
    good = bus.subscribe(["sample"], size=5)
    bus.publish("sample", **sample())   # does not raise
    assert bad.closed and not good.closed
    assert "waking an event subscriber failed" in caplog.text
    assert "the stream broke" in caplog.text
    bus.publish("sample", **sample(id=2))
    assert [e.data["id"] for e in good.take()] == [1, 2]


def test_a_subscriber_may_close_another_while_being_woken():
    bus = Bus()
    second = None

    def close_second():
        second.close()
    bus.subscribe(["sample"], size=5, wake=close_second)
    second = bus.subscribe(["sample"], size=5, wake=close_second)
    bus.publish("sample", **sample())   # whichever is woken first, nothing breaks
    assert second.closed


def test_only_declared_topics_and_fields():
    bus = Bus()
    assert set(events.TOPICS) == {"sample", "alarm"}
    assert events.TOPICS["sample"].fields == {"unit", "id", "timestamp", "values"}
    assert events.TOPICS["alarm"].fields == {"unit", "id", "kind", "level", "data", "meter_ts",
                                             "received"}
    with pytest.raises(ValueError, match="no event topic 'unit'"):
        bus.subscribe(["unit"], size=1)
    with pytest.raises(ValueError, match="alarm event has the fields"):
        bus.publish("alarm", unit="A1", id=1, level=2)
    with pytest.raises(ValueError, match="no event topic"):
        bus.publish("smaple", **sample())
    with pytest.raises(ValueError, match="a sample event has the fields"):
        bus.publish("sample", unit="A1", id=1, timestamp=0)
    with pytest.raises(ValueError, match="at least one"):
        bus.subscribe(["sample"], size=0)

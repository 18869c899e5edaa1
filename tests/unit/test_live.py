"""A live stream's keep-alive and its end when it falls behind, with a
real Loop and a real event bus."""

from texmate_ds import events, loop
from texmate_ds.web import live


def stream(monkeypatch, keepalive=0.001):
    monkeypatch.setattr(live, "KEEPALIVE", keepalive)
    the_loop = loop.Loop()
    woken = []
    hub = live.Live(events.Bus(), the_loop, 10)
    return the_loop, hub, live.Stream(hub, {"A1"}, [b"retry: 3000\n\n"], lambda: woken.append(1)), woken


def test_a_quiet_stream_sends_a_keep_alive_comment(monkeypatch):
    the_loop, hub, s, woken = stream(monkeypatch)
    assert s.ready and next(s) == b"retry: 3000\n\n" and not s.ready
    for _ in range(20):
        the_loop._turn(0.005)
        if woken:
            break
    assert woken and next(s) == live.KEEPALIVE_FRAME
    s.close()
    assert hub.open == 0
    the_loop.selector.close()


def test_only_its_units_events_and_a_subscriber_that_falls_behind_is_told_to_resync(
        monkeypatch):
    the_loop, hub, s, woken = stream(monkeypatch, keepalive=60)
    next(s)
    hub.bus.publish("sample", unit="B7", id=1, timestamp=0, values=(1.0,))
    assert not s.ready
    hub.bus.publish("sample", unit="A1", id=2, timestamp=0, values=(1.0, None))
    assert s.ready and woken
    assert next(s) == live.sample_frame("A1", 2, 0, (1.0, None))
    for n in range(live.QUEUE + 1):
        hub.bus.publish("sample", unit="A1", id=3 + n, timestamp=0, values=(1.0,))
    assert next(s).endswith(live.RESYNC)
    assert s.ready
    try:
        next(s)
        raise AssertionError("the stream should have ended")
    except StopIteration:
        pass
    s.close()
    the_loop.selector.close()


def test_an_event_is_made_into_bytes_once_for_all_its_streams(monkeypatch):
    the_loop, hub, first, _ = stream(monkeypatch, keepalive=60)
    second = live.Stream(hub, {"A1"}, [], lambda: None)
    next(first)
    hub.bus.publish("sample", unit="A1", id=7, timestamp=0, values=(1.5,))
    sent = next(first), next(second)
    assert sent[0] == live.sample_frame("A1", 7, 0, (1.5,)) and sent[0] is sent[1]
    # the same id published again (a deleted newest sample's, reused) is
    # another event: its own bytes
    hub.bus.publish("sample", unit="A1", id=7, timestamp=0, values=(9.0,))
    assert next(first) == next(second) == live.sample_frame("A1", 7, 0, (9.0,))
    for n in range(live.FRAMES_KEPT + 10):     # the memo keeps the newest only
        hub.frame(events.Event("alarm", {"unit": "A1", "id": n, "level": 1, "data": ("x",),
                                         "received": 0, "kind": "meter", "meter_ts": None}))
    assert len(hub._frames) == live.FRAMES_KEPT
    first.close()
    second.close()
    the_loop.selector.close()

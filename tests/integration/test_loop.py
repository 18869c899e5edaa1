"""loop.Loop and loop.Channel over socket pairs, the loop turned by the test:
guarded turn hooks, soon calls, waking a channel from outside its socket
events, and long-lived answers that the idle sweep and a stop leave alone."""

import socket
import time

import pytest

from texmate_ds import loop


class Echo(loop.Channel):
    def received(self, data):
        self.push(loop.Answer(data))


class Stream:
    """A long-lived producer: gives what `feed` queued, and is not ready
    while nothing is queued."""

    long_lived = True

    def __init__(self, channel):
        self.channel = channel
        self.queued = []

    @property
    def ready(self):
        return bool(self.queued)

    def feed(self, data):
        self.queued.append(data)
        self.channel.wake()

    def more(self):
        data = b"".join(self.queued)
        self.queued = []
        return data


@pytest.fixture
def the_loop():
    the_loop = loop.Loop()
    yield the_loop
    for channel in list(the_loop.channels):
        channel.close()
    the_loop.selector.close()


def connected(the_loop, cls=Echo):
    """(channel on the loop, the peer's socket)."""
    ours, peer = socket.socketpair()
    peer.settimeout(5)
    return cls(the_loop, ours, ("peer", 1)), peer


def turns(the_loop, n=5):
    for _ in range(n):
        the_loop._turn(0.01)


def test_a_failing_turn_hook_is_logged_and_the_loop_goes_on(the_loop, caplog):
    ran = []

    def broken():
        raise RuntimeError("hook trouble")
    the_loop.turn_hooks[:0] = [broken]   # before the batched writes, even
    the_loop.turn_hooks.append(lambda: ran.append(1))
    channel, peer = connected(the_loop)
    peer.sendall(b"ping")
    turns(the_loop)
    assert peer.recv(10) == b"ping"
    assert len(ran) == 5
    assert not channel.closed
    assert caplog.text.count("a turn hook failed") == 5
    assert "hook trouble" in caplog.text


def test_wake_sends_what_a_held_producer_made_ready(the_loop):
    channel, peer = connected(the_loop)
    stream = Stream(channel)
    channel.push(stream)
    turns(the_loop)
    assert channel._mask == loop.selectors.EVENT_READ   # no write interest while not ready
    the_loop.call_soon_threadsafe(lambda: stream.feed(b"news"))
    turns(the_loop, 2)
    assert peer.recv(10) == b"news"


def test_the_sweep_spares_a_long_lived_answer_until_its_peer_stops_reading(the_loop):
    channel, peer = connected(the_loop)
    idle, idle_peer = connected(the_loop)
    stream = Stream(channel)
    channel.push(stream)
    turns(the_loop)
    time.sleep(0.05)
    the_loop.sweep(0.01)
    assert idle.closed and idle_peer.recv(10) == b""   # the sweep did sweep
    assert not channel.closed and channel.held_open()
    # A peer that reads nothing: what the stream gave stays unsent, and
    # the channel is idle like any other.
    stream.feed(b"x" * (4 * 1024 * 1024))
    turns(the_loop, 20)
    assert channel.out and not channel.held_open()
    time.sleep(0.05)
    the_loop.sweep(0.01)
    assert channel.closed


def test_stop_does_not_wait_for_a_long_lived_answer(the_loop):
    channel, peer = connected(the_loop)
    stream = Stream(channel)
    channel.push(stream)
    stream.feed(b"last words")
    the_loop.stop()
    started = time.monotonic()
    the_loop.run()
    assert time.monotonic() - started < loop.DRAIN_SECONDS / 2
    assert channel.closed
    assert peer.recv(100) == b"last words"   # what it gave was written first


def test_soon_calls_run_after_the_turns_sockets_one_piece_per_turn(the_loop, caplog):
    order = []
    timeouts = []
    select = the_loop.selector.select

    def recording(timeout=None):
        timeouts.append(timeout)
        return select(timeout)
    the_loop.selector.select = recording

    class Noting(Echo):
        def received(self, data):
            order.append("read")
            super().received(data)

    def piece(n):
        order.append("piece %d" % n)
        if n < 3:
            the_loop.call_soon(lambda: piece(n + 1))

    def broken():
        raise RuntimeError("soon trouble")
    channel, peer = connected(the_loop, Noting)
    peer.sendall(b"ping")
    the_loop.call_soon(broken)
    the_loop.call_soon(lambda: piece(1))
    the_loop.call_later(60, lambda: None)   # without the soon calls, select would wait for it
    for _ in range(3):
        the_loop._turn()
    # The first turn reads the socket, then runs what was queued before;
    # each piece queued by a piece waits for the next turn, whose select
    # does not sleep meanwhile.
    assert order == ["read", "piece 1", "piece 2", "piece 3"]
    assert timeouts == [0, 0, 0]
    the_loop.wake()   # nothing queued now: this select would wait for the timer
    the_loop._turn()
    assert timeouts[3] > 1
    assert "a call_soon failed" in caplog.text and "soon trouble" in caplog.text
    assert peer.recv(10) == b"ping"


def test_stopping_says_a_stop_was_asked_for(the_loop):
    assert not the_loop.stopping
    the_loop.stop()
    assert the_loop.stopping


def test_a_periodic_call_that_fails_is_logged_and_comes_again(the_loop, caplog):
    calls = []

    def flaky():
        calls.append(1)
        raise RuntimeError("sweep trouble")
    the_loop.every(0.001, flaky)
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        the_loop._turn(0.005)
    assert len(calls) >= 3
    assert caplog.text.count("a timer failed") >= 3 and "sweep trouble" in caplog.text

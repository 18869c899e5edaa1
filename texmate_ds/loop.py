"""The selectors event loop: listeners, channels with producer queues, timers,
services, signals.

Everything that talks to a socket runs here, on one thread, without blocking.
The design follows asyncore/asynchat (medusa), trimmed to what the server
needs:

* A *listener* accepts connections and hands each socket to a factory that
  builds a *channel*.
* A `Channel` owns its socket, a queue of *producers* and an output buffer.
  A producer is any object whose ``more()`` returns the next chunk (str or
  bytes) and an empty value when it is done; a large answer is many small
  chunks, never one big string. The loop asks for write readiness only while
  something is queued and ready, and stops reading from a peer whose unsent
  output passes `OUTPUT_CAP`, so a client that never reads cannot make the
  server buffer without bound.
* A producer may be *held* (``ready`` false) until an event such as a
  database commit releases it: that is how an upload's ``OK`` waits for its
  group commit without blocking anyone else.
* A producer with a ``flushed()`` method is told when its last byte was
  written to the socket, and the channel starts the next producer only after
  that, so side effects (the ``dl next`` cursor) happen in request order.
* Answers queued during a loop turn are written together at its end, just
  before ``select()``, so a peer with many requests in flight is woken once
  per batch rather than once per answer. Each write event then sends one
  chunk, so every ready connection gets its turn.
* *Turn hooks* run once per loop turn, after all ready sockets were served and
  before the next ``select()``: the batched writes and the group commit live
  there.
* *Soon calls* (`Loop.call_soon`) run at the end of the turn, after its
  sockets and timers. One queued while they run waits for the next turn,
  and while any is queued ``select()`` does not sleep: work cut into pieces
  that asks for its next piece this way gets one piece per turn, between
  everyone else's requests (`chores.Chores`).
* Code outside a channel's own socket events that made one of its held
  producers ready (a worker's result, an event for a stream) calls
  `Channel.wake()`, and the channel is looked at again with the turn's
  batched writes.
* A producer may be *long-lived* (``long_lived`` true: a stream of events
  that stays open). Not ready, it costs nothing: no write interest, no
  timer, no turn. While it is a channel's current answer and everything it
  gave is written, its silence is waiting, not a dead peer: the idle
  `sweep` leaves the channel alone (`Channel.held_open`), and a stop does
  not wait for it to end. A stream whose peer stopped reading has output
  left, and is swept like any other connection.
* *Services* have ``start()`` and ``stop()``; they start in order and stop in
  reverse, after the listeners are closed and in-flight answers are flushed.
  A service may `watch` a descriptor of its own (a database connection
  that only listens): a callback when it is readable, in the turn's
  select like any socket.
* A `Pool` of threads takes work that would hold the loop up (a graph's
  query over a million samples), fairly: each client waits in its own
  queue and the workers serve the clients in turn. Results come back to
  the loop thread through `call_soon_threadsafe`, and a producer waiting
  for one is simply not ``ready`` meanwhile (an empty chunk from a
  producer that is not ready means "not yet", never "done").

* A channel may put a *transport* between its socket and its plaintext
  (``Channel.transport``: `tls.TLSLayer` for HTTPS). The channel then
  reads ciphertext, hands `received` what the transport makes of it and
  writes what the transport has to say; its buffers, flow control and
  ``flushed()`` still count plaintext. A plain channel has none, and its
  reads and writes go to the socket as before.

One failure, one channel: an exception raised while serving a channel is
logged with its traceback and closes that channel only; a transport's
`TransportError` (a client's broken TLS) is logged in one line instead.
Timers, turn hooks, soon calls and calls from other threads run under the
same guard (`Loop.call_guarded`): one that fails is logged and the loop goes
on. KeyboardInterrupt and SystemExit always propagate.
"""

import errno
import heapq
import itertools
import logging
import selectors
import signal
import socket
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Future

try:
    import resource
except ImportError:  # Windows: no open-files limit to raise
    resource = None

log = logging.getLogger("texmate_ds.loop")

# Unsent bytes, and answers queued, that a channel may hold before it stops
# reading from its peer.
OUTPUT_CAP = 256 * 1024
QUEUE_CAP = 64
# Bytes read from a socket at a time.
RECV_SIZE = 65536
# Bytes a write event takes from a channel's producers, about: a long
# answer (a CSV export) goes out a piece per turn, between everyone else's.
FILL_SIZE = 8192
# Plaintext a transport takes at a time: one whole TLS record.
TLS_PIECE = 16384
# Seconds between two log lines about connections refused at a listener's limit.
REFUSAL_LOG_SECONDS = 10
# Seconds a graceful stop waits for in-flight answers to drain.
DRAIN_SECONDS = 10.0
# A lingering close (Apache's, nginx's): after an answer refusing a request
# that may still be coming in (a body refused with 413), the channel reads
# and drops up to this many seconds and bytes before it closes. Closing with
# unread data would send a reset, which can destroy the answer before the
# peer has read it.
LINGER_SECONDS = 2.0
LINGER_BYTES = 256 * 1024

_DISCONNECTED = frozenset(
    (errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ECONNABORTED,
     errno.EPIPE, errno.EBADF, errno.ETIMEDOUT)
)


def printable(text, lines=False):
    """`text` fit for the log: control and other unprintable characters
    escaped, and line breaks too unless `lines` (a traceback keeps its
    lines; what a client sent must stay on one)."""
    return "".join(c if c.isprintable() or (lines and c == "\n")
                   else c.encode("unicode_escape").decode("ascii") for c in text)


def raise_open_files(needed):
    """Raise the soft limit on open files to `needed` where the hard limit
    allows (many systems start at 1024; every connection is a file).
    Returns the soft limit now in force, or None where there is none."""
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


class TransportError(Exception):
    """What a channel's transport raises for bytes from the peer it cannot
    take (a broken TLS handshake): the channel logs it in one line and
    closes. ``str()`` must be fit for a log line."""


class Timer:
    """A call scheduled on the loop; `cancel()` before it fires to drop it."""

    __slots__ = ("when", "fn", "cancelled")

    def __init__(self, when, fn):
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


class Counter:
    """A number the servers count into and /metrics reads (``value``);
    vendor TTP apps call ``server.bytes_out.increment(n)``."""

    def __init__(self):
        self.value = 0

    def increment(self, n=1):
        self.value += n


class Answer:
    """A producer of one ready-made chunk (str or bytes)."""

    def __init__(self, data):
        self.data = data

    def more(self):
        data, self.data = self.data, self.data[:0]
        return data


class Loop:
    def __init__(self):
        self.selector = selectors.DefaultSelector()
        self.channels = set()
        self.listeners = []
        self.services = []
        self.turn_hooks = [self._flush]
        # Channels with answers queued this turn (see Channel.push).
        self.to_flush = set()
        self._timers = []
        self._seq = itertools.count()
        self._stopping = False
        self._signals = False
        # Calls other threads asked for (call_soon_threadsafe).
        self._from_threads = deque()
        # Calls for the end of this turn (call_soon).
        self._soon = deque()
        # A socket pair lets a signal handler, or another thread, interrupt
        # select() at once.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, self._drain_wakeups)

    # -- timers and hooks ---------------------------------------------------

    def call_later(self, delay, fn):
        timer = Timer(time.monotonic() + delay, fn)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def every(self, interval, fn):
        """Call `fn` every `interval` seconds until the loop stops; a call
        that raises is logged (as any timer's) and the next one still
        comes."""
        def tick():
            try:
                fn()
            finally:
                self.call_later(interval, tick)
        return self.call_later(interval, tick)

    def _flush(self):
        channels, self.to_flush = self.to_flush, set()
        for channel in channels:
            channel.guarded(channel.send_now)

    def _run_timers(self):
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            timer = heapq.heappop(self._timers)[2]
            if not timer.cancelled:
                self.call_guarded("a timer", timer.fn)

    @staticmethod
    def call_guarded(what, fn, *args):
        """``fn(*args)``; if it raises, log `what` failed, with the
        traceback, and go on: one failure, one call (a timer, a turn hook,
        an after_commit callback). KeyboardInterrupt and SystemExit
        propagate."""
        try:
            fn(*args)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:
            log.exception("%s failed (%r)", what, fn)

    def _timeout(self):
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        if not self._timers:
            return None
        return max(0.0, self._timers[0][0] - time.monotonic())

    # -- listeners, channels, services --------------------------------------

    def listen(self, host, port, factory, limit, refusal, backlog=1024):
        """Bind a listening socket; `factory(loop, sock, addr)` builds and
        returns a channel for each accepted connection. `limit` is
        (setting name, connections at most) for this listener alone, so
        one port's clients never take another's room; a connection beyond
        it gets the bytes `refusal` and is closed. Returns the bound
        address."""
        listener = Listener(self, host, port, factory, limit, refusal, backlog)
        self.listeners.append(listener)
        return listener.address

    def sweep(self, timeout):
        """Close channels with no traffic for `timeout` seconds: dead
        peers, and requests processing that long; never a channel
        `held_open` by a long-lived answer."""
        now = time.monotonic()
        for channel in list(self.channels):
            if now - channel.last_activity > timeout and not channel.held_open():
                log.info("closing %s: no progress for %d s",
                         _peer(channel.addr), now - channel.last_activity)
                channel.close()

    def add_service(self, service):
        self.services.append(service)

    def watch(self, fileobj, fn):
        """Call ``fn()`` whenever `fileobj` (a descriptor another library
        reads, such as a database connection's socket) is readable, until
        `unwatch`; guarded, as a timer is."""
        self.selector.register(fileobj, selectors.EVENT_READ,
                               lambda mask: self.call_guarded("a watched descriptor", fn))

    def unwatch(self, fileobj):
        self.selector.unregister(fileobj)

    # -- running ------------------------------------------------------------

    def run(self):
        """Run until `stop()` is called, then stop gracefully."""
        for service in self.services:
            service.start()
        try:
            while not self._stopping:
                self._turn()
        finally:
            self._shutdown()

    def stop(self):
        """Ask the loop to stop; safe to call from a signal handler."""
        self._stopping = True
        self.wake()

    @property
    def stopping(self):
        """True once `stop()` was called: the loop is draining or done, and
        work that can wait (a chore's next piece) should not start."""
        return self._stopping

    def call_soon(self, fn):
        """Call `fn` on the loop thread at the end of this turn, after its
        sockets and timers, or of the next turn when asked from such a call;
        ``select()`` does not sleep meanwhile. Loop thread only."""
        self._soon.append(fn)

    def call_soon_threadsafe(self, fn):
        """Run `fn` on the loop thread soon; safe to call from any thread."""
        self._from_threads.append(fn)
        self.wake()

    def wake(self):
        """Interrupt select(); safe to call from any thread."""
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def install_signal_handlers(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: self.stop())
        # The Python-level handler runs only between bytecodes: a signal
        # landing just before select() would wait for select() to return
        # (up to the next timer). The C-level handler writes to this
        # descriptor at once, so select() wakes and the handler runs.
        signal.set_wakeup_fd(self._wake_w.fileno())
        self._signals = True

    def _drain_wakeups(self, mask):
        try:
            while self._wake_r.recv(512):
                pass
        except BlockingIOError:
            pass
        calls = self._from_threads
        while calls:
            self.call_guarded("a call from another thread", calls.popleft())

    def _turn(self, timeout=None):
        for hook in self.turn_hooks:
            self.call_guarded("a turn hook", hook)
        if self.to_flush:
            # A later hook queued answers after _flush ran (the group
            # commit wakes the live streams of what it published): out now,
            # not a select() later.
            self.call_guarded("a turn hook", self._flush)
        if self.to_flush or self._soon:
            # Sending queued more, or work waits for the end of the turn:
            # no sleeping.
            timeout = 0
        elif timeout is None:
            timeout = self._timeout()
        for key, mask in self.selector.select(timeout):
            key.data(mask)
        self._run_timers()
        self._run_soon()

    def _run_soon(self):
        # Only what was queued before this point: a call that asks for
        # another one gets it next turn, so it cannot hold the loop.
        calls, self._soon = self._soon, deque()
        for fn in calls:
            self.call_guarded("a call_soon", fn)

    def _shutdown(self):
        for listener in self.listeners:
            listener.close()
        # Answers already produced (or waiting for their commit) still go
        # out; connections with nothing to say are closed now. A long-lived
        # answer never ends by itself: once what it gave is written, it
        # waits for nothing more.
        for channel in list(self.channels):
            channel.finish()
        deadline = time.monotonic() + DRAIN_SECONDS
        while (time.monotonic() < deadline
               and not all(channel.held_open() for channel in self.channels)):
            self._turn(timeout=min(0.2, deadline - time.monotonic()))
        for channel in list(self.channels):
            channel.close()
        for service in reversed(self.services):
            service.stop()
        if self._signals:
            signal.set_wakeup_fd(-1)  # before the descriptor closes
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()


class Listener:
    def __init__(self, loop, host, port, factory, limit, refusal, backlog):
        self.loop = loop
        self.factory = factory
        self.limit_name, self.limit = limit
        self.refusal = refusal
        # This listener's open channels (each removes itself as it closes).
        self.open = set()
        self._refused = 0
        self._refusal_logged = -REFUSAL_LOG_SECONDS
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(backlog)
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()[:2]
        loop.selector.register(self.sock, selectors.EVENT_READ, self._accept)

    def _accept(self, mask):
        # Accept everything waiting, bounded so one busy listener cannot
        # starve the rest of the turn.
        for _ in range(256):
            try:
                sock, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # EMFILE and friends: the connection stays in the backlog
                # and is retried next turn.
                log.warning("accept failed: %s", exc)
                return
            if len(self.open) >= self.limit:
                self._refuse(sock, addr)
                continue
            try:
                channel = self.factory(self.loop, sock, addr)
                if not channel.closed:
                    channel.siblings = self.open
                    self.open.add(channel)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception:
                log.exception("could not set up connection from %s", addr)
                sock.close()

    def _refuse(self, sock, addr):
        # One line per REFUSAL_LOG_SECONDS with a count: a connection storm
        # is reported, not allowed to flood the log.
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged >= REFUSAL_LOG_SECONDS:
            log.warning("%s (%d) reached: refused %d connection(s), latest %s",
                        self.limit_name, self.limit, self._refused, _peer(addr))
            self._refused = 0
            self._refusal_logged = now
        try:
            sock.setblocking(False)
            sock.send(self.refusal)
        except OSError:
            pass
        sock.close()

    def close(self):
        if self.sock.fileno() >= 0:
            self.loop.selector.unregister(self.sock)
            self.sock.close()


class Channel:
    """One connection: a socket, a producer queue and an output buffer.

    Subclasses implement `received(data)` and may override `eof()`. They
    queue answers with `push(producer)` and call `finish()` to close once
    everything queued is written.

    A subclass may set ``transport`` before calling ``__init__``: an object
    with ``receive(ciphertext) -> plaintext``, ``send(plaintext) -> bytes
    taken``, ``outgoing() -> ciphertext to write``, ``wants_write``,
    ``peer_closed`` and ``goodbye()`` (`tls.TLSLayer`). `out` then still
    holds plaintext: a piece the transport took stays in it until its
    ciphertext is all on the socket, so OUTPUT_CAP, ``sent()`` and
    ``flushed()`` mean what they mean for a plain channel.
    """

    transport = None
    # Ciphertext the socket has not taken yet; stays empty without a transport.
    _ciphertext = b""
    # False: close as an error would (a reset), without the transport's
    # goodbye, so the peer cannot take what it got for a whole answer.
    goodbye = True

    def __init__(self, loop, sock, addr):
        sock.setblocking(False)
        self.loop = loop
        self.sock = sock
        self.addr = addr
        self.producers = deque()
        self.out = bytearray()
        # Callbacks waiting for the output buffer to drain to a given total.
        self._flush_waiters = deque()
        self._sent = 0
        self._queued = 0
        self._barrier = False
        self._mask = 0
        self.closing = False
        self.closed = False
        self.peer_closed = False
        # Close with a lingering close (see LINGER_SECONDS) once finished.
        self.linger = False
        self._linger_left = None  # bytes still to drop while lingering
        self.last_activity = time.monotonic()
        # The set of channels this one counts in (its listener's), if any.
        self.siblings = None
        if self.transport is not None:
            self._ciphertext = bytearray()
            # Bytes at the start of `out` the transport has taken, whose
            # ciphertext is not all written yet.
            self._taken = 0
        loop.channels.add(self)
        self._update_interest()

    # -- for subclasses -----------------------------------------------------

    def received(self, data):
        raise NotImplementedError

    def eof(self):
        """The peer closed its side: answer what is queued, then close."""
        self.finish()

    def output_full(self):
        return len(self.out) >= OUTPUT_CAP or len(self.producers) > QUEUE_CAP

    def push(self, producer):
        """Queue an answer. It is written at the end of this loop turn,
        with every other answer of the turn, so a peer with many requests
        in flight gets them in one go rather than one wakeup each."""
        self.producers.append(producer)
        self.loop.to_flush.add(self)

    def finish(self):
        """Close after everything queued has been written."""
        self.closing = True
        self.send_now()

    def wake(self):
        """Look at this channel's producers again with this turn's batched
        writes: for code outside its own socket events (a worker's result,
        an event for a stream) that made a held producer ready. Loop thread
        only; another thread asks ``loop.call_soon_threadsafe(channel.wake)``."""
        if not self.closed:
            self.loop.to_flush.add(self)

    def held_open(self):
        """True while this channel's current answer is long-lived (its
        producer's ``long_lived`` is true) and all it gave is written: the
        channel waits for events, not for its peer, so the idle sweep and a
        stop leave it be. A peer that stops reading leaves output unsent,
        and the channel counts as idle again."""
        producers = self.producers
        return bool(producers and not self.out and not self._ciphertext
                    and getattr(producers[0], "long_lived", False))

    # -- the loop's side ----------------------------------------------------

    def _ready(self, mask):
        if mask & selectors.EVENT_READ:
            self.guarded(self._read)
        if mask & selectors.EVENT_WRITE and not self.closed:
            self.guarded(self.send_now)

    def guarded(self, fn):
        """Run `fn` for this channel; if it fails, log and close this
        channel only. Use it for any work on a channel that starts outside
        its own socket events (a commit releasing an answer, a timer)."""
        try:
            fn()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:
            log.exception("connection from %s failed; closing it", _peer(self.addr))
            self.close()

    def _read(self):
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno in _DISCONNECTED:
                self.close()
                return
            raise
        self.last_activity = time.monotonic()
        if self._linger_left is not None:
            self._linger_left -= len(data)
            if not data or self._linger_left <= 0:
                self.close()
            return
        if self.transport is not None and data:
            self._unwrap(data)
        elif data:
            self.received(data)
        else:
            self.peer_closed = True
            self.eof()
        self._update_interest()

    def _unwrap(self, data):
        """Hand the plaintext in `data` (ciphertext) to `received`, and the
        transport's own close to `eof`. What the transport answers (its
        handshake) goes out with the turn's flush."""
        transport = self.transport
        try:
            plain = transport.receive(data)
        except TransportError as exc:
            self._transport_failed(exc)
            return
        if transport.wants_write:
            self.loop.to_flush.add(self)
        if plain:
            self.received(plain)
        if transport.peer_closed and not (self.peer_closed or self.closed):
            self.peer_closed = True
            self.eof()

    def send_now(self):
        """Fill the output buffer from ready producers and write what the
        socket takes; close if finishing and all is written."""
        if self.closed:
            return
        self._refill()
        transport = self.transport
        if self.out or transport is not None:
            try:
                sent = self.sock.send(self.out) if transport is None else self._wrap()
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                if exc.errno in _DISCONNECTED:
                    self.close()
                    return
                raise
            if sent:
                del self.out[:sent]
                self._sent += sent
                self.last_activity = time.monotonic()
                self.sent(sent)
                if self._flush_waiters:
                    self._notify_flushed()
        # One chunk per call: what is left waits for the next write event,
        # so every ready connection gets its turn.
        if self.closing and not self.out and not self.producers:
            if not self.linger or self.peer_closed:
                self.close()
                return
            self._start_lingering()
        self._update_interest()

    def _wrap(self):
        """Write `out` through the transport; returns how many of its bytes
        are now on the socket, as ciphertext. The transport takes the next
        piece only once the ciphertext before it is all written."""
        if not self._write_ciphertext():
            return 0
        done = self._taken
        try:
            self._taken = self.transport.send(self.out[done:done + TLS_PIECE])
        except TransportError as exc:
            self._transport_failed(exc)
            return 0
        if self._taken and self._write_ciphertext():
            done += self._taken
            self._taken = 0
        return done

    def _write_ciphertext(self):
        """Write what the transport has to say; True once all of it is on
        the socket. Errors other than a full socket are the caller's."""
        pending = self._ciphertext
        pending += self.transport.outgoing()
        if pending:
            try:
                del pending[:self.sock.send(pending)]
            except (BlockingIOError, InterruptedError):
                pass
        return not pending

    def _transport_failed(self, exc):
        log.info("%s: %s; closing", _peer(self.addr), exc)
        self.close()

    def sent(self, nbytes):
        """Hook: `nbytes` more were written to the socket (plaintext, under
        a transport)."""

    def _start_lingering(self):
        if self._linger_left is not None:
            return
        self._linger_left = LINGER_BYTES
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self.loop.call_later(LINGER_SECONDS, self.close)

    def _refill(self):
        producers = self.producers
        while producers and not self._barrier and len(self.out) < FILL_SIZE:
            producer = producers[0]
            if not getattr(producer, "ready", True):
                break
            chunk = producer.more()
            if chunk:
                if isinstance(chunk, str):
                    chunk = chunk.encode("latin-1")
                self.out += chunk
                self._queued += len(chunk)
                continue
            if not getattr(producer, "ready", True):
                break  # it waits for a result (a Pool's), it is not done
            producers.popleft()
            flushed = getattr(producer, "flushed", None)
            if flushed is not None:
                self._barrier = True
                self._flush_waiters.append((self._queued, flushed))
                self._notify_flushed()

    def _notify_flushed(self):
        waiters = self._flush_waiters
        while waiters and waiters[0][0] <= self._sent:
            callback = waiters.popleft()[1]
            self._barrier = bool(waiters)
            callback()

    def _update_interest(self):
        if self.closed:
            return
        out, producers = self.out, self.producers
        mask = 0
        if self._linger_left is not None:
            mask = selectors.EVENT_READ  # only to drop what still comes
        elif not (self.closing or self.peer_closed
                  or len(out) >= OUTPUT_CAP or len(producers) > QUEUE_CAP):
            mask = selectors.EVENT_READ
        # A channel waiting for the turn's flush is written before select()
        # anyway: asking for write readiness now would cost two epoll
        # changes per request (on now, off again once the flush sent all).
        if (out or self._ciphertext
                or (producers and not self._barrier and getattr(producers[0], "ready", True))) \
                and self not in self.loop.to_flush:
            mask |= selectors.EVENT_WRITE
        if mask == self._mask:
            return
        selector = self.loop.selector
        if not self._mask:
            selector.register(self.sock, mask, self._ready)
        elif not mask:
            selector.unregister(self.sock)
        else:
            selector.modify(self.sock, mask, self._ready)
        self._mask = mask

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self._mask:
            self.loop.selector.unregister(self.sock)
            self._mask = 0
        self.loop.channels.discard(self)
        if self.siblings is not None:
            self.siblings.discard(self)
        if self.transport is not None and self.goodbye:
            self._say_goodbye()
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed_hook()

    def _say_goodbye(self):
        # One try, never waited for: the peer may be gone already.
        self.transport.goodbye()
        data = self._ciphertext + self.transport.outgoing()
        if data:
            try:
                self.sock.send(data)
            except OSError:
                pass

    def closed_hook(self):
        """Hook: the channel was closed."""


class Busy(Exception):
    """A client already has as much work queued or running on a `Pool` as
    it may."""


class Job:
    """A piece of work submitted to a `Pool`: `cancel()` drops it if no
    worker has started it yet."""

    __slots__ = ("pool", "client", "work", "future", "started", "cancelled")

    def __init__(self, pool, client, work):
        self.pool = pool
        self.client = client
        self.work = work
        self.future = Future()
        self.started = False
        self.cancelled = False

    def cancel(self):
        self.pool._cancel(self)


class Pool:
    """Worker threads for work that would hold the loop up, as a service.

    Each thread makes its own context with `make_context()` (its own
    database connection: SQLite connections stay with their thread) at
    its first piece of work, again at the next if that failed (a database
    unreachable then fails that piece only), and closes it when the pool
    stops. `submit(work, done, client)` runs
    ``work(context)`` on a thread and then ``done(future)`` on the loop
    thread. Work that spends its time in C code that releases the GIL
    (SQLite, hashing) runs truly beside the loop.

    The pool is fair, so one client can only slow itself down: work waits
    in one queue per client (its address), and a free worker takes the
    next piece from the client with the fewest pieces running, the next
    in turn among equals. A client with sixty graphs queued delays
    another's one graph by at most the work already running: the first
    worker free takes it.
    A client has at most `per_client` pieces queued or running (more raise
    `Busy`), and a piece whose client has gone is cancelled before it
    starts. ``done``, ``dropped`` and ``refused`` count outcomes.
    """

    def __init__(self, loop, threads, make_context, per_client):
        self.loop = loop
        self.threads = threads
        self.make_context = make_context
        self.per_client = per_client
        self.done = self.dropped = self.refused = 0
        self._lock = threading.Condition()
        # client -> deque of queued Jobs; the first client is served next.
        self._queues = OrderedDict()
        # client -> Jobs queued or running; client -> Jobs running.
        self._load = {}
        self._running = {}
        self._stopping = False
        self._workers = []

    def start(self):
        self._stopping = False
        for n in range(self.threads):
            worker = threading.Thread(target=self._serve, name="txm-worker-%d" % n, daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self):
        """Finish what is queued, then end the threads."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        for worker in self._workers:
            worker.join()
        self._workers = []

    def submit(self, work, done, client):
        """Queue ``work(context)`` for `client`; ``done(future)`` follows on
        the loop thread. Returns the `Job`; raises `Busy` when the client
        already has `per_client` pieces queued or running."""
        with self._lock:
            load = self._load.get(client, 0)
            if load >= self.per_client:
                self.refused += 1
                raise Busy(client)
            job = Job(self, client, work)
            self._load[client] = load + 1
            self._queues.setdefault(client, deque()).append(job)
            self._lock.notify()
        job.future.add_done_callback(
            lambda finished: self.loop.call_soon_threadsafe(lambda: done(finished)))
        return job

    def _cancel(self, job):
        with self._lock:
            if job.started or job.cancelled:
                return
            job.cancelled = True
            queue = self._queues[job.client]
            queue.remove(job)
            if not queue:
                del self._queues[job.client]
            _one_less(self._load, job.client)
            self.dropped += 1

    def _next(self):
        """The next Job, from the client with the fewest running, taking
        equals in turn; None once stopping and idle."""
        with self._lock:
            while not self._queues:
                if self._stopping:
                    return None
                self._lock.wait()
            # At most `threads` clients have work running, so either scan
            # reads at most threads + 1 of those waiting.
            client = next((c for c in self._queues if c not in self._running), None)
            if client is None:
                client = min(self._queues, key=self._running.__getitem__)
            queue = self._queues.pop(client)
            job = queue.popleft()
            if queue:
                self._queues[client] = queue  # to the back of the line
            self._running[client] = self._running.get(client, 0) + 1
            job.started = True
            return job

    def _serve(self):
        context = None
        try:
            while True:
                job = self._next()
                if job is None:
                    return
                failure = None
                try:
                    if context is None:
                        # At the first job, and again after a failure to: a
                        # database unreachable now fails this job only.
                        context = self.make_context()
                    result = job.work(context)
                except Exception as exc:
                    failure = exc
                # Unloaded before the result is out: a client whose answer
                # is back may at once ask for the next.
                with self._lock:
                    _one_less(self._load, job.client)
                    _one_less(self._running, job.client)
                    self.done += 1
                if failure is None:
                    job.future.set_result(result)
                else:
                    job.future.set_exception(failure)
        finally:
            close = getattr(context, "close", None)
            if close is not None:
                close()


def _one_less(counts, client):
    """Count one piece of `client`'s work off `counts`, dropping it at none."""
    left = counts[client] - 1
    if left:
        counts[client] = left
    else:
        del counts[client]


def _peer(addr):
    try:
        return "%s:%s" % addr[:2]
    except TypeError:
        return str(addr)


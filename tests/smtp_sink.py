#!/usr/bin/env python3
"""A real SMTP listener on 127.0.0.1 for the tests, the benchmark and trying
alarm mail by hand.

    python3 tests/smtp_sink.py --port 1025          # prints every message it takes

In a test::

    with SMTPSink() as sink:            # a port the OS picks: sink.port
        ...                             # point [email] EMAIL_PORT at it
        sink.mode = "refuse4"           # switch at any time
        received = sink.wait_for(1)     # [Received], or AssertionError

Design. A ``socketserver.ThreadingTCPServer`` (one thread per connection:
asyncore and smtpd are gone from Python 3.12) speaking what ``smtplib``
needs of RFC 5321: EHLO/HELO, MAIL, RCPT, DATA (dot-stuffing undone),
RSET, NOOP, QUIT, and AUTH PLAIN when it is given `users`. STARTTLS is not
offered. It binds 127.0.0.1 only, so a test never opens a relay to the
network, and reuses its address, so a sink stopped and started again can
take its old port back (``SMTPSink(port=old_port)``).

`mode` decides what a client meets, read when it matters:

* ``accept``: every recipient is taken and every message kept
  (`messages`);
* ``refuse4``: RCPT answers ``451`` (a transient refusal: try later);
* ``refuse5``: RCPT answers ``550`` (a permanent one: no such user);
* ``hang``: a new connection is accepted and never answered, not even
  with the greeting (its thread waits until the client goes or the sink
  stops; connections opened before the switch carry on).

`refused` counts the refusals, `connections` the connections accepted.
Nothing here is texmate_ds's: the sink is a stand-in for any mail server.
"""

import argparse
import base64
import binascii
import collections
import email
import email.policy
import select
import signal
import socketserver
import sys
import threading
import time

MODES = ("accept", "refuse4", "refuse5", "hang")
# Longest command line or message line taken (RFC 5321 says 512 and 1000;
# a little room for clients that stretch it).
LINE_LIMIT = 4096
# Largest message taken, as advertised in EHLO's SIZE.
SIZE_LIMIT = 10 * 1024 * 1024
# Seconds a silent client keeps its connection.
IDLE_SECONDS = 60

Received = collections.namedtuple("Received", "mail_from rcpt_tos data user when")
Received.__doc__ = """One message the sink took: the envelope (`mail_from`,
`rcpt_tos`), the message as sent (`data`, bytes, CRLF lines), the user it
signed in as ('' without AUTH), and when (time.time())."""


def parsed(received):
    """`received`'s message as an ``email.message.EmailMessage``."""
    return email.message_from_bytes(received.data, policy=email.policy.default)


class _Session(socketserver.StreamRequestHandler):
    timeout = IDLE_SECONDS

    def handle(self):
        try:
            self._converse(self.server.sink)
        except OSError:
            pass     # the client went, or stayed silent past IDLE_SECONDS

    def _converse(self, sink):
        with sink._lock:
            sink.connections += 1
        if sink.mode == "hang":
            self._hang(sink)
            return
        self.reply("220 smtp-sink ready")
        self.reset()
        self.user = ""
        while not sink._closing.is_set():
            line = self.rfile.readline(LINE_LIMIT)
            if not line:
                return
            if not line.endswith(b"\n"):
                self.reply("500 5.5.2 line too long")
                return
            verb, _, argument = line.decode("utf-8", "replace").strip().partition(" ")
            handler = getattr(self, "do_" + verb.upper(), None) if verb.isalpha() else None
            if handler is None:
                self.reply("500 5.5.1 command not recognized")
            elif handler(argument.strip()) is False:
                return

    def _hang(self, sink):
        # Never a byte back; leave when the client gives up or the sink stops.
        while not sink._closing.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.2)
            if readable:
                try:
                    if not self.connection.recv(4096):
                        return
                except OSError:
                    return

    def reply(self, text):
        self.wfile.write(text.encode("utf-8") + b"\r\n")

    def reset(self):
        self.mail_from = None
        self.rcpt_tos = []

    # -- commands ---------------------------------------------------------

    def do_EHLO(self, argument):
        self.reset()
        lines = ["smtp-sink", "8BITMIME", "SMTPUTF8", "SIZE %d" % SIZE_LIMIT]
        if self.server.sink.users:
            lines.append("AUTH PLAIN")
        self.reply("\r\n".join("250-" + line for line in lines[:-1]) + "\r\n250 " + lines[-1])

    def do_HELO(self, argument):
        self.reset()
        self.reply("250 smtp-sink")

    def do_AUTH(self, argument):
        users = self.server.sink.users
        mechanism, _, initial = argument.partition(" ")
        if not users or mechanism.upper() != "PLAIN":
            self.reply("504 5.5.4 unrecognized authentication type")
            return
        if not initial:
            self.reply("334 ")
            initial = self.rfile.readline(LINE_LIMIT).decode("ascii", "replace").strip()
        try:
            _, user, password = base64.b64decode(initial, validate=True).decode().split("\0")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            self.reply("501 5.5.2 cannot decode the response")
            return
        if users.get(user) != password:
            self.reply("535 5.7.8 authentication credentials invalid")
            return
        self.user = user
        self.reply("235 2.7.0 authentication successful")

    def do_MAIL(self, argument):
        if not argument.upper().startswith("FROM:"):
            self.reply("501 5.5.4 syntax: MAIL FROM:<address>")
            return
        self.reset()
        self.mail_from = _address(argument[5:])
        self.reply("250 2.1.0 Ok")

    def do_RCPT(self, argument):
        if self.mail_from is None:
            self.reply("503 5.5.1 MAIL first")
            return
        if not argument.upper().startswith("TO:"):
            self.reply("501 5.5.4 syntax: RCPT TO:<address>")
            return
        sink = self.server.sink
        mode = sink.mode
        if mode in ("refuse4", "refuse5"):
            with sink._lock:
                sink.refused += 1
            self.reply("451 4.3.0 try again later (smtp-sink: refuse4)" if mode == "refuse4"
                       else "550 5.1.1 no such user here (smtp-sink: refuse5)")
            return
        self.rcpt_tos.append(_address(argument[3:]))
        self.reply("250 2.1.5 Ok")

    def do_DATA(self, argument):
        if not self.rcpt_tos:
            self.reply("503 5.5.1 RCPT first")
            return
        self.reply("354 End data with <CR><LF>.<CR><LF>")
        lines, size = [], 0
        while True:
            line = self.rfile.readline(LINE_LIMIT)
            if not line:
                return False     # the client went mid-message: nothing kept
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]
            size += len(line)
            if size <= SIZE_LIMIT:
                lines.append(line)
        if size > SIZE_LIMIT:
            self.reply("552 5.3.4 message too big")
        else:
            number = self.server.sink._keep(Received(
                self.mail_from, list(self.rcpt_tos), b"".join(lines), self.user, time.time()))
            self.reply("250 2.0.0 Ok: queued as %d" % number)
        self.reset()

    def do_RSET(self, argument):
        self.reset()
        self.reply("250 2.0.0 Ok")

    def do_NOOP(self, argument):
        self.reply("250 2.0.0 Ok")

    def do_VRFY(self, argument):
        self.reply("252 2.0.0 cannot verify, will accept")

    def do_QUIT(self, argument):
        self.reply("221 2.0.0 Bye")
        return False


def _address(text):
    """The address in ``<a@b> PARAMS`` (or a bare one)."""
    text = text.strip()
    if text.startswith("<"):
        return text[1:text.find(">")] if ">" in text else text[1:]
    return text.split(" ")[0]


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False


class SMTPSink:
    """An SMTP server on 127.0.0.1:`port` (0: the OS picks; `port` then
    says which) in a thread; `stop()` (or leaving ``with``) ends it.

    `users` ({name: password}) makes it offer AUTH PLAIN and take only
    those. `on_message(received)`, if given, is called (on the
    connection's thread) for every message kept."""

    def __init__(self, port=0, mode="accept", users=None, on_message=None):
        self._lock = threading.Condition()
        self._closing = threading.Event()
        self.mode = mode
        self.users = dict(users or {})
        self.on_message = on_message
        self.messages = []
        self.refused = 0
        self.connections = 0
        self._server = _Server(("127.0.0.1", port), _Session)
        self._server.sink = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="smtp-sink", daemon=True)
        self._thread.start()

    @property
    def mode(self):
        return self._mode

    @mode.setter
    def mode(self, mode):
        if mode not in MODES:
            raise ValueError("mode %r: one of %s" % (mode, ", ".join(MODES)))
        self._mode = mode

    def _keep(self, received):
        with self._lock:
            self.messages.append(received)
            number = len(self.messages)
            self._lock.notify_all()
        if self.on_message is not None:
            self.on_message(received)
        return number

    def wait_for(self, count, timeout=20.0):
        """The messages once there are `count` of them at least; waits up to
        `timeout` seconds, then AssertionError naming what came."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("smtp-sink: %d messages after %.1f s, not %d" % (
                        len(self.messages), timeout, count))
                self._lock.wait(left)
            return list(self.messages)

    def stop(self):
        """Close the listener and every connection's thread's wait."""
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="An SMTP sink on 127.0.0.1 that prints every message it takes.")
    parser.add_argument("--port", type=int, default=1025, help="port (default 1025; 0: any)")
    parser.add_argument("--mode", choices=MODES, default="accept",
                        help="what clients meet (default accept)")
    args = parser.parse_args(argv)

    def show(received):
        print("--- message %s from %s to %s" % (
            time.strftime("%H:%M:%S", time.localtime(received.when)), received.mail_from,
            ", ".join(received.rcpt_tos)))
        message = parsed(received)
        for name, value in message.items():
            print("%s: %s" % (name, value))
        print()
        print(message.get_content().rstrip("\n") if not message.is_multipart()
              else received.data.decode("utf-8", "replace"))
        print(flush=True)

    # SIGTERM ends it as Ctrl-C does (a sink started in the background
    # ignores SIGINT).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        sink = SMTPSink(args.port, args.mode, on_message=show)
    except OSError as exc:
        print("smtp_sink: cannot listen on 127.0.0.1:%d: %s" % (args.port, exc.strerror),
              file=sys.stderr)
        return 2
    print("smtp_sink: listening on 127.0.0.1:%d (%s); Ctrl-C ends it" % (sink.port, sink.mode),
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

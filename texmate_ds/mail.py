"""The mail service: sends the outbox's letters (emails and webhooks) from a
thread of its own, and retries them until they go or their time is up.

What a letter says is decided when its alarm is stored: `texmate_ds.alarms`
writes it to the outbox (`store.alarms.Outbox`) in the alarm's own
transaction, so an alarm and its letters are on disk together or not at
all. This module only delivers them.

Design.

* `MailService` is a loop service (``start()``/``stop()``) with one
  thread and its own `store.Database` connection; it never touches the
  loop thread, so a slow, hanging or refusing mail server delays no
  meter's answer and no page. Every network call has a timeout
  (`TIMEOUT`, each connect, read and write).
* Waking. `wake()` (any thread; the alarm code calls it once its
  transaction committed) sends what is due at once. Otherwise the thread
  sleeps until the soonest retry (`Outbox.next_due`), and looks at the
  outbox every `POLL_SECONDS` anyway: another process (``manage``, or
  another server sharing a PostgreSQL database) may have queued letters,
  and its commit wakes nobody here.
* One sender a letter. Each letter of a batch is claimed just before its
  attempt (`Outbox.claim`: still queued and due, and where several
  processes share the database a row lock, ``FOR NO KEY UPDATE SKIP LOCKED``,
  held until the attempt's record commits); one another process's
  service holds, or has just sent, is passed over. So of several mail
  services each letter is tried by one. Should recording the attempt
  fail, the rollback lets go of the letter, which is claimed again before
  the record is retried.
* Bounded: a batch is at most `BATCH` due letters, soonest first; the
  emails of a batch share one SMTP connection (one at a time, never
  more), the webhooks are posted one by one.
* Email: ``smtplib`` per ``[email]``: plain, STARTTLS (``EMAIL_USE_TLS``)
  or SMTP over TLS (``EMAIL_USE_SSL``), both checking the server's
  certificate against the system's CAs; a login when ``EMAIL_HOST_USER``
  is set. The message is an ``email.message.EmailMessage`` (`message`):
  Subject, From (``DEFAULT_FROM_EMAIL``), To, Date, a Message-ID made of
  the letter's id and creation time (the same on every attempt, so a
  letter sent twice can be recognised), ``Auto-Submitted:
  auto-generated`` (no vacation replies), and the body as UTF-8 text in
  7-bit transfer encoding, which every server takes.
* Webhook: ``urllib.request`` POSTs the letter's body (the JSON the alarm
  code made) with ``Content-Type: application/json`` to its URL (http
  or https only; redirects are not followed: a POST redirected would
  lose its body). A 2xx answer is sent.
* Each attempt is recorded (`Outbox.attempted`: its time, the server's
  reply, the new state) and committed on its own, just after the server
  answered, in a transaction of one statement, so this connection never
  holds the write lock the loop's group commit needs for longer than
  that. Its commits are not fsync'ed (``synchronous = NORMAL``): WAL
  keeps them through a crash of the process, and only a power cut could
  lose the last ones, which makes those letters go out again, never get
  lost.
* Outcomes (`classify` decides): *sent*; *failed at once* when the answer
  is permanent for that letter (an SMTP 5xx to its RCPT or to its
  message's DATA, such as ``550 no such user``; a webhook's 4xx other
  than 408 and 429, or a redirect; a letter that cannot be made); and
  otherwise *retried*: 4xx answers, the server unreachable or timing
  out, and 5xx answers to the session (greeting, EHLO, STARTTLS, login,
  MAIL FROM), which are this server's settings at fault and the same for
  every letter, so they wait for the operator's fix rather than failing
  everything.
* Retries (`retry_delay`): exponential backoff with jitter. The n-th
  failure waits a random time between half and all of ``30 s x 2^(n-1)``,
  at most an hour: the first retry within 30 s, then 30-60 s, 1-2 min,
  ... up to 30-60 min apart. A letter is retried until
  ``EMAIL_RETRY_HOURS`` after it was queued (its last attempt at that
  moment), then failed. The admin's "retry" queues it again, due now.
  When the SMTP server cannot be reached at all, the batch's other emails
  count that same attempt (and its reply) without trying each.
* Restarts. A clean stop (SIGTERM) lets the letter in hand finish and
  records it, or, if its message was not being sent yet (connecting,
  EHLO, MAIL, RCPT), abandons it at once, uncounted, by closing its
  socket; the rest stay queued. So nothing is sent twice across a clean
  restart. After a crash (kill -9) the letters not marked sent are sent
  again: nothing is lost, but a letter being sent at that very moment
  (accepted by the server, not yet recorded) goes out a second time.
  A stop waits up to ``TIMEOUT`` + 1 s for the letter in hand.

Tests shorten the retry schedule with the environment variable
``TXM_MAIL_TIME_SCALE`` (a factor above 0 and at most 1 applied to the
backoff, its one-hour ceiling and ``EMAIL_RETRY_HOURS``); it is no setting
and an operator has no use for it.
"""

import email.message
import email.policy
import email.utils
import logging
import random
import re
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from texmate_ds import __version__, store, times

log = logging.getLogger("texmate_ds.mail")

# Seconds each network operation (connect, a read, a write) may take.
TIMEOUT = 20.0
# Letters per batch, at most.
BATCH = 50
# Seconds between two looks at the outbox when nothing wakes the thread.
POLL_SECONDS = 2.0
# The first retry comes within this many seconds; they double up to LONGEST_WAIT.
FIRST_RETRY = 30.0
LONGEST_WAIT = 3600.0
SCALE_VARIABLE = "TXM_MAIL_TIME_SCALE"

# Built as 7-bit: quoted-printable or base64 for any non-ASCII body, so no
# server needs 8BITMIME; international addresses switch to SMTPUTF8.
_POLICY = email.policy.SMTP.clone(cte_type="7bit")
_LINE_BREAKS = re.compile(r"[\r\n]+")
# Of a webhook's answer, this much goes into the reply recorded.
WEBHOOK_REPLY_BYTES = 200


def retry_delay(failures, rng=random.random, scale=1.0):
    """Seconds to wait after a letter's `failures`-th failed attempt."""
    ceiling = min(LONGEST_WAIT, FIRST_RETRY * 2 ** min(failures - 1, 16)) * scale
    return ceiling * (0.5 + 0.5 * rng())


def message(letter, sender, utf8=False):
    """The EmailMessage of the email `letter`, from `sender`
    (``DEFAULT_FROM_EMAIL``). ValueError if it cannot be made."""
    msg = email.message.EmailMessage(policy=email.policy.SMTPUTF8 if utf8 else _POLICY)
    # A header cannot hold a line break; a template may have made one.
    msg["Subject"] = _LINE_BREAKS.sub(" ", letter.subject).strip()
    msg["From"] = sender
    msg["To"] = letter.recipient
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = "<txm.%d.%d@%s>" % (letter.id, letter.created, _domain(sender))
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Mailer"] = "texmate_ds %s" % __version__
    msg.set_content(letter.body, charset="utf-8")
    if msg.defects or msg["To"].defects:
        raise ValueError("bad address %r" % letter.recipient)
    return msg


def _domain(sender):
    return email.utils.parseaddr(sender)[1].rpartition("@")[2] or "localhost"


class _Abandoned(Exception):
    """The letter in hand was dropped by a stop before its message went."""


class _Unreachable(Exception):
    """The SMTP server could not be reached or would not start a session
    (the reply as text): the batch's other emails meet the same."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None     # the 3xx then comes back as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirect)


class MailService:
    """Sends the outbox's due letters on its own thread; see the module."""

    def __init__(self, settings, scale=None):
        self.settings = settings
        self.scale = times.time_scale(SCALE_VARIABLE) if scale is None else scale
        self.window = int(settings.EMAIL_RETRY_HOURS * times.HOUR * self.scale)
        self.sender = settings.DEFAULT_FROM_EMAIL
        self.envelope_sender = email.utils.parseaddr(self.sender)[1] or self.sender
        self.random = random.Random()
        # Letters sent, retried and failed since the start (for the log and /metrics).
        self.sent = self.retried = self.failed = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = None
        # The SMTP connection in hand, and whether its message is on its
        # way (then a stop lets it finish): stop() reads them.
        self._lock = threading.Lock()
        self._smtp = None
        self._sending = False
        self._aborted = False
        self._ehlo_name = None

    # -- the service --------------------------------------------------------

    def start(self):
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="txm-mail", daemon=True)
        self._thread.start()

    def wake(self):
        """Look at the outbox now (letters were queued). Any thread."""
        self._wake.set()

    def stop(self):
        """Finish or abandon the letter in hand, leave the rest queued."""
        self._stopping = True
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        deadline = time.monotonic() + TIMEOUT + 1
        while thread.is_alive() and time.monotonic() < deadline:
            self._abort_unsent()
            thread.join(0.05)
        if thread.is_alive():
            log.warning("mail: the letter in hand did not finish within %d s; left to the "
                        "process's exit (it may be sent again after the restart)", TIMEOUT + 1)

    def _abort_unsent(self):
        """Close the connection in hand if its message is not on its way:
        nothing was delivered, so the letter may simply stay queued."""
        with self._lock:
            smtp = self._smtp
            if smtp is None or self._sending or self._aborted:
                return
            sock = getattr(smtp, "sock", None)
            if sock is None:
                return      # still resolving or connecting: next time round
            self._aborted = True
        try:
            # socket.socket's own shutdown, under TLS too: it wakes the
            # thread blocked reading this socket at once.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def _run(self):
        db = None
        while not self._stopping:
            try:
                if db is None:
                    db = store.Database(store.address(self.settings), durable=False)
                # Cleared before looking: a wake() from now on is not lost.
                self._wake.clear()
                if self._send_batch(db):
                    continue
                self._wake.wait(self._pause(db))
            except Exception:
                log.exception("mail: the outbox could not be read or written; trying again "
                              "in %d s", POLL_SECONDS)
                if db is not None and db.in_transaction:
                    try:
                        db.rollback()
                    except store.StoreError:
                        pass
                self._wake.wait(POLL_SECONDS)
        if db is not None:
            db.close()

    def _pause(self, db):
        """Seconds until the soonest retry, POLL_SECONDS at most."""
        soonest = db.outbox.next_due()
        if soonest is None:
            return POLL_SECONDS
        return min(POLL_SECONDS, max(0.0, (soonest - times.now()) / times.SECOND))

    # -- a batch --------------------------------------------------------------

    def _send_batch(self, db):
        """Send up to BATCH due letters; False if none was due."""
        letters = db.outbox.due(times.now(), BATCH)
        if not letters:
            return False
        unreachable = None
        outcomes = {"sent": 0, "queued": 0, "failed": 0}
        # The emails first, on one connection closed before the webhooks:
        # a server does not wait long for a client gone quiet.
        letters.sort(key=lambda letter: letter.kind != "email")
        try:
            for letter in letters:
                if self._stopping:
                    break
                letter = db.outbox.claim(letter, times.now())
                if letter is None:
                    db.rollback()       # another process has it, or had it
                    continue
                if letter.kind == "webhook":
                    self._close_smtp()
                    outcome, reply = self._post(letter)
                elif letter.kind != "email":
                    outcome, reply = "failed", "unknown kind %r" % letter.kind
                elif unreachable is not None:
                    outcome, reply = "retry", unreachable
                else:
                    try:
                        outcome, reply = self._mail(letter)
                    except _Unreachable as exc:
                        unreachable = str(exc)
                        outcome, reply = "retry", unreachable
                    except _Abandoned:
                        break
                state = self._record(db, letter, outcome, reply)
                outcomes[state] += 1
        finally:
            self._close_smtp()
        self.sent += outcomes["sent"]
        self.retried += outcomes["queued"]
        self.failed += outcomes["failed"]
        if outcomes["queued"] or outcomes["failed"]:
            log.warning("mail: %d sent, %d to retry, %d failed%s", outcomes["sent"],
                        outcomes["queued"], outcomes["failed"],
                        " (%s)" % unreachable if unreachable else "")
        else:
            # A line a batch would flood the log in an alarm storm.
            log.debug("mail: %d sent", outcomes["sent"])
        return True

    def _record(self, db, letter, outcome, reply):
        """Write the attempt and commit it; the letter's new state."""
        next_attempt = None
        if outcome == "sent":
            state = "sent"
        elif outcome == "failed":
            state = "failed"
        else:
            now = times.now()
            give_up = letter.created + self.window
            if now >= give_up:
                state = "failed"
                reply = "given up after %d attempts: %s" % (letter.attempts + 1, reply)
            else:
                state = "queued"
                wait = retry_delay(letter.attempts + 1, self.random.random, self.scale)
                next_attempt = min(give_up, now + int(wait * times.SECOND))
        if state == "failed":
            log.warning("mail: letter %d to %s failed: %s", letter.id, letter.recipient, reply)
        started = time.monotonic()
        claimed = True
        while True:
            try:
                if not claimed and db.outbox.claim(letter, times.now()) is None:
                    log.error("mail: letter %d was %s, but another process took it before "
                              "that was recorded; it may be sent again", letter.id, state)
                    db.rollback()
                    return state
                db.outbox.attempted(letter, state, reply, next_attempt)
                db.commit()
                return state
            except store.StoreError as exc:
                db.rollback()
                # The rollback let go of the letter: it is claimed again.
                claimed = False
                # Another writer holds the database (a long import): the
                # outcome is known, so keep it and try again, a while yet
                # even when stopping.
                if self._stopping and time.monotonic() - started > TIMEOUT:
                    log.error("mail: letter %d was %s but that could not be recorded (%s); "
                              "it may be sent again", letter.id, state, exc)
                    return state
                log.warning("mail: recording letter %d: %s; trying again", letter.id, exc)
                time.sleep(0.5)

    # -- email ----------------------------------------------------------------

    def _mail(self, letter):
        """Send one email on the batch's connection: (outcome, reply)."""
        if "\r" in letter.recipient or "\n" in letter.recipient:
            return "failed", "bad address %r" % letter.recipient
        utf8 = not (letter.recipient.isascii() and self.envelope_sender.isascii())
        try:
            data = message(letter, self.sender, utf8).as_bytes()
        except (ValueError, TypeError, IndexError) as exc:
            return "failed", "the message cannot be made: %s" % exc
        smtp = self._smtp or self._connect()
        options = []
        if utf8:
            if not smtp.has_extn("smtputf8"):
                return "failed", "the address is not ASCII and the server lacks SMTPUTF8"
            options = ["SMTPUTF8", "BODY=8BITMIME"]
        try:
            code, text = smtp.mail(self.envelope_sender, options)
            if code != 250:
                # The sender refused: this server's setting, every letter's.
                self._reset(smtp)
                return "retry", _reply("MAIL", code, text)
            code, text = smtp.rcpt(letter.recipient)
            if code not in (250, 251):
                self._reset(smtp)
                return ("failed" if 500 <= code < 600 else "retry"), _reply("RCPT", code, text)
            with self._lock:
                if self._aborted:
                    raise _Abandoned()
                self._sending = True
            try:
                code, text = smtp.data(data)
            except smtplib.SMTPDataError as exc:
                code, text = exc.smtp_code, exc.smtp_error
            finally:
                with self._lock:
                    self._sending = False
            if code == 250:
                return "sent", _reply("", code, text)
            self._reset(smtp)
            return ("failed" if 500 <= code < 600 else "retry"), _reply("DATA", code, text)
        except (smtplib.SMTPException, OSError) as exc:
            if self._aborted:
                raise _Abandoned() from None
            # The connection broke in this letter's exchange: it is tried
            # again later; the next letter opens a new connection.
            self._close_smtp()
            return "retry", _failure(exc)

    def _reset(self, smtp):
        """RSET after a refusal, for the next letter; a connection that
        cannot is closed, and the next letter opens another."""
        try:
            smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._close_smtp()

    def _connect(self):
        """A session with the SMTP server, ready for MAIL; _Unreachable."""
        s = self.settings
        if self._ehlo_name is None:
            self._ehlo_name = socket.getfqdn()  # may ask DNS: once, off the loop
        kwargs = {"local_hostname": self._ehlo_name, "timeout": TIMEOUT}
        if s.EMAIL_USE_SSL:
            smtp = smtplib.SMTP_SSL(context=ssl.create_default_context(), **kwargs)
        else:
            smtp = smtplib.SMTP(**kwargs)
        # Made unconnected, so that stop() can reach its socket while it
        # waits for the greeting. The host a certificate must name is set
        # by the constructor only when it connects there itself.
        smtp._host = s.EMAIL_HOST
        with self._lock:
            self._smtp, self._aborted = smtp, False
        where = "%s:%d" % (s.EMAIL_HOST, s.EMAIL_PORT)
        try:
            code, text = smtp.connect(s.EMAIL_HOST, s.EMAIL_PORT)
            if code != 220:
                raise _Unreachable(_reply("connect to %s:" % where, code, text))
            smtp.ehlo_or_helo_if_needed()
            if s.EMAIL_USE_TLS:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.EMAIL_HOST_USER:
                smtp.login(s.EMAIL_HOST_USER, s.EMAIL_HOST_PASSWORD)
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            aborted = self._aborted
            self._close_smtp()
            if aborted:
                raise _Abandoned() from None
            raise _Unreachable("%s: %s" % (where, _failure(exc))) from None
        return smtp

    def _close_smtp(self):
        smtp = self._smtp
        if smtp is None:
            return
        try:
            # Still the connection in hand meanwhile: a stop can cut a
            # QUIT that hangs.
            if getattr(smtp, "sock", None) is not None and not self._aborted:
                smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            with self._lock:
                self._smtp = None
            smtp.close()

    # -- webhook --------------------------------------------------------------

    def _post(self, letter):
        """POST one webhook: (outcome, reply)."""
        if urllib.parse.urlsplit(letter.recipient).scheme.lower() not in ("http", "https"):
            return "failed", "not an http or https URL: %r" % letter.recipient[:200]
        request = urllib.request.Request(
            letter.recipient, data=letter.body.encode("utf-8"), method="POST",
            headers={"Content-Type": "application/json",
                     "User-Agent": "texmate_ds/%s" % __version__})
        try:
            with _OPENER.open(request, timeout=TIMEOUT) as answer:
                said = answer.read(WEBHOOK_REPLY_BYTES)
                return "sent", _http_reply(answer.status, answer.reason, said)
        except urllib.error.HTTPError as exc:
            try:
                said = exc.read(WEBHOOK_REPLY_BYTES)
            except (OSError, ValueError):
                said = b""
            finally:
                exc.close()
            transient = exc.code >= 500 or exc.code in (408, 429)
            return ("retry" if transient else "failed"), _http_reply(exc.code, exc.reason, said)
        except urllib.error.URLError as exc:
            reason = exc.reason
            return "retry", _failure(reason) if isinstance(reason, BaseException) else str(reason)
        except Exception as exc:    # OSError, or http.client's own: a garbled answer
            return "retry", _failure(exc)


def _reply(command, code, text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return ("%s %d %s" % (command, code, " ".join(text.split()))).strip()


def _http_reply(status, reason, said):
    text = " ".join(said.decode("utf-8", "replace").split())
    return "HTTP %d %s%s" % (status, reason, ": " + text if text else "")


def _failure(exc):
    """A reply for an exception: an SMTP answer as the server gave it, a
    network failure in words."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply("", exc.smtp_code, exc.smtp_error)
    if isinstance(exc, socket.timeout):
        return "no answer within %d s" % TIMEOUT
    return "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__

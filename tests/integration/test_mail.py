"""The mail service against real listeners: the SMTP sink (tests/smtp_sink.py)
and an http.server for webhooks, both on 127.0.0.1.

Letters are queued as another process would queue them: rows added to the
outbox through the test's own store connection and committed. Nothing in
the server is called; its mail service must find them by its own poll.
The retry schedule is shortened with TXM_MAIL_TIME_SCALE (mail.py), so a
retry comes within a fraction of a second.
"""

import email.utils
import http.server
import json
import statistics
import threading
import time

import pytest

from texmate_ds import config, mail, store, times

from conftest import database_settings
from smtp_sink import SMTPSink, parsed

# 30 s becomes 0.3 s: the first retry within 0.3 s, the hour's ceiling 36 s.
SCALE = 0.01


@pytest.fixture
def sink():
    with SMTPSink() as running:
        yield running


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setenv(mail.SCALE_VARIABLE, str(SCALE))


def email_conf(port, extra=""):
    return "[email]\nEMAIL_HOST: 127.0.0.1\nEMAIL_PORT: %d\n%s" % (port, extra)


def queue(srv, count=1, kind="email", recipient="ann@example.com", subject="subject %d",
          body="body %d\n"):
    """Queue `count` letters from the test's own connection; their ids."""
    db = srv.database()
    try:
        ids = [db.outbox.add(None, kind, recipient, subject % n if "%d" in subject else subject,
                             body % n if "%d" in body else body) for n in range(count)]
        db.commit()
    finally:
        db.close()
    return ids


def letters(srv):
    """{id: Letter} of every letter in the outbox."""
    db = srv.database()
    try:
        return {letter.id: letter for letter in db.outbox.find(limit=100000)}
    finally:
        db.close()


def wait_until(what, check, timeout=20.0):
    """`check()`'s first true value, polled until `timeout` s have gone."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("not within %.0f s: %s" % (timeout, what))
        time.sleep(0.05)


def wait_letter(srv, letter_id, what, check, timeout=20.0):
    """The letter once `check(letter)` holds."""
    def look():
        letter = letters(srv)[letter_id]
        return letter if check(letter) else None
    return wait_until(what, look, timeout)


def sent(letter):
    return letter.state == "sent"


def failed(letter):
    return letter.state == "failed"


def message_ids(received):
    return [parsed(r)["Message-ID"] for r in received]


# -- delivery ------------------------------------------------------------------

def test_an_email_arrives_with_its_headers_and_body(server_factory, sink):
    srv = server_factory(email_conf(sink.port, "DEFAULT_FROM_EMAIL: Data Server <ds@example.com>\n"))
    body = "Température 21 °C\nThe localtime for this Alarm was 2009-1-16 15:30:45\n"
    [letter_id] = queue(srv, subject="Alarm on A1: level 2", body=body)
    [received] = sink.wait_for(1)
    assert received.mail_from == "ds@example.com"
    assert received.rcpt_tos == ["ann@example.com"]
    got = parsed(received)
    letter = letters(srv)[letter_id]
    assert got["Subject"] == "Alarm on A1: level 2"
    assert got["From"] == "Data Server <ds@example.com>"
    assert got["To"] == "ann@example.com"
    sent_at = email.utils.parsedate_to_datetime(got["Date"]).timestamp()
    assert abs(sent_at - time.time()) < 60
    assert got["Message-ID"] == "<txm.%d.%d@example.com>" % (letter_id, letter.created)
    assert got.get_content_type() == "text/plain" and got.get_content_charset() == "utf-8"
    assert received.data.isascii()     # 7-bit on the wire: any server takes it
    assert got.get_content().replace("\r\n", "\n") == body
    letter = wait_letter(srv, letter_id, "recorded as sent", sent)
    assert letter.attempts == 1
    assert letter.last_reply == "250 2.0.0 Ok: queued as 1"
    assert letter.last_attempt >= letter.created


def test_it_signs_in_when_a_user_is_set_and_retries_a_wrong_password(server_factory,
                                                                     fast_retries):
    with SMTPSink(users={"meter": "s3cret"}) as sink:
        srv = server_factory(email_conf(sink.port, "EMAIL_HOST_USER: meter\n"
                                        "EMAIL_HOST_PASSWORD: wrong\n"), name="wrong")
        [wrong] = queue(srv)
        letter = wait_letter(srv, wrong, "a failed sign-in recorded",
                             lambda letter: letter.attempts)
        # The server's settings are at fault, for every letter alike: retried.
        assert letter.state == "queued" and "535" in letter.last_reply
        srv.kill()
        srv = server_factory(email_conf(sink.port, "EMAIL_HOST_USER: meter\n"
                                        "EMAIL_HOST_PASSWORD: s3cret\n"), name="right")
        queue(srv)
        [received] = sink.wait_for(1)
        assert received.user == "meter"


def test_a_4xx_is_retried_with_backoff_until_the_server_takes_it(server_factory, sink,
                                                                 fast_retries):
    sink.mode = "refuse4"
    srv = server_factory(email_conf(sink.port))
    [letter_id] = queue(srv)
    letter = wait_letter(srv, letter_id, "three refusals recorded",
                         lambda letter: letter.attempts >= 3, timeout=30)
    assert letter.state == "queued"
    assert letter.last_reply == "RCPT 451 4.3.0 try again later (smtp-sink: refuse4)"
    # The n-th failure waits between half and all of 30 s x 2^(n-1) (scaled).
    ceiling = 30 * 2 ** (letter.attempts - 1) * SCALE * times.SECOND
    wait = letter.next_attempt - letter.last_attempt
    assert ceiling / 2 - 0.05 * times.SECOND <= wait <= ceiling
    assert sink.messages == []
    sink.mode = "accept"
    sink.wait_for(1, timeout=30)
    letter = wait_letter(srv, letter_id, "recorded as sent", sent)
    assert letter.attempts >= 4 and letter.attempts == sink.refused + 1
    assert letter.last_reply.startswith("250 ")


def test_a_5xx_to_the_recipient_fails_at_once(server_factory, sink, fast_retries):
    sink.mode = "refuse5"
    srv = server_factory(email_conf(sink.port))
    [refused] = queue(srv, recipient="nobody@example.com")
    letter = wait_letter(srv, refused, "recorded as failed", failed)
    assert letter.attempts == 1
    assert letter.last_reply == "RCPT 550 5.1.1 no such user here (smtp-sink: refuse5)"
    time.sleep(3 * 30 * SCALE)     # well past a retry's time: none comes
    assert letters(srv)[refused].attempts == 1 and sink.refused == 1


def test_a_letter_is_given_up_after_its_retry_hours(server_factory, sink, monkeypatch):
    # One hour at a scale of 0.001 is 3.6 s.
    monkeypatch.setenv(mail.SCALE_VARIABLE, "0.001")
    sink.mode = "refuse4"
    srv = server_factory(email_conf(sink.port, "EMAIL_RETRY_HOURS: 1\n"))
    [letter_id] = queue(srv)
    letter = wait_letter(srv, letter_id, "given up", failed, timeout=30)
    assert letter.last_reply.startswith("given up after %d attempts: RCPT 451 " % letter.attempts)
    assert letter.attempts >= 3
    # Its last attempt at the end of its hour (scaled), not long after.
    assert letter.last_attempt - letter.created >= 0.001 * times.HOUR


# -- restarts --------------------------------------------------------------------

def test_nothing_is_sent_twice_across_a_clean_restart(server_factory, sink):
    count = 1000
    srv = server_factory(email_conf(sink.port))
    ids = queue(srv, count)
    sink.wait_for(50, timeout=30)
    assert srv.stop() == 0
    sent_before = len(sink.messages)
    outbox = letters(srv)
    # Every letter the sink took is recorded as sent, and none more.
    assert sum(letter.state == "sent" for letter in outbox.values()) == sent_before
    assert all(letter.state in ("sent", "queued") for letter in outbox.values())
    print("\nstopped with %d of %d letters sent" % (sent_before, count))
    srv.start()
    received = sink.wait_for(count, timeout=60)
    time.sleep(mail.POLL_SECONDS + 0.5)    # a poll more: nothing else comes
    received = list(sink.messages)
    assert len(received) == count
    assert sorted(message_ids(received)) == sorted(
        "<txm.%d.%d@localhost>" % (i, outbox[i].created) for i in ids)


def test_nothing_is_lost_across_kill_9_while_the_sink_is_down(server_factory, fast_retries):
    with SMTPSink() as probe:
        port = probe.port      # free now: nobody listens there while the server tries
    srv = server_factory(email_conf(port))
    ids = queue(srv, 20)
    wait_until("every letter tried once", lambda: all(
        letter.attempts >= 1 for letter in letters(srv).values()))
    outbox = letters(srv)
    assert all(letter.state == "queued" for letter in outbox.values())
    assert "refused" in outbox[ids[0]].last_reply.lower()
    srv.kill()
    with SMTPSink(port=port) as sink:
        srv.start()
        received = sink.wait_for(20, timeout=60)
        wait_until("all recorded as sent", lambda: all(
            letter.state == "sent" for letter in letters(srv).values()))
        assert sorted(message_ids(received)) == sorted(
            "<txm.%d.%d@localhost>" % (i, outbox[i].created) for i in ids)


def test_a_kill_9_while_sending_loses_nothing_and_repeats_one_letter_at_most(server_factory,
                                                                             sink):
    count = 1000
    srv = server_factory(email_conf(sink.port))
    ids = queue(srv, count)
    sink.wait_for(50, timeout=30)
    srv.kill()
    srv.start()
    received = sink.wait_for(count, timeout=60)
    wait_until("all recorded as sent", lambda: all(
        letter.state == "sent" for letter in letters(srv).values()), timeout=30)
    received = list(sink.messages)
    got = message_ids(received)
    assert set(got) == {"<txm.%d.%d@localhost>" % (i, letter.created)
                        for i, letter in letters(srv).items()}
    assert len(got) - len(set(got)) <= 1     # the one in hand when it died, if any
    assert len(ids) == count
    print("\nsent twice after kill -9: %d" % (len(got) - len(set(got))))


# -- the loop is never held up ------------------------------------------------------

def upload_times(srv, code, key, count=300):
    """Seconds each of `count` uploads on one connection took to its OK."""
    sock = srv.connect()
    took = []
    try:
        for n in range(count):
            line = "TTP /up/%s/<%s;%d;1> %s\r" % (
                code, times.text(times.now() + n), n, key)
            started = time.perf_counter()
            sock.sendall(line.encode())
            answer = b""
            while not answer.endswith(b"\r"):
                chunk = sock.recv(100)
                assert chunk, "closed after %r" % answer
                answer += chunk
            took.append(time.perf_counter() - started)
            assert answer == b"OK\r"
    finally:
        sock.close()
    return took


def summary(took):
    took = sorted(took)
    return "median %.2f ms, p99 %.2f ms, max %.2f ms" % (
        statistics.median(took) * 1000, took[int(len(took) * 0.99) - 1] * 1000,
        took[-1] * 1000)


def test_a_meters_ok_comes_at_its_usual_speed_while_the_sink_hangs(server_factory, sink):
    srv = server_factory(email_conf(sink.port), start=False)
    srv.add_unit("M1", "km1", 2)
    srv.start()
    upload_times(srv, "M1", "km1", 50)     # warm-up
    idle = upload_times(srv, "M1", "km1")
    sink.mode = "hang"
    ids = queue(srv, 5)
    wait_until("the service connected to the hanging sink", lambda: sink.connections >= 1)
    hanging = upload_times(srv, "M1", "km1")
    # The mail service is still waiting for the greeting: nothing recorded.
    assert {letter.attempts for letter in letters(srv).values()} == {0}
    started = time.monotonic()
    assert srv.stop() == 0
    stop_s = time.monotonic() - started
    outbox = letters(srv)
    # A stop abandons a letter whose message had not started: left queued, uncounted.
    assert [(outbox[i].state, outbox[i].attempts) for i in ids] == [("queued", 0)] * 5
    print("\nuploads, idle server:        %s" % summary(idle))
    print("uploads, sink hanging:       %s" % summary(hanging))
    print("SIGTERM to exit while hanging: %.2f s (mail.TIMEOUT is %d s)" % (stop_s, mail.TIMEOUT))


# -- webhooks -----------------------------------------------------------------------

class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        site = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with site.lock:
            site.posts.append((self.path, dict(self.headers), body))
            status = site.statuses.pop(0) if site.statuses else 200
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok" if status < 300 else b"not now")

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    site.lock = threading.Lock()
    site.posts = []
    site.statuses = []
    site.url = "http://127.0.0.1:%d" % site.server_address[1]
    thread = threading.Thread(target=site.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield site
    site.shutdown()
    site.server_close()


def test_a_webhook_posts_its_json(server_factory, hook):
    srv = server_factory()
    payload = {"unit": "A1", "level": 2, "data": ["2009-1-16 15:30:45", "höch"]}
    [letter_id] = queue(srv, kind="webhook", recipient=hook.url + "/hooks/alarm",
                        subject="", body=json.dumps(payload, ensure_ascii=False))
    letter = wait_letter(srv, letter_id, "recorded as sent", sent)
    [(path, headers, body)] = hook.posts
    assert path == "/hooks/alarm"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("texmate_ds/")
    assert json.loads(body.decode("utf-8")) == payload
    assert letter.attempts == 1 and letter.last_reply == "HTTP 200 OK: ok"


def test_a_webhook_answering_500_is_retried_and_a_404_fails(server_factory, hook, fast_retries):
    srv = server_factory()
    hook.statuses[:] = [500, 500]
    [retried] = queue(srv, kind="webhook", recipient=hook.url + "/flaky", subject="",
                      body="{}")
    letter = wait_letter(srv, retried, "sent at last", sent)
    assert letter.attempts == 3 and [post[0] for post in hook.posts] == ["/flaky"] * 3
    hook.statuses[:] = [404]
    [gone] = queue(srv, kind="webhook", recipient=hook.url + "/gone", subject="", body="{}")
    letter = wait_letter(srv, gone, "failed", failed)
    assert letter.attempts == 1 and letter.last_reply == "HTTP 404 Not Found: not now"


# -- the service in this process: wake() and stop() ------------------------------------

@pytest.fixture
def service(tmp_path, sink, monkeypatch, engine):
    """A MailService on a database of its own, pointed at the sink; its
    poll so slow that only wake() can make it look soon."""
    monkeypatch.setattr(mail, "POLL_SECONDS", 3600.0)
    settings = config.Settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=sink.port,
                               **database_settings(engine, tmp_path / "mail.db"))
    db = store.Database(store.address(settings))
    db.migrate()
    running = mail.MailService(settings, scale=1.0)
    running.start()
    # Its first look at the (empty) outbox, before the test queues anything.
    time.sleep(0.3)
    yield running, db
    running.stop()
    db.close()


def test_wake_sends_at_once(service, sink):
    running, db = service
    db.outbox.add(None, "email", "ann@example.com", "woken", "body")
    db.commit()
    running.wake()
    [received] = sink.wait_for(1, timeout=10)
    assert parsed(received)["Subject"] == "woken"


def test_a_stop_abandons_a_letter_whose_message_has_not_started(service, sink):
    running, db = service
    sink.mode = "hang"
    letter_id = db.outbox.add(None, "email", "ann@example.com", "in hand", "body")
    db.commit()
    running.wake()
    wait_until("connected to the hanging sink", lambda: sink.connections >= 1)
    running.stop()
    letter = db.outbox.get(letter_id)
    # Had it waited for the timeout instead, the attempt would be counted.
    assert (letter.state, letter.attempts) == ("queued", 0)
    assert sink.messages == []

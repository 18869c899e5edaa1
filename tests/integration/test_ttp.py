"""The protocol (docs/protocol.md), row by row, against the real server over loopback sockets.

The module shares one server (units A1: 4 fields key k1, B7: 2 fields key
k7); tests that need a clean unit add their own with a unique code.
"""

import datetime
import itertools
import re
import socket
import time

import pytest

from texmate_ds.store.units import MISSING_MAX

from conftest import read_answers

_codes = itertools.count(1)


def new_unit(server, fields=2, *extra):
    code = "U%d" % next(_codes)
    server.add_unit(code, "key" + code, fields, *extra)
    return code, "key" + code


def samples_in_db(server, code):
    return server.query("SELECT s.ts, s.v1, s.v2 FROM samples s JOIN units u"
                        " ON u.id = s.unit_id WHERE u.code = ? ORDER BY s.ts", (code,))


def committed_elsewhere(server, sql, params):
    """`sql` written and committed by another connection, which says that
    rows other processes cache changed (as the store's writes to units
    and permissions do; on SQLite every commit says so by itself)."""
    def change(db):
        db.write(sql, params)
        db.changed_shared()
    server.through_store(change)


# -- framing (section 1) -----------------------------------------------------

def test_cr_lf_and_crlf_all_end_requests(server):
    answers = server.exchange(b"TTP /ok/A1 k1\rTTP /ok/A1 k1\nTTP /ok/A1 k1\r\nTTP /ok/A1 bad\r", 4)
    assert answers == ["OK", "OK", "OK", "402 Unauthorized"]


def test_empty_requests_get_no_answer(server):
    sock = server.connect()
    sock.sendall(b"\r\r\n\n\r\nTTP /ok/A1 k1\r")
    assert read_answers(sock, 1) == ["OK"]
    sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        sock.recv(100)
    sock.close()


def test_non_ascii_bytes_answer_400(server):
    for bad in (b"TTP /ok/A1 k\xe91", b"TTP /ok/A1\x00 k1", b"TTP /ok/A1\tk1", b"\x7fTTP /ok/A1 k1"):
        assert server.exchange(bad + b"\r") == ["400 Bad request"]


def test_pipelined_answers_come_in_order(server):
    code, key = new_unit(server)
    lines = []
    for i in range(50):
        lines.append("TTP /up/%s/<2011-1-1 0:0:%d;%d;1> %s" % (code, i, i, key))
        lines.append("TTP /dl/%s/last %s" % (code, key))
    answers = server.exchange("\r".join(lines) + "\r", len(lines))
    for i in range(50):
        assert answers[2 * i] == "OK"
        assert answers[2 * i + 1].endswith("2011-01-01 00:00:%02d L1=%d L2=1>" % (i, i))


def test_over_long_request_answers_400_and_closes(server_factory):
    srv = server_factory("MAX_REQUEST_BYTES: 300\n")
    sock = srv.connect()
    sock.sendall(b"TTP /ok/A1 " + b"x" * 400)
    assert read_answers(sock, 1) == ["400 Bad request"]
    assert sock.recv(100) == b""
    sock.close()
    # A line just within the limit is an ordinary request.
    assert srv.ask("TTP /ok/A1 " + "x" * 60) == "405 Unit not found"


# -- request line (section 2) and responses (section 3) ------------------------

@pytest.mark.parametrize("line, answer", [
    ("ttp /ok/A1 k1", "400 Bad request"),
    ("TTP /ok/A1", "400 Bad request"),
    ("TTP /ok/A1 ", "400 Bad request"),
    ("TTP /ok/A-1 k1", "400 Bad request"),
    ("TTP /ok/%s k1" % ("A" * 33), "400 Bad request"),
    ("TTP /ok/A1 %s" % ("k" * 65), "400 Bad request"),
    ("TTP /zz/A1 k1", "501 Not implemented"),
    ("TTP /al/NOPE/2/<> k1", "405 Unit not found"),
    ("TTP /al/A1/2/<> wrong", "402 Unauthorized"),
    ("TTP /al/A1/999/garbage wrong", "402 Unauthorized"),
    ("TTP /ok/NOPE k1", "405 Unit not found"),
    ("TTP /ok/A1 wrong", "402 Unauthorized"),
    ("TTP /up/NOPE/<2009-1-16 15:30:45;1;2;3;4> k1", "405 Unit not found"),
    ("TTP /up/A1/<2009-1-16 15:30:45;1;2;3;4> wrong", "402 Unauthorized"),
    ("TTP /up/A1/garbage wrong", "402 Unauthorized"),
    ("TTP /dl/A1/last wrong", "402 Unauthorized"),
])
def test_request_line_and_authentication(server, line, answer):
    assert server.ask(line) == answer


def test_disabled_unit_is_forbidden(server):
    code, key = new_unit(server, 2, "--disabled")
    assert server.ask("TTP /up/%s/<2009-1-16 15:30:45;1;2> %s" % (code, key)) == "403 Forbidden"
    assert server.ask("TTP /dl/%s/last %s" % (code, key)) == "403 Forbidden"
    assert server.ask("TTP /up/%s/<2009-1-16 15:30:45;1;2> bad" % code) == "402 Unauthorized"
    assert samples_in_db(server, code) == []


def test_key_never_logged(server):
    server.ask("TTP /ok/A1 k1")
    server.ask("TTP /zz/A1 supersecretkey")
    assert "supersecretkey" not in server.errors()


# -- up (section 5) ------------------------------------------------------------

def test_upload_and_the_manual_example(server):
    code, key = new_unit(server, 4)
    assert server.ask("TTP /up/%s/<2009-1-16 15:30:45;11;22;33;44> %s" % (code, key)) == "OK"
    answer = server.ask(
        "TTP /up/%s/<2009-1-16 15:30:45;11;22;33;44><2009-1-16 15:30:45;11.50;23;34.5;46>"
        "<2009-1-16 15:30:46;12;23;34;45> %s" % (code, key))
    assert answer == "406 Duplicate sample 1<2009-1-16 15:30:45>2<2009-1-16 15:30:45>"
    assert [r[1:] for r in samples_in_db(server, code)] == [(11.0, 22.0), (12.0, 23.0)]


def test_meters_uploading_at_once_each_get_their_own_answer(server):
    """Uploads of one loop turn are written together on PostgreSQL (one
    statement); each connection still gets its own OK or 406, the first
    of two uploads of one sample storing it."""
    units = [new_unit(server) for _ in range(10)]
    socks = []
    for code, key in units:
        line = "TTP /up/%s/<2011-1-1 0:0:1;1;1><2011-1-1 0:0:%%d;2;2> %s\r" % (code, key)
        for second in (2, 3):                   # two meters, one sample in common
            sock = server.connect()
            socks.append((sock, (line % second).encode()))
    for sock, line in socks:
        sock.sendall(line)
    answers = [read_answers(sock, 1)[0] for sock, _ in socks]
    for sock, _ in socks:
        sock.close()
    for n, (code, _) in enumerate(units):
        pair = answers[2 * n:2 * n + 2]
        assert sorted(pair) == ["406 Duplicate sample 1<2011-1-1 0:0:1>", "OK"], (code, pair)
        assert [row[1:] for row in samples_in_db(server, code)] == [(1.0, 1.0), (2.0, 2.0),
                                                                     (2.0, 2.0)]
        assert server.query("SELECT sample_count FROM units WHERE code = ?", (code,)) == [(3,)]


def test_answers_sent_before_their_commit_still_name_their_duplicates(server_factory):
    """With COMMIT_INTERVAL above 1 an answer goes out at the end of its
    loop turn, before the commit: the first answer asked for writes the
    turn's held uploads (PostgreSQL), and each still says what it stored."""
    srv = server_factory("[database]\nCOMMIT_INTERVAL: 50\nCOMMIT_DELAY: 600000\n",
                         start=False)
    srv.add_unit("N1", "kn", 1)
    srv.start()
    up = "TTP /up/N1/%s kn\r"
    answers = srv.exchange((up % "<2012-1-1 0:0:1;1>" + up % "<2012-1-1 0:0:1;2><2012-1-1 0:0:2;2>"
                            + "TTP /dl/N1/last kn\r"), 3)
    assert answers[:2] == ["OK", "406 Duplicate sample 1<2012-1-1 0:0:1>"]
    assert answers[2].startswith("OK") and answers[2].endswith("2012-01-01 00:00:02 L1=2>")


def test_a_turn_of_more_samples_than_one_statement_holds_is_stored_whole(server):
    """Meters uploading at once more samples than one statement of held
    uploads takes (`samples._BATCH_ROWS`; a loop turn reads 64 KiB of each
    connection) are written by several, each answered and stored once."""
    from texmate_ds.store.samples import _BATCH_ROWS
    code, key = new_unit(server, 1)
    per_upload = 1500           # 40 KB a line: one read of its connection
    uploads = _BATCH_ROWS // per_upload + 3
    start = datetime.datetime(2014, 1, 1)
    socks = []
    for n in range(uploads):
        body = "".join("<%s;%d>" % ((start + datetime.timedelta(seconds=n * per_upload + i))
                                     .strftime("%Y-%m-%d %H:%M:%S"), i)
                       for i in range(per_upload))
        socks.append((server.connect(), ("TTP /up/%s/%s %s\r" % (code, body, key)).encode()))
    for sock, line in socks:
        sock.sendall(line)
    answers = [read_answers(sock, 1)[0] for sock, _ in socks]
    for sock, _ in socks:
        sock.close()
    assert answers == ["OK"] * uploads
    assert server.query("SELECT count(*) FROM samples s JOIN units u ON u.id = s.unit_id"
                        " WHERE u.code = ?", (code,)) == [(uploads * per_upload,)]
    assert server.query("SELECT sample_count FROM units WHERE code = ?", (code,)) == [
        (uploads * per_upload,)]


def test_duplicates_report_offsets_and_timestamps_as_sent(server):
    code, key = new_unit(server)
    assert server.ask("TTP /up/%s/<2009-1-16 15:30:45;1;1> %s" % (code, key)) == "OK"
    answer = server.ask(
        "TTP /up/%s/<2009-1-16 15:30:44;1;1><09-01-16 15:30:45;2;2><2009-1-16 15:30:47;3;3>"
        "<7-1-16 15:30:49;4;4><7-1-16 15:30:49.0;5;5> %s" % (code, key))
    assert answer == "406 Duplicate sample 2<09-01-16 15:30:45>5<7-1-16 15:30:49.0>"
    assert len(samples_in_db(server, code)) == 4


@pytest.mark.parametrize("body", [
    "<2009-1-16 15:30:45;1>",                        # too few fields
    "<2009-1-16 15:30:45;1;2;3>",                    # too many
    "<2009-1-16 15:30:45;1;2><2009-1-16 15:30:46;1;nan>",
    "<2009-1-16 15:30:45;1;2><2009-1-16 15:30:46;1;inf>",
    "<2009-1-16 15:30:45;1;2><2009-1-16 15:30:46;1;1e999>",
    "<2009-1-16 15:30:45;1;2><2009-2-30 15:30:46;1;2>",
    "<2009-1-16 15:30:45;1;2><2009-1-16 15:30:46;1;2",
    "<2009-1-16 15:30:45;1;2>2009-1-16 15:30:46;1;2>",
    "<2009-1-16 15:30:45;1;2><>",
    "",
])
def test_malformed_upload_stores_nothing(server, body):
    code, key = new_unit(server)
    assert server.ask("TTP /up/%s/%s %s" % (code, body, key)) == "400 Bad request"
    assert samples_in_db(server, code) == []


def test_values_stored_as_floats_and_printed_shortest(server):
    code, key = new_unit(server)
    assert server.ask("TTP /up/%s/<2009-1-16 15:30:45.000042;-3;+2.5e3> %s" % (code, key)) == "OK"
    assert server.ask("TTP /up/%s/<2009-1-16 15:30:46;11.50;-0.001> %s" % (code, key)) == "OK"
    assert server.ask("TTP /up/%s/<2009-1-16 15:30:47;1e20;-0> %s" % (code, key)) == "OK"
    answer = server.ask("TTP /dl/%s/from<2009-1-16 0:0:0> %s" % (code, key))
    assert answer.startswith("OK <")
    assert "2009-01-16 15:30:45.000042 L1=-3 L2=2500>" in answer
    assert "2009-01-16 15:30:46 L1=11.5 L2=-0.001>" in answer
    # -0 is stored as 0 (equal as numbers; docs/protocol.md), as SQLite
    # would make it anyway: PostgreSQL's double precision would keep the sign.
    assert "2009-01-16 15:30:47 L1=1e+20 L2=0>" in answer


# -- dl (section 6) ------------------------------------------------------------

@pytest.fixture(scope="module")
def dl_units(server):
    """Units S (source, three samples), R (reads S by configuration), P
    (allowed to read S), N (no rights)."""
    src, skey = new_unit(server)
    server.ask("TTP /up/%s/<2009-1-16 15:30:47;3;30><2009-1-16 15:30:45;1;10>"
               "<2009-1-16 15:30:46;2;20> %s" % (src, skey))
    reader, rkey = new_unit(server, 1, "--source", src)
    permitted, pkey = new_unit(server, 1, "--reads", src)
    nobody, nkey = new_unit(server, 1)
    return dict(S=(src, skey), R=(reader, rkey), P=(permitted, pkey), N=(nobody, nkey))


def dl(server, who, selector):
    code, key = who
    return server.ask("TTP /dl/%s/%s %s" % (code, selector, key))


def test_dl_last_first_and_exact(server, dl_units):
    s = dl_units["S"]
    assert dl(server, s, "last").endswith(" 2009-01-16 15:30:47 L1=3 L2=30>")
    assert dl(server, s, "first").endswith(" 2009-01-16 15:30:45 L1=1 L2=10>")
    assert dl(server, s, "<9-1-16 15:30:46>").endswith(" 2009-01-16 15:30:46 L1=2 L2=20>")
    assert dl(server, s, "<2009-1-16 15:30:46.5>") == "404 Data not found"
    assert dl(server, s, "<2009-2-30 15:30:46>") == "400 Bad request"


def test_dl_answer_form(server, dl_units):
    answer = dl(server, dl_units["S"], "last")
    ids = [int(x.split()[0]) for x in answer[4:-1].split("><")]
    assert answer == "OK <%d 2009-01-16 15:30:47 L1=3 L2=30>" % ids[0]


def test_dl_from_oldest_first(server, dl_units):
    answer = dl(server, dl_units["S"], "from<2009-1-16 15:30:46>")
    assert answer.startswith("OK <") and answer.count("<") == 2
    assert answer.index("15:30:46") < answer.index("15:30:47")
    assert dl(server, dl_units["S"], "from<2010-1-1 0:0:0>") == "404 Data not found"


def test_dl_unknown_selector_and_empty_unit(server, dl_units):
    assert dl(server, dl_units["S"], "latest") == "400 Bad request"
    assert dl(server, dl_units["S"], "") == "400 Bad request"
    assert dl(server, dl_units["N"], "last") == "404 Data not found"
    assert dl(server, dl_units["N"], "next") == "404 Data not found"


def test_dl_source_rules(server, dl_units):
    src = dl_units["S"][0]
    # The configured source is where R reads by default, and always allowed.
    assert dl(server, dl_units["R"], "last").endswith("L1=3 L2=30>")
    assert dl(server, dl_units["R"], "last/" + src).endswith("L1=3 L2=30>")
    # P was allowed to read S; N was not.
    assert dl(server, dl_units["P"], "first/" + src).endswith("L1=1 L2=10>")
    assert dl(server, dl_units["N"], "last/" + src) == "403 Forbidden"
    assert dl(server, dl_units["N"], "last/NOSUCH") == "405 Unit not found"
    assert dl(server, dl_units["N"], "last/BAD-CODE") == "400 Bad request"
    # Every unit may read itself by name.
    n = dl_units["N"][0]
    assert dl(server, dl_units["N"], "last/" + n) == "404 Data not found"


def test_dl_next_is_a_mailbox_in_arrival_order(server, dl_units):
    src = dl_units["S"][0]
    got = [dl(server, dl_units["P"], "next/" + src) for _ in range(4)]
    # Arrival order (by id), not timestamp order: 47, 45, 46.
    assert got[0].endswith("15:30:47 L1=3 L2=30>")
    assert got[1].endswith("15:30:45 L1=1 L2=10>")
    assert got[2].endswith("15:30:46 L1=2 L2=20>")
    assert got[3] == "404 Data not found"
    # The cursor belongs to (reader, source): R reading S starts afresh.
    assert dl(server, dl_units["R"], "next").endswith("15:30:47 L1=3 L2=30>")


def test_dl_next_pipelined_each_gets_the_following_sample(server):
    code, key = new_unit(server)
    server.ask("TTP /up/%s/<2012-1-1 0:0:1;1;1><2012-1-1 0:0:2;2;2><2012-1-1 0:0:3;3;3> %s"
               % (code, key))
    answers = server.exchange(("TTP /dl/%s/next %s\r" % (code, key)) * 4, 4)
    assert [a[-11:] for a in answers[:3]] == [" L1=1 L2=1>", " L1=2 L2=2>", " L1=3 L2=3>"]
    assert answers[3] == "404 Data not found"


def test_dl_next_cursor_only_moves_when_answer_was_written(server):
    code, key = new_unit(server, 1)
    bulk = "".join("<2012-1-1 1:%d:%d;%d>" % (i // 60, i % 60, i) for i in range(1000))
    assert server.ask("TTP /up/%s/<2012-1-1 0:0:1;-1> %s" % (code, key)) == "OK"
    assert server.ask("TTP /up/%s/%s %s" % (code, bulk, key)) == "OK"
    # A meter that never reads: about 7 MB of `from` answers (more than the
    # kernel buffers on both sides take) ahead of its
    # `next` cannot all be written, so the `next` answer is never flushed...
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.ttp_port))
    sock.sendall(("TTP /dl/%s/from<2012-1-1 0:0:0> %s\r" % (code, key)).encode() * 200
                 + ("TTP /dl/%s/next %s\r" % (code, key)).encode())
    time.sleep(0.5)
    # ... and then it vanishes (reset).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
    first = dl(server, (code, key), "next")
    assert first.endswith("2012-01-01 00:00:01 L1=-1>"), first[:200]
    assert dl(server, (code, key), "next").endswith("2012-01-01 01:00:00 L1=0>")


def test_dl_from_is_capped_by_dl_max_samples(server_factory):
    srv = server_factory("DL_MAX_SAMPLES: 250\n", start=False)
    srv.add_unit("M1", "km", 1)
    srv.start()
    body = "".join("<2013-1-1 0:%d:%d;%d>" % (i // 60, i % 60, i) for i in range(600))
    assert srv.ask("TTP /up/M1/%s km" % body) == "OK"
    answer = srv.ask("TTP /dl/M1/from<2013-1-1 0:0:0> km")
    assert answer.count("<") == 250
    assert answer.endswith("2013-01-01 00:04:09 L1=249>")
    assert srv.ask("TTP /dl/M1/from<2013-1-1 0:9:59> km").endswith("L1=599>")


# -- ok (section 8) ------------------------------------------------------------

def test_ok_app(server):
    assert server.ask("TTP /ok/B7 k7") == "OK"
    assert server.ask("TTP /ok/B7 k1") == "402 Unauthorized"
    assert server.ask("TTP /ok/B8 k7") == "405 Unit not found"


def test_a_thousand_codes_of_no_unit_stay_405_and_a_unit_added_then_answers(server_factory):
    """Codes of no unit are remembered (one read each, not one a request),
    up to MISSING_MAX of them: more on one connection than that are still
    all refused, and a unit added under one of them answers."""
    srv = server_factory()
    count = MISSING_MAX + 50
    with srv.connect() as sock:
        sock.sendall("".join("TTP /ok/W%d kw\r" % n for n in range(count)).encode())
        assert read_answers(sock, count) == ["405 Unit not found"] * count
    assert srv.ask("TTP /ok/W1 kw") == "405 Unit not found"
    srv.add_unit("W1", "kw", 1)
    assert srv.ask_noticed("TTP /ok/W1 kw", lambda answer: answer == "OK") == "OK"


def test_ok_off_answers_501(server_factory):
    srv = server_factory("[ttpapps]\nok: off\n", start=False)
    srv.add_unit("A1", "k1", 1)
    srv.start()
    assert srv.ask("TTP /ok/A1 k1") == "501 Not implemented"
    assert srv.ask("TTP /up/A1/<2009-1-1 0:0:0;1> k1") == "OK"


# -- SOCKET_OPEN --------------------------------------------------------------

def test_socket_open_no_closes_after_each_answer(server_factory):
    srv = server_factory("SOCKET_OPEN: no\n", start=False)
    srv.add_unit("A1", "k1", 1)
    srv.start()
    sock = srv.connect()
    sock.sendall(b"TTP /ok/A1 k1\rTTP /ok/A1 k1\r")
    data = b""
    while True:
        chunk = sock.recv(100)
        if not chunk:
            break
        data += chunk
    assert data == b"OK\r"
    sock.close()


def test_socket_open_yes_keeps_the_connection(server):
    sock = server.connect()
    for _ in range(3):
        sock.sendall(b"TTP /ok/A1 k1\r")
        assert read_answers(sock, 1) == ["OK"]
        time.sleep(0.05)
    sock.close()


def test_unit_changes_by_other_connections_take_effect(server):
    """The server caches units; a change committed elsewhere (manage, the
    admin, another process) is seen from the next request on."""
    code, key = new_unit(server)
    assert server.ask("TTP /up/%s/<2009-1-16 15:30:45;1;2> %s" % (code, key)) == "OK"
    committed_elsewhere(server, "UPDATE units SET enabled = 0 WHERE code = ?", (code,))
    forbidden = "403 Forbidden"
    assert server.ask_noticed("TTP /dl/%s/last %s" % (code, key), forbidden.__eq__) == forbidden
    assert server.ask("TTP /up/%s/<2009-1-16 15:30:46;1;2> %s" % (code, key)) == forbidden
    committed_elsewhere(server, "UPDATE units SET enabled = 1, key = 'newkey' WHERE code = ?",
                        (code,))
    refused = "402 Unauthorized"
    assert server.ask_noticed("TTP /dl/%s/last %s" % (code, key), refused.__eq__) == refused
    assert server.ask("TTP /up/%s/<2009-1-16 15:30:46;1;2> %s" % (code, key)) == refused
    assert server.ask("TTP /up/%s/<2009-1-16 15:30:46;1;2> newkey" % code) == "OK"


def test_read_permission_changes_take_effect(server, dl_units):
    """Read permissions are cached like units and forgotten the same way."""
    src, (nobody, nkey) = dl_units["S"][0], dl_units["N"]
    line = "TTP /dl/%s/last/%s %s" % (nobody, src, nkey)
    assert server.ask(line) == "403 Forbidden"
    committed_elsewhere(server, "INSERT INTO unit_reads SELECT r.id, s.id FROM units r, units s"
                        " WHERE r.code = ? AND s.code = ?", (nobody, src))
    assert server.ask_noticed(line, lambda a: a.startswith("OK")).endswith("L1=3 L2=30>")
    committed_elsewhere(server, "DELETE FROM unit_reads WHERE reader_id ="
                        " (SELECT id FROM units WHERE code = ?)", (nobody,))
    assert server.ask_noticed(line, "403 Forbidden".__eq__) == "403 Forbidden"


# -- what meters got wrong (README, "What meters got wrong") -----------------

def test_refusals_are_logged_once_a_unit_and_code_then_counted_never_with_the_key(
        server_factory):
    srv = server_factory(start=False)
    srv.add_unit("A1", "k1", 1)
    srv.start()
    wrong = "WrongKey-7f3a"
    answers = srv.exchange("TTP /up/A1/<2009-1-1 0:0:0;1> %s\r" % wrong * 50, 50)
    assert answers == ["402 Unauthorized"] * 50
    assert srv.ask("TTP /ok/NOSUCH %s" % wrong) == "405 Unit not found"
    assert srv.ask("TTP /zz/A1 %s" % wrong) == "501 Not implemented"
    # The first of the 50 is in the log at once, the others are not.
    told = [line for line in srv.errors().splitlines() if "unit A1: 402" in line]
    assert len(told) == 1, told
    assert " INFO texmate_ds.ttp: unit A1: 402 Unauthorized from 127.0.0.1:" in told[0]
    assert told[0].endswith("for 'TTP /up/A1/<2009-1-1 0:0:0;1> ***'; more are counted each minute")
    # Stopping tells the count of the minute so far.
    assert srv.stop() == 0
    errors = srv.errors()
    assert re.search(r"INFO texmate_ds.ttp: unit A1: 402 Unauthorized x50 in the last \d+ s$",
                     errors, re.MULTILINE), errors
    assert len(re.findall("unit A1: 402", errors)) == 2
    assert "unit NOSUCH: 405 Unit not found from 127.0.0.1:" in errors
    assert "unit A1: 501 Not implemented from 127.0.0.1:" in errors
    assert wrong not in errors

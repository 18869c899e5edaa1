"""The attacks of the hardening review, replayed over real sockets.

Each test sends what the attacker sent, against the real server on
loopback, and checks that the server kept answering meters and other
clients. None of them times the server: where an attack used to hold the
loop for seconds or minutes, a socket timeout far above a healthy answer
time is the bound, and the figures before and after live in the issue
note, measured apart.

Clients that must look like different machines bind to their own loopback
address (127.0.0.2, 127.0.0.3, ...): Linux routes all of 127.0.0.0/8 to
``lo``, so the server sees distinct peers.
"""

import socket
import threading

from conftest import read_answers

# A healthy answer takes milliseconds; the attacks took 19 s to minutes.
BOUND = 10


def http_get(port, path, source="127.0.0.1", timeout=BOUND, headers=""):
    """One GET on a new connection; (status, body bytes)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source, 0))
    with sock:
        sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n"
                      % (path, headers)).encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


# -- 1. a line of digits froze the whole server ---------------------------------

def test_the_longest_line_of_digits_is_refused_while_the_web_answers(server):
    prefix = b"TTP /up/A1/<2009-1-1 0:0:0;1;1;1;"
    suffix = b"x> k1"
    digits = 65536 - len(prefix) - len(suffix)   # MAX_REQUEST_BYTES exactly
    line = prefix + b"1" * digits + suffix + b"\r"
    sock = server.connect(timeout=BOUND)
    with sock:
        # Three of them pipelined: the attack that made the freeze unbounded.
        sock.sendall(line * 3)
        status, body = http_get(server.http_port, "/healthz")
        assert (status, body) == (200, b"ok\n")
        assert read_answers(sock, 3) == ["400 Bad request"] * 3
    assert server.ask("TTP /up/A1/<2009-1-1 0:0:1;1;2;3;4> k1") == "OK"


def test_a_line_dribbled_a_byte_at_a_time_is_parsed_once(server):
    sock = server.connect(timeout=BOUND)
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = b"TTP /up/A1/<2009-1-1 0:0:2;0." + b"1" * 3000 + b";2;3;4> k1\r"
        for i in range(0, len(request), 7):
            sock.send(request[i:i + 7])
        assert read_answers(sock, 1) == ["OK"]


def test_other_meters_are_answered_during_a_digit_flood(server):
    line = b"TTP /up/A1/<2009-1-1 0:0:3;" + b"9" * 65000 + b"x> k1\r"
    floods = [server.connect(timeout=BOUND) for _ in range(4)]
    senders = [threading.Thread(target=s.sendall, args=(line * 4,)) for s in floods]
    for t in senders:
        t.start()
    try:
        assert server.ask("TTP /ok/B7 k7") == "OK"
        for t in senders:
            t.join(BOUND)
        for s in floods:
            assert read_answers(s, 4) == ["400 Bad request"] * 4
    finally:
        for s in floods:
            s.close()


# -- 5. the static-file cache kept every miss ------------------------------------

def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def pipelined_gets(port, paths, batch=200):
    """GET every path on one keep-alive connection, `batch` in flight;
    the status of each answer (answers must carry a Content-Length)."""
    statuses = []
    sock = socket.create_connection(("127.0.0.1", port), timeout=BOUND)
    with sock:
        buf = b""
        for at in range(0, len(paths), batch):
            part = paths[at:at + batch]
            sock.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p.encode()
                                  for p in part))
            for _ in part:
                while b"\r\n\r\n" not in buf:
                    buf += sock.recv(65536)
                head, buf = buf.split(b"\r\n\r\n", 1)
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(buf) < length:
                    buf += sock.recv(65536)
                buf = buf[length:]
                statuses.append(int(head.split(b" ", 2)[1]))
    return statuses


def test_unknown_static_names_are_not_cached(server):
    # Names near the request line's 8 KiB cap, as the attacker sent them.
    names = ["/static/%s-%d.css" % ("x" * 6000, i) for i in range(10000)]
    pipelined_gets(server.http_port, names[:500], batch=50)   # warm up what is cached lawfully
    before = rss_kib(server.proc.pid)
    statuses = pipelined_gets(server.http_port, names, batch=50)
    grown = rss_kib(server.proc.pid) - before
    assert set(statuses) == {404}
    # Caching the misses grows RSS by about 60 MB here; 16 MB is noise.
    assert grown < 16 * 1024, "RSS grew by %d KiB" % grown
    assert http_get(server.http_port, "/static/style.css")[0] == 200


# -- 7. slow web clients crowded meters out --------------------------------------

def test_web_connections_never_take_a_meters_room(server_factory):
    srv = server_factory("MAX_CONNECTIONS: 30\nMAX_HTTP_CONNECTIONS: 20\n", start=False)
    srv.add_unit("A1", "k1", 1)
    srv.start()
    # Thirty web connections, each dribbling a body, as the attacker held them.
    web = []
    for _ in range(30):
        sock = socket.create_connection(("127.0.0.1", srv.http_port), timeout=BOUND)
        sock.sendall(b"POST /login/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n\r\nuser")
        web.append(sock)
    try:
        refused = [s for s in web[20:] if s.recv(100).startswith(b"HTTP/1.1 503")]
        assert len(refused) == 10
        meters = [srv.connect(timeout=BOUND) for _ in range(30)]
        for m in meters:
            m.sendall(b"TTP /ok/A1 k1\r")
        assert [read_answers(m, 1)[0] for m in meters] == ["OK"] * 30
        for m in meters:
            m.close()
    finally:
        for s in web:
            s.close()
    assert "MAX_HTTP_CONNECTIONS (20) reached" in srv.errors()

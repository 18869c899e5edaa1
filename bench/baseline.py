#!/usr/bin/env python3
"""The baseline server the benchmark compares texmate_ds against.

A bare ``selectors`` loop: accept, read, split the bytes on ``\\r``
(``\\n`` is ignored), answer ``OK\\r`` to every non-empty line with one
``send`` per read batch. With ``--close`` it answers the first line of a
connection and closes it (the ``connect`` scenario, like ``SOCKET_OPEN:
no``). It does no other work, and takes no shortcuts texmate_ds could not:
non-blocking sockets, ``TCP_NODELAY`` like ours, partial sends kept and
finished on write readiness, accepts bounded per turn.

    python3 bench/baseline.py [--port 0] [--close]

Prints ``listening on 127.0.0.1:PORT`` and ``ready``; stops on SIGTERM or
SIGINT.
"""

from __future__ import annotations

import argparse
import selectors
import signal
import socket
import sys

try:
    import resource
except ImportError:  # no descriptor limit to raise (Windows)
    resource = None

RECV_SIZE = 65536
ACCEPTS_PER_TURN = 256    # as texmate_ds's listener
OPEN_FILES = 20000
WAKE = object()   # selector data of the signal wake-up socket


class Conn:
    __slots__ = ("sock", "buf", "out", "done")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""      # the start of a line whose \r has not come yet
        self.out = b""      # answers the socket did not take yet
        self.done = False   # --close: answered, close once out is sent


def main(argv=None):
    parser = argparse.ArgumentParser(description="bare selectors server answering OK\\r")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--close", action="store_true",
                        help="close each connection after its first answer")
    args = parser.parse_args(argv)

    if resource is not None:   # like texmate_ds, lift the soft limit for many sockets
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = OPEN_FILES if hard == resource.RLIM_INFINITY else min(OPEN_FILES, hard)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    sel = selectors.DefaultSelector()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(1024)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, None)

    stopping = []
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    sel.register(wake_r, selectors.EVENT_READ, WAKE)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopping.append(signum))
    signal.set_wakeup_fd(wake_w.fileno())

    host, port = listener.getsockname()[:2]
    print("listening on %s:%d" % (host, port), flush=True)
    print("ready", flush=True)

    close_after = args.close
    conns = {}

    def close(conn):
        sel.unregister(conn.sock)
        del conns[conn.sock.fileno()]
        conn.sock.close()

    def write(conn):
        try:
            sent = conn.sock.send(conn.out)
        except BlockingIOError:
            sent = 0
        except OSError:
            close(conn)
            return
        conn.out = conn.out[sent:]
        if conn.out:
            sel.modify(conn.sock, selectors.EVENT_WRITE, conn)
        elif conn.done:
            close(conn)
        else:
            sel.modify(conn.sock, selectors.EVENT_READ, conn)

    def read(conn):
        try:
            data = conn.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            close(conn)
            return
        lines = (conn.buf + data).replace(b"\n", b"").split(b"\r")
        conn.buf = lines.pop()
        answers = sum(1 for line in lines if line)
        if not answers:
            return
        if close_after:
            answers = 1
            conn.done = True
        conn.out = b"OK\r" * answers
        write(conn)

    try:
        while not stopping:
            for key, mask in sel.select():
                conn = key.data
                if conn is None:
                    for _ in range(ACCEPTS_PER_TURN):
                        try:
                            sock, _addr = listener.accept()
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError:   # EMFILE: stays in the backlog
                            break
                        sock.setblocking(False)
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        c = Conn(sock)
                        conns[sock.fileno()] = c
                        sel.register(sock, selectors.EVENT_READ, c)
                elif conn is WAKE:
                    try:
                        while wake_r.recv(512):
                            pass
                    except BlockingIOError:
                        pass
                elif conn.sock.fileno() not in conns:
                    continue   # closed earlier in this turn
                elif mask & selectors.EVENT_WRITE:
                    write(conn)
                else:
                    read(conn)
    finally:
        signal.set_wakeup_fd(-1)
        for conn in list(conns.values()):
            conn.sock.close()
        listener.close()
        sel.close()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

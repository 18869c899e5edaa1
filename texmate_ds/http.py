"""HTTP on the web port.

For now this answers ``/healthz`` (``ok``) and says plainly for every other
path that the web interface is not in this version yet; the full HTTP/1.1
server (sans-IO parser, keep-alive, WSGI bridge) replaces it.
"""

import logging

from texmate_ds import loop

log = logging.getLogger("texmate_ds.http")

# The request head we read before answering, at most.
MAX_HEAD = 16384


class HTTPChannel(loop.Channel):
    def __init__(self, loop_, sock, addr):
        self.head = bytearray()
        super().__init__(loop_, sock, addr)

    def received(self, data):
        self.head += data
        if b"\r\n\r\n" in self.head or b"\n\n" in self.head:
            path = bytes(self.head.split(b" ", 2)[1:2] or [b"/"]).decode("latin-1")
            if path == "/healthz":
                self.answer("200 OK", "ok\n")
            else:
                self.answer("503 Service Unavailable",
                            "texmate_ds: the web interface is not in this version yet.\n")
        elif len(self.head) > MAX_HEAD:
            self.answer("431 Request Header Fields Too Large", "request head too large\n")

    def answer(self, status, body):
        body = body.encode()
        head = ("HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                "Content-Length: %d\r\nConnection: close\r\n\r\n" % (status, len(body)))
        self.head.clear()
        self.push(loop.Answer(head.encode() + body))
        self.finish()


def accept(loop_, sock, addr):
    HTTPChannel(loop_, sock, addr)


REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
           b"Content-Length: 30\r\nConnection: close\r\n\r\n"
           b"too many connections; retry.\r\n")

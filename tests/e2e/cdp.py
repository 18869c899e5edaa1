"""A headless Chromium driven over the DevTools protocol, with the standard
library only: ``--remote-debugging-pipe`` makes Chromium read commands on
its descriptor 3 and write answers and events on descriptor 4, each a JSON
text ended by a NUL byte. Enough of the protocol for end-to-end tests:
open a page, wait for it to load, run script in it, size the window like
a phone, take a screenshot.
"""

import base64
import fcntl
import json
import os
import select
import subprocess
import time

TIMEOUT = 60


class BrowserError(Exception):
    pass


def _high(fds):
    """Descriptors `fds` moved to numbers of 10 and up (close-on-exec)."""
    moved = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    return moved


class Chromium:
    def __init__(self, executable, flags, profile):
        # Both ends above 2 + 2, so that putting the child's on 3 and 4
        # never overwrites one with the other; close-on-exec, so only the
        # copies on 3 and 4 reach Chromium.
        child_r, self._to_child = _high(os.pipe())
        self._from_child, child_w = _high(os.pipe())

        def descriptors():
            os.dup2(child_r, 3)     # inheritable copies: they survive exec
            os.dup2(child_w, 4)

        self.proc = subprocess.Popen(
            [executable, *flags, "--user-data-dir=%s" % profile, "--remote-debugging-pipe",
             "about:blank"],
            close_fds=False, preexec_fn=descriptors,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(child_r)
        os.close(child_w)
        self._buffer = b""
        self._next_id = 0
        self._events = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        self.call("Page.enable", session=True)

    # -- the protocol ---------------------------------------------------------

    def call(self, method, session=False, **params):
        """Send a command; its result (BrowserError for a protocol error)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._receive()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError("%s: %s" % (method, answer["error"]))
                return answer["result"]
            self._events.append(answer)

    def _receive(self):
        deadline = time.monotonic() + TIMEOUT
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise BrowserError("no word from Chromium in %d s" % TIMEOUT)
            data = os.read(self._from_child, 65536)
            if not data:
                raise BrowserError("Chromium went away")
            self._buffer += data
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def wait_for(self, method):
        """The next event `method` (events that came earlier are dropped)."""
        while True:
            while self._events:
                event = self._events.pop(0)
                if event.get("method") == method:
                    return event
            self._events.append(self._receive())

    # -- what tests use -------------------------------------------------------

    def open(self, url):
        self._events.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")

    def run(self, script, wait_for_load=False):
        """The value of `script` in the page (a promise is awaited); with
        `wait_for_load`, also waits for the page the script navigates to."""
        self._events.clear()
        result = self.call("Runtime.evaluate", session=True, expression=script,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError("script failed: %s" % result["exceptionDetails"])
        if wait_for_load:
            self.wait_for("Page.loadEventFired")
        return result["result"].get("value")

    def size(self, width, height, mobile=False):
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width,
                  height=height, deviceScaleFactor=1, mobile=mobile)

    def screenshot(self):
        """The whole page as PNG bytes."""
        return base64.b64decode(self.call("Page.captureScreenshot", session=True,
                                          captureBeyondViewport=True)["data"])

    def close(self):
        try:
            self.call("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self._to_child)
        os.close(self._from_child)

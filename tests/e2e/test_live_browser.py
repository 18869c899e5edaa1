"""A live display in a real browser across a server restart: Debian's
headless Chromium (driven over the DevTools protocol, tests/e2e/cdp.py)
keeps a display open while the server is stopped and started again on the
same ports, and we read what the page shows. Skipped without Chromium, as
test_browser.py is.
"""

import datetime
import re

import pytest

from cdp import Chromium
from conftest import BASE_CONF, Server
from test_browser import CHROMIUM, FLAGS

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")]

# Seconds the page may take to show a state or a value: a hang, not a
# measure (the browser retries every 3 s). Below cdp.TIMEOUT.
PAGE_WAIT = 45

WAIT = """new Promise((done, fail) => {
    const start = Date.now();
    (function look() {
        if (%s) return done(true);
        if (Date.now() - start > %d) return fail(new Error("timed out: " + %s));
        setTimeout(look, 50);
    })();
})"""
STATE = "document.querySelector('.live-state').textContent"
VALUES = "[...document.querySelectorAll('.card .value')].map(e => e.textContent).join(',')"


def wait_until(browser, condition, shown):
    """Until `condition` (script) holds in the page; on a timeout the
    error says what `shown` (script) was."""
    browser.run(WAIT % (condition, PAGE_WAIT * 1000, shown))


def upload(srv, when, *values):
    line = "TTP /up/P1/<%s;%s> k1" % (when.strftime("%Y-%m-%d %H:%M:%S"),
                                      ";".join(str(v) for v in values))
    assert srv.ask(line) == "OK"


def test_a_display_reconnects_by_itself_after_a_server_restart(tmp_path):
    """A display open in Chromium is "live"; when the server stops (SIGTERM,
    with the stream open) its line says "reconnecting..." and the page
    stays; once the server is started again on the same ports, the page's
    EventSource reconnects by itself and shows a sample uploaded over TTP
    after the restart, then the next one live, all without a reload."""
    srv = Server(tmp_path / "srv", BASE_CONF + "LOGIN_REQUIRED: no\n")
    srv.add_unit("P1", "k1", 2, "--field-names", "Flow,Pressure")
    out = srv.manage("adddisplay", "Live", "--channels", "P1:1,2", "--refresh", "600").stdout
    path = re.search(r"(/views/\d+/)", out).group(1)
    srv.start()
    browser = Chromium(CHROMIUM, FLAGS, tmp_path / "profile")
    try:
        browser.open("http://127.0.0.1:%d%s" % (srv.http_port, path))
        wait_until(browser, "%s === 'live'" % STATE, STATE)
        browser.run("window.loadedAt = performance.timeOrigin")
        soon = datetime.datetime.now().replace(microsecond=0) + datetime.timedelta(hours=1)
        upload(srv, soon, 1, 2)
        wait_until(browser, "%s === '1,2'" % VALUES, VALUES)

        ports = (srv.ttp_port, srv.http_port)
        assert srv.stop() == 0
        wait_until(browser, "%s === 'reconnecting...'" % STATE, STATE)
        srv.keep_ports()
        srv.start()
        assert (srv.ttp_port, srv.http_port) == ports

        # Uploaded at once: the page gets it by resuming from its last
        # event's id, or live if it reconnected first.
        upload(srv, soon + datetime.timedelta(seconds=1), 777, 12.5)
        wait_until(browser, "%s === '777,12.5'" % VALUES, VALUES)
        wait_until(browser, "%s === 'live'" % STATE, STATE)
        last = soon + datetime.timedelta(seconds=2)
        upload(srv, last, 778, 13)
        wait_until(browser, "%s === '778,13'" % VALUES, VALUES)
        assert browser.run("document.querySelector('.card .when').textContent") == \
            last.strftime("%Y-%m-%d %H:%M:%S")
        # The same page all along, not a reload.
        assert browser.run("window.loadedAt === performance.timeOrigin")
    finally:
        browser.close()
        srv.kill()

"""Status at a glance in a real browser (static/status.js): a unit that
stops uploading turns from live to late by itself in the rendered page,
and its next upload brings it back to live, on a display (through
display.js's /events) and on the home page (through its own). The unit
expects a sample every second, so it is late after 2 s; the test waits
for what the page shows, never for a time. Without Chromium the tests
skip and say so, as tests/e2e/test_browser.py does."""

import datetime
import re
import shutil

import pytest

from texmate_ds import store

from cdp import Chromium
from conftest import BASE_CONF, Server

CHROMIUM = shutil.which("chromium")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")]

# As tests/e2e/test_browser.py: off the network and quiet on a closed machine.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]

# Resolves once `condition` (script) holds; fails after 20 s.
WAIT = """new Promise((done, fail) => {
    const start = Date.now();
    (function look() {
        if (%s) return done(true);
        if (Date.now() - start > 20000) return fail(new Error("timed out: " + %r));
        setTimeout(look, 50);
    })();
})"""


def wait(browser, condition):
    browser.run(WAIT % (condition, condition))


def badge(code):
    return "document.querySelector('.status[data-unit=\"%s\"]')" % code


def state_is(code, state):
    return ("%s.className === 'status status-%s' && %s.querySelector('.status-badge')"
            ".textContent === '%s'" % (badge(code), state, badge(code), state))


def upload(srv, code):
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")
    assert srv.ask("TTP /up/%s/<%s;1.5> k" % (code, stamp)) == "OK"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("status"), BASE_CONF + "LOGIN_REQUIRED: no\n")
    srv.add_unit("E1", "k", 1, "--name", "Every second")
    db = store.Database(str(srv.dir / "db" / "data_server3.db"))
    # As the admin's unit form sets it: a sample a second expected.
    db.units.change(db.units.get("E1"), expected_interval=1)
    db.close()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def browser(tmp_path):
    browser = Chromium(CHROMIUM, FLAGS, tmp_path / "profile")
    yield browser
    browser.close()


def test_a_display_turns_late_by_itself_and_live_again_on_an_upload(site, browser):
    out = site.manage("adddisplay", "Watch", "--channels", "E1:1", "--refresh", "600").stdout
    path = re.search(r"(/views/\d+/)", out).group(1)
    browser.open("http://127.0.0.1:%d%s" % (site.http_port, path))
    wait(browser, "document.querySelector('.live-state').textContent === 'live'")
    browser.run("window.loadedAt = performance.timeOrigin")
    upload(site, "E1")
    wait(browser, state_is("E1", "live"))
    # No more uploads: the page moves it on by itself.
    wait(browser, state_is("E1", "late"))
    age = browser.run(badge("E1") + ".querySelector('.status-age').textContent")
    assert re.fullmatch(r"\d+ s ago", age), age
    upload(site, "E1")
    wait(browser, state_is("E1", "live"))
    assert browser.run("document.querySelector('.card .value').textContent") == "1.5"
    # The same page all along, not a reload.
    assert browser.run("window.loadedAt === performance.timeOrigin")


def test_the_home_page_turns_late_by_itself_and_live_again_on_an_upload(site, browser):
    upload(site, "E1")
    browser.open("http://127.0.0.1:%d/" % site.http_port)
    browser.run("window.loadedAt = performance.timeOrigin")
    wait(browser, state_is("E1", "late"))
    upload(site, "E1")
    wait(browser, state_is("E1", "live"))
    assert browser.run("window.loadedAt === performance.timeOrigin")

"""The unit page as an operator uses it, in Debian's headless Chromium
against the real server: it fits a phone and a desktop without sideways
scrolling and its graph text is at least 11 CSS px on both; the pointer
(or a finger) reads values off a graph; dragging across a graph zooms to
that range with an address of its own that Back undoes; and live mode
follows each sample as it is committed.
"""

import datetime
import re

import pytest

from cdp import Chromium
from test_browser import CHROMIUM, FLAGS, start_site

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")]

WAIT = """new Promise((done, fail) => {
    const start = Date.now();
    (function look() {
        const value = (%s);
        if (value) return done(value);
        if (Date.now() - start > 20000) return fail(new Error("timed out"));
        setTimeout(look, 50);
    })();
})"""

# What an operator would notice: the page wider than the screen, and the
# smallest graph text as shown (its font size times the drawing's scale).
MEASURE = """(() => {
    const shown = [...document.querySelectorAll('figure.graph svg')]
        .filter(svg => svg.getBoundingClientRect().width > 0);
    const sizes = [], heights = [];
    for (const svg of shown) {
        const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
        for (const text of svg.querySelectorAll('text')) {
            sizes.push(parseFloat(getComputedStyle(text).fontSize) * scale);
            if (!text.getAttribute('transform'))
                heights.push(text.getBoundingClientRect().height);
        }
    }
    return {page: document.documentElement.scrollWidth, screen: window.innerWidth,
            graphs: shown.length, font: Math.min(...sizes), box: Math.min(...heights)};
})()"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    srv = start_site(tmp_path_factory.mktemp("unit-page"), "LOGIN_REQUIRED: no\n")
    yield srv
    srv.stop()


@pytest.fixture
def browser(tmp_path):
    b = Chromium(CHROMIUM, FLAGS, tmp_path / "profile")
    yield b
    b.close()


def page_url(site, query="from=-1h"):
    return "http://127.0.0.1:%d/units/P1/?%s" % (site.http_port, query)


@pytest.mark.parametrize("width,height,mobile", [(390, 844, True), (1280, 900, False),
                                                 (1920, 1080, False)])
def test_the_unit_page_fits_the_screen_and_its_graph_text_is_readable(
        site, browser, width, height, mobile):
    browser.size(width, height, mobile=mobile)
    browser.open(page_url(site))
    seen = browser.run(MEASURE)
    assert seen["page"] <= seen["screen"], seen          # no sideways page scroll
    assert seen["graphs"] == 1, seen                     # one drawing of the one axis
    assert seen["font"] >= 11 and seen["box"] >= 11, seen


def plot_point(browser, fraction):
    """Viewport (x, y) at `fraction` across the shown graph's plot, mid-height."""
    return browser.run("""(() => {
        const svg = [...document.querySelectorAll('figure.graph svg')]
            .find(s => s.getBoundingClientRect().width > 0);
        const [left, top, width, height] = svg.getAttribute('data-plot').split(' ').map(Number);
        const rect = svg.getBoundingClientRect();
        const scale = rect.width / svg.viewBox.baseVal.width;
        return [rect.left + (left + width * %f) * scale, rect.top + (top + height / 2) * scale];
    })()""" % fraction)


def mouse(browser, kind, point, buttons=0):
    browser.call("Input.dispatchMouseEvent", session=True, type=kind, x=point[0], y=point[1],
                 button="left" if kind != "mouseMoved" else "none", buttons=buttons,
                 clickCount=1 if kind != "mouseMoved" else 0)


def test_hovering_a_graph_reads_the_time_and_values_there(site, browser):
    browser.size(1280, 900)
    browser.open(page_url(site))
    mouse(browser, "mouseMoved", plot_point(browser, 0.5))
    text = browser.run(WAIT % "document.querySelector('figure.graph .readout')?.innerText")
    when, *values = text.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", when), text
    # the samples' values: flow 50..56, pressure 3..5 (start_site)
    assert re.fullmatch(r"Flow: 5[0-6]", values[0]) and re.fullmatch(r"Pressure: [3-5]",
                                                                      values[1]), text
    # and a cursor line marks where
    assert browser.run("!!document.querySelector('figure.graph svg .cursor')")


def test_tapping_a_graph_on_a_phone_reads_values_and_they_stay(site, browser):
    browser.size(390, 844, mobile=True)
    browser.call("Emulation.setTouchEmulationEnabled", session=True, enabled=True)
    browser.open(page_url(site))
    x, y = plot_point(browser, 0.3)
    for kind, points in (("touchStart", [{"x": x, "y": y}]), ("touchEnd", [])):
        browser.call("Input.dispatchTouchEvent", session=True, type=kind, touchPoints=points)
    text = browser.run(WAIT % "document.querySelector('figure.graph .readout')?.innerText")
    assert "Flow: 5" in text


def test_dragging_across_a_graph_zooms_and_back_undoes_it(site, browser):
    browser.size(1280, 900)
    browser.open(page_url(site))
    first = browser.run("location.href")
    a, b = plot_point(browser, 0.25), plot_point(browser, 0.75)
    browser.run("window.before = performance.timeOrigin")
    mouse(browser, "mousePressed", a, buttons=1)
    mouse(browser, "mouseMoved", ((a[0] + b[0]) / 2, a[1]), buttons=1)
    mouse(browser, "mouseMoved", b, buttons=1)
    browser._events.clear()
    mouse(browser, "mouseReleased", b)
    browser.wait_for("Page.loadEventFired")
    query = browser.run("Object.fromEntries(new URLSearchParams(location.search))")
    start, end = (datetime.datetime.strptime(query[k], "%Y-%m-%d %H:%M:%S") for k in ("from", "to"))
    # half of the hour shown, give or take the rounding to whole seconds
    assert 29 * 60 - 2 <= (end - start).total_seconds() <= 31 * 60 + 2, query
    line = browser.run("document.querySelector('.range-line').innerText")
    assert query["from"] in line and query["to"] in line
    browser.run("history.back()")
    browser.run(WAIT % "location.href === %r" % first)


def test_live_mode_follows_each_committed_sample(site, browser):
    browser.size(1280, 900)
    browser.open(page_url(site, "from=-1h&live=1"))
    browser.run(WAIT % "document.querySelector('.live-state').textContent === 'live'")
    browser.run("window.loadedAt = performance.timeOrigin")
    count = int(browser.run(
        "document.querySelector('.range-line strong').textContent").split()[0])
    stamp = datetime.datetime.now().replace(microsecond=0) - datetime.timedelta(seconds=2)
    assert site.ask("TTP /up/P1/<%s;999;7> k1" % stamp.strftime("%Y-%m-%d %H:%M:%S")) == "OK"
    browser.run(WAIT % ("document.querySelector('.range-line strong').textContent === '%d samples'"
                        % (count + 1)))
    # the statistics followed: the new value is the maximum and the last
    cells = browser.run("[...document.querySelectorAll('table.stats tr')[1].cells]"
                        ".map(c => c.firstChild.textContent)")
    assert cells[3] == "999" and cells[7] == "999", cells
    assert browser.run("window.loadedAt === performance.timeOrigin")   # not a reload
    assert browser.run("document.querySelector('.live-link').textContent") == "Stop live"


def test_dragging_a_finger_across_a_graph_on_a_phone_zooms(site, browser):
    browser.size(390, 844, mobile=True)
    browser.call("Emulation.setTouchEmulationEnabled", session=True, enabled=True)
    browser.open(page_url(site))
    (ax, ay), (bx, _) = plot_point(browser, 0.2), plot_point(browser, 0.7)
    steps = [("touchStart", ax), ("touchMove", (ax + bx) / 2), ("touchMove", bx)]
    for kind, x in steps:
        browser.call("Input.dispatchTouchEvent", session=True, type=kind,
                     touchPoints=[{"x": x, "y": ay}])
    browser._events.clear()
    browser.call("Input.dispatchTouchEvent", session=True, type="touchEnd", touchPoints=[])
    browser.wait_for("Page.loadEventFired")
    query = browser.run("Object.fromEntries(new URLSearchParams(location.search))")
    start, end = (datetime.datetime.strptime(query[k], "%Y-%m-%d %H:%M:%S") for k in ("from", "to"))
    assert 25 * 60 <= (end - start).total_seconds() <= 35 * 60, query   # half the hour

"""Status at a glance on the real server, over HTTP: each unit's age and
state on the home page and displays, "problems first" with its pages,
the expected interval set in the admin, and a display's units of measure
and trend lines. Meters upload over TTP; a unit that "went quiet" an hour
ago has its last upload moved back in the database by the test's own
connection, as ``manage`` would write it, since the server stamps every
upload with its own clock."""

import html
import re
import time

import pytest
from test_admin import PASSWORD, unit_form

from texmate_ds import times

import conftest


@pytest.fixture
def srv(server_factory):
    srv = server_factory(start=False)
    srv.add_unit("LIVE", "k", 2, "--field-names", "Flow,Level", "--field-units", "m³/h,m")
    srv.add_unit("LATE", "k", 1)
    srv.add_unit("QUIET", "k", 1)
    srv.add_unit("NEW", "k", 1)
    srv.manage("changepassword", "Administrator", "--noinput",
               env=dict(srv.env, TXM_PASSWORD=PASSWORD))
    return srv.start()


@pytest.fixture
def browser(srv):
    browser = conftest.Browser(srv.http_port)
    assert browser.sign_in("Administrator", PASSWORD).status == 303
    return browser


def upload(srv, code, count, spacing_s=10, fields=1, key="k"):
    """`count` samples `spacing_s` apart by the meter's clock, the newest now."""
    now = time.time()
    samples = "".join("<%s;%s>" % (time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(
        now - spacing_s * (count - 1 - i))), ";".join(str(i + f) for f in range(fields)))
        for i in range(count))
    assert srv.ask("TTP /up/%s/%s %s" % (code, samples, key)) == "OK"


def heard_ago(srv, code, seconds):
    """As if the unit's last upload came `seconds` ago."""
    srv.through_store(lambda db: db.write("UPDATE units SET last_received = ? WHERE code = ?",
                                          (times.now() - seconds * times.SECOND, code)))


def statuses(body):
    """{unit code: (state class, badge words, age text, tooltip)} of a page."""
    return {code: (state, words, age, html.unescape(title)) for state, code, title, words, age in
            re.findall(r'<span class="status status-(\w+)" data-unit="(\w+)" data-heard="\d*"'
                       r' data-late="\d+" data-silent="\d+" title="([^"]*)">'
                       r'<span class="status-badge">([^<]*)</span> '
                       r'<span class="status-age">([^<]*)</span></span>', body)}


def test_the_home_page_says_how_long_ago_each_unit_was_heard_from(srv, browser):
    upload(srv, "LIVE", 5, fields=2)             # usual interval: 10 s
    upload(srv, "LATE", 5)
    upload(srv, "QUIET", 5)
    heard_ago(srv, "LATE", 25)                   # late after 20 s
    heard_ago(srv, "QUIET", 2 * 3600)            # silent after 100 s
    page = browser.get("/")
    assert page.status == 200
    found = statuses(page.body)
    assert found["LIVE"][:2] == ("live", "live") and found["LIVE"][2] in ("0 s ago", "1 s ago")
    assert found["LIVE"][3] == "late after 20 s, silent after 1.7 min without an upload"
    assert found["LATE"][:3] == ("late", "late", "25 s ago")
    assert found["QUIET"][:3] == ("silent", "silent", "2 h ago")
    assert found["NEW"][:3] == ("never", "no samples", "—")
    # What status.js needs: the server's time, its own script, the units' samples.
    assert re.search(r'<div class="table-scroll" data-now="\d{16}" data-events="/events\?'
                     r'units=LATE%2CLIVE%2CNEW%2CQUIET">', page.body)
    assert '<script src="/static/status.js" defer></script>' in page.body
    script = browser.get("/static/status.js")
    assert script.status == 200 and "javascript" in script.header("Content-Type")


def test_problems_first_puts_silent_then_late_then_live_then_never_across_pages(srv, browser):
    srv.add_units(["U%02d" % i for i in range(50)], "k", 1)
    upload(srv, "LIVE", 3, fields=2)
    upload(srv, "LATE", 3)
    upload(srv, "QUIET", 3)
    heard_ago(srv, "LATE", 30)
    heard_ago(srv, "QUIET", 3 * 86400)
    by_code = browser.get("/")
    assert list(statuses(by_code.body))[:4] == ["LATE", "LIVE", "NEW", "QUIET"]
    assert '<strong aria-current="true">By code</strong>' in by_code.body
    first = browser.get("/?order=status")
    assert first.status == 200
    order = list(statuses(first.body))
    assert order[:4] == ["QUIET", "LATE", "LIVE", "NEW"] and order[4:] == [
        "U%02d" % i for i in range(46)]
    assert statuses(first.body)["QUIET"][2] == "3 days ago"
    assert '<a href="/">By code</a>' in first.body
    assert 'href="?order=status&amp;page=2"' in first.body
    second = browser.get("/?order=status&page=2")
    assert list(statuses(second.body)) == ["U46", "U47", "U48", "U49"]


@pytest.mark.parametrize("query, reason", [
    ("order=newest", "order: code or status, not &#x27;newest&#x27;"),
    ("order=status&order=code", "given twice"),
    ("order=", "order: code or status, not &#x27;&#x27;"),
])
def test_a_bad_order_is_a_400_that_says_why(srv, browser, query, reason):
    answer = browser.get("/?" + query)
    assert answer.status == 400 and reason in answer.body


def test_the_expected_interval_is_set_in_the_admin_and_judges_the_unit(srv, browser):
    upload(srv, "LATE", 5)                       # 10 s apart: late after 20 s
    heard_ago(srv, "LATE", 25)
    assert statuses(browser.get("/").body)["LATE"][0] == "late"
    form = browser.get("/admin/units/LATE/change/")
    assert form.status == 200 and 'name="expected_interval"' in form.body
    assert "Expected interval (seconds)" in form.body
    for wrong, why in (("0", "a number from 1 to 604800"), ("604801", "a number from 1 to 604800"),
                       ("ten", "a whole number")):
        answer = browser.post("/admin/units/LATE/change/", [
            ("csrf_token", browser.csrf("/admin/"))] + unit_form(
                code="LATE", key="k", name="", fields="1", expected_interval=wrong))
        assert answer.status == 400 and why in answer.body
    answer = browser.post("/admin/units/LATE/change/", [
        ("csrf_token", browser.csrf("/admin/"))] + unit_form(
            code="LATE", key="k", name="", fields="1", expected_interval="60"))
    assert answer.status == 303
    late = statuses(browser.get("/").body)["LATE"]
    assert late[:3] == ("live", "live", "25 s ago")
    assert late[3] == "late after 2 min, silent after 10 min without an upload"
    log = browser.get("/admin/log/?model=units")
    assert "expected_interval" in log.body
    # Emptied: the usual interval counts again.
    answer = browser.post("/admin/units/LATE/change/", [
        ("csrf_token", browser.csrf("/admin/"))] + unit_form(
            code="LATE", key="k", name="", fields="1", expected_interval=""))
    assert answer.status == 303
    assert statuses(browser.get("/").body)["LATE"][0] == "late"


def test_a_display_shows_statuses_units_of_measure_and_an_hours_trend(srv, browser):
    upload(srv, "LIVE", 90, spacing_s=60, fields=2)    # an hour and a half, a minute apart
    out = srv.manage("adddisplay", "Plant", "--channels", "LIVE:1,2", "--channels", "NEW:1",
                     "--refresh", "30").stdout
    path = re.search(r"(/views/\d+/)", out).group(1)
    page = browser.get(path)
    assert page.status == 200
    found = statuses(page.body)
    assert found["LIVE"][:2] == ("live", "live") and found["NEW"][:2] == ("never", "no samples")
    assert '<div class="cards" data-now="' in page.body
    assert page.body.index("/static/status.js") < page.body.index("/static/display.js")
    assert '<span class="measure">m³/h</span>' in page.body
    assert '<span class="measure">m</span>' in page.body
    trends = re.findall(r'<svg class="trend" viewBox="0 0 120 30" preserveAspectRatio="none"'
                        r' role="img" aria-label="([^"]*)"><polyline points="([^"]*)"/></svg>',
                        page.body)
    assert [label for label, _ in trends] == [
        "Flow, the last hour: 29 to 89 m³/h", "Level, the last hour: 30 to 90 m"]
    for _, points in trends:
        pairs = [tuple(map(float, p.split(","))) for p in points.split()]
        assert 2 <= len(pairs) <= 60
        assert all(0 <= x <= 120 and 0 <= y <= 30 for x, y in pairs)
        assert [x for x, _ in pairs] == sorted(x for x, _ in pairs)   # oldest left
    # A unit with no samples has no line.
    new_card = page.body[page.body.index('data-unit="NEW">'):]
    assert "<svg" not in new_card[:new_card.index("</section>")]

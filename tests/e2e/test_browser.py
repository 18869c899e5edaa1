"""End to end in a real browser: Debian's headless Chromium loads pages from
the real server and we read what it rendered.

Two ways of driving it, neither needing a driver package: the command line
(``--dump-dom`` prints the DOM after scripts ran, ``--screenshot`` writes a
PNG) against a server with ``LOGIN_REQUIRED: no``, and the DevTools
protocol over a pipe (tests/e2e/cdp.py) for the newcomer's whole walk:
sign in, change the default password, read a unit, download its CSV, and
the same page on a phone-sized screen. Without Chromium (``.ci/run``
installs it) the tests skip and say so.
"""

import datetime
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET

import pytest

from cdp import Chromium
from conftest import BASE_CONF, Server

CHROMIUM = shutil.which("chromium")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")]

# The flags that keep Chromium off the network and quiet on a closed machine.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


# The graphs a visitor sees: the unit page draws each twice (desktop and
# phone-sized) and shows one.
SHOWN_GRAPHS = ("[...document.querySelectorAll('figure.graph svg')]"
                ".filter(svg => svg.getBoundingClientRect().width > 0)")


def chromium(tmp_path, *args, timeout=90):
    result = subprocess.run(
        [CHROMIUM, *FLAGS, "--user-data-dir=%s" % (tmp_path / "profile")] + list(args),
        capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def start_site(folder, extra=""):
    """A server with unit P1 holding an hour of samples, one a minute,
    ending now (so "last hour" shows them)."""
    srv = Server(folder, BASE_CONF + extra)
    srv.add_unit("P1", "k1", 2, "--name", "Pump <1>", "--field-names", "Flow,Pressure")
    srv.start()
    now = datetime.datetime.now().replace(microsecond=0)
    samples = ["%s;%d;%d" % ((now - datetime.timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S"),
                             50 + m % 7, 3 + m % 3) for m in range(60)]
    answer = srv.ask("TTP /up/P1/%s k1" % "".join("<%s>" % s for s in samples))
    assert answer == "OK"
    return srv


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    srv = start_site(tmp_path_factory.mktemp("e2e"), "LOGIN_REQUIRED: no\n")
    yield srv
    srv.stop()


def test_unit_page_renders_the_graph_in_chromium(site, tmp_path):
    url = "http://127.0.0.1:%d/units/P1/?from=-1h" % site.http_port
    dom = chromium(tmp_path, "--dump-dom", url)
    assert "<svg" in dom
    svg = dom[dom.index("<svg"):dom.index("</svg>") + len("</svg>")]
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    # The unit's name is shown as text, never as markup.
    assert "Pump &lt;1&gt;" in dom
    assert "Flow" in svg and "Pressure" in svg


def test_home_lists_the_unit_in_chromium(site, tmp_path):
    dom = chromium(tmp_path, "--dump-dom", "http://127.0.0.1:%d/" % site.http_port)
    assert '<a href="/units/P1/">Pump &lt;1&gt;</a>' in dom
    assert ">60<" in dom     # its sample count


@pytest.mark.parametrize("size", ["1280,900", "390,844"])
def test_unit_page_screenshot_at_desktop_and_phone_size(site, tmp_path, size):
    shot = tmp_path / "unit.png"
    url = "http://127.0.0.1:%d/units/P1/?from=-1h" % site.http_port
    chromium(tmp_path, "--screenshot=%s" % shot, "--window-size=%s" % size, url)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == tuple(int(n) for n in size.split(","))


def sign_in_first_time(browser):
    """On the sign-in page: sign in as Administrator / admin, then choose a
    new password on the page that asks for one, as a newcomer does."""
    browser.run("""
        document.querySelector('input[name=username]').value = 'Administrator';
        const password = document.querySelector('input[name=password]');
        password.value = 'admin';
        password.form.submit();""", wait_for_load=True)
    assert browser.run("location.pathname") == "/password/"
    assert "default password" in browser.run("document.body.innerText")
    browser.run("""
        for (const name of ['new_password', 'new_password2'])
            document.querySelector('input[name=' + name + ']').value = 'pump-station-7';
        const old = document.querySelector('input[name=old_password]');
        old.value = 'admin';
        old.form.submit();""", wait_for_load=True)


def test_a_newcomer_walks_through_in_chromium(tmp_path):
    srv = start_site(tmp_path / "srv")
    browser = Chromium(CHROMIUM, FLAGS, tmp_path / "profile")
    try:
        base = "http://127.0.0.1:%d" % srv.http_port
        browser.open(base + "/units/P1/?from=-1h")
        assert browser.run("location.pathname") == "/login/"

        sign_in_first_time(browser)
        # Back where the newcomer was going: the unit's last hour.
        assert browser.run("location.pathname + location.search") == "/units/P1/?from=-1h"
        assert browser.run(SHOWN_GRAPHS + ".length") == 1
        assert "Pressure" in browser.run("document.querySelector('table').innerText")

        csv_text = browser.run(
            "fetch(document.querySelector('a[href^=\"samples.csv\"]').href)"
            ".then(answer => answer.text())")
        lines = csv_text.splitlines()
        assert lines[0] == "id,timestamp,Flow,Pressure" and len(lines) >= 60

        # A phone: the page fits its width; wide tables scroll inside.
        browser.size(390, 844, mobile=True)
        browser.open(base + "/units/P1/?from=-1h")
        assert browser.run("document.documentElement.scrollWidth") <= 390
        assert browser.run(SHOWN_GRAPHS + "[0].getBoundingClientRect().right") <= 390
        shot = browser.screenshot()
        assert shot[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">I", shot[16:20])[0] == 390
    finally:
        browser.close()
        srv.stop()


def test_a_newcomer_signs_in_over_https_in_chromium(tmp_path, certificate):
    """The README's HTTPS set-up as a person tries it: a self-signed
    certificate (the browser told to accept it, as a person clicks through
    the warning), sign in at https://, the cookie Secure, the unit page."""
    cert, key = certificate
    srv = start_site(tmp_path / "srv", "HTTPS_CERT_FILE: %s\nHTTPS_KEY_FILE: %s\n" % (cert, key))
    assert "web: https://" in srv.output()
    browser = Chromium(CHROMIUM, FLAGS + ["--ignore-certificate-errors"], tmp_path / "profile")
    try:
        base = "https://127.0.0.1:%d" % srv.http_port
        browser.open(base + "/units/P1/?from=-1h")
        assert browser.run("location.protocol + location.pathname") == "https:/login/"
        sign_in_first_time(browser)
        cookies = browser.call("Network.getAllCookies", session=True)["cookies"]
        session = [c for c in cookies if c["name"] == "txm_session"]
        assert session and session[0]["secure"] and session[0]["httpOnly"]
        assert browser.run("location.href") == base + "/units/P1/?from=-1h"
        assert browser.run(SHOWN_GRAPHS + ".length") == 1
    finally:
        browser.close()
        srv.stop()


def test_a_newcomer_adds_a_unit_with_a_two_axis_graph_in_the_admin(tmp_path):
    """Sign in, open the admin, add a unit of four fields on two labelled
    axes with units of measure through the form, as a person clicks and
    types, and see its page draw one graph per axis."""
    srv = Server(tmp_path / "srv", BASE_CONF)
    srv.start()
    browser = Chromium(CHROMIUM, FLAGS, tmp_path / "profile")
    try:
        base = "http://127.0.0.1:%d" % srv.http_port
        browser.open(base + "/admin/")
        sign_in_first_time(browser)
        assert browser.run("location.pathname") == "/admin/"
        browser.run("document.querySelector('a[href=\"/admin/units/add/\"]').click()",
                    wait_for_load=True)
        assert browser.run("location.pathname") == "/admin/units/add/"
        browser.run("""
            const form = document.querySelector('form.admin-form');
            const set = (name, value) => { form.elements[name].value = value; };
            set('code', 'T4'); set('key', 'tank-key'); set('name', 'Tank farm');
            set('fields', '4');
            const names = ['Flow', 'Level', 'Temperature', 'Pressure'];
            const units = ['m³/h', 'm', '°C', 'bar'];
            const axes = ['1', '1', '2', '2'];
            form.querySelectorAll('input[name=field_names]').forEach((e, i) => e.value = names[i]);
            form.querySelectorAll('input[name=field_units]').forEach((e, i) => e.value = units[i]);
            form.querySelectorAll('select[name=field_axis]').forEach((e, i) => e.value = axes[i]);
            const labels = form.querySelectorAll('input[name=axis_label]');
            labels[0].value = 'Flow and level'; labels[1].value = 'Temperature and pressure';
            form.querySelector('button[name=_save]').click();""", wait_for_load=True)
        assert browser.run("location.pathname") == "/admin/units/"
        assert "The unit “T4 (Tank farm)” was added." in browser.run("document.body.innerText")

        srv.ask("TTP /up/T4/<2024-03-01 00:00:00;1;2;20;1.5><2024-03-01 00:01:00;2;3;21;1.6>"
                " tank-key")
        browser.open(base + "/units/T4/?from=2024-03-01&to=2024-03-02")
        # a graph per axis, each with its label up its y axis
        labels = browser.run(
            SHOWN_GRAPHS + ".map(svg => svg.querySelector('.axis-label').textContent)")
        assert labels == ["Flow and level", "Temperature and pressure"]
        text = browser.run("document.body.innerText")
        assert "Flow (m³/h)" in text and "Pressure (bar)" in text
    finally:
        browser.close()
        srv.stop()


def test_a_display_updates_itself_live_in_chromium(site, tmp_path):
    """A display open in the browser shows a new value as soon as its
    upload is committed, without reloading (static/display.js on /events)."""
    out = site.manage("adddisplay", "Live", "--channels", "P1:1,2", "--refresh", "600").stdout
    path = re.search(r"(/views/\d+/)", out).group(1)
    browser = Chromium(CHROMIUM, FLAGS, tmp_path / "profile")
    try:
        browser.open("http://127.0.0.1:%d%s" % (site.http_port, path))
        wait = """new Promise((done, fail) => {
            const start = Date.now();
            (function look() {
                if (%s) return done(true);
                if (Date.now() - start > 20000) return fail(new Error("timed out"));
                setTimeout(look, 50);
            })();
        })"""
        browser.run(wait % "document.querySelector('.live-state').textContent === 'live'")
        browser.run("window.loadedAt = performance.timeOrigin")
        stamp = datetime.datetime.now().replace(microsecond=0) + datetime.timedelta(hours=1)
        assert site.ask("TTP /up/P1/<%s;777;12.5> k1" % stamp.strftime("%Y-%m-%d %H:%M:%S")) \
            == "OK"
        browser.run(wait % "[...document.querySelectorAll('.card .value')].map(e => "
                    "e.textContent).join(',') === '777,12.5'")
        assert browser.run("document.querySelector('.card .when').textContent") == \
            stamp.strftime("%Y-%m-%d %H:%M:%S")
        # The same page, not a reload.
        assert browser.run("window.loadedAt === performance.timeOrigin")
    finally:
        browser.close()

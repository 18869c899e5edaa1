"""The latest example (examples/HTTPApps/latest.py) in Debian's headless
Chromium, on a phone-sized screen: a visitor follows its sign-in link,
signs in, comes back to it, and the page fits 390 px with its numbers in
big type. Skipped without Chromium, as tests/e2e/test_browser.py is."""

import shutil
import struct

import pytest

from cdp import Chromium
from conftest import ROOT, Server, child_env
from test_browser import CHROMIUM, FLAGS

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")]

CONF = """\
DS_PORT: 0
HTTP_PORT: 0
DS_BIND: 127.0.0.1
HTTP_BIND: 127.0.0.1

[httpapps]
latest: on
latest.url: latest/
"""


def test_latest_fits_a_phone_in_chromium(tmp_path):
    srv = Server(tmp_path / "site", CONF)
    (srv.dir / "HTTPApps").mkdir()
    shutil.copy(ROOT / "examples" / "HTTPApps" / "latest.py", srv.dir / "HTTPApps")
    srv.add_unit("P1", "k1", 3, "--name", "A pump with a rather long name <1>",
                 "--field-names", "Flow,Pressure,Level", "--field-units", "m3/h,bar,m")
    srv.manage("adduser", "ann", "--all-units", "--noinput",
               env=dict(child_env(), TXM_PASSWORD="pw of ann"))
    srv.start()
    browser = Chromium(CHROMIUM, FLAGS, tmp_path / "profile")
    try:
        # The longest value a meter can send comes out in 17 digits.
        assert srv.ask("TTP /up/P1/<2024-3-1 8:00:00;1.4142135623730951;-0.001;1e+20> k1") \
            == "OK"
        browser.size(390, 844, mobile=True)
        browser.open("http://127.0.0.1:%d/latest/" % srv.http_port)
        browser.run("document.querySelector('a.button').click()", wait_for_load=True)
        assert browser.run("location.pathname") == "/login/"
        browser.run("""
            document.querySelector('input[name=username]').value = 'ann';
            const password = document.querySelector('input[name=password]');
            password.value = 'pw of ann';
            password.form.submit();""", wait_for_load=True)
        assert browser.run("location.pathname") == "/latest/"
        assert "A pump with a rather long name <1>" in browser.run("document.body.innerText")
        assert browser.run("document.documentElement.scrollWidth") <= 390
        assert browser.run("Math.max(...[...document.querySelectorAll('section, .value')]"
                           ".map(e => e.getBoundingClientRect().right))") <= 390
        assert browser.run("parseFloat(getComputedStyle(document.querySelector('.value'))"
                           ".fontSize)") >= 32
        shot = browser.screenshot()
        assert struct.unpack(">I", shot[16:20])[0] == 390
    finally:
        browser.close()
        srv.stop()

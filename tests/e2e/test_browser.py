"""End to end in a real browser: Debian's headless Chromium loads pages from
the real server and we read what it rendered.

Chromium is driven from the command line only (``--dump-dom`` prints the
DOM after scripts ran, ``--screenshot`` writes a PNG), so these tests need
no driver package. Chromium cannot be given a session cookie that way, so
the server runs with ``LOGIN_REQUIRED: no``; sign-in itself is tested over
HTTP in tests/integration. Without Chromium (``.ci/run`` installs it) the
tests skip and say so.
"""

import datetime
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import BASE_CONF, Server

CHROMIUM = shutil.which("chromium")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")]

# The flags that keep Chromium off the network and quiet on a closed machine.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def chromium(tmp_path, *args, timeout=90):
    result = subprocess.run(
        [CHROMIUM, *FLAGS, "--user-data-dir=%s" % (tmp_path / "profile")] + list(args),
        capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("e2e"), BASE_CONF + "LOGIN_REQUIRED: no\n")
    srv.add_unit("P1", "k1", 2, "--name", "Pump <1>", "--field-names", "Flow,Pressure")
    srv.start()
    # An hour of samples, one a minute, ending now: "last hour" shows them.
    now = datetime.datetime.now().replace(microsecond=0)
    samples = ["%s;%d;%d" % ((now - datetime.timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S"),
                             50 + m % 7, 3 + m % 3) for m in range(60)]
    answer = srv.ask("TTP /up/P1/%s k1" % "".join("<%s>" % s for s in samples))
    assert answer == "OK"
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

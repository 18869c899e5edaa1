"""The examples of examples/ (examples/README.md), each copied into a
site's TTPApps/ or HTTPApps/ and turned on as a site would, against the
real server over real sockets: time answers the server's UTC clock,
shifted by its option, and authenticates. (watch is tested in
test_app_events.py.)"""

import datetime
import re
import shutil

import pytest

from texmate_ds import times

from conftest import BASE_CONF, ROOT, Server, child_env

EXAMPLES = ROOT / "examples"

CONF = BASE_CONF + """\
[ttpapps]
time: on
"""


def site_folder(folder, conf, apps=("TTPApps/time.py",), env=None):
    """A Server (not started) in `folder` with the examples `apps` copied
    where the site's apps go, as examples/README.md says."""
    srv = Server(folder, conf, env=env)
    for app in apps:
        (srv.dir / app).parent.mkdir(exist_ok=True)
        shutil.copy(EXAMPLES / app, srv.dir / app)
    return srv


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    # The server's machine on UTC+5:30 (a POSIX TZ: no tz database needed),
    # to show that time answers UTC whatever the machine's zone.
    srv = site_folder(tmp_path_factory.mktemp("examples") / "site", CONF,
                      env=dict(child_env(), TZ="XST-5:30"))
    srv.add_unit("A1", "k1", 3, "--name", "Pump 1")
    srv.add_unit("D1", "kd", 1, "--disabled")
    yield srv.start()
    srv.kill()


# -- time -----------------------------------------------------------------------

def test_time_answers_the_servers_utc_clock_to_the_second(site):
    assert "TTP app time: /time/ (%s)" % (site.dir / "TTPApps" / "time.py") in site.errors()
    answer = site.ask("TTP /time/A1 k1")
    assert re.fullmatch(r"OK \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", answer), answer
    # In the meters' own form, as the server reads their timestamps...
    sent = times.parse(answer[3:])
    assert abs(sent - times.now()) < 60 * times.SECOND
    # ...and UTC, though the server's machine is on UTC+5:30.
    utc = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    shown = datetime.datetime.strptime(answer[3:], "%Y-%m-%d %H:%M:%S")
    assert abs((shown - utc).total_seconds()) < 60


def test_time_authenticates_the_unit_first(site):
    assert site.ask("TTP /time/A1 wrong") == "402 Unauthorized"
    assert site.ask("TTP /time/NOPE k1") == "405 Unit not found"
    assert site.ask("TTP /time/D1 kd") == "403 Forbidden"
    assert site.ask("TTP /time/A1/now wrong") == "402 Unauthorized"   # the key before the rest
    assert site.ask("TTP /time/A1/now k1") == "400 Bad request"


def test_time_is_shifted_by_its_offset(tmp_path):
    srv = site_folder(tmp_path / "site", BASE_CONF + "[ttpapps]\ntime: on\n"
                      "time.OFFSET_MINUTES: -90\n", apps=["TTPApps/time.py"])
    srv.add_unit("A1", "k1", 1)
    listed = srv.manage("apps").stdout
    assert ("      OFFSET_MINUTES = -90   (default 0)   minutes added to the server's UTC "
            "clock (60: UTC+1)\n") in listed
    srv.start()
    try:
        sent = times.parse(srv.ask("TTP /time/A1 k1")[3:])
        assert abs(sent - (times.now() - 90 * times.MINUTE)) < 60 * times.SECOND
    finally:
        srv.kill()

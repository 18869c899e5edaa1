"""The examples of examples/ (examples/README.md), each copied into a
site's TTPApps/ or HTTPApps/ and turned on as a site would, against the
real server over real sockets: time answers the server's UTC clock,
shifted by its option, and authenticates; relay gives a source's newest
sample in the configured field order, to the units dl would let read it;
latest shows a signed-in user their units only, escaped, on a page fit for
a phone. (watch is tested in test_app_events.py.)"""

import datetime
import re
import shutil
import subprocess
import sys

import pytest

from texmate_ds import times

from conftest import (
    BASE_CONF,
    ROOT,
    Browser,
    Server,
    child_env,
    engine_conf,
    with_database,
)

EXAMPLES = ROOT / "examples"

CONF = BASE_CONF + """\
[ttpapps]
time: on
relay: on
relay.SOURCE: A1
relay.FIELDS: 3,1,2

[httpapps]
latest: on
latest.url: latest/
"""

HOSTILE = """<script>alert("H1")</script> & 'Tank'"""


def site_folder(folder, conf, engine,
                apps=("TTPApps/time.py", "TTPApps/relay.py", "HTTPApps/latest.py"), env=None):
    """A Server (not started) in `folder` on `engine` with the examples
    `apps` copied where the site's apps go, as examples/README.md says."""
    srv = Server(folder, with_database(conf, engine_conf(engine)), env=env, engine=engine)
    for app in apps:
        (srv.dir / app).parent.mkdir(exist_ok=True)
        shutil.copy(EXAMPLES / app, srv.dir / app)
    return srv


@pytest.fixture(scope="module")
def site(tmp_path_factory, engine):
    # The server's machine on UTC+5:30 (a POSIX TZ: no tz database needed),
    # to show that time answers UTC whatever the machine's zone.
    srv = site_folder(tmp_path_factory.mktemp("examples") / "site", CONF, engine,
                      env=dict(child_env(), TZ="XST-5:30"))
    srv.add_unit("A1", "k1", 3, "--name", "Pump 1")
    srv.add_unit("B7", "k7", 3, "--reads", "A1")       # may read A1
    srv.add_unit("C3", "k3", 1)                        # may not
    srv.add_unit("D1", "kd", 1, "--disabled")
    srv.add_unit("L1", "kl", 3, "--name", "Tank 2", "--field-names", "Flow,Level,Spare",
                 "--field-units", "m3/h,m", "--report-fields", "1,2")
    srv.add_unit("H1", "kh", 1, "--name", HOSTILE)
    for user, flags in (("ann", ()), ("boss", ("--superuser",))):
        srv.manage("adduser", user, "--noinput", *flags,
                   env=dict(child_env(), TXM_PASSWORD="pw of " + user))
    db = srv.database()
    ann = db.accounts.get_user_by_name("ann")
    db.accounts.set_units("user", ann.id, [db.units.get(code).id for code in ("L1", "H1")])
    db.commit()
    db.close()
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


def test_time_is_shifted_by_its_offset(tmp_path, engine):
    srv = site_folder(tmp_path / "site", BASE_CONF + "[ttpapps]\ntime: on\n"
                      "time.OFFSET_MINUTES: -90\n", engine, apps=["TTPApps/time.py"])
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


# -- relay ----------------------------------------------------------------------

def test_relay_gives_the_sources_newest_sample_in_the_configured_order(site):
    assert site.ask("TTP /relay/B7 k7") == "404 Data not found"    # A1 has no sample yet
    assert site.ask("TTP /up/A1/<2024-3-1 8:01:00;10;20;30> k1") == "OK"
    # Older, though it arrives later: relay takes the newest by timestamp, as dl last.
    assert site.ask("TTP /up/A1/<2024-3-1 8:00:00;1;2;3> k1") == "OK"
    dl = site.ask("TTP /dl/B7/last/A1 k7")
    number = re.fullmatch(r"OK <(\d+) 2024-03-01 08:01:00 L1=10 L2=20 L3=30>", dl).group(1)
    relayed = "OK <%s 2024-03-01 08:01:00 L1=30 L2=10 L3=20>" % number
    assert site.ask("TTP /relay/B7 k7") == relayed
    assert site.ask("TTP /relay/A1 k1") == relayed                  # the source may read itself


def test_relay_refuses_as_dl_does(site):
    assert site.ask("TTP /relay/C3 k3") == "403 Forbidden"          # may not read A1
    assert site.ask("TTP /dl/C3/last/A1 k3") == "403 Forbidden"     # nor may it with dl
    assert site.ask("TTP /relay/B7 wrong") == "402 Unauthorized"
    assert site.ask("TTP /relay/NOPE k7") == "405 Unit not found"
    assert site.ask("TTP /relay/D1 kd") == "403 Forbidden"
    assert site.ask("TTP /relay/B7/A1 k7") == "400 Bad request"     # it takes no argument


def test_relay_follows_its_source_as_manage_changes_it(tmp_path, engine):
    srv = site_folder(tmp_path / "site", BASE_CONF + "[ttpapps]\nrelay: on\n"
                      "relay.SOURCE: S1\nrelay.FIELDS: 2,1\n", engine, apps=["TTPApps/relay.py"])
    srv.add_unit("R1", "kr", 1)
    srv.start()
    try:
        assert srv.ask("TTP /relay/R1 kr") == "405 Unit not found"   # no S1 yet
        srv.add_unit("S1", "ks", 2)
        assert srv.ask("TTP /relay/S1 ks") == "404 Data not found"
        assert srv.ask("TTP /up/S1/<2024-3-1 8:00:00;1;2> ks") == "OK"
        assert srv.ask("TTP /relay/S1 ks") == "OK <1 2024-03-01 08:00:00 L1=2 L2=1>"
        # A FIELDS number its source no longer has: the site's mistake, logged.
        srv.manage("changeunit", "S1", "--fields", "1")
        failed = "500 Internal error"
        assert srv.ask_noticed("TTP /relay/S1 ks", failed.__eq__) == failed
        assert "ValueError: relay.FIELDS names field 2, but S1 has 1 fields" in srv.errors()
    finally:
        srv.kill()


@pytest.mark.parametrize("options, message", [
    ("relay.FIELDS: 3,1\n", "relay.SOURCE: '' is not a unit code (1 to 32 letters and digits)"),
    ("relay.SOURCE: A-1\n", "relay.SOURCE: 'A-1' is not a unit code"),
    ("relay.SOURCE: A1\nrelay.FIELDS: 3,x\n",
     "relay.FIELDS: '3,x' is not field numbers 1 to 32 separated by commas"),
    ("relay.SOURCE: A1\nrelay.FIELDS: 0,1\n", "relay.FIELDS: '0,1' is not field numbers"),
])
def test_relay_with_wrong_options_stops_the_start(tmp_path, options, message):
    # The start stops before the store is opened: on either engine alike.
    srv = site_folder(tmp_path, BASE_CONF + "[ttpapps]\nrelay: on\n" + options, "sqlite3",
                      apps=["TTPApps/relay.py"])
    result = subprocess.run([sys.executable, "-m", "texmate_ds", "--config", str(srv.conf),
                             "serve"], cwd=srv.dir, env=srv.env, capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "cannot start: TTP app relay" in result.stderr and message in result.stderr


# -- latest ---------------------------------------------------------------------

def signed_in(site, user):
    browser = Browser(site.http_port)
    assert browser.sign_in(user, "pw of " + user).status == 303
    return browser


def test_latest_asks_anonymous_visitors_to_sign_in(site):
    page = Browser(site.http_port).get("/latest/")
    assert page.status == 403
    assert '<a class="button" href="/login/?next=%2Flatest%2F">Sign in</a>' in page.body
    assert "/units/" not in page.body


def test_latest_shows_the_visitor_their_units_only(site):
    assert site.ask("TTP /up/L1/<2024-3-1 9:00:00;12.5;3;99> kl") == "OK"
    ann = signed_in(site, "ann")
    page = ann.get("/latest/")
    assert page.status == 200
    assert page.header("Content-Type") == "text/html; charset=utf-8"
    assert re.findall(r'href="(/units/[^"]*)"', page.body) == ["/units/H1/", "/units/L1/"]
    assert '<a href="/units/L1/">L1</a> Tank 2' in page.body
    assert '<p class="when">2024-03-01 09:00:00</p>' in page.body
    # The fields the unit page offers (1 and 2, not Spare), named with their units.
    assert '<span class="name">Flow (m3/h)</span> <span class="value">12.5</span>' in page.body
    assert '<span class="name">Level (m)</span> <span class="value">3</span>' in page.body
    assert "Spare" not in page.body and "99" not in page.body
    assert "no data yet" in page.body                                # H1
    # Each link is the unit's page, which she may open.
    assert ann.get("/units/L1/").status == 200
    # A superuser sees every unit.
    assert re.findall(r'href="/units/([^/]*)/"', signed_in(site, "boss").get("/latest/").body) \
        == ["A1", "B7", "C3", "D1", "H1", "L1"]


def test_latest_escapes_a_hostile_unit_name(site):
    body = signed_in(site, "ann").get("/latest/").body
    assert "<script" not in body
    assert ('<a href="/units/H1/">H1</a> &lt;script&gt;alert(&quot;H1&quot;)&lt;/script&gt;'
            " &amp; &#x27;Tank&#x27;") in body


def test_latest_fits_a_phone(site):
    page = signed_in(site, "ann").get("/latest/")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page.body
    # No fixed widths: neither in the style sheet nor as attributes.
    assert not re.search(r"width\s*:\s*[\d.]+(px|pt|cm|mm|in)\b", page.body)
    assert not re.search(r"\swidth=", page.body)
    assert re.search(r"\.value \{ font-size: 2\.25rem;", page.body)   # big numbers
    # No script may run, even if escaping slipped.
    assert page.header("Content-Security-Policy").startswith("default-src 'none';")


def test_latest_answers_only_get_on_its_page(site):
    ann = signed_in(site, "ann")
    assert ann.get("/latest").status == 200                          # the mount itself
    assert ann.get("/latest/other").status == 404
    answer = ann.post("/latest/", {"x": "1"})
    assert (answer.status, answer.header("Allow")) == (405, "GET, HEAD")

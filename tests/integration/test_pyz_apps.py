"""Site apps under the one-file release: the .pyz built by
scripts/build_pyz.py, run as ``python3 texmate_ds.pyz`` with nothing of the
project on the path, in a site folder of its own with the time example in
TTPApps/ and the latest example in HTTPApps/. ``manage apps`` lists the
bundled apps (read from inside the zip) and the site's, with their
options; ``serve`` answers both over real sockets.

Building takes well under a second, so this is not a slow test."""

import re
import shutil
import subprocess
import sys

from texmate_ds import times

from conftest import ROOT, Browser, child_env, server_on

APPS = """\
[ttpapps]
time: on
time.OFFSET_MINUTES: 60

[httpapps]
latest: on
latest.url: latest/
latest.TITLE: Plant 3
"""


def test_the_pyz_serves_a_sites_ttp_and_http_apps(tmp_path, engine):
    pyz = tmp_path / "build" / "texmate_ds.pyz"
    env = child_env(project_on_path=False)
    built = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_pyz.py"), "-o", str(pyz)],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
    assert built.returncode == 0, built.stderr

    srv = server_on(engine, tmp_path / "site", APPS, command=[sys.executable, str(pyz)], env=env)
    assert ROOT not in srv.dir.parents
    for app in ("TTPApps/time.py", "HTTPApps/latest.py"):
        (srv.dir / app).parent.mkdir()
        shutil.copy(ROOT / "examples" / app, srv.dir / app)
    srv.add_unit("A1", "k1", 2, "--name", "Pump 1")
    srv.manage("adduser", "ann", "--all-units", "--noinput",
               env=dict(env, TXM_PASSWORD="pw of ann"))

    listed = srv.manage("apps").stdout
    for name in ("al", "dl", "ok", "up"):
        assert re.search(r"^  %s +on   bundled  %s: " % (name, name), listed, re.M), listed
    assert re.search(r"^  time +on   site     time: the server's clock", listed, re.M)
    assert "      OFFSET_MINUTES = 60   (default 0)   " in listed
    assert re.search(r"^  latest +on   /latest/ +latest: the newest values", listed, re.M)
    assert "      TITLE = Plant 3   (default Latest values)   the page's title\n" in listed

    srv.start()
    try:
        assert "TTP app time: /time/ (%s)" % (srv.dir / "TTPApps" / "time.py") in srv.errors()
        answer = srv.ask("TTP /time/A1 k1")
        assert answer.startswith("OK ")
        assert abs(times.parse(answer[3:]) - (times.now() + 60 * times.MINUTE)) \
            < 60 * times.SECOND
        assert srv.ask("TTP /time/A1 wrong") == "402 Unauthorized"
        assert srv.ask("TTP /up/A1/<2024-3-1 8:00:00;7.5;-1> k1") == "OK"

        ann = Browser(srv.http_port)
        assert ann.get("/latest/").status == 403
        assert ann.sign_in("ann", "pw of ann").status == 303
        page = ann.get("/latest/")
        assert page.status == 200
        assert "<title>Plant 3</title>" in page.body
        assert '<a href="/units/A1/">A1</a> Pump 1' in page.body
        assert '<span class="value">7.5</span>' in page.body
        assert srv.stop() == 0
    finally:
        srv.kill()
    assert "Traceback" not in srv.errors()

"""The web UI served by texmate_ds itself (http.py on the loop, slow work
on its worker pool), walked through as a newcomer would: sign in as
Administrator, change the default password when asked, open a unit's
page for the last hour, download its CSV; and meters keep uploading
meanwhile. The site's own behaviour is tested in detail over wsgiref
(test_web_site.py, test_web_units.py); this checks that the server runs
it the same way, the Later answers (password hashes, graphs, statistics)
included."""

import csv
import datetime
import io
import re

from conftest import Browser

NEW_PASSWORD = "pump-station-7"


def test_a_newcomer_signs_in_changes_the_password_and_reads_a_unit(server):
    now = datetime.datetime.now().replace(microsecond=0)
    samples = "".join("<%s;%d;%d;%d;%d>" % (
        (now - datetime.timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S"), m, 2 * m, 3, 4)
        for m in range(1, 31))
    assert server.ask("TTP /up/A1/%s k1" % samples) == "OK"

    browser = Browser(server.http_port)
    assert browser.get("/").header("Location") == "/login/?next=%2F"
    signed = browser.sign_in("Administrator", "admin")
    assert (signed.status, signed.header("Location")) == (303, "/password/?next=%2F")
    assert browser.get("/units/A1/").header("Location").startswith("/password/")

    form = browser.get("/password/?next=%2F")
    assert "default password" in form.body
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.body).group(1)
    wrong = browser.post("/password/", {"csrf_token": token, "old_password": "nope",
                                        "new_password": NEW_PASSWORD,
                                        "new_password2": NEW_PASSWORD, "next": "/"})
    assert wrong.status == 403
    changed = browser.post("/password/", {"csrf_token": token, "old_password": "admin",
                                          "new_password": NEW_PASSWORD,
                                          "new_password2": NEW_PASSWORD, "next": "/"})
    assert (changed.status, changed.header("Location")) == (303, "/")

    home = browser.get("/")
    assert home.status == 200 and '<a href="/units/A1/">' in home.body
    page = browser.get("/units/A1/?from=-1h")
    assert page.status == 200
    assert page.body.count("<svg") == 2 and "Statistics" in page.body   # desktop, phone
    csv_link = re.search(r'href="(samples\.csv\?[^"]+)"', page.body).group(1)
    download = browser.get("/units/A1/" + csv_link.replace("&amp;", "&"))
    assert download.status == 200
    assert download.header("Content-Disposition").startswith('attachment; filename="A1_')
    rows = list(csv.reader(io.StringIO(download.body)))
    assert rows[0] == ["id", "timestamp", "L1", "L2", "L3", "L4"]
    assert len(rows) - 1 >= 30 and rows[-1][2:4] == ["1", "2"]

    # The Administrator is staff: /metrics shows what just happened.
    metrics = browser.get("/metrics")
    assert metrics.header("Content-Type").startswith("text/plain; version=0.0.4")
    assert 'texmate_ttp_requests_total{app="up",code="OK"} 1' in metrics.body
    assert re.search(r"^texmate_samples_stored_total 30$", metrics.body, re.M)
    assert re.search(r'^texmate_connections_open\{protocol="http"\} [1-9]', metrics.body, re.M)
    assert re.search(r'^texmate_http_requests_total\{code="200"\} [1-9]', metrics.body, re.M)
    assert re.search(r"^texmate_commit_seconds_count [1-9]", metrics.body, re.M)

    # The new password works from a fresh browser; the old one no longer does.
    assert Browser(server.http_port).sign_in("Administrator", "admin").status == 403
    assert Browser(server.http_port).sign_in("Administrator", NEW_PASSWORD).status == 303
    assert server.ask("TTP /ok/A1 k1") == "OK"


def test_endpoints_tokens_csrf_and_escaping_over_the_real_server(server_factory):
    srv = server_factory(start=False)
    srv.add_unit("X1", "kx", 2, "--name", "<script>alert(1)</script>",
                 "--field-names", "<b>flow</b>,level")
    srv.start()
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    assert srv.ask("TTP /up/X1/<%s;1.5;2> kx" % now) == "OK"
    token = srv.manage("addtoken", "Administrator").stdout.strip()
    bearer = {"Authorization": "Bearer " + token}
    browser = Browser(srv.http_port)

    # Every data endpoint answers a token, and nothing without one.
    endpoints = ("graph.svg?from=-1h", "samples.csv?from=-1h", "samples.json?from=-1h",
                 "stats.json?from=-1h", "last.json")
    for endpoint in endpoints:
        assert browser.get("/units/X1/" + endpoint).status == 401
        # The Administrator must still change the password: data is refused.
        assert browser.get("/units/X1/" + endpoint, **bearer).status == 403
    srv.manage("changepassword", "Administrator", "--noinput",
               env=dict(srv.env, TXM_PASSWORD=NEW_PASSWORD))
    for endpoint in endpoints:
        answer = browser.get("/units/X1/" + endpoint, **bearer)
        assert answer.status == 200, (endpoint, answer.body)
    # CSV and JSON carry names as they are; markup escapes them.
    svg = browser.get("/units/X1/graph.svg?from=-1h", **bearer).body
    assert "<script>" not in svg and "<b>" not in svg and "&lt;b&gt;flow&lt;/b&gt;" in svg
    assert browser.get("/units/X1/samples.csv?from=yesterday", **bearer).status == 400
    assert browser.get("/units/NOPE/last.json", **bearer).status == 404

    # A POST without the form's CSRF token is refused and changes nothing.
    refused = browser.post("/login/", {"username": "Administrator", "password": NEW_PASSWORD})
    assert refused.status == 403 and "txm_session" not in browser.cookies
    assert browser.sign_in("Administrator", NEW_PASSWORD).status == 303
    page = browser.get("/units/X1/?from=-1h")
    home = browser.get("/")
    for body in (page.body, home.body):
        assert "<script>alert" not in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;b&gt;flow&lt;/b&gt;" in page.body

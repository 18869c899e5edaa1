"""CSV injection over the real server: a unit whose field names a
spreadsheet would run as formulas, downloaded as samples.csv by a signed-in
browser and written by ``manage export``. Both come out of export.py;
this checks that both paths do."""

import csv
import datetime
import io

from conftest import Browser

NAMES = "=cmd|' /C calc'!A0,+SUM(1+1),-x,@y"
SAFE = ["id", "timestamp", "'=cmd|' /C calc'!A0", "'+SUM(1+1)", "'-x", "'@y"]
PASSWORD = "csv-reader-1"


def test_formula_field_names_are_quoted_and_numbers_kept(server_factory):
    srv = server_factory(start=False)
    srv.add_unit("X1", "kx", 4, "--field-names", NAMES)
    srv.manage("changepassword", "Administrator", "--noinput",
               env=dict(srv.env, TXM_PASSWORD=PASSWORD))
    srv.start()
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    assert srv.ask("TTP /up/X1/<%s;-5;2;-0.5;+3> kx" % stamp) == "OK"
    expected = [SAFE, ["1", stamp, "-5", "2", "-0.5", "3"]]

    browser = Browser(srv.http_port)
    assert browser.sign_in("Administrator", PASSWORD).status == 303
    download = browser.get("/units/X1/samples.csv?from=-1h")
    assert download.status == 200
    assert list(csv.reader(io.StringIO(download.body))) == expected
    assert "\r\n1,%s,-5,2,-0.5,3\r\n" % stamp in download.body

    exported = srv.manage("export", "X1").stdout
    assert list(csv.reader(io.StringIO(exported))) == expected

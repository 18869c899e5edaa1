"""The admin on the real server: what runs off the loop (a CSV import on
a worker's own connection) or between its turns, with meters served."""

from test_admin import PASSWORD, csv_rows, upload

import conftest


def signed_in_server(server_factory):
    srv = server_factory(start=False)
    srv.add_unit("A1", "k", 2)
    srv.manage("changepassword", "Administrator", "--noinput",
               env=dict(srv.env, TXM_PASSWORD=PASSWORD))
    srv.start()
    browser = conftest.Browser(srv.http_port)
    assert browser.sign_in("Administrator", PASSWORD).status == 303
    return srv, browser


def test_an_import_runs_on_a_worker_and_the_meters_go_on(server_factory):
    srv, browser = signed_in_server(server_factory)
    answer = upload(browser, "/admin/samples/import/", [("unit", "A1"), ("duplicates", "skip")],
                    "big.csv", csv_rows(0, 3000))
    assert answer.status == 200 and "Imported 3,000 samples into A1" in answer.body
    assert srv.ask("TTP /up/A1/<2030-01-01 00:00:00;1;2> k") == "OK"
    listing = browser.get("/admin/samples/?unit=A1")
    assert "3,001 samples" in listing.body
    log = browser.get("/admin/log/?model=samples")
    assert "3000 imported from big.csv" in log.body
    answer = upload(browser, "/admin/samples/import/", [("unit", "A1"), ("duplicates", "skip")],
                    "bad.csv", b"id,timestamp,a,b\r\n,not a time,1,2\r\n")
    assert answer.status == 400 and "row 2" in answer.body
    assert "3,001 samples" in browser.get("/admin/samples/?unit=A1").body

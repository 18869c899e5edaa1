"""The admin on the real server: what runs off the loop (a CSV import on
a worker's own connection) or between its turns, with meters served."""

import time

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


def test_deleting_old_samples_goes_a_chunk_a_turn_while_meters_upload(server_factory):
    srv, browser = signed_in_server(server_factory)
    answer = upload(browser, "/admin/samples/import/", [("unit", "A1"), ("duplicates", "skip")],
                    "old.csv", csv_rows(0, 3000))
    assert answer.status == 200
    form = [("action", "delete_old"), ("unit", "A1"), ("before", "2024-03-01 00:40:00")]
    confirm = browser.post("/admin/samples/", [("csrf_token", browser.csrf("/admin/"))] + form)
    assert confirm.status == 200 and "2,400 samples of A1 older than" in confirm.body
    done = browser.post("/admin/samples/", [("csrf_token", browser.csrf("/admin/")),
                                            ("confirm", "yes")] + form)
    assert done.status == 303
    # Meters are answered while it runs (and after).
    for second in range(20):
        assert srv.ask("TTP /up/A1/<2030-01-01 00:00:%02d;1;2> k" % second) == "OK"
    for _ in range(200):
        if "2,400 samples before" in browser.get("/admin/log/?model=samples").body:
            break
        time.sleep(0.05)
    assert "620 samples" in browser.get("/admin/samples/?unit=A1").body

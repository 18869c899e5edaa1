"""The vendor's TTP app listings, and a vendor-style app on
texmate_ds.models, run by the real server over TTP (docs/models.md).

The App Guide has exactly one TTP app listing, the OK app, kept as the
guide's text has it in tests/fixtures/app_guide_ok_listing.txt. That text
cannot run as printed: it lost its docstrings' quotes, ``try:``, ``else:``,
``return``, ``self.data`` and the dict's closing brace, so it is not
Python. tests/fixtures/vendor_ok.py is the listing with those put back, and
the first test proves it differs from the printed text by them alone (and
by indentation). That file then runs with one line changed, its import,
``from texmatedse.core.units.models import Unit`` ->
``from texmate_ds.models import Unit``: the vendor's package does not
exist here, and texmate_ds.models is what stands for it.

No listing of the guide uses Sample, Alarm or User. The summary app of
docs/models.md (this project's, written the vendor's way) uses them, and
runs here as that page shows it, read from the page.
"""

import re

from conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures"
VENDOR_IMPORT = "from texmatedse.core.units.models import Unit"
OUR_IMPORT = "from texmate_ds.models import Unit"
# What the guide's text lost of the listing (longest first, as each is
# taken out of both before they are compared).
LOST = ['"""', "``OK\\r``", "self.data))", "self.data", "try:", "else:", "return", "}"]


def _without_what_was_lost(text):
    for token in LOST:
        text = text.replace(token, "")
    return re.sub(r"\s+", "", text)


def test_the_vendor_ok_file_is_the_guides_listing():
    printed = (FIXTURES / "app_guide_ok_listing.txt").read_text()
    restored = (FIXTURES / "vendor_ok.py").read_text()
    assert printed.count("Extension = {") == 1 and VENDOR_IMPORT in printed
    assert _without_what_was_lost(restored) == _without_what_was_lost(printed)
    # Not trivially: the listing holds its code, not only what was lost.
    assert len(_without_what_was_lost(printed)) > 2000


def summary_app():
    """The example app of docs/models.md, and the requests and answers
    the page shows for it."""
    lines = (ROOT / "docs" / "models.md").read_text().splitlines()
    start = lines.index("`TTPApps/summary.py`:") + 2
    end = next(i for i in range(start, len(lines)) if lines[i] and not lines[i].startswith(" "))
    source = "\n".join(line[4:] for line in lines[start:end]).strip() + "\n"
    shown = next(i for i in range(end, len(lines)) if lines[i].startswith("    $ printf"))
    requests = re.search(r"printf '(.*?)'", lines[shown]).group(1).split("\\r")[:-1]
    answers = [line.strip() for line in lines[shown + 1:shown + 1 + len(requests)]]
    return source, requests, answers


def test_the_guides_ok_listing_and_the_models_example_run_as_site_apps(server_factory):
    srv = server_factory("[ttpapps]\nok: on\nsummary: on\n", start=False)
    apps = srv.dir / "TTPApps"
    apps.mkdir()
    vendor = (FIXTURES / "vendor_ok.py").read_text()
    changed = vendor.replace(VENDOR_IMPORT, OUR_IMPORT)
    assert [a for a, b in zip(vendor.splitlines(), changed.splitlines()) if a != b] == \
        [VENDOR_IMPORT]
    (apps / "ok.py").write_text(changed)
    source, requests, answers = summary_app()
    (apps / "summary.py").write_text(source)
    srv.add_unit("A1", "k1", 2)
    srv.start()
    log = srv.errors()
    assert "TTP app ok: /ok/ (%s)" % (apps / "ok.py") in log
    assert "TTP app summary: /sm/ (%s)" % (apps / "summary.py") in log

    # The OK app, as its listing says: OK\r for a unit and its key, the
    # error codes of its process_request otherwise, and the socket left
    # open for more (SOCKET_OPEN's default).
    assert srv.ask("TTP /ok/A1 k1") == "OK"
    assert srv.ask("TTP /ok/A1 nope") == "402 Unauthorized"
    assert srv.ask("TTP /ok/ZZ k1") == "405 Unit not found"
    assert srv.exchange("TTP /ok/A1 k1\rTTP /ok/A1/more k1\r", answers=2) == ["OK", "OK"]

    # The summary app over Unit, Sample and Alarm: nothing yet, then what
    # the page shows after three uploads a minute apart and an alarm.
    assert srv.ask("TTP /sm/A1/5 k1") == "404 Data not found"
    assert srv.ask("TTP /up/A1/<2024-3-1 8:00:00;1;2><2024-3-1 8:01:00;3;4>"
                   "<2024-3-1 8:02:00;5;6> k1") == "OK"
    assert srv.ask("TTP /al/A1/3/<2024-3-1 8:02:00;hot> k1") == "OK"
    assert requests == ["TTP /sm/A1/1 k1", "TTP /sm/A1/5 k1", "TTP /sm/A1/x k1"]
    assert srv.exchange("".join(r + "\r" for r in requests), answers=3) == answers
    assert answers == ["OK 1 2024-03-01 08:02:00 1", "OK 3 2024-03-01 08:02:00 1",
                       "400 Bad request"]
    assert srv.ask("TTP /sm/A1/5 nope") == "402 Unauthorized"
    assert srv.ask("TTP /sm/ZZ/5 k1") == "405 Unit not found"
    assert srv.ask("TTP /sm/A1/99999 k1") == "400 Bad request"
    # An upload is seen by the next request at once.
    assert srv.ask("TTP /up/A1/<2024-3-1 8:03:00;7;8> k1") == "OK"
    assert srv.ask("TTP /sm/A1/2 k1") == "OK 2 2024-03-01 08:03:00 1"
    assert "Traceback" not in srv.errors()


HALF_APP = '''
"""Stores a sample for its unit, then fails on a statement the database refuses."""
from texmate_ds import ttp


class Half(ttp.Answer):
    def __init__(self, server, request, unit, key):
        unit = server.authenticate(unit, key)
        server.store.samples.add(unit, [(1, (1.0, 2.0))])
        server.store.write("INSERT INTO no_such_table VALUES (1)")
        super().__init__("OK\\r")


Extension = {"code": "half", "producer": Half, "run_before": None, "run_after": None}
'''


def test_a_failing_site_app_leaves_nothing_and_spoils_no_one_elses_upload(server_factory):
    srv = server_factory("[ttpapps]\nhalf: on\n", start=False)
    (srv.dir / "TTPApps").mkdir()
    (srv.dir / "TTPApps" / "half.py").write_text(HALF_APP)
    srv.add_unit("A1", "k1", 2)
    srv.add_unit("B7", "k7", 2)
    srv.start()
    # In one packet: the three requests share a loop turn and its transaction.
    answers = srv.exchange("TTP /up/B7/<2009-1-16 15:30:45;1;2> k7\r"
                           "TTP /half/A1 k1\r"
                           "TTP /up/B7/<2009-1-16 15:30:46;3;4> k7\r", answers=3)
    assert answers == ["OK", "500 Internal error", "OK"]
    db = srv.database()
    try:
        counts = dict(db.all("SELECT u.code, count(s.id) FROM units u"
                             " LEFT JOIN samples s ON s.unit_id = u.id GROUP BY u.code"))
    finally:
        db.close()
    assert counts == {"A1": 0, "B7": 2}
    assert "TTP app half failed" in srv.errors()

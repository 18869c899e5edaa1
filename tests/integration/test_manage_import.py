"""``manage import UNIT FILE``, end to end (docs/configuration.md, "manage").

Every import runs as ``python -m texmate_ds --config ... manage import`` in
a subprocess against the real database of a running server (the module's
shared one, or one of its own); what was stored is read back with ``manage
export`` and on the test's own connection.
"""

import csv
import io
import re
import threading

import pytest

from conftest import child_env

ROWS = [  # what export writes: microseconds, empty cells, exponents
    ["2010-01-01 00:00:00", "1", "", "3"],
    ["2010-01-01 12:00:00.500000", "0", "0.1", ""],
    ["2010-01-02 00:00:00.000001", "-2.5", "1e+20", "-0.001"],
    ["2010-01-03 00:00:00", "", "", ""],
]


def manage(srv, *args, check=True):
    return srv.manage(*args, check=check, env=child_env(), input="")


def refused(result, *words):
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def export_rows(srv, code):
    return list(csv.reader(io.StringIO(manage(srv, "export", code).stdout)))


def write_csv(path, header, rows, ending="\r\n"):
    path.write_text(ending.join([",".join(header)] + [",".join(r) for r in rows]) + ending,
                    encoding="utf-8")
    return path


def csv_file(tmp_path, rows, header=("id", "timestamp", "L1", "L2", "L3"), name="in.csv"):
    return write_csv(tmp_path / name, list(header), [[""] + list(r) for r in rows])


def seconds(n):
    return "2011-01-01 %02d:%02d:%02d" % (n // 3600, n // 60 % 60, n % 60)


@pytest.fixture
def unit(server):
    """A new 3-field unit on the shared server, its code."""
    unit.count = getattr(unit, "count", 0) + 1
    code = "IM%d" % unit.count
    manage(server, "addunit", code, "k", "--fields", "3")
    return code


# -- round trip ---------------------------------------------------------------

def test_export_import_round_trip(server, unit, tmp_path):
    manage(server, "addunit", "IMSRC", "ks", "--fields", "3", "--field-names", "=temp,b")
    path = csv_file(tmp_path, ROWS, header=("id", "timestamp", "'=temp", "b", "L3"))
    result = manage(server, "import", "IMSRC", path)
    assert re.match(r"imported 4 samples into IMSRC \(0 duplicates skipped\) in [\d.]+ s, "
                    r"\d+ rows/s\n\Z", result.stdout), result.stdout
    exported = tmp_path / "out.csv"
    manage(server, "export", "IMSRC", "-o", exported)
    assert exported.read_bytes().startswith(b"id,timestamp,'=temp,b,L3\r\n")
    result = manage(server, "import", unit, exported)
    assert "imported 4 samples into %s" % unit in result.stdout
    source, copy = export_rows(server, "IMSRC"), export_rows(server, unit)
    assert [r[1:] for r in source[1:]] == ROWS
    assert [r[1:] for r in copy[1:]] == ROWS
    assert copy[0] == ["id", "timestamp", "L1", "L2", "L3"]


def test_bom_lf_and_quoted_cells(server, unit, tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b'\xef\xbb\xbfid,timestamp,"a, b",L2,L3\n'
                     b'7,"2010-1-1 0:0:0","1.5",2,3\n')
    assert "imported 1 samples" in manage(server, "import", unit, path).stdout
    assert export_rows(server, unit)[1][1:] == ["2010-01-01 00:00:00", "1.5", "2", "3"]


# -- refusals: nothing stored, the row named ----------------------------------

def test_bad_last_row_of_10000_stores_nothing(server, unit, tmp_path):
    rows = [[seconds(i), str(i), "", "1.5"] for i in range(9999)] + [[seconds(9999), "1", "x", "2"]]
    result = manage(server, "import", unit, csv_file(tmp_path, rows), check=False)
    refused(result, "row 10001", "field 2", "'x' is not a number", "nothing imported")
    assert export_rows(server, unit)[1:] == []


@pytest.mark.parametrize("cells,words", [
    (["2010-1-1 0:0:0", "1", "nan", "3"], ["row 3", "field 2", "'nan'"]),
    (["2010-1-1 0:0:0", "1", "1e999", "3"], ["row 3", "out of range"]),
    (["2010-1-1 0:0:0", "0x10", "1", "3"], ["row 3", "field 1"]),
    (["2010-1-1 0:0:0", " 1", "1", "3"], ["row 3", "field 1"]),
    (["2010-1-1T0:0:0", "1", "1", "3"], ["row 3", "timestamp '2010-1-1T0:0:0'"]),
    (["2010-13-1 0:0:0", "1", "1", "3"], ["row 3", "no real date"]),
    (["2010-1-1 0:0:0.1234567", "1", "1", "3"], ["row 3", "timestamp"]),
    (["2010-1-1 0:0:0", "1", "1"], ["row 3", "4 cells; expected 5"]),
    (["2010-1-1 0:0:0", "1", "1", "3", "4"], ["row 3", "6 cells; expected 5"]),
], ids=["nan", "infinite", "hex", "space", "T-form", "month-13", "7-digit-fraction",
        "short-row", "long-row"])
def test_bad_row_is_refused(server, unit, tmp_path, cells, words):
    path = csv_file(tmp_path, [["2010-1-2 0:0:0", "1", "2", "3"], cells])
    refused(manage(server, "import", unit, path, check=False), *words)
    assert export_rows(server, unit)[1:] == []


@pytest.mark.parametrize("header,words", [
    (["id", "timestamp", "L1", "L2"], ["row 1", "4 columns; expected 5", "3 fields"]),
    (["id", "timestamp", "L1", "L2", "L3", "L4"], ["row 1", "6 columns; expected 5"]),
    (["ts", "id", "L1", "L2", "L3"], ["row 1", "expected id,timestamp"]),
], ids=["too-few", "too-many", "wrong-first-two"])
def test_bad_header_is_refused(server, unit, tmp_path, header, words):
    path = write_csv(tmp_path / "h.csv", header, [["", "2010-1-1 0:0:0", "1", "2", "3"]])
    refused(manage(server, "import", unit, path, check=False), *words)
    assert export_rows(server, unit)[1:] == []


def test_non_utf8_file_is_refused_at_its_row(server, unit, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,timestamp,L1,L2,L3\r\n,2010-1-1 0:0:0,1,2,3\r\n"
                     ",2010-1-2 0:0:0,1,2,3\r\n,caf\u00e9,1,2,3\r\n".encode("latin-1"))
    refused(manage(server, "import", unit, path, check=False), "row 4", "not UTF-8")
    assert export_rows(server, unit)[1:] == []


def test_empty_and_header_only_files(server, unit, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    refused(manage(server, "import", unit, empty, check=False), "row 1", "empty")
    header_only = csv_file(tmp_path, [], name="header.csv")
    result = manage(server, "import", unit, header_only)
    assert "no samples" in result.stdout and "nothing imported" in result.stdout
    assert export_rows(server, unit)[1:] == []


def test_usage_and_missing_things(server, unit, tmp_path):
    assert manage(server, "import", unit, check=False).returncode == 2
    path = csv_file(tmp_path, ROWS)
    assert manage(server, "import", unit, path, "--duplicates", "maybe",
                  check=False).returncode == 2
    refused(manage(server, "import", "NOSUCH", path, check=False), "NOSUCH")
    refused(manage(server, "import", unit, tmp_path / "nofile.csv", check=False), "nofile.csv")
    out = manage(server, "help", "import").stdout
    assert "texmate_ds manage import" in out and "--duplicates" in out


# -- duplicates ---------------------------------------------------------------

def test_duplicates_skipped_and_listed(server, unit, tmp_path):
    manage(server, "import", unit, csv_file(tmp_path, [[seconds(i), "1", "1", "1"]
                                                      for i in range(0, 60, 2)], name="a.csv"))
    # 0..59 again (30 of them stored), and 5 repeated inside the file.
    rows = [[seconds(i), "2", "2", "2"] for i in range(60)] + [[seconds(1), "3", "3", "3"]] * 5
    result = manage(server, "import", unit, csv_file(tmp_path, rows))
    assert "imported 30 samples into %s (35 duplicates skipped)" % unit in result.stdout
    lines = result.stderr.splitlines()
    assert lines[0] == "35 duplicate timestamp(s) (the first 20 listed):"
    assert lines[1] == "  row 2: %s (stored already)" % seconds(0)
    assert len(lines) == 21
    assert lines[20] == "  row 40: %s (stored already)" % seconds(38)
    stored = export_rows(server, unit)[1:]
    assert len(stored) == 60
    assert [r[2] for r in stored] == ["1", "2"] * 30   # the stored ones kept


def test_duplicates_repeated_in_file_across_batches(server, unit, tmp_path):
    rows = [[seconds(i), "1", "1", "1"] for i in range(6000)] + [[seconds(7), "9", "9", "9"]]
    result = manage(server, "import", unit, csv_file(tmp_path, rows))
    assert "imported 6000 samples into %s (1 duplicates skipped)" % unit in result.stdout
    assert result.stderr.splitlines()[1] == "  row 6002: %s (repeats row 9)" % seconds(7)


def test_duplicates_refused(server, unit, tmp_path):
    manage(server, "import", unit, csv_file(tmp_path, [[seconds(5), "1", "1", "1"]],
                                            name="a.csv"))
    rows = [[seconds(i), "2", "2", "2"] for i in range(10)] + [[seconds(3), "3", "3", "3"]]
    result = manage(server, "import", unit, csv_file(tmp_path, rows), "--duplicates", "refuse",
                    check=False)
    refused(result, "2 duplicate timestamp(s):", "row 7: %s (stored already)" % seconds(5),
            "row 12: %s (repeats row 5)" % seconds(3), "--duplicates refuse: nothing imported")
    assert len(export_rows(server, unit)[1:]) == 1


# -- while the server serves --------------------------------------------------

def test_import_while_server_uploads(server_factory, tmp_path):
    srv = server_factory(start=False)
    srv.add_unit("LIVE", "kl", 1)
    srv.add_unit("BULK", "kb", 3)
    srv.start()
    rows = [[seconds(i), str(i), "", "0.5"] for i in range(20000)]
    path = csv_file(tmp_path, rows)
    answers = []
    stop = threading.Event()

    def upload():
        sock = srv.connect()
        n = 0
        while not stop.is_set():
            n += 1
            answers.append(srv.exchange("TTP /up/LIVE/<2012-1-1 0:0:%d.%06d;%d> kl\r"
                                        % (n // 1000000, n % 1000000, n), sock=sock)[0])
        sock.close()

    thread = threading.Thread(target=upload)
    thread.start()
    try:
        result = manage(srv, "import", "BULK", path)
    finally:
        stop.set()
        thread.join(30)
    assert "imported 20000 samples into BULK" in result.stdout
    assert answers and set(answers) == {"OK"}, set(answers)
    assert srv.ask("TTP /dl/BULK/last kb").endswith(" %s L1=19999 L2= L3=0.5>" % seconds(19999)), "dl"
    stored = export_rows(srv, "BULK")[1:]
    assert len(stored) == 20000 and stored[-1][1:] == rows[-1]
    assert len(export_rows(srv, "LIVE")) - 1 == len(answers)


def test_an_import_is_in_the_action_log_and_a_refused_one_is_not(server, unit, tmp_path):
    manage(server, "import", unit, csv_file(tmp_path, ROWS))
    refused(manage(server, "import", unit, csv_file(tmp_path, [[seconds(1), "x", "", ""]],
                                                    name="bad.csv"), check=False), "row 2")
    db = server.database()
    try:
        entries = [e for e in db.log.entries(model="samples") if e.object_repr.startswith(unit)]
    finally:
        db.close()
    assert [(e.action, e.message) for e in entries] == [("add", "4 imported from in.csv")]

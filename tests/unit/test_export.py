"""export's page walker and its CSV and JSON chunks, on an in-memory store,
around the page size's edges."""

import csv
import io
import json

import pytest

from texmate_ds import export, store

PAGE = export.PAGE


@pytest.fixture(scope="module")
def filled():
    st = store.Database(":memory:")
    st.migrate()
    unit = st.units.add("X1", "k", 2, field_names=["a", 'b "q"'])
    st.samples.add(unit, [(ts, (float(ts), None if ts % 7 else -1.5)) for ts in range(2 * PAGE)])
    st.commit()
    return st, unit


@pytest.mark.parametrize("limit,start,expected", [
    (None, None, 2 * PAGE), (PAGE, None, PAGE), (PAGE + 1, None, PAGE + 1),
    (2 * PAGE, None, 2 * PAGE), (5 * PAGE, None, 2 * PAGE), (1, None, 1),
    (None, PAGE, PAGE), (None, 2 * PAGE - 1, 1), (None, 2 * PAGE, 0),
])
def test_pages_walk_the_range_once_in_order(filled, limit, start, expected):
    st, unit = filled
    pages = list(export.pages(st, unit, start, None, limit))
    stamps = [row[1] for rows in pages for row in rows]
    first = start or 0
    assert stamps == list(range(first, first + expected))
    assert all(0 < len(rows) <= PAGE for rows in pages)


def test_csv_chunks_are_a_header_then_a_page_each(filled):
    st, unit = filled
    chunks = list(export.csv_chunks(st, unit, 5, PAGE + 5, [2, 1]))
    assert len(chunks) == 3
    rows = list(csv.reader(io.StringIO("".join(chunks))))
    assert rows[0] == ["id", "timestamp", 'b "q"', "a"]
    assert rows[1:4] == [["6", "1970-01-01 00:00:00.000005", "", "5"],
                         ["7", "1970-01-01 00:00:00.000006", "", "6"],
                         ["8", "1970-01-01 00:00:00.000007", "-1.5", "7"]]
    assert len(rows) == 1 + PAGE + 1


def test_json_chunks_make_one_document(filled):
    st, unit = filled
    for limit, count in ((3, 3), (PAGE + 2, PAGE + 2), (10 * PAGE, 2 * PAGE)):
        data = json.loads("".join(export.json_chunks(st, unit, None, None, [1, 2], limit)))
        assert data["unit"] == "X1" and data["fields"] == ["a", 'b "q"']
        assert len(data["samples"]) == count
        assert data["samples"][2] == [3, "1970-01-01 00:00:00.000002", 2.0, None]
    empty = json.loads("".join(export.json_chunks(st, unit, 10 ** 9, None, [1], 5)))
    assert empty == {"unit": "X1", "fields": ["a"], "samples": []}


@pytest.mark.parametrize("text,cell", [
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"), ("+SUM(1+1)", "'+SUM(1+1)"),
    ("-x", "'-x"), ("@y", "'@y"), ("\tz", "'\tz"), ("\rz", "'\rz"),
    ("flow", "flow"), ("a=b", "a=b"), ("", ""), ("'quoted", "'quoted"), (" =x", " =x"),
])
def test_text_cells_a_spreadsheet_would_run_get_a_quote(text, cell):
    assert export.text_cell(text) == cell


def test_csv_header_names_are_made_safe_but_values_are_not():
    st = store.Database(":memory:")
    st.migrate()
    unit = st.units.add("F1", "k", 3, field_names=["=1+2", "-x", "ok"])
    st.samples.add(unit, [(0, (-5.0, -0.25, 3.0))])
    rows = list(csv.reader(io.StringIO("".join(export.csv_chunks(st, unit)))))
    assert rows == [["id", "timestamp", "'=1+2", "'-x", "ok"],
                    ["1", "1970-01-01 00:00:00", "-5", "-0.25", "3"]]

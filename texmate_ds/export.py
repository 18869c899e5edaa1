"""CSV and JSON export of a unit's samples, produced page by page.

`csv_chunks` and `json_chunks` are generators of text chunks: the head,
then one page of rows at a time (then, for JSON, the tail). ``manage
export`` and the web's ``samples.csv`` and ``samples.json`` use them, so
any number of rows streams in constant memory. `pages` walks the range:
each page is one query fetched whole (keyset on the timestamp), so no
cursor stays open between chunks on a connection the TTP side shares.

`fields` are 1-based field numbers in the order wanted; None is all.

A spreadsheet opening the CSV runs a cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a CR as a formula, so a field named
``=cmd|' /C calc'!A0`` would run a command on the reader's machine (CSV
injection, OWASP). `text_cell` prefixes such text with ``'``, which the
spreadsheet shows as text. It is applied to every text cell the server
writes (the header's names); the value cells are numbers as
`ttp.format_value` writes them and are never touched, so ``-5`` stays a
number, and timestamps start with a digit.
"""

import csv
import io
import json

from texmate_ds import times, ttp

# Rows a page, and so a chunk: about 10 kB of CSV and half a millisecond of
# work, which is what one loop turn gives an export on the server.
PAGE = 200
# What makes a spreadsheet read a cell as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(text):
    """`text` for a CSV cell, with a ``'`` in front when a spreadsheet
    would take it for a formula."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def pages(store, unit, start=None, end=None, limit=None):
    """Lists of stored rows (id, ts, v1, ...) with start <= ts <= end,
    oldest first, `limit` rows in all at most (None: no limit)."""
    left = limit
    while left is None or left > 0:
        size = PAGE if left is None else min(PAGE, left)
        rows = store.samples.between(unit, start, end, limit=size)
        if rows:
            yield rows
        if len(rows) < size:
            return
        if left is not None:
            left -= size
        start = rows[-1][1] + 1


def csv_chunks(store, unit, start=None, end=None, fields=None):
    """Header ``id,timestamp,<field names>`` and a row per sample."""
    fields = fields or range(1, unit.fields + 1)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["id", "timestamp"] + [text_cell(unit.label(f - 1)) for f in fields])
    yield _take(buffer)
    for rows in pages(store, unit, start, end):
        for row in rows:
            writer.writerow([row[0], times.text(row[1])]
                            + ["" if row[f + 1] is None else ttp.format_value(row[f + 1])
                               for f in fields])
        yield _take(buffer)


def json_chunks(store, unit, start, end, fields, limit):
    """``{"unit": CODE, "fields": [names], "samples": [[id, "timestamp",
    v, ...], ...]}`` with `limit` samples at most."""
    yield '{"unit": %s, "fields": %s, "samples": [' % (
        json.dumps(unit.code), json.dumps([unit.label(f - 1) for f in fields]))
    separator = ""
    for rows in pages(store, unit, start, end, limit):
        yield separator + ",\n".join(
            json.dumps([row[0], times.text(row[1])] + [row[f + 1] for f in fields])
            for row in rows)
        separator = ",\n"
    yield "]}\n"


def _take(buffer):
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text

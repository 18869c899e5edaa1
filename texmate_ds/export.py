"""CSV export of a unit's samples, produced page by page.

`csv_chunks` is a generator of text chunks (header first, then a page of
rows at a time), so ``manage export`` and the web's CSV download stream any
number of rows in constant memory.
"""

import csv
import io

from texmate_ds import ttp

PAGE = 1000


def csv_chunks(store, unit, start=None, end=None):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["id", "timestamp"] + [unit.label(i) for i in range(unit.fields)])
    while True:
        yield _take(buffer)
        rows = store.samples_range(unit, start, end, limit=PAGE)
        if not rows:
            return
        for row in rows:
            writer.writerow([row[0], ttp.format_timestamp(row[1])]
                            + [ttp.format_value(v) for v in row[2:]])
        start = rows[-1][1] + 1


def _take(buffer):
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text

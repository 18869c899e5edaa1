"""CSV import of a unit's samples, in the export's own format (``manage
import``; docs/configuration.md, "manage").

The file is what `export.csv_chunks` writes: a header ``id,timestamp,<one
cell per field>`` and a row per sample. The header must have exactly 2 +
unit.fields cells, the first two ``id`` and ``timestamp``; the field cells
are names (of the unit exported, which may not be this one) or
``L1``..``Ln``, with or without the ``'`` that `export.text_cell` puts in
front of a name a spreadsheet would run. ``id`` is ignored (the store
gives ids). A timestamp is what TTP takes (`times.PATTERN`), a value a TTP
number (`ttp.NUMBER`, finite), an empty cell an empty value (NULL): one
pattern per row, built from those two, so a cell is held to exactly what
an upload is. The file is UTF-8, a BOM allowed.

All or nothing, in constant memory:

1. Each row is checked and added, `BATCH` at a time with one
   ``executemany``, to a temporary staging table (`Samples.stage`; in a
   file, not in memory). That takes no lock on the database, so the
   server goes on writing while a long file is read. The first bad row
   stops everything: `BadFile` with its row number (the header is row 1)
   and the reason; the staging table is dropped.
2. Duplicates: a timestamp repeated in the file is found as it is staged
   (the staging table's key is the timestamp), one stored already by a
   join of the staging table with the unit's samples. Both are counted,
   and the first `LISTED` kept, by row.
3. One ``INSERT ... SELECT`` copies the staged samples into the unit's,
   skipping taken timestamps, and one commit ends it. Only this step
   holds the write lock; a server's writes wait for it (the busy timeout),
   never for the reading.
"""

import collections
import csv
import io
import re
import time

from texmate_ds import times, ttp

BATCH = 5000          # rows staged per executemany
LISTED = 20           # duplicates listed at most

# What `import_csv` did. `duplicates` counts every one; `listed` is the
# first LISTED as (row, timestamp_us, note); `stored` is None when the
# duplicates refused the file.
Result = collections.namedtuple("Result", "rows stored duplicates listed seconds")


class BadFile(ValueError):
    """The file cannot be imported: `row` (1-based, the header is 1) and why."""

    def __init__(self, row, reason):
        super().__init__("row %d: %s" % (row, reason))
        self.row = row
        self.reason = reason


class Raced(Exception):
    """Samples with the file's timestamps were stored while it was read
    (``--duplicates refuse``): nothing was imported."""


def _cell_pattern():
    return "(?:%s)?" % ttp.NUMBER


def row_pattern(fields):
    """``TIMESTAMP,V1,...,VN`` (values may be empty) as one pattern: the
    timestamp's seven parts are groups 2-8."""
    cell = _cell_pattern()
    return re.compile(r"(%s),(%s(?:,%s){%d})\Z" % (times.PATTERN, cell, cell, fields - 1),
                      re.ASCII)


_VALUE = re.compile(_cell_pattern() + r"\Z", re.ASCII)


def _why(record, row):
    """The reason a row did not match its pattern (the slow path)."""
    try:
        times.parse(record[1])
    except times.BadTime:
        return BadFile(row, "timestamp %s is not Y-M-D H:M:S[.ffffff]" % times.quoted(record[1]))
    for field, cell in enumerate(record[2:], 1):
        if not _VALUE.match(cell):
            return BadFile(row, "field %d: %s is not a number" % (field, times.quoted(cell)))
    return BadFile(row, "not a sample")   # a cell holding a comma, quoted


class _Lines:
    """The file's lines as text. UTF-8 is decoded a block of whole lines at a time (one call
    for thousands of rows); a block that does not decode is decoded again
    line by line, the lines before a bad one given first (`Unreadable`
    for the bad one, which the reader names by its row). A line longer than a block
    (1 MiB; a row is under a kilobyte) refuses the file rather than fill
    the memory."""

    BLOCK = 1 << 20

    def __init__(self, binary):
        self.binary = binary

    def __iter__(self):
        rest = b""
        first = True
        while True:
            data = self.binary.read(self.BLOCK)
            if first:
                first = False
                if data.startswith(b"\xef\xbb\xbf"):
                    data = data[3:]
            if not data:
                break
            data = rest + data
            end = data.rfind(b"\n") + 1
            if end == 0:           # no whole line yet: a longer one
                if len(data) > self.BLOCK:
                    raise Unreadable("a line longer than %d bytes" % self.BLOCK)
                rest = data
                continue
            rest = data[end:]
            yield from self._decoded(data[:end])
        if rest:
            yield from self._decoded(rest)

    def _decoded(self, block):
        """The lines of `block` (split at LF only, as a file is read),
        decoded; at a line that is not UTF-8 the lines before it come
        first, so that an earlier bad row is the one reported."""
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            yield from io.StringIO(text, newline="\n")
            return
        for raw in io.BytesIO(block):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Unreadable("not UTF-8 (byte %d of the line is %s)"
                                 % (exc.start + 1, hex(raw[exc.start]))) from None
            yield line


class Unreadable(Exception):
    """A line that cannot be read at all (`_Lines`); its row is the
    reader's to say."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _other_row(line, row, width, pattern):
    """The row pattern's match of a line that is not the common kind
    (quoted cells, an id of other text), read as CSV; BadFile saying what
    is wrong with it otherwise."""
    try:
        record = next(csv.reader([line]), [])
    except csv.Error as exc:
        raise BadFile(row, "not CSV: %s" % exc) from None
    if len(record) != width:
        raise BadFile(row, "%d cells; expected %d (id,timestamp and %d fields)"
                      % (len(record), width, width - 2))
    match = pattern.match(record[1] + "," + ",".join(record[2:]))
    if match is None:
        raise _why(record, row)
    return match


def _header(reader, unit):
    width = 2 + unit.fields
    try:
        header = next(reader)
    except StopIteration:
        raise BadFile(1, "the file is empty: expected a header id,timestamp and %d field "
                         "names" % unit.fields) from None
    except csv.Error as exc:
        raise BadFile(1, "not CSV: %s" % exc) from None
    if len(header) != width:
        raise BadFile(1, "the header has %d columns; expected %d: id,timestamp and the %d "
                         "fields of %s" % (len(header), width, unit.fields, unit.code))
    if header[:2] != ["id", "timestamp"]:
        raise BadFile(1, "the header starts %s; expected id,timestamp"
                      % times.quoted(",".join(header[:2])))
    return width


def import_csv(db, unit, binary, duplicates="skip", progress=None, clock=time.monotonic,
               on_stored=None):
    """Import the CSV in the binary file `binary` into `unit`: a `Result`.

    `duplicates` is "skip" (store the rest) or "refuse" (store nothing
    when there is one). `progress`, if given, has ``rows(n)`` (called
    after each batch) and ``storing(n)`` (before the copy).
    ``on_stored(n)``, if given, runs in the transaction that stores the `n`
    samples (the action log's entry). `BadFile` for a bad file, and then,
    as on any error, the database is as it was.
    """
    started = clock()
    each = iter(_Lines(binary))
    try:
        width = _header(csv.reader(each), unit)
    except Unreadable as exc:
        raise BadFile(1, exc.reason) from None
    samples = db.samples
    insert = samples.stage(unit.fields)
    pattern = row_pattern(unit.fields)
    # The common row, an id of digits (or none) and no quotes, is matched
    # whole as the line it is, its cells made only of the characters of
    # numbers: over those, `float` takes exactly what ttp.NUMBER does (no
    # inf, nan, _ or spaces can be there), so it checks them as it reads
    # them. Any other line, or one `float` refuses, is read as CSV and
    # checked by the row pattern, which says what is wrong.
    plain = re.compile(r"[0-9]*,(%s),([-+.,0-9eE]*)\r?\n?\Z" % times.PATTERN, re.ASCII)
    fields = unit.fields
    moment = _Moments().of
    stored_values = ttp.stored_values
    repeated = 0
    listed = []
    rows = 0
    try:
        db.begin()
        batch = []
        try:
            for line in each:
                rows += 1
                row = rows + 1
                match = plain.match(line)
                values = None
                if match is not None:
                    cells = match.group(9).split(",")
                    if len(cells) == fields:
                        try:
                            values = [float(c) if c else None for c in cells]
                        except ValueError:
                            pass
                if values is None:
                    match = _other_row(line, row, width, pattern)
                    values = [float(c) if c else None for c in match.group(9).split(",")]
                parts = match.groups()
                try:
                    ts = moment(*parts[1:8])
                except times.BadTime:
                    raise BadFile(row, "timestamp %s is no real date and time"
                                  % times.quoted(parts[0])) from None
                try:
                    values = stored_values(values)
                except ttp.TTPError:
                    raise BadFile(row, "a value is out of range (finite numbers only)") from None
                batch.append((ts, row, *values))
                if len(batch) >= BATCH:
                    repeated += _stage(db, insert, batch, listed)
                    batch = []
                    if progress:
                        progress.rows(rows)
        except Unreadable as exc:   # the line after the last row read
            raise BadFile(rows + 2, exc.reason) from None
        repeated += _stage(db, insert, batch, listed)
        if progress:
            progress.rows(rows)
        db.commit()   # the staging table's rows; the database is untouched
        if not rows:
            return Result(0, 0, 0, [], clock() - started)
        stored_count, stored_first = samples.staged_stored(unit, LISTED)
        listed = sorted(listed + [(r, ts, "stored already") for r, ts in stored_first])[:LISTED]
        found = repeated + stored_count
        if found and duplicates == "refuse":
            return Result(rows, None, found, listed, clock() - started)
        if progress:
            progress.storing(rows - found)
        stored = samples.add_staged(unit)
        if duplicates == "refuse" and stored != rows - repeated:
            raise Raced("%d samples with the file's timestamps were stored while it was read"
                        % (rows - repeated - stored))
        if on_stored is not None and stored:
            on_stored(stored)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    finally:
        samples.drop_staged()
    return Result(rows, stored, rows - stored, listed, clock() - started)


class _Moments:
    """`times.from_parts` for a file's timestamps, with each day's start
    worked out once: rows share their date by the thousand, and the
    calendar was a third of the time a row took."""

    def __init__(self):
        self.days = {}

    def of(self, year, month, day, hour, minute, second, fraction):
        start = self.days.get((year, month, day))
        if start is None:
            if len(self.days) >= 4096:     # a file of many days: bounded
                self.days.clear()
            start = self.days[year, month, day] = times.from_parts(
                year, month, day, "0", "0", "0", None)
        h, mi, s = int(hour), int(minute), int(second)
        if h > 23 or mi > 59 or s > 59:
            raise times.BadTime()
        return start + (h * 3600 + mi * 60 + s) * times.SECOND + (
            int(fraction.ljust(6, "0")) if fraction else 0)


def _stage(db, insert, batch, listed):
    """Stage `batch` [(ts, row, v1, ...)]; the number of duplicates in it
    (repeating a row of the file), the first of them added to `listed`."""
    first_row = {}
    fresh = []
    repeats = []
    for sample in batch:
        ts, row = sample[0], sample[1]
        earlier = first_row.setdefault(ts, row)
        if earlier == row:
            fresh.append(sample)
        else:
            repeats.append((row, ts, "repeats row %d" % earlier))
    before = db.changes
    db.executemany(insert, fresh)
    if db.changes - before < len(fresh):
        # Some repeat an earlier batch: the staged row of each timestamp
        # is its first (the insert skipped the later one).
        staged = db.samples.staged_rows(s[0] for s in fresh)
        repeats.extend((s[1], s[0], "repeats row %d" % staged[s[0]])
                       for s in fresh if staged[s[0]] != s[1])
        repeats.sort()
    if len(listed) < LISTED:
        listed.extend(repeats[:LISTED - len(listed)])
    return len(repeats)

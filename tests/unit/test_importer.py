"""The CSV importer's reading: blocks of lines decoded at once, split at
LF only, with a bad byte or an overlong line named by its row; and the
timestamps it works out with each day's start cached."""

import io

import pytest

from texmate_ds import importer, store, times


def fresh(fields=2):
    db = store.Database(":memory:")
    db.migrate()
    return db, db.units.add("A1", "k", fields)


def rows(count, first_day="2024-03-01", days=1):
    start = times.parse(first_day + " 00:00:00")
    step = days * times.DAY // count
    lines = ["id,timestamp,Flow,Level"] + [
        ",%s,%d.25,%d" % (times.text(start + i * step + (i % 7) * 13), i, -i)
        for i in range(count)]
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.mark.parametrize("block", [48, 64, 101, 1000, 1 << 20])   # a row is < 48 bytes
def test_any_block_size_reads_the_same_samples(monkeypatch, block):
    monkeypatch.setattr(importer._Lines, "BLOCK", block)
    db, unit = fresh()
    data = rows(300)
    result = importer.import_csv(db, unit, io.BytesIO(data))
    assert (result.rows, result.stored) == (300, 300)
    lines = data.decode().splitlines()[1:]
    expected = [(times.parse(line.split(",")[1]), float(line.split(",")[2]),
                 float(line.split(",")[3])) for line in lines]
    assert [row[1:] for row in db.samples.between(unit)] == expected


def test_timestamps_over_many_days_match_the_parser():
    db, unit = fresh()
    data = rows(6000, "2001-01-01", days=6000)       # more days than the cache keeps
    importer.import_csv(db, unit, io.BytesIO(data))
    stored = [row[1] for row in db.samples.between(unit)]
    assert stored == [times.parse(line.split(",")[1])
                      for line in data.decode().splitlines()[1:]]


def test_a_bad_byte_names_its_row_and_an_earlier_bad_row_comes_first(monkeypatch):
    monkeypatch.setattr(importer._Lines, "BLOCK", 1 << 20)
    db, unit = fresh()
    lines = rows(10).split(b"\r\n")
    lines[6] = lines[6].replace(b".25", b".2\xe9")               # row 7: not UTF-8
    with pytest.raises(importer.BadFile) as refused:
        importer.import_csv(db, unit, io.BytesIO(b"\r\n".join(lines)))
    assert refused.value.row == 7 and "not UTF-8" in refused.value.reason
    lines[3] = lines[3].replace(b".25", b".2x")                  # row 4: not a number
    with pytest.raises(importer.BadFile) as refused:
        importer.import_csv(db, unit, io.BytesIO(b"\r\n".join(lines)))
    assert refused.value.row == 4
    assert db.units.counts(unit) == (0, None)


def test_only_lf_ends_a_line():
    db, unit = fresh()
    data = "id,timestamp,Fl\u2028ow,Le\x85vel\n,2024-03-01 00:00:00,1,2\n".encode()
    assert importer.import_csv(db, unit, io.BytesIO(data)).stored == 1


def test_a_line_longer_than_a_block_refuses_the_file(monkeypatch):
    monkeypatch.setattr(importer._Lines, "BLOCK", 64)
    db, unit = fresh()
    data = rows(3) + b",2024-03-02 00:00:00," + b"1" * 200 + b",2\r\n"
    with pytest.raises(importer.BadFile) as refused:
        importer.import_csv(db, unit, io.BytesIO(data))
    assert refused.value.row == 5 and "longer than 64 bytes" in refused.value.reason


@pytest.mark.parametrize("cell", ["inf", "nan", "1_0", " 1", "1e", "+-1", "1.2.3", "0x1",
                                  "١", "1e5e5", ".", "-"])
def test_a_cell_float_reads_but_ttp_does_not_is_refused(cell):
    db, unit = fresh()
    data = ("id,timestamp,a,b\n,2024-03-01 00:00:00,1,%s\n" % cell).encode()
    with pytest.raises(importer.BadFile) as refused:
        importer.import_csv(db, unit, io.BytesIO(data))
    assert refused.value.row == 2 and "field 2" in refused.value.reason
    assert db.units.counts(unit) == (0, None)


def test_cells_ttp_reads_are_read_alike_by_either_path():
    db, unit = fresh()
    cells = ["1", "-2.5", "+.5", "5.", "1e5", "-1.5E-3", "", "007"]
    lines = ["id,timestamp,a,b"] + [
        "%s,2024-03-01 00:00:%02d,%s,%s" % ('"9"' if i % 2 else "9", i, c, cells[-1 - i])
        for i, c in enumerate(cells)]                 # a quoted id: the CSV path
    importer.import_csv(db, unit, io.BytesIO("\n".join(lines).encode()))
    assert [row[2:] for row in db.samples.between(unit)] == [
        (float(a) if a else None, float(b) if b else None) for a, b in zip(cells, cells[::-1])]

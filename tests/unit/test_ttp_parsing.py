"""The sans-IO half of TTP: no sockets, just bytes in and values out."""

import math

import pytest

from texmate_ds import times, ttp
from texmate_ds.ttp import TOO_LONG, LineParser, TTPError


def lines_of(chunks, max_bytes=65536):
    parser = LineParser(max_bytes)
    out = []
    for chunk in chunks:
        parser.feed(chunk)
        while True:
            event = parser.next_event()
            if event is None:
                break
            out.append(event)
            if event is TOO_LONG:  # final: the channel answers 400 and closes
                return out
    return out


STREAM = (b"TTP /up/A1/<2009-1-16 15:30:45;11;22> k\r"
          b"TTP /dl/A1/last k\r\n"
          b"\r\n\r"
          b"TTP /ok/A1 k\n"
          b"TTP /dl/A1/from<9-1-16 0:0:0>/B7 k\r")
EXPECTED = [b"TTP /up/A1/<2009-1-16 15:30:45;11;22> k", b"TTP /dl/A1/last k",
            b"TTP /ok/A1 k", b"TTP /dl/A1/from<9-1-16 0:0:0>/B7 k"]


def test_parser_every_split_point():
    assert lines_of([STREAM]) == EXPECTED
    for i in range(len(STREAM) + 1):
        assert lines_of([STREAM[:i], STREAM[i:]]) == EXPECTED, i
    for i in range(len(STREAM)):
        for j in range(i, len(STREAM) + 1, 7):
            assert lines_of([STREAM[:i], STREAM[i:j], STREAM[j:]]) == EXPECTED


def test_parser_byte_at_a_time():
    assert lines_of([bytes([b]) for b in STREAM]) == EXPECTED


def test_parser_incomplete_line_waits():
    parser = LineParser(100)
    parser.feed(b"TTP /ok/A1 k")
    assert parser.next_event() is None
    assert parser.pending() == 12
    parser.feed(b"\r")
    assert parser.next_event() == b"TTP /ok/A1 k"
    assert parser.pending() == 0


def test_parser_too_long_without_terminator():
    parser = LineParser(16)
    parser.feed(b"x" * 16)
    assert parser.next_event() is None
    parser.feed(b"x")
    assert parser.next_event() is TOO_LONG


def test_parser_too_long_with_terminator_whatever_the_split():
    data = b"y" * 20 + b"\r"
    for i in range(len(data) + 1):
        assert lines_of([data[:i], data[i:]], max_bytes=16) == [TOO_LONG]
    assert lines_of([b"y" * 16 + b"\r"], max_bytes=16) == [b"y" * 16]


def test_parse_request_parts():
    r = ttp.parse_request(b"TTP /dl/A1/from<9-1-16 0:0:0>/B7 sec%ret")
    assert (r.app, r.unit, r.argument, r.key) == ("dl", "A1", "from<9-1-16 0:0:0>/B7", "sec%ret")
    assert r == "TTP /dl/A1/from<9-1-16 0:0:0>/B7 sec%ret"
    r = ttp.parse_request(b"TTP /ok/Z9 k")
    assert (r.app, r.unit, r.argument, r.key) == ("ok", "Z9", "", "k")


@pytest.mark.parametrize("line", [
    b"ttp /ok/A1 k",            # TTP is upper case, exactly
    b"TTPX /ok/A1 k",
    b"TTP /ok/A1",              # no key
    b"TTP /ok/A1 ",             # empty key
    b"TTP ok/A1 k",             # path must start with /
    b"TTP /ok k",               # no unit
    b"TTP /ok/ k",              # empty unit
    b"TTP /ok/A-1 k",           # unit code: letters and digits only
    b"TTP /ok/" + b"A" * 33 + b" k",
    b"TTP /ok/A1 " + b"k" * 65,  # key: 64 at most
    b"TTP /ok/A1 k\x00",
    b"TTP /ok/A1 k\xe9",
    b"TTP /ok/A1\tk",
])
def test_parse_request_rejects(line):
    with pytest.raises(TTPError) as info:
        ttp.parse_request(line)
    assert info.value.code == 400


def test_parse_request_limits_accepted():
    r = ttp.parse_request(b"TTP /ok/" + b"A" * 32 + b" " + b"k" * 64)
    assert len(r.unit) == 32 and len(r.key) == 64


# Every example of docs/protocol.md, "Timestamps" (and the manual's).
@pytest.mark.parametrize("text, expected", [
    ("2009-1-16 15:30:45", "2009-01-16 15:30:45"),
    ("7-1-16 15:30:45", "2007-01-16 15:30:45"),
    ("97-09-12 0:0:0", "2097-09-12 00:00:00"),
    ("009-1-16 15:30:45", "2009-01-16 15:30:45"),
    ("2009-1-16 15:30:45.1", "2009-01-16 15:30:45.100000"),
    ("2009-1-16 15:30:45.10", "2009-01-16 15:30:45.100000"),
    ("2009-1-16 15:30:45.000042", "2009-01-16 15:30:45.000042"),
    ("2009-1-16 15:30:45.000000", "2009-01-16 15:30:45"),
    ("2012-2-29 23:59:59.999999", "2012-02-29 23:59:59.999999"),
    ("1969-12-31 23:59:59", "1969-12-31 23:59:59"),
    ("0001-1-1 0:0:0", "0001-01-01 00:00:00"),
    ("9999-12-31 23:59:59.999999", "9999-12-31 23:59:59.999999"),
])
def test_timestamps(text, expected):
    us = times.parse(text)
    assert times.text(us) == expected
    assert times.parse(expected) == us
    # The same in a sample, as a meter sends it.
    assert ttp.parse_samples("<%s;1>" % text, 1)[0][0] == us


def test_timestamp_microsecond_values():
    base = times.parse("2009-1-16 15:30:45")
    assert times.parse("2009-1-16 15:30:45.1") - base == 100000
    assert times.parse("2009-1-16 15:30:45.10") - base == 100000
    assert times.parse("2009-1-16 15:30:45.000042") - base == 42
    assert times.parse("1970-1-1 0:0:0") == 0


@pytest.mark.parametrize("text", [
    "2009-2-30 0:0:0", "2009-13-1 0:0:0", "2009-0-1 0:0:0", "2009-1-0 0:0:0",
    "2009-1-16 24:00:00", "2009-1-16 15:60:00", "2009-1-16 15:30:60",
    "0000-1-1 0:0:0", "2009-1-16", "2009-1-16  15:30:45", "2009-1-16T15:30:45",
    "20090-1-16 15:30:45", "2009-001-16 15:30:45", "2009-1-16 15:30:45.",
    "2009-1-16 15:30:45.1234567", "2009/1/16 15:30:45", " 2009-1-16 15:30:45",
    "2009-1-16 15:30", "-2009-1-16 15:30:45", "2009-1-16 15:30:45,5",
])
def test_bad_timestamps(text):
    with pytest.raises(times.BadTime):
        times.parse(text)
    with pytest.raises(TTPError):
        ttp.parse_samples("<%s;1>" % text, 1)


@pytest.mark.parametrize("text, value", [
    ("-3", -3.0), ("11.50", 11.5), ("+2.5e3", 2500.0), ("0", 0.0), ("5.", 5.0),
    (".5", 0.5), ("1E-3", 0.001), ("-0", -0.0), ("1e308", 1e308),
])
def test_values(text, value):
    assert ttp.parse_samples("<2009-1-16 15:30:45;%s>" % text, 1)[0][1] == (value,)


def test_minus_zero_is_stored_as_zero_on_every_engine():
    # SQLite makes 0 of it (an integer); PostgreSQL would keep the sign.
    [(_, values, _)] = ttp.parse_samples("<2009-1-16 15:30:45;-0;0;-0.0e3;2>", 4)
    assert values == (0, 0, 0, 2) and [math.copysign(1, v) for v in values] == [1] * 4


@pytest.mark.parametrize("text", [
    "nan", "inf", "-inf", "1e999", "-1e999", "", "1,5", "0x10", "1e", "e3", "+",
    "1_000", " 1", "1 ", "--1", "١", "Infinity",
])
def test_bad_values(text):
    with pytest.raises(TTPError):
        ttp.parse_samples("<2009-1-16 15:30:45;%s>" % text, 1)


@pytest.mark.parametrize("value, text", [
    (11.0, "11"), (11.5, "11.5"), (-0.001, "-0.001"), (1e20, "1e+20"),
    (0.1, "0.1"), (-0.0, "-0"), (123456789012345.0, "123456789012345"),
    (1.5e-05, "1.5e-05"), (2.0 ** 0.5, "1.4142135623730951"),
])
def test_format_value(value, text):
    assert ttp.format_value(value) == text
    assert float(text) == value and math.copysign(1, float(text)) == math.copysign(1, value)


def test_parse_samples():
    got = ttp.parse_samples("<2009-1-16 15:30:45;11;22><7-1-16 15:30:46.5;-1;2e3>", 2)
    assert [g[1:] for g in got] == [((11.0, 22.0), "2009-1-16 15:30:45"),
                                    ((-1.0, 2000.0), "7-1-16 15:30:46.5")]


@pytest.mark.parametrize("argument", [
    "", "<>", "<2009-1-16 15:30:45;1>", "<2009-1-16 15:30:45;1;2;3>",
    "<2009-1-16 15:30:45;1;2", "2009-1-16 15:30:45;1;2>", "<2009-1-16 15:30:45;1;2>x",
    "<2009-1-16 15:30:45;1;2> <2009-1-16 15:30:46;1;2>", "<2009-1-16 15:30:45;1;2<>",
    "<2009-1-16 15:30:45;1;nan>", "<2009-2-30 15:30:45;1;2>", "<<2009-1-16 15:30:45;1;2>>",
    "<2009-1-16 15:30:45;1;2><2009-1-16 15:30:46;1>",
])
def test_parse_samples_rejects(argument):
    with pytest.raises(TTPError) as info:
        ttp.parse_samples(argument, 2)
    assert info.value.code == 400


@pytest.mark.parametrize("argument", [
    "<2009-1-16 15:30:45>", "<2009-1-16 15:30:45;>", "<2009-1-16 15:30:45;;>",
    "<2009-1-16 15:30:45;1>2009-1-16", "<2009-1-16 15:30:45;1e999>",
])
def test_parse_samples_rejects_for_one_field(argument):
    with pytest.raises(TTPError) as info:
        ttp.parse_samples(argument, 1)
    assert info.value.code == 400


def test_format_sample():
    ts = times.parse("2009-1-16 15:30:45")
    assert ttp.format_sample((123, ts, 11.0, 22.0, 33.0, 44.0)) == \
        "<123 2009-01-16 15:30:45 L1=11 L2=22 L3=33 L4=44>"
    # An empty value (imported from an empty CSV cell) goes out empty.
    assert ttp.format_sample((5, ts, None, -0.5)) == "<5 2009-01-16 15:30:45 L1= L2=-0.5>"


def test_redact_hides_key_and_escapes():
    assert ttp.redact(b"TTP /ok/A1 secret") == "TTP /ok/A1 ***"
    assert ttp.redact(b"TTP /ok/\x1b[2J\x00 x") == "TTP /ok/\\x1b[2J\\x00 ***"
    assert "secret" not in ttp.redact("TTP /up/A1/<x> secret")



@pytest.mark.parametrize("argument, parsed", [
    ("2/<>", (2, [])),
    ("0/<2009-1-16 15:30:45;high>", (0, ["2009-1-16 15:30:45", "high"])),
    ("99/<a b/c d=1,2 (x)>", (99, ["a b/c d=1,2 (x)"])),
    ("07/<;;>", (7, ["", "", ""])),
])
def test_parse_alarm(argument, parsed):
    assert ttp.parse_alarm(argument) == parsed


@pytest.mark.parametrize("argument", [
    "", "2", "2/", "/<>", "100/<>", "-1/<>", "+1/<>", " 2/<>", "2 /<>", "x/<>", "1e1/<>",
    "2/high", "2/<high", "2/high>", "2/<a<b>", "2/<a>b>", "2/<a><b>", "2/<a>x", "2/<a>/",
    "2/<>\n", "٢/<>",
])
def test_parse_alarm_refuses_anything_else(argument):
    with pytest.raises(TTPError) as caught:
        ttp.parse_alarm(argument)
    assert caught.value.code == 400


def test_parse_alarm_is_linear_on_long_input():
    items = ";".join(["x" * 10] * 5000)
    assert len(ttp.parse_alarm("1/<%s>" % items)[1]) == 5000
    for bad in ("1/<" + "a;" * 30000, "1/<" + "<" * 60000 + ">"):
        with pytest.raises(TTPError):
            ttp.parse_alarm(bad)

"""multipart/form-data without sockets: the parser on realistic bodies split
at every byte and fed a byte at a time, each of its limits at its edge,
every malformed body it refuses; `read_form` over a WSGI environ, and
`app.Request` reading a form with files."""

import hashlib
import io
import types

import pytest

from texmate_ds import multipart
from texmate_ds.multipart import (
    Data,
    End,
    MultipartError,
    MultipartParser,
    Part,
    PartEnd,
    boundary_of,
)
from texmate_ds.web import app

BROWSER = b"----WebKitFormBoundaryePkpFF7tjBAqx29L"
CURL = b"------------------------d74496d66958873e"


def body(boundary, parts, preamble=b"", padding=b"", epilogue=b"\r\n"):
    """A multipart body: `parts` are (header lines, content)."""
    out = [preamble]
    for headers, content in parts:
        out += [b"--", boundary, padding, b"\r\n"]
        out += [line + b"\r\n" for line in headers]
        out += [b"\r\n", content, b"\r\n"]
    return b"".join(out + [b"--", boundary, b"--", epilogue])


def field(name, value):
    return ([b'Content-Disposition: form-data; name="%s"' % name], value)


def file_part(name, filename, content, content_type=b"text/csv"):
    headers = [b'Content-Disposition: form-data; name="%s"; filename="%s"' % (name, filename)]
    if content_type is not None:
        headers.append(b"Content-Type: " + content_type)
    return (headers, content)


CSV = (b"time,L1,L2\r\n2009-01-16 10:00:00,1.5,\r\n"
       # Lines that look like a boundary but are none: not at a line's
       # start, one character short, a CR too many.
       b"note --" + BROWSER + b"\r\n"
       b"\r\n--" + BROWSER[:-1] + b"\r\n"
       b"\r\r\n-\r\n--\r\n\r\n"
       b"2009-01-16 10:01:00,-2,3e4\r\n")

# As Chromium sends the admin's import form (the field order of the page).
BROWSER_BODY = body(BROWSER, [
    field(b"csrf_token", b"1d70ff92f7191fba3cc93ea876fb4f5bd02b307de548fa3696e43229c10b9af8"),
    field(b"duplicates", b"skip"),
    file_part(b"file", b"readings.csv", CSV),
])
BROWSER_EVENTS = [
    Part("csrf_token", None, "text/plain"),
    Data(b"1d70ff92f7191fba3cc93ea876fb4f5bd02b307de548fa3696e43229c10b9af8"), PartEnd(),
    Part("duplicates", None, "text/plain"), Data(b"skip"), PartEnd(),
    Part("file", "readings.csv", "text/csv"), Data(CSV), PartEnd(),
    End(),
]

BINARY = bytes(range(256)) * 4 + b"\r\n--" + CURL[:20] + b"\r" + bytes(range(255, -1, -1))
# Everything RFC 2046 allows around the parts, an empty file input, a
# binary file, a name and a filename in UTF-8 with HTML escapes.
CURL_BODY = body(CURL, [
    field(b"duplicates", b"refuse"),
    file_part(b"empty", b"", b"", b"application/octet-stream"),
    file_part(b"blob", b"data.bin", BINARY, b"application/octet-stream"),
    file_part("m\u00e9ter%22s".encode(), "r\u00e9sum\u00e9%0D%0A.csv".encode(), b"", None),
    field(b"note", "caf\u00e9\r\n".encode()),
], preamble=b"This is the preamble; it is ignored.\r\n", padding=b" \t ",
   epilogue=b"\r\nThis is the epilogue. --" + CURL + b"--\r\n")
CURL_EVENTS = [
    Part("duplicates", None, "text/plain"), Data(b"refuse"), PartEnd(),
    Part("empty", "", "application/octet-stream"), PartEnd(),
    Part("blob", "data.bin", "application/octet-stream"), Data(BINARY), PartEnd(),
    Part('m\u00e9ter"s', "r\u00e9sum\u00e9\r\n.csv", "application/octet-stream"), PartEnd(),
    Part("note", None, "text/plain"), Data("caf\u00e9\r\n".encode()), PartEnd(),
    End(),
]

# No parts at all (a form with nothing to send), the first boundary
# without a line end before it.
EMPTY_BODY = b"--" + BROWSER + b"--"
BODIES = [pytest.param(BROWSER, BROWSER_BODY, BROWSER_EVENTS, id="browser"),
          pytest.param(CURL, CURL_BODY, CURL_EVENTS, id="curl"),
          pytest.param(BROWSER, EMPTY_BODY, [End()], id="empty")]


def merged(events):
    """`events` with consecutive Data joined (how content is cut does not
    matter); no Data may be empty."""
    out = []
    for event in events:
        if type(event) is Data:
            assert event.data, "an empty Data event"
            if out and type(out[-1]) is Data:
                out[-1] = Data(out[-1].data + event.data)
                continue
        out.append(event)
    return out


def parse(boundary, *pieces, **limits):
    parser = MultipartParser(boundary, **limits)
    events = []
    for piece in pieces:
        events += parser.feed(piece)
    parser.close()
    return merged(events)


def refused(boundary, data, **limits):
    """The reason `data` is refused for, fed whole, then split at every
    byte: the same, and the parser stays failed."""
    with pytest.raises(MultipartError) as caught:
        parse(boundary, data, **limits)
    reason = caught.value.reason
    assert "\n" not in reason and reason == str(caught.value)
    for at in range(len(data) + 1):
        parser = MultipartParser(boundary, **limits)
        with pytest.raises(MultipartError) as again:
            parser.feed(data[:at])
            parser.feed(data[at:])
            parser.close()
        assert again.value.reason == reason, at
        with pytest.raises(MultipartError):
            parser.feed(b"")
    return reason


# -- realistic bodies, however they are split ---------------------------------

@pytest.mark.parametrize("boundary, data, expected", BODIES)
def test_a_body_in_one_piece(boundary, data, expected):
    assert parse(boundary, data) == expected


@pytest.mark.parametrize("boundary, data, expected", BODIES)
def test_a_body_split_at_every_byte(boundary, data, expected):
    for at in range(len(data) + 1):
        assert parse(boundary, data[:at], data[at:]) == expected, at


@pytest.mark.parametrize("boundary, data, expected", BODIES)
def test_a_body_fed_one_byte_at_a_time(boundary, data, expected):
    assert parse(boundary, *[data[at:at + 1] for at in range(len(data))]) == expected


def test_a_file_streams_through_holding_no_more_than_a_boundary():
    content = (b"0123456789abcdef\r\n-" * 4096)[:65536]
    data = body(BROWSER, [file_part(b"file", b"big.csv", content * 32)])
    parser = MultipartParser(BROWSER)
    digest, size = hashlib.sha256(), 0
    for at in range(0, len(data), 65536):
        for event in parser.feed(data[at:at + 65536]):
            if type(event) is Data:
                digest.update(event.data)
                size += len(event.data)
        # Held back: only what may begin the boundary (fewer bytes than
        # it has), or once past the file the last boundary's own bytes.
        assert parser.pending() < len(b"\r\n--" + BROWSER)
    parser.close()
    assert (size, digest.digest()) == (len(content) * 32, hashlib.sha256(content * 32).digest())


def test_the_epilogue_is_ignored_and_not_held():
    parser = MultipartParser(BROWSER)
    assert parser.feed(EMPTY_BODY) == [End()]
    assert parser.feed(b"x" * 100000) == []
    assert parser.pending() == 0
    parser.close()


# -- the limits, at their edges -----------------------------------------------

def test_parts_up_to_the_limit():
    parts = [field(b"f%d" % n, b"v") for n in range(5)]
    assert len(parse(BROWSER, body(BROWSER, parts), max_parts=5)) == 3 * 5 + 1
    reason = refused(BROWSER, body(BROWSER, parts + [field(b"f5", b"v")]), max_parts=5)
    assert reason == "more than 5 parts"


def headers_of(length):
    """A part's header block `length` bytes long (without its blank line)."""
    start = b'Content-Disposition: form-data; name="f"\r\nX-Pad: '
    return [start + b"p" * (length - len(start))]


def test_part_headers_up_to_the_limit():
    assert parse(BROWSER, body(BROWSER, [(headers_of(300), b"v")]), max_header_bytes=300)[0] \
        == Part("f", None, "text/plain")
    reason = refused(BROWSER, body(BROWSER, [(headers_of(301), b"v")]), max_header_bytes=300)
    assert reason == "a part's headers are longer than 300 bytes"


def test_unfinished_part_headers_over_the_limit_are_refused_as_they_come():
    parser = MultipartParser(BROWSER, max_header_bytes=300)
    parser.feed(b"--" + BROWSER + b"\r\n" + headers_of(300)[0] + b"\r\n\r")
    with pytest.raises(MultipartError, match="longer than 300 bytes"):
        parser.feed(b"x")


def test_a_field_up_to_the_limit():
    assert parse(BROWSER, body(BROWSER, [field(b"f", b"v" * 100)]), max_field_bytes=100)[1] \
        == Data(b"v" * 100)
    reason = refused(BROWSER, body(BROWSER, [field(b"f", b"v" * 101)]), max_field_bytes=100)
    assert reason == "the field 'f' is longer than 100 bytes"


def test_a_file_is_not_a_field_and_has_no_such_limit():
    events = parse(BROWSER, body(BROWSER, [file_part(b"f", b"a.csv", b"v" * 1000)]),
                   max_field_bytes=100)
    assert events[1] == Data(b"v" * 1000)


def test_a_preamble_or_padding_longer_than_a_header_block():
    assert parse(BROWSER, body(BROWSER, [field(b"f", b"v")], preamble=b"p" * 98 + b"\r\n"),
                 max_header_bytes=100)[0].name == "f"
    assert refused(BROWSER, b"p" * 99 + b"\r\n" + body(BROWSER, [field(b"f", b"v")]),
                   max_header_bytes=100) == "no boundary in the first 100 bytes of the body"
    assert refused(BROWSER, body(BROWSER, [field(b"f", b"v")], padding=b" " * 101),
                   max_header_bytes=100) == "a boundary line longer than 100 bytes"


# -- malformed bodies ---------------------------------------------------------

DISPOSITION = b'Content-Disposition: form-data; name="f"'


def part_with(*headers):
    """A body of one part with these header lines."""
    return body(BROWSER, [(list(headers), b"v")])


@pytest.mark.parametrize("data, reason", [
    (b"", "the body ends before its closing boundary"),
    (body(BROWSER, [field(b"f", b"v")])[:-10], "the body ends before its closing boundary"),
    (b"--" + BROWSER + b"\r\n" + DISPOSITION + b"\r\n\r\nv",
     "the body ends before its closing boundary"),
    (b"--" + BROWSER + b"\r\n\r\nv\r\n--" + BROWSER + b"--",
     "a part without a Content-Disposition header"),
    (part_with(b"Content-Type: text/plain"),
     "a part without a Content-Disposition header"),
    (part_with(b'Content-Disposition: attachment; name="f"'),
     "a part is 'attachment', not form-data"),
    (part_with(b'Content-Disposition: form-data; filename="a.csv"'),
     "a part without a name"),
    (part_with(b'Content-Disposition: form-data; name=""'),
     "a part without a name"),
    (body(BROWSER, [field(b"f", b"1"), file_part(b"f", b"a.csv", b"2")]),
     "the field 'f' is given twice"),
    (part_with(b'Content-Disposition: form-data; name="\xff"'),
     "a part's headers are not valid UTF-8"),
    (part_with(b"Content-Disposition: form-data;", b' name="f"'),
     "obsolete line folding in a part's headers"),
    (part_with(DISPOSITION, b"Content-Type : text/plain"),
     "malformed header field in a part: 'Content-Type : text/plain'"),
    (part_with(DISPOSITION, b"no colon"),
     "malformed header field in a part: 'no colon'"),
    (part_with(DISPOSITION + b"\nX-Smuggled: 1"),
     "a control character in a part's 'Content-Disposition' header"),
    (part_with(DISPOSITION, b"X: a\rb"),
     "a control character in a part's 'X' header"),
    (part_with(DISPOSITION, b"X: a\x00b"),
     "a control character in a part's 'X' header"),
    (part_with(DISPOSITION, DISPOSITION),
     "a part with two content-disposition headers"),
    (part_with(DISPOSITION, b"Content-Type: a/b", b"Content-Type: a/b"),
     "a part with two content-type headers"),
    (part_with(DISPOSITION, b"Content-Type: csv"),
     "a part's Content-Type is not type/subtype: 'csv'"),
    (part_with(b'Content-Disposition: form-data; name="f'),
     "Content-Disposition: a quoted string is not closed"),
    (part_with(b'Content-Disposition: form-data; name="f"; name="g"'),
     "Content-Disposition: name is given twice"),
    (part_with(b'Content-Disposition: form-data; name="f" x'),
     "Content-Disposition: malformed parameter name"),
    (part_with(b"Content-Disposition: form-data; name=a b"),
     "Content-Disposition: malformed value of name"),
    (part_with(b"Content-Disposition: form-data; name"),
     "Content-Disposition: malformed parameter"),
    # The boundary inside a part's content, as if the sender chose it badly.
    (body(BROWSER, [field(b"f", b"a\r\n--" + BROWSER + b"x")]),
     "a boundary is followed by more than a line end"),
    (b"--" + BROWSER + b"\n" + DISPOSITION + b"\r\n\r\nv\r\n--" + BROWSER + b"--",
     "a boundary is followed by more than a line end"),
    (b"--" + BROWSER + b"-\r\n", "a boundary is followed by more than a line end"),
    (b"--" + BROWSER[:-1] + b"\r\n" + DISPOSITION + b"\r\n\r\nv\r\n--" + BROWSER[:-1] + b"--",
     "the body ends before its closing boundary"),
])
def test_malformed_bodies_are_refused_with_a_reason(data, reason):
    assert refused(BROWSER, data) == reason


def test_a_reason_quotes_a_long_name_short():
    name = b"n" * 500
    reason = refused(BROWSER, body(BROWSER, [field(name, b""), field(name, b"")]))
    assert reason == "the field %r is given twice" % ("n" * 40 + "...")


# -- boundaries and parameters ------------------------------------------------

@pytest.mark.parametrize("content_type, boundary", [
    ("multipart/form-data; boundary=" + BROWSER.decode(), BROWSER),
    ('Multipart/Form-Data; charset=utf-8; BOUNDARY="a b:c=d?"', b"a b:c=d?"),
    ("multipart/form-data;boundary=x", b"x"),
    ("multipart/form-data; boundary=" + "b" * 70, b"b" * 70),
])
def test_the_boundary_of_a_content_type(content_type, boundary):
    assert boundary_of(content_type) == boundary


@pytest.mark.parametrize("content_type, reason", [
    ("application/x-www-form-urlencoded", "the body is 'application/x-www-form-urlencoded', "
                                          "not multipart/form-data"),
    ("multipart/mixed; boundary=x", "the body is 'multipart/mixed', not multipart/form-data"),
    ("multipart/form-data", "the Content-Type gives no boundary"),
    ("multipart/form-data; boundary=" + "b" * 71, "the boundary %r is not 1 to 70 of the "
     "characters RFC 2046 allows" % ("b" * 40 + "...")),
    ('multipart/form-data; boundary=""', "the boundary '' is not 1 to 70 of the characters "
                                          "RFC 2046 allows"),
    ('multipart/form-data; boundary="ends with a space "', "the boundary 'ends with a space ' "
     "is not 1 to 70 of the characters RFC 2046 allows"),
    ('multipart/form-data; boundary="semi;colon"', "the boundary 'semi;colon' is not 1 to 70 "
                                                   "of the characters RFC 2046 allows"),
    ("multipart/form-data; boundary=a=b", "Content-Type: malformed value of boundary"),
])
def test_a_content_type_without_a_good_boundary(content_type, reason):
    with pytest.raises(MultipartError) as caught:
        boundary_of(content_type)
    assert caught.value.reason == reason


@pytest.mark.parametrize("boundary", [b"", b"x" * 71, b"caf\xe9", "\u00e9"])
def test_the_parser_refuses_a_bad_boundary(boundary):
    with pytest.raises(MultipartError, match="RFC 2046"):
        MultipartParser(boundary)


@pytest.mark.parametrize("disposition, name, filename", [
    (b'form-data; name="a\\"b"; filename="c\\\\d.csv"', 'a"b', "c\\d.csv"),
    (b'form-data; name="a%22b"; filename="line%0D%0Abreak%22.csv"', 'a"b', 'line\r\nbreak".csv'),
    # A backslash that escapes nothing stands for itself (a browser
    # sends a Windows path, or a name with one, as it is).
    (b'form-data; name="f"; filename="C:\\path\\a.csv"', "f", "C:\\path\\a.csv"),
    (b"FORM-DATA ;  name=token-name ; filename=a.csv", "token-name", "a.csv"),
    ('form-data; name="z\u00e4hler"; filename="\u00b5.csv"'.encode(), "z\u00e4hler", "\u00b5.csv"),
    (b'form-data; name="f"; filename*=UTF-8\'\'x.csv', "f", None),
    (b'form-data; name="f"; filename="x"; size=3;', "f", "x"),
])
def test_content_disposition_parameters(disposition, name, filename):
    events = parse(BROWSER, part_with(b"Content-Disposition: " + disposition))
    assert events[0][:2] == (name, filename)


def test_a_part_content_type_is_kept_as_given():
    events = parse(BROWSER, body(BROWSER, [file_part(b"f", b"a.csv", b"v",
                                                     b"text/csv; charset=utf-8")]))
    assert events[0].content_type == "text/csv; charset=utf-8"


# -- read_form: a WSGI request's form -----------------------------------------

class Input(io.BytesIO):
    """wsgi.input that records how much each read asked for."""

    def __init__(self, data):
        super().__init__(data)
        self.asked = []

    def read(self, size=-1):
        self.asked.append(size)
        return super().read(size)


def environ(data, boundary=BROWSER, length=None, **extra):
    return dict({"REQUEST_METHOD": "POST",
                 "CONTENT_TYPE": "multipart/form-data; boundary=" + boundary.decode(),
                 "CONTENT_LENGTH": str(len(data) if length is None else length),
                 "wsgi.input": Input(data)}, **extra)


def test_read_form_keeps_fields_and_spools_files():
    fields, files = multipart.read_form(environ(BROWSER_BODY))
    assert fields == {"csrf_token": BROWSER_EVENTS[1].data.decode(), "duplicates": "skip"}
    upload = files["file"]
    assert (upload.filename, upload.content_type, upload.size) == ("readings.csv", "text/csv",
                                                                    len(CSV))
    assert upload.file.fileno() >= 0     # a real file, not memory
    assert upload.file.tell() == 0 and upload.file.read() == CSV
    upload.close()
    assert upload.file.closed


def test_read_form_leaves_out_an_empty_file_input():
    fields, files = multipart.read_form(environ(CURL_BODY, CURL))
    assert fields == {"duplicates": "refuse", "note": "caf\u00e9\r\n"}
    assert sorted(files) == ["blob", 'm\u00e9ter"s']    # "empty" had no name and no bytes
    assert files["blob"].file.read() == BINARY
    assert (files['m\u00e9ter"s'].filename, files['m\u00e9ter"s'].size) == (
        "r\u00e9sum\u00e9\r\n.csv", 0)


def test_read_form_reads_in_chunks_up_to_the_content_length():
    content = b"x" * (3 * multipart.CHUNK)
    data = body(BROWSER, [file_part(b"file", b"a.csv", content)])
    env = environ(data + b"next request", length=len(data))
    fields, files = multipart.read_form(env)
    assert files["file"].file.read() == content
    assert max(env["wsgi.input"].asked) == multipart.CHUNK
    assert env["wsgi.input"].read() == b"next request"


@pytest.mark.parametrize("data, length, reason", [
    (body(BROWSER, [field(b"f", b"\xff")]), None, "the field 'f' is not valid UTF-8"),
    (body(BROWSER, [field(b"f", b"v" * 60000), field(b"g", b"v" * 6000)]), None,
     "the form's text fields are longer than 65536 bytes together"),
    (BROWSER_BODY[:-20], len(BROWSER_BODY), "the body ends before its closing boundary"),
    (BROWSER_BODY, len(BROWSER_BODY) - 10, "the body ends before its closing boundary"),
    (BROWSER_BODY, "ten", "bad Content-Length"),
])
def test_read_form_refuses_and_leaves_nothing_open(data, length, reason, monkeypatch):
    made = []
    real = multipart.Upload.__init__

    def recording(self, *args):
        real(self, *args)
        made.append(self)
    monkeypatch.setattr(multipart.Upload, "__init__", recording)
    with pytest.raises(MultipartError) as caught:
        multipart.read_form(environ(data, length=length))
    assert caught.value.reason == reason
    assert all(upload.file.closed for upload in made)


# -- app.Request: request.form and request.files ------------------------------

@app.page
def _view(request):
    pass


UPLOADS = app.Route("/import/", _view, methods=("POST",), files=True, body_limit=10000)
FORM = app.Route("/form/", _view, methods=("POST",))
SITE = types.SimpleNamespace(store=None, settings=None)


def request(route, env):
    made = app.Request(env, SITE)
    made.route = route
    return made


def test_a_files_route_reads_a_multipart_form():
    made = request(UPLOADS, environ(BROWSER_BODY))
    assert made.form["csrf_token"] == BROWSER_EVENTS[1].data.decode()
    assert made.files["file"].file.read() == CSV
    upload = made.files["file"]
    made.close()
    assert upload.file.closed


def test_a_files_route_still_reads_an_urlencoded_form():
    made = request(UPLOADS, {"REQUEST_METHOD": "POST", "CONTENT_TYPE": app.FORM_TYPE,
                             "CONTENT_LENGTH": "3", "wsgi.input": io.BytesIO(b"a=b")})
    assert (made.form, made.files) == ({"a": "b"}, {})


@pytest.mark.parametrize("route, env, status, reason", [
    (FORM, environ(BROWSER_BODY), 415,
     "forms must be sent as application/x-www-form-urlencoded"),
    (None, environ(BROWSER_BODY), 415,
     "forms must be sent as application/x-www-form-urlencoded"),
    (UPLOADS, environ(b"{}", CONTENT_TYPE="application/json"), 415,
     "forms must be sent as application/x-www-form-urlencoded or multipart/form-data"),
    (UPLOADS, environ(b"x" * 10001), 413, "form larger than 10000 bytes"),
    (UPLOADS, environ(BROWSER_BODY[:-20]), 400, "form: the body ends before its closing boundary"),
    (UPLOADS, environ(BROWSER_BODY, CONTENT_TYPE="multipart/form-data"), 400,
     "form: the Content-Type gives no boundary"),
])
def test_forms_refused(route, env, status, reason):
    made = request(route, env)
    with pytest.raises(app.HTTPError) as caught:
        made.form
    assert (caught.value.status, caught.value.reason) == (status, reason)

"""multipart/form-data request bodies (RFC 7578): forms that carry files.

Two layers, the first usable without the second, as in http.py:

1. `MultipartParser` turns a body's bytes into events (h11 style:
   ``feed(data)`` returns the events those bytes complete, ``close()``
   says the body is over): a `Part` (its name, filename and Content-Type)
   as each part's headers are in, its content as `Data`, `PartEnd` after
   it, and `End` at the closing boundary. However the bytes are split, the
   events are the same (apart from how content is cut into `Data`).

   Everything it holds is bounded. A part's headers are held until their
   blank line, ``max_header_bytes`` at most; content is passed on as it
   comes, keeping back only the bytes that may be the start of the next
   boundary (fewer than its 74), so a file of any size streams through in
   about one fed chunk; a text field (a part without a filename) may total
   ``max_field_bytes``; a body may hold ``max_parts`` parts. Boundaries and
   header ends are found with bytes.find, and the headers are read by
   scanning, never by a regular expression that could backtrack.

   It reads strictly where a lenient reading would make one body mean two
   things to two readers: lines end with CRLF, a boundary line holds only
   the boundary (and RFC 2046's transport padding), each part has exactly
   one ``Content-Disposition: form-data`` with a name, no name comes
   twice, headers are UTF-8 without obs-fold or control characters, and a
   parameter is given once. A bad body raises `MultipartError` with a
   one-line reason, and the parser stays failed.

   Quoted parameter values take both escapes in use: a backslash before
   ``"`` or ``\\`` (RFC 2616's quoted-pair, curl's --form-escape), and
   the HTML standard's ``%22``, ``%0D`` and ``%0A`` in a name or filename,
   which is what browsers send (they escape nothing else, so a literal
   ``%22`` in a filename reads as a quote: the standard's ambiguity, not
   ours). ``filename*`` (RFC 5987) is not for forms (RFC 7578 4.2) and is
   ignored like any parameter not known here.

2. `read_form(environ)` reads a WSGI request's multipart body from
   ``wsgi.input`` in `CHUNK` pieces, up to its CONTENT_LENGTH, through the
   parser: text fields are decoded as UTF-8 and kept in memory (all of
   them ``max_text_bytes`` together), and each file goes to an `Upload`,
   a `tempfile.TemporaryFile` that leaves the disk when closed. A file
   input left empty (no filename, no bytes) is left out, as if it had not
   been sent.
"""

import collections
import re
import tempfile

# A part's header block (its lines up to the blank one), the number of
# parts of a body, one text field's value, and all text fields of a form
# together, in bytes.
MAX_HEADER_BYTES = 8192
MAX_PARTS = 32
MAX_FIELD_BYTES = 65536
MAX_TEXT_BYTES = 65536
# How much of wsgi.input `read_form` reads at a time.
CHUNK = 65536

FORM_DATA = "multipart/form-data"


class MultipartError(ValueError):
    """A body that is not a multipart/form-data one we read: `reason` is
    one line, fit for an answer (it quotes what the client sent with
    repr, short)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


# -- events -------------------------------------------------------------------

Part = collections.namedtuple("Part", "name filename content_type")
Part.__doc__ = """A part begins: its field `name` (str), its `filename` (str,
possibly empty: a file input left empty) or None for a text field, and its
`content_type`: as the part gave it, else ``text/plain`` for a text field
and ``application/octet-stream`` for a file (RFC 7578 4.4)."""
Data = collections.namedtuple("Data", "data")
Data.__doc__ = """Some of the part's content (bytes, never empty)."""


class _Mark:
    """An event without fields: equal to any other of its kind (empty
    namedtuples would all be equal to one another)."""

    __slots__ = ()

    def __eq__(self, other):
        return type(other) is type(self)

    def __hash__(self):
        return hash(type(self))

    def __repr__(self):
        return type(self).__name__ + "()"


class PartEnd(_Mark):
    """The part's content is complete."""


class End(_Mark):
    """The closing boundary: the body is complete (what follows, the
    epilogue, is ignored)."""


# -- header values ------------------------------------------------------------

_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Control characters other than HTAB: never in a header value.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 2046 5.1.1: 1 to 70 of these, not ending with a space. Bounded
# repetition of one class: linear.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_HTML_ESCAPES = (("%22", '"'), ("%0D", "\r"), ("%0A", "\n"))


def _is_token(text):
    return bool(text) and all(c in _TOKEN for c in text)


def _shown(text):
    """Client text quoted for a one-line reason, cut short."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _skip_space(text, at):
    while at < len(text) and text[at] in " \t":
        at += 1
    return at


def _quoted(text, at, what):
    """The quoted string opening at `at` (a ``"``), its quoted-pairs
    undone, and the offset after its closing quote."""
    pieces = []
    at += 1
    close = text.find('"', at)
    while True:
        if close < 0:
            raise MultipartError("%s: a quoted string is not closed" % what)
        backslash = text.find("\\", at, close)
        if backslash < 0:
            pieces.append(text[at:close])
            return "".join(pieces), close + 1
        escaped = text[backslash + 1:backslash + 2]
        if escaped in ('"', "\\"):
            pieces += [text[at:backslash], escaped]
            at = backslash + 2
            if at > close:      # the quote was escaped: the string goes on
                close = text.find('"', at)
        else:                   # a lone backslash stands for itself
            pieces.append(text[at:backslash + 1])
            at = backslash + 1


def parameters(value, what):
    """``(kind, {name: value})`` of a header value such as ``form-data;
    name="file"; filename="a.csv"``: `kind` and the names lower-cased, each
    value a token or a quoted string (undone). `what` names the header in
    a `MultipartError`."""
    end = value.find(";")
    end = len(value) if end < 0 else end
    kind = value[:end].strip(" \t").lower()
    found = {}
    at = end
    while at < len(value):      # value[at] is ";"
        at = _skip_space(value, at + 1)
        if at == len(value):
            break
        equals = value.find("=", at)
        name = value[at:equals].strip(" \t").lower() if equals >= 0 else ""
        if not _is_token(name):
            raise MultipartError("%s: malformed parameter" % what)
        at = _skip_space(value, equals + 1)
        if value.startswith('"', at):
            text, at = _quoted(value, at, what)
            at = _skip_space(value, at)
        else:
            stop = value.find(";", at)
            stop = len(value) if stop < 0 else stop
            text = value[at:stop].rstrip(" \t")
            if not _is_token(text):
                raise MultipartError("%s: malformed value of %s" % (what, name))
            at = stop
        if at < len(value) and value[at] != ";":
            raise MultipartError("%s: malformed parameter %s" % (what, name))
        if name in found:
            raise MultipartError("%s: %s is given twice" % (what, name))
        found[name] = text
    return kind, found


def _html_unescaped(text):
    for escape, character in _HTML_ESCAPES:
        text = text.replace(escape, character)
    return text


def check_boundary(boundary):
    """`boundary` (str or bytes) as bytes, if RFC 2046 allows it: 1 to 70
    of its characters, the last not a space. Else `MultipartError`."""
    if isinstance(boundary, bytes):
        boundary = boundary.decode("latin-1")
    if not 1 <= len(boundary) <= 70 or not _BOUNDARY.fullmatch(boundary):
        raise MultipartError("the boundary %s is not 1 to 70 of the characters RFC 2046 "
                             "allows" % _shown(boundary))
    return boundary.encode("ascii")


def boundary_of(content_type):
    """The boundary (bytes) of a request whose Content-Type header is
    `content_type`; `MultipartError` unless it is multipart/form-data with
    a good boundary."""
    kind, found = parameters(content_type, "Content-Type")
    if kind != FORM_DATA:
        raise MultipartError("the body is %s, not %s" % (_shown(kind), FORM_DATA))
    if "boundary" not in found:
        raise MultipartError("the Content-Type gives no boundary")
    return check_boundary(found["boundary"])


# -- the parser ---------------------------------------------------------------

# Where the parser is: before the first boundary; just past a boundary
# (``--`` closes the body, else its line ends); in the padding of a
# boundary line; in a part's headers; in its content; after the close.
_PREAMBLE, _DELIMITED, _PADDING, _HEADERS, _CONTENT, _EPILOGUE = range(6)


class MultipartParser:
    """Splits a multipart/form-data body into events (see the module
    docstring); `boundary` is the Content-Type's (`boundary_of`)."""

    def __init__(self, boundary, max_parts=MAX_PARTS, max_header_bytes=MAX_HEADER_BYTES,
                 max_field_bytes=MAX_FIELD_BYTES):
        self._delimiter = b"\r\n--" + check_boundary(boundary)
        self.max_parts = max_parts
        self.max_header_bytes = max_header_bytes
        self.max_field_bytes = max_field_bytes
        # The first boundary may open the body with no line end before
        # it: read as if one were there, every boundary is the delimiter.
        self._buf = bytearray(b"\r\n")
        self._state = _PREAMBLE
        self._scanned = 0       # where the search in _buf resumes
        self._skipped = 0       # preamble or padding bytes dropped so far
        self._parts = 0
        self._names = set()
        self._field = None      # the text field being read: [name, bytes so far]
        self._error = None

    def feed(self, data):
        """The events that `data`, the body's next bytes, complete."""
        if self._error is not None:
            raise MultipartError(self._error)
        if self._state == _EPILOGUE:
            return []
        self._buf += data
        events = []
        try:
            while self._step(events):
                pass
        except MultipartError as error:
            self._error = error.reason
            self._buf = bytearray()
            raise
        return events

    def pending(self):
        """Bytes fed but neither returned in an event nor dropped yet."""
        return len(self._buf) - (2 if self._state == _PREAMBLE else 0)

    def close(self):
        """The body is over: `MultipartError` unless it was complete."""
        if self._error is None and self._state != _EPILOGUE:
            self._error = "the body ends before its closing boundary"
            self._buf = bytearray()
        if self._error is not None:
            raise MultipartError(self._error)

    def _step(self, events):
        """Take what the buffer holds in the current state; True when the
        state changed and the buffer may hold more."""
        buf, state = self._buf, self._state
        if state == _CONTENT:
            return self._content(buf, events)
        if state == _HEADERS:
            return self._headers(buf, events)
        if state == _DELIMITED:
            if len(buf) < 2:
                return False
            if buf[:2] == b"--":
                self._state = _EPILOGUE
                buf.clear()
                events.append(End())
                return False
            self._state, self._skipped = _PADDING, 0
            return True
        if state == _PADDING:
            return self._padding(buf)
        return self._preamble(buf)

    def _preamble(self, buf):
        at = buf.find(self._delimiter, self._scanned)
        # The body's bytes before its first boundary (the CRLF read before
        # them makes up for the CRLF that ends a preamble) are `at`, or,
        # not found yet, at least what the buffer holds but a boundary.
        earliest = max(len(buf) - len(self._delimiter) + 1, 0)
        if (at if at >= 0 else earliest) > self.max_header_bytes:
            raise MultipartError("no boundary in the first %d bytes of the body"
                                 % self.max_header_bytes)
        if at < 0:
            self._scanned = earliest
            return False
        del buf[:at + len(self._delimiter)]
        self._state = _DELIMITED
        return True

    def _padding(self, buf):
        """Spaces and tabs, then the CRLF that ends a boundary line."""
        spaces = 0
        while spaces < len(buf) and buf[spaces] in b" \t":
            spaces += 1
        del buf[:spaces]
        self._skipped += spaces
        if self._skipped > self.max_header_bytes:
            raise MultipartError("a boundary line longer than %d bytes" % self.max_header_bytes)
        if buf[:2] != b"\r\n"[:len(buf)]:
            raise MultipartError("a boundary is followed by more than a line end")
        if len(buf) < 2:
            return False
        del buf[:2]
        self._parts += 1
        if self._parts > self.max_parts:
            raise MultipartError("more than %d parts" % self.max_parts)
        self._state, self._scanned = _HEADERS, 0
        return True

    def _headers(self, buf, events):
        if buf[:2] == b"\r\n":
            raise MultipartError("a part without a Content-Disposition header")
        end = buf.find(b"\r\n\r\n", self._scanned)
        # The block ends at `end`, or, not found yet, 3 bytes from the
        # buffer's end at the earliest.
        if (end if end >= 0 else len(buf) - 3) > self.max_header_bytes:
            raise MultipartError("a part's headers are longer than %d bytes"
                                 % self.max_header_bytes)
        if end < 0:
            self._scanned = max(len(buf) - 3, 0)
            return False
        part = self._part(bytes(buf[:end]))
        del buf[:end + 4]
        events.append(part)
        self._field = [part.name, 0] if part.filename is None else None
        self._state = _CONTENT
        return True

    def _content(self, buf, events):
        at = buf.find(self._delimiter)
        if at >= 0:
            self._data(buf, at, events)
            del buf[:len(self._delimiter)]
            events.append(PartEnd())
            self._state = _DELIMITED
            return True
        # What may be the start of the boundary stays; it starts with CR.
        kept = buf.find(b"\r", max(len(buf) - len(self._delimiter) + 1, 0))
        self._data(buf, len(buf) if kept < 0 else kept, events)
        return False

    def _data(self, buf, length, events):
        if not length:
            return
        if self._field is not None:
            self._field[1] += length
            if self._field[1] > self.max_field_bytes:
                raise MultipartError("the field %s is longer than %d bytes"
                                     % (_shown(self._field[0]), self.max_field_bytes))
        events.append(Data(bytes(buf[:length])))
        del buf[:length]

    def _part(self, block):
        """The `Part` whose header block (without its blank line) is `block`."""
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            raise MultipartError("a part's headers are not valid UTF-8") from None
        fields = {}
        for line in text.split("\r\n"):
            if line[:1] in (" ", "\t"):
                raise MultipartError("obsolete line folding in a part's headers")
            name, colon, value = line.partition(":")
            if not colon or not _is_token(name):
                raise MultipartError("malformed header field in a part: %s" % _shown(line))
            if _CONTROL.search(value):
                raise MultipartError("a control character in a part's %s header" % _shown(name))
            name = name.lower()
            if name in fields and name in ("content-disposition", "content-type"):
                raise MultipartError("a part with two %s headers" % name)
            fields[name] = value.strip(" \t")
        if "content-disposition" not in fields:
            raise MultipartError("a part without a Content-Disposition header")
        kind, found = parameters(fields["content-disposition"], "Content-Disposition")
        if kind != "form-data":
            raise MultipartError("a part is %s, not form-data" % _shown(kind))
        if not found.get("name"):
            raise MultipartError("a part without a name")
        name = _html_unescaped(found["name"])
        if name in self._names:
            raise MultipartError("the field %s is given twice" % _shown(name))
        self._names.add(name)
        filename = found.get("filename")
        if filename is not None:
            filename = _html_unescaped(filename)
        content_type = fields.get("content-type")
        if content_type is None:
            content_type = "text/plain" if filename is None else "application/octet-stream"
        else:
            media, slash, subtype = parameters(content_type, "a part's Content-Type")[0].partition("/")
            if not (slash and _is_token(media) and _is_token(subtype)):
                raise MultipartError("a part's Content-Type is not type/subtype: %s"
                                     % _shown(content_type))
        return Part(name, filename, content_type)


# -- 2. reading a WSGI request's form -----------------------------------------

class Upload:
    """A file sent in a form: its `filename` as the client named it (a
    name to show, never a path to write to; possibly empty), its
    `content_type` (the client's word for it), its `size` in bytes, and
    `file`, a temporary file holding it, at its start once the form is
    read. ``close()`` frees the disk."""

    def __init__(self, filename, content_type):
        self.filename = filename
        self.content_type = content_type
        self.size = 0
        self.file = tempfile.TemporaryFile()

    def close(self):
        self.file.close()

    def __repr__(self):
        return "<Upload %r %s, %d bytes>" % (self.filename, self.content_type, self.size)


def read_form(environ, max_parts=MAX_PARTS, max_header_bytes=MAX_HEADER_BYTES,
              max_field_bytes=MAX_FIELD_BYTES, max_text_bytes=MAX_TEXT_BYTES):
    """``(fields, files)`` of the multipart/form-data body of the WSGI
    request `environ`: {name: str} and {name: `Upload`}. A body that is
    not one (see `MultipartParser`; a text field that is not UTF-8, text
    fields over `max_text_bytes` together, a body shorter than its
    Content-Length) raises `MultipartError`, and nothing is left open."""
    parser = MultipartParser(boundary_of(environ.get("CONTENT_TYPE", "")), max_parts,
                             max_header_bytes, max_field_bytes)
    try:
        left = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise MultipartError("bad Content-Length") from None
    stream = environ["wsgi.input"]
    fields, files, text = {}, {}, 0
    part = value = upload = None
    try:
        ended = False
        while left > 0 and not ended:
            chunk = stream.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            for event in parser.feed(chunk):
                kind = type(event)
                if kind is Data:
                    if upload is None:
                        text += len(event.data)
                        if text > max_text_bytes:
                            raise MultipartError("the form's text fields are longer than %d "
                                                 "bytes together" % max_text_bytes)
                        value += event.data
                    else:
                        upload.file.write(event.data)
                        upload.size += len(event.data)
                elif kind is Part:
                    part = event
                    if part.filename is None:
                        value = bytearray()
                    else:
                        upload = Upload(part.filename, part.content_type)
                elif kind is PartEnd:
                    if upload is None:
                        fields[part.name] = _text(part.name, value)
                    elif upload.filename or upload.size:
                        upload.file.seek(0)
                        files[part.name] = upload
                    else:
                        upload.close()  # a file input left empty
                    upload = value = None
                else:
                    ended = True
        parser.close()
    except BaseException:
        for each in [upload] + list(files.values()):
            if each is not None:
                each.close()
        raise
    return fields, files


def _text(name, value):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise MultipartError("the field %s is not valid UTF-8" % _shown(name)) from None

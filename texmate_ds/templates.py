"""One template engine for the web's pages and the alarm messages admins
write: a subset of the Django template language, parsed for real.

The language
------------

* ``{{ expression }}`` writes a value: a literal (``"text"`` or ``'text'``,
  ``12``, ``-1.5``, ``True``, ``False``, ``None``) or a variable
  (``unit.name``, ``data.0``, ``forloop.counter``), then filters
  (``{{ x|default:"-"|upper }}``). A string literal cannot hold its own
  quote character; use the other one.
* Variable lookup, segment by segment, as Django does: a dict key, then an
  attribute, then a list index (``data.0``). A name that is not there, at
  any segment, is *missing*: it writes nothing, is false in ``if`` and
  empty in ``for``, and filters see ``""``. Rendering never raises for a
  missing name. A value that is callable is never called: it counts as
  missing. (``None`` itself writes ``None``, as in Django.) Names and
  attributes starting with ``_`` are refused when the template is parsed.
* ``{% if a %}...{% elif b %}...{% else %}...{% endif %}`` with ``or``,
  ``and``, ``not`` (loosest first), ``in``, ``not in``, ``==``, ``!=``,
  ``<``, ``>``, ``<=``, ``>=``; operands are expressions with filters
  (``{% if data|length > 1 %}``). A comparison that Python refuses (``"a" <
  1``) is false.
* ``{% for x in xs %}...{% empty %}...{% endfor %}``: ``forloop.counter``
  (from 1), ``forloop.first``, ``forloop.last``; ``{% empty %}`` renders
  when ``xs`` is empty or missing.
* ``{# a comment #}``. Every tag ends at its first closer (``}}``, ``%}``,
  ``#}``) and may span lines; one that never closes is a syntax error.
* Pages only: ``{% extends "base.html" %}`` (first, and then nothing but
  ``{% block %}`` tags and blank text), ``{% block name %}...{% endblock
  %}``, ``{% include "name.html" %}`` (``with a=b`` sets names for it),
  ``{% url 'name' arg key=value %}`` (the router's reverse lookup) and
  ``{% csrf_token %}`` (the hidden input of a form).

Filters: ``default:x`` (x when the value is false or missing), ``upper``,
``lower``, ``length``, ``join:", "``, ``yesno:"yes,no,maybe"``,
``urlencode`` (``urlencode:""`` quotes ``/`` too), ``floatformat`` (as
Django: no argument one decimal unless the number is whole, ``N`` exactly
N decimals, ``-N`` N decimals unless whole; half rounds up; a number of
more than 100 digits is left as it is), ``date`` and, on pages only,
``safe``.

``date`` takes a timestamp, an int of microseconds (`times`), or the
protocol's text form (``2024-03-01 08:15:30``; a meter's alarm data), and
writes nothing for anything else. Its argument is a named format,
``"shown"`` (the default: to the second, `times.shown`) or ``"exact"``
(with microseconds when there are any, `times.text`), or a format of the
letters ``Y`` (year, 4 digits), ``m``, ``d``, ``H``, ``i`` (minutes),
``s`` (2 digits each) and ``u`` (microseconds, 6 digits); ``\\`` makes the
next character literal, as does any character not a letter. Other letters
are refused when the format is a literal, and write nothing when it comes
from a variable.

Escaping: one safe-string type, `Markup`. Pages autoescape: every value
written is HTML-escaped unless it is Markup (an SVG string built with
escaped labels, the output of ``safe``, ``join``, ``url``, ``csrf_token``,
a rendered page). String literals in a template are its author's text, as
in Django, and are not escaped.

The two policies
----------------

* Pages (`Pages`): templates from the web's ``templates/`` folder,
  loaded by a function (``pkgutil.get_data``, so the .pyz works), parsed
  once and cached with everything they extend and include; rendered to
  Markup. Templates may reach any attribute (they are ours).
* Sandbox (`sandbox(source)`): an alarm message an admin typed. Only the
  tags ``if`` and ``for`` and the filters above without ``safe``; lookups
  reach dict keys and list, tuple or string items, never an attribute of
  an object (use `Record` for a value that writes as text and has keys);
  given ``names``, any other name is refused when parsed. Output is plain
  text for a mail subject or body: nothing is escaped, and what it
  produces is a str (never Markup), so a page showing it escapes it. A
  render may run 1,000 loop iterations in all and write 64 KiB; beyond
  either it stops with `TemplateLimitError` (rather than send a message
  cut short). The source may be at most 64 KiB.

A template that does not parse raises `TemplateSyntaxError` with its line
and the reason, when it is compiled: pages on first use, a sandboxed
message when the admin saves it.

How it works
------------

`_lex` cuts the source into text, ``{{ }}`` and ``{% %}`` tokens with
``str.find`` (comments are dropped); `_Words` splits a tag's content into
words, strings and operators in one pass; the `_Parser` builds nodes by
recursive descent, conditions by precedence climbing, a chain of ``or``
(or ``and``) as one node. Nothing backtracks, so parsing is linear in the
source; nesting, of tags and within a condition, is capped (`MAX_DEPTH`)
so that neither parsing nor rendering comes near Python's recursion
limit. Nodes render into a list that `_Render` holds with the scopes, the
policy's counters and the page's services (`url`, `csrf_token`).
"""

import decimal
import html
import re
from collections.abc import Mapping
from urllib.parse import quote

from texmate_ds import times

MAX_DEPTH = 64                  # nested tags, or operators in one condition
SANDBOX_ITERATIONS = 1000
SANDBOX_OUTPUT = 65536          # characters
SANDBOX_SOURCE = 65536
PAGE_SOURCE = 1 << 20


class Markup(str):
    """Text that is already HTML: written as it is where others are escaped."""


def escape(value):
    """`value` as HTML text (quotes too), unless it is Markup already."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


class TemplateError(Exception):
    """Any failure of a template."""


class TemplateSyntaxError(TemplateError):
    """A template that does not parse: `reason`, `line` (from 1), `name`."""

    def __init__(self, reason, line, name=None):
        where = "line %d" % line if name is None else "%s, line %d" % (name, line)
        super().__init__("%s: %s" % (where, reason))
        self.reason = reason
        self.line = line
        self.name = name


class TemplateLimitError(TemplateError):
    """A sandboxed render went past its loop or output budget."""


class Record(dict):
    """A dict that writes as `text`. The sandbox reads keys, never
    attributes, so an alarm's unit is ``Record(code, name=...)``:
    ``{{ unit }}`` writes the code and ``{{ unit.name }}`` the name."""

    def __init__(self, text, **fields):
        super().__init__(fields)
        self.text = text

    def __str__(self):
        return self.text


# -- the lexer ----------------------------------------------------------------

_TEXT, _VAR, _TAG = "text", "variable", "tag"
_CLOSERS = {"{": "}}", "%": "%}", "#": "#}"}


def _lex(source, name):
    """[(kind, content, line)] of `source`, comments dropped."""
    tokens = []
    pos, line, end_of_source = 0, 1, len(source)
    while pos < end_of_source:
        start = source.find("{", pos)
        while start != -1 and source[start + 1:start + 2] not in _CLOSERS:
            start = source.find("{", start + 1)
        if start == -1:
            start = end_of_source
        if start > pos:
            tokens.append((_TEXT, source[pos:start], line))
            line += source.count("\n", pos, start)
        if start == end_of_source:
            break
        opener = source[start + 1]
        end = source.find(_CLOSERS[opener], start + 2)
        if end == -1:
            raise TemplateSyntaxError("{%s is never closed by %s" % (opener, _CLOSERS[opener]),
                                      line, name)
        if opener != "#":
            tokens.append((_VAR if opener == "{" else _TAG, source[start + 2:end].strip(), line))
        line += source.count("\n", start, end)
        pos = end + 2
    return tokens


# Inside a tag: words (names, dotted paths, numbers) and operators. One
# character class repeated: linear. Numbers and indexes have at most 18
# digits, so that int() never converts thousands.
_WORD = re.compile(r"-?[A-Za-z0-9_.]+")
_NUMBER = re.compile(r"-?[0-9]{1,18}(\.[0-9]{1,18})?\Z")
_INDEX = re.compile(r"[0-9]{1,18}\Z")
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "|", ":", "=")
_KEYWORDS = {"and", "or", "not", "in"}
_CONSTANTS = {"True": True, "False": False, "None": None}


class _Words:
    """A tag's content as a stream of (kind, text): kind is "word",
    "string" or "op"."""

    def __init__(self, content, line, name):
        self.line, self.name = line, name
        self.items = []
        pos = 0
        while pos < len(content):
            char = content[pos]
            if char.isspace():
                pos += 1
            elif char in "\"'":
                end = content.find(char, pos + 1)
                if end == -1:
                    self.fail("a string is never closed by %s" % char)
                self.items.append(("string", content[pos + 1:end]))
                pos = end + 1
            else:
                word = _WORD.match(content, pos)
                if word:
                    self.items.append(("word", word.group()))
                    pos = word.end()
                    continue
                for operator in _OPERATORS:
                    if content.startswith(operator, pos):
                        self.items.append(("op", operator))
                        pos += len(operator)
                        break
                else:
                    self.fail("unexpected character %r" % char)
        self.pos = 0

    def fail(self, reason):
        raise TemplateSyntaxError(reason, self.line, self.name)

    def peek(self, ahead=0):
        index = self.pos + ahead
        return self.items[index] if index < len(self.items) else (None, None)

    def next(self):
        item = self.peek()
        if item[0] is None:
            self.fail("the tag ends too soon")
        self.pos += 1
        return item

    def take(self, kind, text):
        """Consume (kind, text) if it is next; whether it was."""
        if self.peek() == (kind, text):
            self.pos += 1
            return True
        return False

    def done(self):
        return self.pos >= len(self.items)

    def end(self):
        if not self.done():
            self.fail("unexpected %r" % self.peek()[1])


# -- expressions --------------------------------------------------------------

_MISSING = object()


class _Literal:
    def __init__(self, value):
        self.value = value

    def resolve(self, render):
        return self.value


class _Variable:
    """A dotted name: its first segment from the scopes, then lookups."""

    def __init__(self, segments):
        self.head = segments[0]
        self.rest = [(s, int(s) if _INDEX.match(s) else None) for s in segments[1:]]

    def resolve(self, render):
        value = render.get(self.head)
        for segment, index in self.rest:
            if value is _MISSING:
                break
            value = render.lookup(value, segment, index)
        return value


class _Expression:
    """A value and its filters: [(function, argument or None)]."""

    def __init__(self, value, filters):
        self.value = value
        self.filters = filters

    def resolve(self, render, missing=""):
        value = self.value.resolve(render)
        if value is _MISSING:
            value = missing
        for function, argument in self.filters:
            value = function(value, None if argument is None else _present(
                argument.resolve(render)), render.autoescape)
        return value

    def test(self, render):
        """The value for a condition: None when missing."""
        return self.resolve(render, None)


def _present(value):
    return "" if value is _MISSING else value


class _Not:
    def __init__(self, operand):
        self.operand = operand
        self.depth = _depth(operand) + 1

    def test(self, render):
        return not self.operand.test(render)


class _Any:
    """``a or b or ...``: a chain is one node, so that evaluating a long
    one recurses no deeper than a short one."""

    def __init__(self, operands):
        self.operands = operands
        self.depth = max(map(_depth, operands)) + 1

    def test(self, render):
        value = None
        for operand in self.operands:
            value = operand.test(render)
            if value:
                break
        return value


class _All(_Any):
    """``a and b and ...``."""

    def test(self, render):
        value = None
        for operand in self.operands:
            value = operand.test(render)
            if not value:
                break
        return value


def _chain(kind, left, right):
    """`left` ``or``/``and`` `right`, joining a chain of the same (in
    place: the node is still being parsed)."""
    if type(left) is not kind:
        return kind([left, right])
    left.operands.append(right)
    left.depth = max(left.depth, _depth(right) + 1)
    return left


def _depth(node):
    return getattr(node, "depth", 0)


_COMPARISONS = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b, ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b,
    "in": lambda a, b: a in b, "not in": lambda a, b: a not in b,
}
# How tightly each operator binds (Django's smartif): "not" as a prefix
# takes 8, so ``not a == b`` is ``not (a == b)``.
_BINDING = {"or": 6, "and": 7, "in": 9, "not in": 9,
            "==": 10, "!=": 10, "<": 10, ">": 10, "<=": 10, ">=": 10}
_NOT_BINDING = 8


class _Compare:
    def __init__(self, operator, left, right):
        self.compare = _COMPARISONS[operator]
        self.left, self.right = left, right
        self.depth = max(_depth(left), _depth(right)) + 1

    def test(self, render):
        try:
            return self.compare(self.left.test(render), self.right.test(render))
        except Exception:
            return False


# -- filters ------------------------------------------------------------------

def _default(value, argument, autoescape):
    return value if value else argument


def _upper(value, argument, autoescape):
    return str(value).upper()


def _lower(value, argument, autoescape):
    return str(value).lower()


def _length(value, argument, autoescape):
    try:
        return len(value)
    except TypeError:
        return 0


def _join(value, argument, autoescape):
    if not hasattr(value, "__iter__"):
        return value
    if autoescape:
        return Markup(escape(argument).join(escape(item) for item in value))
    return str(argument).join(str(item) for item in value)


def _yesno(value, argument, autoescape):
    choices = str("yes,no,maybe" if argument is None else argument).split(",")
    if len(choices) < 2:
        return value
    yes, no, maybe = choices if len(choices) == 3 else (choices[0], choices[1], choices[1])
    if value is None:
        return maybe
    return yes if value else no


def _urlencode(value, argument, autoescape):
    return quote(str(value), safe="/" if argument is None else str(argument))


def _safe(value, argument, autoescape):
    return value if isinstance(value, Markup) else Markup(str(value))


# floatformat works in decimal, as Django's does; this many digits at most,
# so that "1e999999999" costs nothing.
_DIGITS = decimal.Context(prec=100)


def _floatformat(value, argument, autoescape):
    try:
        places = -1 if argument is None else int(argument)
    except (TypeError, ValueError):
        return value
    if abs(places) > _DIGITS.prec:
        return value
    try:
        number = decimal.Decimal(repr(value) if isinstance(value, float) else str(value))
    except (decimal.InvalidOperation, ValueError):
        return ""
    if not number.is_finite():
        return str(value)
    if places < 0 and number == number.to_integral_value():
        places = 0
    try:
        rounded = number.quantize(decimal.Decimal(1).scaleb(-abs(places)),
                                  decimal.ROUND_HALF_UP, _DIGITS)
    except decimal.InvalidOperation:
        return str(value)
    text = format(rounded, "f")
    return text[1:] if text.startswith("-") and not rounded else text


_DATE_NAMED = {"shown": times.shown, "exact": times.text}
# The letters of a date format: where each sits in times.text's
# "YYYY-MM-DD HH:MM:SS.ffffff".
_DATE_LETTERS = {"Y": (0, 4), "m": (5, 7), "d": (8, 10), "H": (11, 13), "i": (14, 16),
                 "s": (17, 19), "u": (20, 26)}


def _date_pieces(form):
    """A date format as literal text and (start, end) slices of the full
    text form; ValueError with the reason when it is none."""
    pieces, escaped = [], False
    for char in form:
        if escaped or not char.isalpha() and char != "\\":
            pieces.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in _DATE_LETTERS:
            pieces.append(_DATE_LETTERS[char])
        else:
            raise ValueError('date: %r is not a format letter (%s, or "shown" or "exact")'
                             % (char, " ".join(_DATE_LETTERS)))
    return pieces


def _date_format(text):
    """The reason `text` is no date format, or None."""
    if text in _DATE_NAMED:
        return None
    try:
        _date_pieces(text)
    except ValueError as error:
        return str(error)
    return None


def _date(value, argument, autoescape):
    if isinstance(value, str):
        try:
            value = times.parse(value.strip())
        except times.BadTime:
            return ""
    if not isinstance(value, int) or isinstance(value, bool):
        return ""
    form = "shown" if argument is None else str(argument)
    try:
        if form in _DATE_NAMED:
            return _DATE_NAMED[form](value)
        pieces = _date_pieces(form)
        full = times.text(value - value % times.SECOND) + ".%06d" % (value % times.SECOND)
    except (ValueError, OverflowError):
        return ""      # not a format; or no such day: before the year 1 or after 9999
    return "".join(full[piece[0]:piece[1]] if isinstance(piece, tuple) else piece
                   for piece in pieces)


def _integer(text):
    try:
        int(text)
    except ValueError:
        return "floatformat: %r is not a whole number" % text
    return None


# name: (function, argument: "none" | "optional" | "required", check of a
# literal argument returning the reason it is wrong, or None)
_FILTERS = {
    "default": (_default, "required", None),
    "upper": (_upper, "none", None),
    "lower": (_lower, "none", None),
    "length": (_length, "none", None),
    "join": (_join, "required", None),
    "yesno": (_yesno, "optional", None),
    "urlencode": (_urlencode, "optional", None),
    "floatformat": (_floatformat, "optional", _integer),
    "date": (_date, "optional", _date_format),
    "safe": (_safe, "none", None),
}


# -- policies -----------------------------------------------------------------

class _Policy:
    """What a template may use, and what a render may spend."""

    def __init__(self, what, tags, filters, attributes, autoescape, max_source,
                 max_iterations=None, max_output=None):
        self.what = what
        self.tags = tags
        self.filters = filters
        self.attributes = attributes
        self.autoescape = autoescape
        self.max_source = max_source
        self.max_iterations = max_iterations
        self.max_output = max_output


_PAGES = _Policy("pages", {"if", "for", "block", "extends", "include", "url", "csrf_token"},
                 set(_FILTERS), True, True, PAGE_SOURCE)
_SANDBOX = _Policy("a sandboxed template", {"if", "for"}, set(_FILTERS) - {"safe"}, False,
                   False, SANDBOX_SOURCE, SANDBOX_ITERATIONS, SANDBOX_OUTPUT)


# -- nodes --------------------------------------------------------------------

class _Text:
    def __init__(self, text):
        self.text = text

    def render(self, render):
        render.write(self.text)


class _Output:
    def __init__(self, expression):
        self.expression = expression

    def render(self, render):
        value = self.expression.resolve(render)
        render.write(escape(value) if render.autoescape else str(value))


def _render_all(nodes, render):
    for node in nodes:
        node.render(render)


class _If:
    def __init__(self, branches, otherwise):
        self.branches = branches    # [(condition, nodes)]
        self.otherwise = otherwise

    def render(self, render):
        for condition, nodes in self.branches:
            if condition.test(render):
                _render_all(nodes, render)
                return
        _render_all(self.otherwise, render)


class _For:
    def __init__(self, target, iterable, body, empty):
        self.target, self.iterable = target, iterable
        self.body, self.empty = body, empty

    def render(self, render):
        items = render.items(self.iterable.test(render))
        if not items:
            _render_all(self.empty, render)
            return
        forloop = {}
        scope = {"forloop": forloop}
        last = len(items) - 1
        with render.scope(scope):
            for number, item in enumerate(items):
                render.count_iteration()
                forloop.update(counter=number + 1, first=number == 0, last=number == last)
                scope[self.target] = item
                _render_all(self.body, render)


class _Block:
    def __init__(self, name, body):
        self.name, self.body = name, body

    def render(self, render):
        _render_all(render.blocks.get(self.name, self).body, render)


class _Include:
    def __init__(self, template, names):
        self.template = template
        self.names = names          # {name: expression}

    def render(self, render):
        scope = {name: expression.resolve(render) for name, expression in self.names.items()}
        with render.scope(scope):
            self.template.render_into(render)


class _Url:
    def __init__(self, name, arguments, keywords):
        self.name, self.arguments, self.keywords = name, arguments, keywords

    def render(self, render):
        if render.url is None:
            raise TemplateError("{% url %} needs render(..., url=...)")
        url = render.url(self.name, *[a.resolve(render) for a in self.arguments],
                         **{k: v.resolve(render) for k, v in self.keywords.items()})
        render.write(escape(url))


class _CsrfToken:
    def __init__(self, field):
        self.field = field

    def render(self, render):
        token = render.csrf_token() if render.csrf_token else ""
        if token:
            render.write(Markup('<input type="hidden" name="%s" value="%s">' % (
                escape(self.field), escape(token))))


# -- the parser ---------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_CLOSING_TAGS = {"elif", "else", "endif", "empty", "endfor", "endblock"}


class _Parser:
    def __init__(self, source, policy, name, loader, names, loading):
        if len(source) > policy.max_source:
            raise TemplateSyntaxError("longer than %d characters" % policy.max_source, 1, name)
        self.tokens = _lex(source, name)
        self.pos = 0
        self.policy, self.name, self.loader, self.loading = policy, name, loader, loading
        # The names a template may use: None is any; loop variables join.
        self.names = None if names is None else [set(names)]
        self.blocks = {}
        self.depth = 0
        self.extends = False

    def fail(self, reason, line):
        raise TemplateSyntaxError(reason, line, self.name)

    def words(self, content, line):
        return _Words(content, line, self.name)

    def parse(self, until=()):
        """Nodes up to one of the tags `until`; (nodes, (tag, words, line))
        of the tag that ended them (None at the end of the source)."""
        nodes = []
        while self.pos < len(self.tokens):
            kind, content, line = self.tokens[self.pos]
            self.pos += 1
            if kind == _TEXT:
                if self.extends and not self.depth and content.strip():
                    self.outside_blocks(line)
                nodes.append(_Text(content))
                continue
            if self.extends and not self.depth and kind == _VAR:
                self.outside_blocks(line)
            words = self.words(content, line)
            if kind == _VAR:
                if not content:
                    self.fail("an empty {{ }}", line)
                nodes.append(_Output(self.expression(words)))
                words.end()
                continue
            tag_kind, tag = words.next()
            if tag_kind != "word":
                self.fail("a tag starts with its name", line)
            if tag in until:
                return nodes, (tag, words, line)
            if self.extends and not self.depth and tag != "block":
                self.outside_blocks(line)
            nodes.append(self.tag(tag, words, line))
        return nodes, None

    def outside_blocks(self, line):
        self.fail("a template that extends another shows nothing outside {% block %} "
                  "tags", line)

    def nested(self, opener, line, until):
        """The body of the tag `opener` up to one of `until`."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail("tags nested more than %d deep" % MAX_DEPTH, line)
        nodes, end = self.parse(until)
        self.depth -= 1
        if end is None:
            self.fail("{%% %s %%} is never closed by {%% %s %%}" % (opener, until[-1]), line)
        return nodes, end

    def tag(self, tag, words, line):
        if tag in self.policy.tags:
            return getattr(self, "tag_" + tag)(words, line)
        if tag in _PAGES.tags:
            self.fail("{%% %s %%} is not allowed here (%s)" % (tag, self.policy.what), line)
        if tag in _CLOSING_TAGS:
            self.fail("{%% %s %%} without its opening tag" % tag, line)
        self.fail("unknown tag %r" % tag, line)

    # -- tags ---------------------------------------------------------------

    def tag_if(self, words, line):
        branches = []
        condition = self.condition(words)
        while True:
            nodes, (tag, words, _) = self.nested("if", line, ("elif", "else", "endif"))
            branches.append((condition, nodes))
            if tag == "elif":
                condition = self.condition(words)
                continue
            otherwise = []
            if tag == "else":
                words.end()
                otherwise, (tag, words, _) = self.nested("if", line, ("endif",))
            words.end()
            return _If(branches, otherwise)

    def tag_for(self, words, line):
        target = self.plain_name(words, "a loop variable")
        if not words.take("word", "in"):
            words.fail("expected {% for NAME in EXPRESSION %}")
        iterable = self.expression(words)
        words.end()
        if self.names is not None:
            self.names.append({target, "forloop"})
        body, (tag, words, _) = self.nested("for", line, ("empty", "endfor"))
        empty = []
        if tag == "empty":
            words.end()
            if self.names is not None:
                self.names.pop()
            empty, (tag, words, _) = self.nested("for", line, ("endfor",))
        elif self.names is not None:
            self.names.pop()
        words.end()
        return _For(target, iterable, body, empty)

    def tag_block(self, words, line):
        name = self.plain_name(words, "a block name")
        words.end()
        if name in self.blocks:
            self.fail("block %r is defined twice" % name, line)
        self.blocks[name] = None        # taken, even before its body is read
        body, (_, end, _) = self.nested("block", line, ("endblock",))
        if not end.done() and end.next()[1] != name:
            end.fail("{%% endblock %%} closes block %r" % name)
        end.end()
        self.blocks[name] = block = _Block(name, body)
        return block

    def tag_extends(self, words, line):
        self.fail("{% extends %} must be the first tag, and only once", line)

    def tag_include(self, words, line):
        template = self.template_named(words, line)
        names = {}
        if words.take("word", "with"):
            while not words.done():
                name = self.plain_name(words, "a name")
                if not words.take("op", "="):
                    words.fail("expected NAME=EXPRESSION after with")
                names[name] = self.expression(words)
        words.end()
        return _Include(template, names)

    def tag_url(self, words, line):
        kind, name = words.next()
        if kind != "string":
            words.fail("{% url %} takes the route's name in quotes first")
        arguments, keywords = [], {}
        while not words.done():
            if words.peek()[0] == "word" and words.peek(1) == ("op", "="):
                keyword = self.plain_name(words, "an argument name")
                words.next()
                keywords[keyword] = self.expression(words)
            elif keywords:
                words.fail("{% url %}: positional arguments come before keywords")
            else:
                arguments.append(self.expression(words))
        return _Url(name, arguments, keywords)

    def tag_csrf_token(self, words, line):
        words.end()
        return _CsrfToken(self.loader.csrf_field)

    def template_named(self, words, line):
        kind, name = words.next()
        if kind != "string":
            words.fail("a template's name comes in quotes")
        if name in self.loading:
            words.fail("%r extends or includes itself" % name)
        try:
            return self.loader.get(name, self.loading)
        except TemplateSyntaxError:
            raise
        except TemplateError as error:
            words.fail(str(error))

    # -- expressions --------------------------------------------------------

    @staticmethod
    def plain_name(words, what):
        kind, name = words.next()
        if kind != "word" or not _NAME.match(name) or name in _KEYWORDS or name in _CONSTANTS:
            words.fail("%s must be a plain name, not %r" % (what, name))
        return name

    def expression(self, words):
        value = self.operand(words)
        filters = []
        while words.take("op", "|"):
            kind, name = words.next()
            if kind != "word" or name not in _FILTERS:
                words.fail("unknown filter %r" % name)
            if name not in self.policy.filters:
                words.fail("the filter %r is not allowed here (%s)" % (name, self.policy.what))
            function, takes, check = _FILTERS[name]
            argument = None
            if words.take("op", ":"):
                if takes == "none":
                    words.fail("the filter %r takes no argument" % name)
                argument = self.operand(words)
                if check and isinstance(argument, _Literal):
                    reason = check(str(argument.value))
                    if reason:
                        words.fail(reason)
            elif takes == "required":
                words.fail("the filter %r needs an argument (%s:...)" % (name, name))
            filters.append((function, argument))
        return _Expression(value, filters)

    def operand(self, words):
        kind, text = words.next()
        if kind == "string":
            return _Literal(Markup(text))
        if kind != "word" or text in _KEYWORDS:
            words.fail("expected a value, not %r" % text)
        if text in _CONSTANTS:
            return _Literal(_CONSTANTS[text])
        if text[0] == "-" or text[0].isdigit():
            if not _NUMBER.match(text):
                words.fail("%r is not a number" % text)
            return _Literal(float(text) if "." in text else int(text))
        segments = text.split(".")
        for segment in segments:
            if not segment:
                words.fail("%r: an empty part between dots" % text)
            if segment.startswith("_"):
                words.fail("%r: names starting with _ are private" % text)
        if self.names is not None and not any(segments[0] in scope for scope in self.names):
            words.fail("unknown name %r (this template may use %s)" % (
                segments[0], ", ".join(sorted(set().union(*self.names)))))
        return _Variable(segments)

    def condition(self, words, binding=0, depth=0):
        """A condition by precedence climbing: operands and operators that
        bind tighter than `binding`."""
        if depth > MAX_DEPTH:
            words.fail("a condition nested more than %d deep" % MAX_DEPTH)
        if words.take("word", "not"):
            left = _Not(self.condition(words, _NOT_BINDING, depth + 1))
        else:
            left = self.expression(words)
        while True:
            kind, text = words.peek()
            if (kind, text) == ("word", "not") and words.peek(1) == ("word", "in"):
                operator = "not in"
            elif kind != "string" and text in _BINDING:
                operator = text
            elif kind is None:
                return left
            else:
                words.fail("unexpected %r in a condition" % text)
            if _BINDING[operator] <= binding:
                return left
            words.pos += 2 if operator == "not in" else 1
            right = self.condition(words, _BINDING[operator], depth + 1)
            if operator == "or":
                left = _chain(_Any, left, right)
            elif operator == "and":
                left = _chain(_All, left, right)
            else:
                left = _Compare(operator, left, right)
            # Evaluating recurses as deep as the tree: ``a == b == c ...``.
            if left.depth > MAX_DEPTH:
                words.fail("a condition nested more than %d deep" % MAX_DEPTH)

    # -- the whole template -------------------------------------------------

    def template(self):
        """(parent Template or None, nodes) of the source."""
        first = next((t for t in self.tokens if t[0] != _TEXT or t[1].strip()), None)
        parent = None
        if first is not None and first[0] == _TAG and first[1].split(None, 1)[:1] == ["extends"]:
            line = first[2]
            if "extends" not in self.policy.tags:
                self.fail("{%% extends %%} is not allowed here (%s)" % self.policy.what, line)
            self.pos = self.tokens.index(first) + 1
            words = self.words(first[1], line)
            words.next()
            parent = self.template_named(words, line)
            words.end()
            self.extends = True
        nodes, end = self.parse()
        if end is not None:
            self.fail("{%% %s %%} without its opening tag" % end[0], end[2])
        return parent, nodes


# -- rendering ----------------------------------------------------------------

class _Scope:
    def __init__(self, render, names):
        self.render, self.names = render, names

    def __enter__(self):
        self.render.scopes.append(self.names)

    def __exit__(self, *exc):
        self.render.scopes.pop()


class _Render:
    """One render's state: output, scopes, counters, services."""

    def __init__(self, policy, context, url, csrf_token):
        self.policy = policy
        self.autoescape = policy.autoescape
        self.scopes = [context]
        self.url, self.csrf_token = url, csrf_token
        self.blocks = {}
        self.out = []
        self.size = 0
        self.iterations = 0

    def scope(self, names):
        return _Scope(self, names)

    def get(self, name):
        for names in reversed(self.scopes):
            if name in names:
                value = names[name]
                return _MISSING if callable(value) else value
        return _MISSING

    def lookup(self, value, segment, index):
        """Django's order: key, attribute (pages only), index."""
        if self.policy.attributes:
            found = _item(value, segment)
            if found is _MISSING:
                found = getattr(value, segment, _MISSING)
        else:
            found = value.get(segment, _MISSING) if isinstance(value, Mapping) else _MISSING
        if found is _MISSING and index is not None and (
                self.policy.attributes or isinstance(value, (list, tuple, str, Mapping))):
            found = _item(value, index)
        return _MISSING if callable(found) else found

    def items(self, value):
        """What a for loop runs over: [] for a missing or unfit value."""
        if value is None or value is _MISSING:
            return []
        if isinstance(value, (list, tuple, str)):
            return value
        if isinstance(value, Mapping):
            return list(value)
        if self.policy.attributes:
            try:
                return list(value)
            except TypeError:
                return []
        return []

    def count_iteration(self):
        self.iterations += 1
        limit = self.policy.max_iterations
        if limit is not None and self.iterations > limit:
            raise TemplateLimitError("more than %d loop iterations" % limit)

    def write(self, text):
        self.size += len(text)
        limit = self.policy.max_output
        if limit is not None and self.size > limit:
            raise TemplateLimitError("more than %d characters of output" % limit)
        self.out.append(text)


def _item(value, key):
    try:
        return value[key]
    except (TypeError, LookupError, AttributeError, ValueError):
        return _MISSING


class Template:
    """A parsed template (made by `Pages.get` and `sandbox`); `render` it
    with a context (a dict of names)."""

    def __init__(self, source, policy, name=None, loader=None, names=None, loading=()):
        parser = _Parser(source, policy, name, loader, names, loading + (name,))
        self.policy = policy
        self.name = name
        parent, nodes = parser.template()
        # Which body each block shows: the most derived template's.
        self.blocks = dict(parent.blocks) if parent is not None else {}
        self.blocks.update(parser.blocks)
        self.nodes = parent.nodes if parent is not None else nodes

    def render(self, context=None, url=None, csrf_token=None):
        """The text: Markup for pages, a str in the sandbox. `url(name,
        *args, **kwargs)` serves ``{% url %}``, `csrf_token()` gives
        ``{% csrf_token %}`` its value (asked only if the page has a form)."""
        render = _Render(self.policy, dict(context or {}), url, csrf_token)
        self.render_into(render)
        text = "".join(render.out)
        return Markup(text) if self.policy.autoescape else text

    def render_into(self, render):
        saved, render.blocks = render.blocks, self.blocks
        try:
            _render_all(self.nodes, render)
        finally:
            render.blocks = saved


_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*\.html\Z")


class Pages:
    """The page templates: ``load(name)`` returns a template's source (a
    str; OSError or LookupError when there is none); each is parsed once,
    with what it extends and includes, and kept. `csrf_field` names the
    input ``{% csrf_token %}`` writes."""

    def __init__(self, load, csrf_field="csrf_token"):
        self.load = load
        self.csrf_field = csrf_field
        self.cache = {}

    def get(self, name, loading=()):
        """The Template `name` (TemplateError when there is none)."""
        found = self.cache.get(name)
        if found is not None:
            return found
        if not _TEMPLATE_NAME.match(name):
            raise TemplateError("%r is not a template name (name.html)" % name)
        try:
            source = self.load(name)
        except (OSError, LookupError):
            raise TemplateError("no template %r" % name) from None
        # Two threads may both parse it the first time; either result will do.
        found = self.cache[name] = Template(source, _PAGES, name, self, None, loading)
        return found


def sandbox(source, names=None):
    """A Template from `source` under the sandbox policy (module docstring);
    with `names`, the only names it may use. TemplateSyntaxError if it
    does not parse or uses what it may not."""
    return Template(source, _SANDBOX, None, None, names)

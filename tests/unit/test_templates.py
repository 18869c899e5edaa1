"""The template engine: every construct, both policies, every sandbox
refusal, escaping, and parsing that stays linear on hostile input."""

import time
from pathlib import Path

import pytest

from texmate_ds import templates, times
from texmate_ds.templates import Markup, TemplateLimitError, TemplateSyntaxError
from texmate_ds.web import html

T0 = times.parse("2024-03-01 08:15:30")


def pages(**sources):
    """A Pages over `sources` (name.html=text, "_" for "." in keywords)."""
    files = {name.replace("_html", ".html"): text for name, text in sources.items()}
    return templates.Pages(files.__getitem__)


def page(source, context=None, **services):
    return pages(t_html=source).get("t.html").render(context or {}, **services)


def text(source, context=None, names=None):
    return templates.sandbox(source, names).render(context or {})


def refused(source, names=None):
    with pytest.raises(TemplateSyntaxError) as caught:
        templates.sandbox(source, names)
    return caught.value


# -- variables ----------------------------------------------------------------

class Thing:
    name = "thing"
    _secret = "hidden"

    def method(self):
        raise AssertionError("templates never call anything")


def test_lookup_is_key_then_attribute_then_index():
    context = {"d": {"a": 1, 0: "int key"}, "o": Thing(), "l": ["x", "y"], "s": "str",
               "nested": {"rows": [{"v": "deep"}]}}
    assert page("{{ d.a }} {{ d.0 }} {{ o.name }} {{ l.1 }} {{ s.0 }} {{ nested.rows.0.v }}",
                context) == "1 int key thing y s deep"


def test_missing_names_write_nothing_and_never_raise():
    context = {"l": [1], "d": {}, "o": Thing()}
    assert page("[{{ nope }}{{ nope.x.y }}{{ l.5 }}{{ d.k }}{{ o.nothing }}{{ l.x }}]",
                context) == "[]"


def test_callables_are_never_called():
    def function():
        raise AssertionError("called")
    assert page("[{{ f }}{{ o.method }}{{ o.method.x }}{{ s.upper }}]",
                {"f": function, "o": Thing(), "s": "abc"}) == "[]"
    assert page("{% if f %}yes{% else %}no{% endif %}", {"f": function}) == "no"


def test_none_writes_none_as_in_django_and_literals():
    assert page("{{ n }} {{ 12 }} {{ -1.5 }} {{ 'it' }} {{ \"x\" }} {{ True }} {{ None }}",
                {"n": None}) == "None 12 -1.5 it x True None"


@pytest.mark.parametrize("source", ["{{ _x }}", "{{ a._b }}", "{{ a.__class__ }}",
                                    "{% for _x in a %}{% endfor %}"])
def test_private_names_are_refused_in_both_policies(source):
    for compile_ in (templates.sandbox, lambda s: pages(t_html=s).get("t.html")):
        with pytest.raises(TemplateSyntaxError, match="private|plain name"):
            compile_(source)


# -- escaping -----------------------------------------------------------------

def test_pages_escape_everything_but_markup():
    hostile = "<script>alert('x') & \"y\"</script>"
    out = page("<p title='{{ v }}'>{{ v }}</p>{{ m }}", {"v": hostile, "m": Markup("<svg/>")})
    assert out == ("<p title='&lt;script&gt;alert(&#x27;x&#x27;) &amp; &quot;y&quot;&lt;/script&gt;'>"
                   "&lt;script&gt;alert(&#x27;x&#x27;) &amp; &quot;y&quot;&lt;/script&gt;</p><svg/>")
    assert isinstance(out, Markup)


def test_safe_writes_as_is_and_filters_after_it_escape_again():
    context = {"v": "<b>bold</b>"}
    assert page("{{ v|safe }}", context) == "<b>bold</b>"
    assert page("{{ v|safe|upper }}", context) == "&lt;B&gt;BOLD&lt;/B&gt;"
    assert page("{{ v|upper }}", context) == "&lt;B&gt;BOLD&lt;/B&gt;"


def test_string_literals_are_the_authors_text():
    assert page("{{ missing|default:'<i>none</i>' }}") == "<i>none</i>"


def test_join_escapes_items_but_keeps_markup():
    assert page("{{ l|join:', ' }}", {"l": ["<a>", Markup("<b>")]}) == "&lt;a&gt;, <b>"
    assert text("{{ l|join:' & ' }}", {"l": ["<a>", 1]}) == "<a> & 1"


def test_the_sandbox_writes_plain_text():
    out = text("{{ v }} {{ unit.name }}", {"v": "<a & b>", "unit": {"name": "Pump <1>"}})
    assert out == "<a & b> Pump <1>" and type(out) is str


def test_escape():
    assert templates.escape("<'\"&>") == "&lt;&#x27;&quot;&amp;&gt;"
    assert templates.escape(Markup("<b>")) == "<b>"
    assert templates.escape(5) == "5"


# -- filters ------------------------------------------------------------------

@pytest.mark.parametrize("source, context, expected", [
    ("{{ v|default:'-' }}", {"v": ""}, "-"),
    ("{{ v|default:'-' }}", {"v": 0}, "-"),
    ("{{ v|default:'-' }}", {}, "-"),
    ("{{ v|default:'-' }}", {"v": "x"}, "x"),
    ("{{ v|default:w }}", {"w": "from w"}, "from w"),
    ("{{ v|upper }}|{{ v|lower }}", {"v": "MiXed"}, "MIXED|mixed"),
    ("{{ v|length }}", {"v": [1, 2, 3]}, "3"),
    ("{{ v|length }}", {"v": "abcd"}, "4"),
    ("{{ v|length }}", {"v": 5}, "0"),
    ("{{ v|length }}", {}, "0"),
    ("{{ v|join:'-' }}", {"v": ["a", 2]}, "a-2"),
    ("{{ v|join:'-' }}", {"v": 5}, "5"),
    ("{{ v|yesno }}", {"v": True}, "yes"),
    ("{{ v|yesno }}", {"v": None}, "maybe"),
    ("{{ v|yesno:'on,off' }}", {"v": 0}, "off"),
    ("{{ v|yesno:'on,off' }}", {"v": None}, "off"),
    ("{{ v|yesno:'a,b,c' }}", {"v": None}, "c"),
    ("{{ v|yesno:'bad' }}", {"v": 1}, "1"),
    ("{{ v|urlencode }}", {"v": "a b/c&d"}, "a%20b/c%26d"),
    ("{{ v|urlencode:'' }}", {"v": "a b/c"}, "a%20b%2Fc"),
    ("{{ v|floatformat }}", {"v": 34.23234}, "34.2"),
    ("{{ v|floatformat }}", {"v": 34.0}, "34"),
    ("{{ v|floatformat }}", {"v": 34.26}, "34.3"),
    ("{{ v|floatformat:3 }}", {"v": 34.23234}, "34.232"),
    ("{{ v|floatformat:3 }}", {"v": 34}, "34.000"),
    ("{{ v|floatformat:-3 }}", {"v": 34.0}, "34"),
    ("{{ v|floatformat:-3 }}", {"v": 34.26}, "34.260"),
    ("{{ v|floatformat:0 }}", {"v": 2.5}, "3"),
    ("{{ v|floatformat:2 }}", {"v": "1.005"}, "1.01"),
    ("{{ v|floatformat:1 }}", {"v": -0.04}, "0.0"),
    ("{{ v|floatformat }}", {"v": "not a number"}, ""),
    ("{{ v|floatformat }}", {"v": "inf"}, "inf"),
    ("{{ v|floatformat:2 }}", {"v": "1e999999999"}, "1e999999999"),
    ("{{ v|floatformat:w }}", {"v": 1.25, "w": "x"}, "1.25"),
    ("{{ v|date }}", {"v": T0 + 123}, "2024-03-01 08:15:30"),
    ("{{ v|date:'shown' }}", {"v": T0 + 123}, "2024-03-01 08:15:30"),
    ("{{ v|date:'exact' }}", {"v": T0 + 123}, "2024-03-01 08:15:30.000123"),
    ("{{ v|date:'exact' }}", {"v": T0}, "2024-03-01 08:15:30"),
    ("{{ v|date:'d/m/Y H:i:s.u' }}", {"v": T0 + 5}, "01/03/2024 08:15:30.000005"),
    ("{{ v|date:'\\Y Y' }}", {"v": T0}, "Y 2024"),
    ("{{ v|date:'H:i' }}", {"v": "2024-03-01 08:15:30"}, "08:15"),
    ("{{ v|date }}", {"v": "yesterday"}, ""),
    ("{{ v|date }}", {"v": None}, ""),
    ("{{ v|date }}", {"v": True}, ""),
    ("{{ v|date }}", {"v": 10 ** 30}, ""),
    ("{{ v|date:w }}", {"v": T0, "w": "Q"}, ""),
    ("{{ v|date|default:'never' }}", {}, "never"),
])
def test_filters(source, context, expected):
    assert text(source, context) == expected
    assert page(source, context) == expected


@pytest.mark.parametrize("source, reason", [
    ("{{ v|nothing }}", "unknown filter 'nothing'"),
    ("{{ v|default }}", "needs an argument"),
    ("{{ v|upper:'x' }}", "takes no argument"),
    ("{{ v|date:'D, d M' }}", "'D' is not a format letter"),
    ("{{ v|floatformat:'x' }}", "'x' is not a whole number"),
    ("{{ v| }}", "the tag ends too soon"),
])
def test_filter_mistakes_are_syntax_errors(source, reason):
    assert reason in refused(source).reason


# -- if -----------------------------------------------------------------------

@pytest.mark.parametrize("condition, expected", [
    ("a", True), ("z", False), ("not a", False), ("not z", True),
    ("a and b", True), ("a and z", False), ("z or b", True), ("z or zz", False),
    ("not a or b", True), ("not a and b", False),
    ("n == 3", True), ("n != 3", False), ("n < 4", True), ("n > 4", False),
    ("n <= 3", True), ("n >= 4", False), ("'x' in l", True), ("'q' in l", False),
    ("'q' not in l", True), ("'x' not in l", False), ("n == 3 and 'x' in l", True),
    ("s < n", False), ("z in l", False), ("n in z", False),
    ("l|length == 2", True), ("not n == 3", False), ("z == None", True),
    ("a or z and zz", True), ("n == 3 == True", True),
])
def test_if_conditions(condition, expected):
    source = "{%% if %s %%}T{%% else %%}F{%% endif %%}" % condition
    context = {"a": 1, "b": "yes", "n": 3, "l": ["x", "y"], "s": "str"}
    assert text(source, context) == ("T" if expected else "F")


def test_elif_else_chains():
    source = "{% if n == 1 %}one{% elif n == 2 %}two{% elif n == 3 %}three{% else %}many{% endif %}"
    assert [text(source, {"n": n}) for n in (1, 2, 3, 4)] == ["one", "two", "three", "many"]
    assert text("{% if n %}yes{% endif %}", {"n": 0}) == ""


def test_the_manuals_example():
    message = "{% if data.0 %}The localtime for this Alarm was {{ data.0 }}{% endif %}"
    template = templates.sandbox(message, ("level", "unit", "data"))
    assert template.render({"data": ["2009-1-16 15:30:45", "x"]}) == \
        "The localtime for this Alarm was 2009-1-16 15:30:45"
    assert template.render({"data": []}) == ""
    assert template.render({}) == ""


# -- for ----------------------------------------------------------------------

def test_for_with_forloop_and_empty():
    source = ("{% for x in xs %}{{ forloop.counter }}={{ x }}{% if forloop.first %}(first){% endif %}"
              "{% if forloop.last %}(last){% else %}, {% endif %}{% empty %}nothing{% endfor %}")
    assert text(source, {"xs": ["a", "b", "c"]}) == "1=a(first), 2=b, 3=c(last)"
    assert text(source, {"xs": []}) == "nothing"
    assert text(source, {}) == "nothing"
    assert text(source, {"xs": 5}) == "nothing"
    assert text(source, {"xs": "ab"}) == "1=a(first), 2=b(last)"
    assert text(source, {"xs": {"k": 1}}) == "1=k(first)(last)"


def test_nested_loops_and_scopes():
    source = ("{% for row in rows %}{% for x in row %}{{ forloop.counter }}{{ x }}{% endfor %}"
              "/{{ forloop.counter }};{% endfor %}{{ x }}")
    assert text(source, {"rows": [["a", "b"], ["c"]], "x": "!"}) == "1a2b/1;1c/2;!"


def test_pages_iterate_any_iterable():
    assert page("{% for x in xs %}{{ x }}{% endfor %}", {"xs": (n for n in range(3))}) == "012"
    assert text("{% for x in xs %}{{ x }}{% endfor %}", {"xs": (n for n in range(3))}) == ""


# -- comments, errors, lines ----------------------------------------------------

def test_comments_are_dropped():
    assert text("a{# {{ x }} {% if %} #}b{#\nlines\n#}c") == "abc"


@pytest.mark.parametrize("source, line, reason", [
    ("{{ x", 1, "{{ is never closed by }}"),
    ("ok\n{% if x", 2, "{% is never closed"),
    ("{# x", 1, "{# is never closed"),
    ("{{ }}", 1, "an empty {{ }}"),
    ("a\nb\n{% if x %}\n", 3, "{% if %} is never closed by {% endif %}"),
    ("{% for x in y %}", 1, "never closed by {% endfor %}"),
    ("\n\n{% endif %}", 3, "{% endif %} without its opening tag"),
    ("{% else %}", 1, "without its opening tag"),
    ("{% bogus %}", 1, "unknown tag 'bogus'"),
    ("{% if %}{% endif %}", 1, "the tag ends too soon"),
    ("{% if a b %}{% endif %}", 1, "unexpected 'b' in a condition"),
    ("{% if a == %}{% endif %}", 1, "the tag ends too soon"),
    ("{% if and %}{% endif %}", 1, "expected a value"),
    ("{% for x y %}{% endfor %}", 1, "expected {% for NAME in EXPRESSION %}"),
    ("{% for 'x' in y %}{% endfor %}", 1, "a loop variable must be a plain name"),
    ("{% for in in y %}{% endfor %}", 1, "a loop variable must be a plain name"),
    ("{% if x %}{% else %}{% else %}{% endif %}", 1, "without its opening tag"),
    ("{% if x %}{% endif extra %}", 1, "unexpected 'extra'"),
    ("{{ x y }}", 1, "unexpected 'y'"),
    ("{{ 'open }}", 1, "a string is never closed"),
    ("{{ x ! }}", 1, "unexpected character '!'"),
    ("{{ 1.2.3 }}", 1, "'1.2.3' is not a number"),
    ("{{ 1234567890123456789 }}", 1, "is not a number"),
    ("{{ a..b }}", 1, "an empty part between dots"),
    ("{% 'x' %}", 1, "a tag starts with its name"),
])
def test_syntax_errors_give_line_and_reason(source, line, reason):
    error = refused(source)
    assert (error.line, reason in error.reason) == (line, True), error.reason
    assert str(error).startswith("line %d: " % line)


def test_nesting_is_capped():
    deep = "{% if x %}" * (templates.MAX_DEPTH + 1) + "{% endif %}" * (templates.MAX_DEPTH + 1)
    assert "nested more than" in refused(deep).reason
    fine = "{% if x %}" * templates.MAX_DEPTH + "y" + "{% endif %}" * templates.MAX_DEPTH
    assert text(fine, {"x": 1}) == "y"
    assert "nested more than" in refused("{% if " + "not " * 100 + "x %}{% endif %}").reason


# -- the sandbox ----------------------------------------------------------------

@pytest.mark.parametrize("source, reason", [
    ('{% extends "base.html" %}', "{% extends %} is not allowed here (a sandboxed template)"),
    ('{% include "x.html" %}', "{% include %} is not allowed here"),
    ("{% block b %}{% endblock %}", "{% block %} is not allowed here"),
    ("{% url 'home' %}", "{% url %} is not allowed here"),
    ("{% csrf_token %}", "{% csrf_token %} is not allowed here"),
    ("{{ data|safe }}", "the filter 'safe' is not allowed here"),
    ("{{ data._x }}", "private"),
    ("{{ other }}", "unknown name 'other' (this template may use data, level, unit)"),
    ("{% for x in data %}{% endfor %}{{ x }}", "unknown name 'x'"),
    ("{% for x in data %}{% empty %}{{ forloop.counter }}{% endfor %}", "unknown name 'forloop'"),
    ("{{ data|default:other }}", "unknown name 'other'"),
])
def test_sandbox_refusals(source, reason):
    assert reason in refused(source, ("level", "unit", "data")).reason


def test_sandbox_names_include_loop_variables():
    source = "{% for x in data %}{{ forloop.counter }}{{ x }}{% endfor %}{{ level }}"
    assert text(source, {"data": ["a"], "level": 2}, ("level", "data")) == "1a2"


def test_sandbox_reads_keys_and_items_never_attributes():
    context = {"o": Thing(), "unit": templates.Record("A1", name="Pump"), "n": 5,
               "data": ("a", "b"), "s": "xyz"}
    assert text("[{{ o.name }}{{ n.real }}{{ s.upper }}{{ n.denominator }}]", context) == "[]"
    assert text("{{ unit }} {{ unit.name }} {{ data.1 }} {{ s.2 }}", context) == "A1 Pump b z"


def test_sandbox_callables_write_nothing():
    assert text("[{{ f }}{{ d.f }}]", {"f": print, "d": {"f": len}}) == "[]"


def test_sandbox_bounds_loop_iterations():
    nested = "{% for a in outer %}{% for b in inner %}.{% endfor %}{% endfor %}"
    # 10 outer and 1000 inner iterations: past the budget of 1000 in all.
    with pytest.raises(TemplateLimitError, match="1000 loop iterations"):
        text(nested, {"outer": list(range(10)), "inner": list(range(100))})
    assert text(nested, {"outer": list(range(9)), "inner": list(range(100))}) == "." * 900


def test_sandbox_bounds_output():
    big = "x" * 1000
    with pytest.raises(TemplateLimitError, match="65536 characters"):
        text("{% for a in l %}{{ big }}{% endfor %}", {"l": list(range(70)), "big": big})
    assert len(text("{% for a in l %}{{ big }}{% endfor %}",
                    {"l": list(range(65)), "big": big})) == 65000


def test_sandbox_source_is_capped():
    assert "longer than 65536" in refused("x" * 65537).reason
    assert text("x" * 65536) == "x" * 65536


# -- pages: extends, block, include, url, csrf_token ----------------------------

BASE = "<h1>{{ title }}</h1>{% block head %}H{% endblock %}|{% block body %}base body{% endblock %}"


def test_extends_and_blocks():
    loader = pages(base_html=BASE,
                   mid_html='{% extends "base.html" %}{% block body %}mid[{% block inner %}i{% endblock %}]'
                            '{% endblock %}',
                   leaf_html='{% extends "mid.html" %}\n\n{% block inner %}leaf {{ x }}{% endblock inner %}')
    assert loader.get("base.html").render({"title": "T"}) == "<h1>T</h1>H|base body"
    assert loader.get("mid.html").render({"title": "T"}) == "<h1>T</h1>H|mid[i]"
    assert loader.get("leaf.html").render({"title": "<T>", "x": "<x>"}) == \
        "<h1>&lt;T&gt;</h1>H|mid[leaf &lt;x&gt;]"


def test_include_with_names():
    loader = pages(t_html='{% for r in rows %}{% include "row.html" with cell=r.v n=forloop.counter %}'
                          '{% endfor %}{% include "row.html" %}',
                   row_html="<{{ n }}:{{ cell }}>")
    assert loader.get("t.html").render({"rows": [{"v": "a&"}, {"v": "b"}]}) == \
        "<1:a&amp;><2:b><:>"


@pytest.mark.parametrize("sources, reason", [
    ({"t_html": '{% extends "nope.html" %}'}, "no template 'nope.html'"),
    ({"t_html": '{% include "../x.html" %}'}, "is not a template name"),
    ({"t_html": '{% include "t.html" %}'}, "'t.html' extends or includes itself"),
    ({"t_html": '{% extends "u.html" %}', "u_html": '{% include "t.html" %}'},
     "'t.html' extends or includes itself"),
    ({"t_html": 'x{% extends "u.html" %}', "u_html": ""}, "must be the first tag"),
    ({"t_html": '{% extends "u.html" %}\nx', "u_html": ""}, "extends another shows nothing outside"),
    ({"t_html": '{% extends "u.html" %}{{ x }}', "u_html": ""}, "shows nothing outside"),
    ({"t_html": '{% extends "u.html" %}{% if x %}{% endif %}', "u_html": ""},
     "shows nothing outside"),
    ({"t_html": '{% block a %}{% endblock %}{% extends "u.html" %}', "u_html": ""},
     "must be the first tag"),
    ({"t_html": "{% block a %}{% endblock %}{% block a %}{% endblock %}"}, "defined twice"),
    ({"t_html": "{% block a %}{% block a %}{% endblock %}{% endblock %}"}, "defined twice"),
    ({"t_html": "{% block a %}{% endblock b %}"}, "closes block 'a'"),
    ({"t_html": "{% extends name %}"}, "a template's name comes in quotes"),
    ({"t_html": '{% include "u.html" with x %}', "u_html": ""}, "expected NAME=EXPRESSION"),
    ({"t_html": "{% url home %}"}, "takes the route's name in quotes"),
    ({"t_html": "{% url 'u' a=1 2 %}"}, "positional arguments come before keywords"),
    ({"t_html": "{% csrf_token x %}"}, "unexpected 'x'"),
])
def test_page_syntax_errors(sources, reason):
    with pytest.raises(templates.TemplateError) as caught:
        pages(**sources).get("t.html")
    assert reason in str(caught.value)


def test_an_error_names_the_template_and_line():
    with pytest.raises(TemplateSyntaxError) as caught:
        pages(t_html='{% extends "u.html" %}', u_html="a\n\n{% if %}").get("t.html")
    assert (caught.value.name, caught.value.line) == ("u.html", 3)
    assert str(caught.value) == "u.html, line 3: the tag ends too soon"


def test_pages_are_parsed_once():
    loads = []

    def load(name):
        loads.append(name)
        return {"t.html": '{% include "u.html" %}', "u.html": "u"}[name]
    loader = templates.Pages(load)
    assert loader.get("t.html") is loader.get("t.html")
    loader.get("u.html")
    assert loads == ["t.html", "u.html"]
    with pytest.raises(templates.TemplateError, match="no template 'x.html'"):
        loader.get("x.html")


def test_url_tag_reverses_with_arguments_and_escapes():
    calls = []

    def url(name, *args, **kwargs):
        calls.append((name, args, kwargs))
        return "/u/%s?a=1&b=2" % "/".join(map(str, args + tuple(kwargs.values())))
    out = page("{% url 'home' %}|{% url 'unit' code 7 %}|{% url 'unit' code=code %}",
               {"code": "A<1>"}, url=url)
    assert out == "/u/?a=1&amp;b=2|/u/A<1>/7?a=1&amp;b=2|/u/A<1>?a=1&amp;b=2".replace(
        "A<1>", "A&lt;1&gt;")
    assert calls == [("home", (), {}), ("unit", ("A<1>", 7), {}), ("unit", (), {"code": "A<1>"})]


def test_csrf_token_is_asked_for_only_when_written():
    asked = []

    def token():
        asked.append(1)
        return 'tok"en'
    loader = templates.Pages({"f.html": "<form>{% csrf_token %}</form>",
                              "p.html": "{% if form %}{% csrf_token %}{% endif %}"}.__getitem__,
                             csrf_field="csrf_x")
    assert loader.get("p.html").render({}, csrf_token=token) == "" and not asked
    assert loader.get("f.html").render({}, csrf_token=token) == \
        '<form><input type="hidden" name="csrf_x" value="tok&quot;en"></form>'
    assert loader.get("f.html").render({}) == "<form></form>"


def test_the_sites_templates_all_parse():
    folder = Path(html.__file__).parent / "templates"
    names = sorted(path.name for path in folder.glob("*.html"))
    assert "base.html" in names
    for name in names:
        assert html.PAGES.get(name).name == name


# -- hostile input --------------------------------------------------------------

@pytest.mark.parametrize("source", [
    "{{" * 30000,
    "{%" * 30000,
    "{" * 60000,
    "{ " * 30000,
    "{{ x" + "|upper" * 10000 + " }}",
    "{% if " + " or ".join(["a"] * 10000) + " %}{% endif %}",
    "{% if " + " or ".join(["a and not a"] * 3000) + " %}{% endif %}",
    "{% if " + " == ".join(["a"] * 10000) + " %}{% endif %}",
    "{% if " + "not " * 10000 + "a %}{% endif %}",
    "{{ '" + "x" * 60000,
    "{{ " + ".".join(["a"] * 30000) + " }}",
    "{% for x in y %}" * 4000,
    "{% if a %}" * 6000,
    "{{ x }}" * 9000,
    "{# " * 20000,
    "{{ a." + "9" * 60000 + " }}",
    "{{ " + "9" * 60000 + " }}",
])
def test_parsing_is_linear_on_hostile_input(source):
    """Each at most 64 KiB; a quadratic or backtracking step would take
    seconds on these, a linear one milliseconds. (A long ``or`` chain
    once parsed fine and then hit the recursion limit when evaluated.)"""
    started = time.monotonic()
    try:
        templates.sandbox(source).render({"a": 1, "x": "v"})
    except templates.TemplateSyntaxError:
        pass
    assert time.monotonic() - started < 1.0

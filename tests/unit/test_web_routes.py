"""The web framework without sockets: routing, guards, escaping, and the
site's own routing table."""

import pytest

from texmate_ds.web import app, html, site


@app.page
def home(request):
    pass


@app.data
def unit_csv(request, code):
    pass


@app.page
def display(request, id):
    pass


@app.signed_in
def logout(request):
    pass


ROUTER = app.Router([
    ("GET", "/", home),
    ("GET", "/units/<code>/samples.csv", unit_csv),
    ("GET", "/views/<id:int>/", display),
    ("POST", "/logout/", logout),
])


def test_match_returns_view_and_plain_dict_of_arguments():
    assert ROUTER.match("GET", "/") == (home, {})
    assert ROUTER.match("GET", "/units/A1/samples.csv") == (unit_csv, {"code": "A1"})
    assert ROUTER.match("GET", "/views/12/") == (display, {"id": 12})
    assert ROUTER.match("POST", "/logout/") == (logout, {})


def test_get_routes_answer_head():
    assert ROUTER.match("HEAD", "/views/3/") == (display, {"id": 3})


@pytest.mark.parametrize("path", [
    "/nothing", "/units/A1/samples.csv/x", "/units//samples.csv", "/views/x/",
    "/views/1", "/views/-1/", "/views/1234567890123456789/", "/units/a/b/samples.csv",
])
def test_unknown_paths_are_404(path):
    with pytest.raises(app.HTTPError) as caught:
        ROUTER.match("GET", path)
    assert caught.value.status == 404


def test_wrong_method_is_405_with_allow():
    with pytest.raises(app.HTTPError) as caught:
        ROUTER.match("POST", "/")
    assert caught.value.status == 405
    assert caught.value.headers == [("Allow", "GET, HEAD")]
    with pytest.raises(app.HTTPError) as caught:
        ROUTER.match("GET", "/logout/")
    assert caught.value.headers == [("Allow", "POST")]


def test_pattern_text_is_literal():
    router = app.Router([("GET", "/a.b/<x>", home)])
    assert router.match("GET", "/a.b/1") == (home, {"x": "1"})
    with pytest.raises(app.HTTPError):
        router.match("GET", "/aXb/1")


def test_a_view_without_guard_cannot_be_routed():
    def naked(request):
        pass
    with pytest.raises(TypeError, match="no guard"):
        app.Router([("GET", "/", naked)])


def test_guards_are_declared():
    assert home.guard is app.page and unit_csv.guard is app.data
    assert unit_csv.guard.bearer and unit_csv.guard.text_errors
    assert not home.guard.bearer and not home.guard.text_errors


def test_site_routes_compile_and_resolve():
    router = app.Router(site.ROUTES)
    assert router.match("GET", "/healthz")[0].guard is app.public
    assert router.match("GET", "/static/style.css")[1] == {"name": "style.css"}


@pytest.mark.parametrize("target, expected", [
    ("/units/A1/?from=-1d", "/units/A1/?from=-1d"),
    ("/", "/"),
    ("", "/"),
    ("http://evil.example/", "/"),
    ("//evil.example/", "/"),
    ("/\\evil.example/", "/"),
    ("javascript:alert(1)", "/"),
    ("/a\r\nSet-Cookie: x=1", "/"),
])
def test_local_path_keeps_visitors_on_the_site(target, expected):
    assert app.local_path(target) == expected


def test_printable_escapes_control_characters():
    assert app.printable("/a\r\nb\x1b[31m") == "/a\\r\\nb\\x1b[31m"


def test_fill_escapes_everything_but_markup():
    out = html.fill("<p title='{{ t }}'>{{ body }}</p>{{ raw }}",
                    t="' onmouseover='x", body="<script>alert(1)</script>",
                    raw=html.Markup("<svg></svg>"))
    assert out == ("<p title='&#x27; onmouseover=&#x27;x'>"
                   "&lt;script&gt;alert(1)&lt;/script&gt;</p><svg></svg>")
    assert isinstance(out, html.Markup)


def test_join_escapes_plain_strings():
    assert html.join([html.Markup("<b>"), "<i>"], ", ") == "<b>, &lt;i&gt;"


def test_fill_refuses_a_missing_slot():
    with pytest.raises(KeyError):
        html.fill("{{ missing }}")

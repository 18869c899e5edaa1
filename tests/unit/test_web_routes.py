"""The web framework without sockets: routing, reverse lookup, groups,
guards, and the site's own routing table."""

import types

import pytest

from texmate_ds.web import app, site


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
    app.Route("/", home, "home"),
    app.Route("/units/<code>/samples.csv", unit_csv, "csv"),
    app.Route("/views/<id:int>/", display, "display"),
    app.Route("/logout/", logout, "logout", methods=("POST",)),
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


def test_unknown_methods_are_501_and_methods_are_case_sensitive():
    for method in ("PUT", "get"):
        with pytest.raises(app.HTTPError) as caught:
            ROUTER.match(method, "/")
        assert caught.value.status == 501


def test_pattern_text_is_literal():
    router = app.Router([app.Route("/a.b/<x>", home)])
    assert router.match("GET", "/a.b/1") == (home, {"x": "1"})
    with pytest.raises(app.HTTPError):
        router.match("GET", "/aXb/1")


def test_a_view_without_guard_cannot_be_routed():
    def naked(request):
        pass
    with pytest.raises(TypeError, match="no guard"):
        app.Route("/", naked)


def test_guards_are_declared():
    assert home.guard is app.page and unit_csv.guard is app.data
    assert unit_csv.guard.bearer and unit_csv.guard.text_errors
    assert not home.guard.bearer and not home.guard.text_errors


def test_site_routes_compile_and_resolve():
    router = app.Router(site.ROUTES)
    assert router.match("GET", "/healthz")[0].guard is app.public
    assert router.match("GET", "/static/style.css")[1] == {"name": "style.css"}
    assert router.match("POST", "/login/")[0] is router.match("GET", "/login/")[0]


def test_routes_without_parameters_are_found_before_the_others():
    @app.page
    def catch_all(request, page):
        pass
    router = app.Router([app.Route("/<page>/", catch_all), app.Route("/about/", home),
                         app.Route("/form/", logout, methods=("POST",))])
    static = {path: {method: route.view for method, route in at.items()}
              for path, at in router.static.items()}
    assert static == {"/about/": {"GET": home}, "/form/": {"POST": logout}}
    assert router.match("GET", "/about/") == (home, {})
    assert router.match("HEAD", "/about/") == (home, {})
    assert router.match("GET", "/other/") == (catch_all, {"page": "other"})
    # The static route takes POST only: the one with a parameter answers GET.
    assert router.match("GET", "/form/") == (catch_all, {"page": "form"})
    with pytest.raises(app.HTTPError) as caught:
        router.match("POST", "/about/")
    assert caught.value.headers == [("Allow", "GET, HEAD")]


# -- request bodies: files and limits -----------------------------------------

MIB = 1024 * 1024


def test_find_gives_the_route_with_its_body_options():
    upload = app.Route("/units/<code>/import/", unit_csv, methods=("POST",), files=True,
                       body_limit=256 * MIB)
    router = app.Router([app.Route("/", home), upload])
    route, args = router.find("POST", "/units/A1/import/")
    assert (route, args, route.files, route.body_limit) == (upload, {"code": "A1"}, True,
                                                            256 * MIB)
    plain, _ = router.find("GET", "/")
    assert (plain.files, plain.body_limit) == (False, app.MAX_FORM_BYTES)


def test_the_largest_body_counts_only_routes_that_take_one():
    assert app.Router([app.Route("/", home)]).largest_body == app.MAX_FORM_BYTES
    router = app.Router([app.Route("/", home, body_limit=9 * MIB),
                         app.Route("/a/", logout, methods=("POST",), body_limit=2 * MIB),
                         app.Route("/b/", logout, methods=("PUT",), body_limit=3 * MIB)])
    assert router.largest_body == 3 * MIB


def test_files_need_a_method_with_a_body():
    with pytest.raises(ValueError, match="takes files but no method with a body"):
        app.Route("/x/", home, methods=("GET", "HEAD"), files=True)


def test_a_group_keeps_its_routes_body_options():
    [route] = app.group("/admin", [app.Route("/import/", logout, "import", methods=("POST",),
                                             files=True, body_limit=5 * MIB)], app.staff)
    assert (route.pattern, route.files, route.body_limit) == ("/admin/import/", True, 5 * MIB)


def test_the_site_asks_the_route_for_a_body_limit():
    upload = app.Route("/units/<code>/import/", unit_csv, methods=("POST",), files=True,
                       body_limit=256 * MIB)
    ui = site.Site(None, None, routes=site.ROUTES + [upload])
    assert ui.largest_body == 256 * MIB
    assert ui.body_limit("POST", "/units/A1/import/") == 256 * MIB
    # PATH_INFO is latin-1 text of the UTF-8 the browser sent.
    assert ui.body_limit("POST", "/units/Ã©/import/") == 256 * MIB
    assert ui.body_limit("POST", "/login/") == app.MAX_FORM_BYTES
    # GET and HEAD take none, even on a route that takes one.
    assert ui.body_limit("GET", "/units/A1/import/") == 0
    assert ui.body_limit("HEAD", "/") == 0
    # No route answers (404, 405, 501): a form's, and the refusal follows.
    for method, path in (("POST", "/nowhere/"), ("PUT", "/units/A1/import/"),
                         ("POST", "/healthz"), ("BREW", "/")):
        assert ui.body_limit(method, path) == app.MAX_FORM_BYTES
    # The site's own routes: the admin's CSV import is the largest.
    assert site.Site(None, None).largest_body == 256 * MIB


# -- reverse lookup -----------------------------------------------------------

def test_url_for_fills_in_the_pattern():
    assert ROUTER.url_for("home") == "/"
    assert ROUTER.url_for("csv", "A1") == "/units/A1/samples.csv"
    assert ROUTER.url_for("csv", code="A 1/é") == "/units/A%201%2F%C3%A9/samples.csv"
    assert ROUTER.url_for("display", 12) == "/views/12/"
    assert ROUTER.url_for("display", id=0) == "/views/0/"


@pytest.mark.parametrize("args, kwargs, error, reason", [
    ((), {}, TypeError, "takes code, not "),
    (("A1", "B2"), {}, TypeError, "takes code, not A1, B2"),
    ((), {"unit": "A1"}, TypeError, "takes code, not unit"),
    (("A1",), {"code": "A1"}, TypeError, "by position or by name"),
    (("",), {}, ValueError, "code is empty"),
])
def test_url_for_refuses_arguments_that_do_not_fit(args, kwargs, error, reason):
    with pytest.raises(error, match=reason):
        ROUTER.url_for("csv", *args, **kwargs)


@pytest.mark.parametrize("value", ["12", -1, True, 1.5])
def test_url_for_takes_whole_numbers_for_int_parameters(value):
    with pytest.raises(ValueError, match="whole number"):
        ROUTER.url_for("display", value)


def test_url_for_an_unknown_name():
    with pytest.raises(LookupError, match="no route named 'nope'"):
        ROUTER.url_for("nope")


def test_a_name_and_an_address_are_given_once():
    with pytest.raises(ValueError, match="two routes named 'home'"):
        app.Router([app.Route("/", home, "home"), app.Route("/x/", home, "home")])
    with pytest.raises(ValueError, match="two routes for GET /"):
        app.Router([app.Route("/", home), app.Route("/", display)])


def test_the_site_reverses_every_named_route():
    router = app.Router(site.ROUTES)
    assert router.url_for("unit", "A1") == "/units/A1/"
    assert router.url_for("unit_graph", "A1") == "/units/A1/graph.svg"
    assert router.url_for("static", "style.css") == "/static/style.css"
    assert [router.url_for(name) for name in ("home", "login", "logout", "password",
                                              "healthz", "metrics")] == [
        "/", "/login/", "/logout/", "/password/", "/healthz", "/metrics"]


# -- groups -------------------------------------------------------------------

def _request(user=None, guard=app.page):
    router = app.Router(site.ROUTES)
    return types.SimpleNamespace(
        user=user, guard=guard, full_path="/admin/x/",
        url_for=router.url_for)


def test_a_group_mounts_routes_under_its_prefix_behind_its_guard():
    seen = []

    def guard(request):
        seen.append(request)
        return "refused" if request == "stranger" else None
    routes = app.group("/admin", [app.Route("/", home, "admin"),
                                  app.Route("/units/<code>/", unit_csv, "admin_unit",
                                            methods=("GET", "POST"))], guard)
    router = app.Router(routes)
    assert [route.pattern for route in routes] == ["/admin/", "/admin/units/<code>/"]
    assert router.url_for("admin_unit", "A1") == "/admin/units/A1/"
    view, args = router.match("POST", "/admin/units/A1/")
    assert view.guard is app.data and view.__name__ == "unit_csv"
    assert view("stranger", **args) == "refused"
    assert view("friend", **args) is None and seen == ["stranger", "friend"]
    with pytest.raises(ValueError, match="prefix"):
        app.group("/admin/", [])


def test_staff_guard():
    assert app.staff(_request(types.SimpleNamespace(is_staff=True))) is None
    with pytest.raises(app.HTTPError) as caught:
        app.staff(_request(types.SimpleNamespace(is_staff=False)))
    assert caught.value.status == 403
    to_login = app.staff(_request())
    assert (to_login.status, to_login.headers) == (302, [("Location", "/login/?next=%2Fadmin%2Fx%2F")])
    with pytest.raises(app.HTTPError) as caught:
        app.staff(_request(guard=app.data))
    assert caught.value.status == 401


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

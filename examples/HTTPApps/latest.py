"""latest: the newest values of the signed-in user's units, on one page sized for a phone.

Mounted with

    [httpapps]
    latest: on
    latest.url: latest/

``GET /latest/`` shows, for each unit the visitor may see, its code (a
link to its unit page, ``/units/<code>/``) and name, the time of its
newest sample (the meter's clock, to the second) and that sample's values
in big type, each under its field's name and unit of measure. Only the
fields the unit's page offers are shown (``--report-fields``).

Who sees what: the server tells an HTTP app who signed in with the web
UI's session cookie, ``environ["texmate.user"]`` (docs/configuration.md,
"[httpapps]"), and the app decides. Here a signed-in user sees exactly
the units ``user.sees(unit)`` allows, as on the web UI's home page; a
visitor not signed in gets ``403`` and a link to sign in that comes back
here. The app is not told ``LOGIN_REQUIRED``, so it asks anonymous
visitors to sign in even where the web UI lets them look.

The page is a `texmate_ds.templates` page template, which escapes every
value it writes: a unit named ``<script>`` is shown as text. And it is
sent with a Content-Security-Policy that allows no script at all, so an
escaping slip would still run nothing. It is readable at 390 px wide:
a viewport meta tag, no fixed widths, values that wrap rather than widen
the page.

It reads through `texmate_ds.models`, which an HTTP app may use since it
runs on the server's loop: one statement for the units, then one for each
unit shown (its newest sample, about 10 µs: docs/models.md), so a
thousand units take some 10 ms of the loop. A site with many more would
page the list.

Copy it into HTTPApps/ and turn it on as above; ``latest.TITLE`` names the
page.
"""

from urllib.parse import quote

from texmate_ds import templates, ttp
from texmate_ds.models import Sample, Unit

OPTIONS = {"TITLE": ("Latest values", "the page's title")}

# Named here for readers and linters: once the app is loaded the server
# replaces it with a read-only {KEY: value} of OPTIONS, txm.conf's values
# (docs/configuration.md, "App options").
options = {}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1rem; max-width: 40rem; }
h1 { font-size: 1.5rem; margin: 0 0 1rem; }
section { border: 1px solid #ccc; border-radius: .5rem; padding: .75rem 1rem; margin-bottom: 1rem; }
h2 { font-size: 1.2rem; margin: 0; overflow-wrap: anywhere; }
.when { color: #555; margin: .25rem 0 .5rem; }
.fields { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; }
.name { display: block; color: #555; }
.value { font-size: 2.25rem; font-weight: bold; overflow-wrap: anywhere; }
.button { display: inline-block; padding: .75rem 1.5rem; font-size: 1.2rem; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
{% if sign_in %}<p>Sign in to see your units.</p>
<p><a class="button" href="{{ sign_in }}">Sign in</a></p>
{% else %}{% for unit in units %}<section>
<h2><a href="/units/{{ unit.code|urlencode:"" }}/">{{ unit.code }}</a> {{ unit.name }}</h2>
{% if unit.when %}<p class="when">{{ unit.when }}</p>
<div class="fields">{% for field in unit.fields %}
<div><span class="name">{{ field.0 }}</span> <span class="value">{{ field.1 }}</span></div>{% endfor %}
</div>{% else %}<p class="when">no data yet</p>{% endif %}
</section>
{% empty %}<p>No units to show: an administrator gives you units in the admin.</p>
{% endfor %}{% endif %}
</body>
</html>
"""

# Page templates, from a loader that knows this one: parsed on first use
# and kept, with the web UI's autoescaping policy.
PAGES = templates.Pages({"latest.html": PAGE}.__getitem__)

HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
                                "frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-cache"),
]


def application(environ, start_response):
    if environ["PATH_INFO"] not in ("", "/"):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
        start_response("405 Method Not Allowed", [("Content-Type", "text/plain"),
                                                  ("Allow", "GET, HEAD")])
        return [b"GET only\n"]
    user = environ["texmate.user"]
    if user is None:
        here = environ["SCRIPT_NAME"] + "/"
        status, context = "403 Forbidden", {"sign_in": "/login/?next=" + quote(here, safe="")}
    else:
        status, context = "200 OK", {"units": [shown(unit) for unit in Unit.objects.all()
                                               if user.sees(unit)]}
    context["title"] = options["TITLE"]
    start_response(status, HEADERS)
    return [PAGES.get("latest.html").render(context).encode("utf-8")]


def shown(unit):
    """What the page shows of `unit`: its newest sample's time and values."""
    newest = Sample.objects.filter(unit=unit).order_by("-timestamp").first()
    if newest is None:
        return {"code": unit.code, "name": unit.name, "when": None}
    return {"code": unit.code, "name": unit.name,
            "when": str(newest.timestamp.replace(microsecond=0)),
            "fields": [(unit.titled(n - 1), "–" if newest.values[n - 1] is None
                        else ttp.format_value(newest.values[n - 1]))
                       for n in unit.reported]}

"""Operations endpoints: ``/healthz`` for load balancers and supervisors,
``/metrics`` in the Prometheus text format for monitoring."""

from texmate_ds.web import app

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@app.public
def healthz(request):
    return app.text(200, "ok\n")


@app.data
def metrics(request):
    """Staff only, by session or API token. The server hands the site a
    callable that formats its counters; without one there is nothing here."""
    if request.site.metrics is None:
        raise app.HTTPError(404, "no metrics in this server")
    app.require_staff(request)
    return app.Response(200, request.site.metrics(), PROMETHEUS_TYPE)


ROUTES = [
    app.Route("/healthz", healthz, "healthz"),
    app.Route("/metrics", metrics, "metrics"),
]

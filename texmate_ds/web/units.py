"""The unit page and the data endpoints: ``/units/<code>/`` with its
graphs and statistics, and ``graph.svg``, ``samples.csv``,
``samples.json``, ``stats.json``, ``last.json`` under it (web.md, "Data
endpoints"). Owned by the data side of the web UI; the site includes
`ROUTES` in its routing table."""

ROUTES = []

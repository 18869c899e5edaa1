"""Start-up on PostgreSQL, as an operator meets it (issue 14, item 1):
each thing that can be wrong with `[database]` stops the server with exit
status 2 and one line naming it, never a traceback; the driver missing
says the ``pip install`` line; a database made by a newer texmate_ds is
left untouched. A good `[database]` starts the server, and a second
process on the same database starts too (the first migrated; the second
finds nothing to do and adds no second Administrator).

Each case runs the real ``python -m texmate_ds serve`` against the test
run's real PostgreSQL (`tests/postgres.py`).
"""

import subprocess
import sys

import pytest

from conftest import BASE_CONF, Server, child_env

RUN_TIMEOUT = 60


@pytest.fixture
def cluster(postgres_cluster):
    return postgres_cluster


def serve(folder, database_lines, env=None):
    """Run the server to its exit on a config with `database_lines`."""
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "txm.conf"
    conf.write_text(BASE_CONF + "\n" + database_lines)
    return subprocess.run([sys.executable, "-m", "texmate_ds", "--config", str(conf), "serve"],
                          cwd=folder, env=env or child_env(), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)


def refused(result, *words):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("texmate_ds: cannot start: database '"), line
    assert "(PostgreSQL): " in line, line
    for word in words:
        assert word in line, line
    return line


def test_an_unreachable_server_is_named(cluster, tmp_path):
    from postgres import free_port
    lines = cluster.conf("whatever").replace("DATABASE_PORT: %d" % cluster.port,
                                             "DATABASE_PORT: %d" % free_port())
    refused(serve(tmp_path, lines), "the server is unreachable")


def test_a_refused_login_is_named(cluster, tmp_path):
    name = cluster.database()
    with cluster.connect() as conn:
        conn.execute("CREATE ROLE meterman LOGIN PASSWORD 'right'")
        conn.execute("ALTER SYSTEM SET password_encryption = 'scram-sha-256'")
    # Trust everywhere but for this role on loopback.
    hba = cluster.data + "/pg_hba.conf"
    with open(hba) as f:
        text = f.read()
    with open(hba, "w") as f:
        f.write("host all meterman 127.0.0.1/32 scram-sha-256\n" + text)
    with cluster.connect() as conn:
        conn.execute("SELECT pg_reload_conf()")
    try:
        lines = cluster.conf(name).replace("DATABASE_USER: postgres", "DATABASE_USER: meterman")
        refused(serve(tmp_path / "wrong", lines + "DATABASE_PASSWORD: wrong\n"),
                "the login was refused", "meterman")
        refused(serve(tmp_path / "none", lines), "the login was refused")
    finally:
        with open(hba, "w") as f:
            f.write(text)
        with cluster.connect() as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("DROP ROLE meterman")


def test_a_missing_database_says_how_to_make_it(cluster, tmp_path):
    refused(serve(tmp_path, cluster.conf("no_such_db")),
            "'no_such_db'", "does not exist", "createdb no_such_db")


def test_without_the_driver_the_pip_line_is_given(cluster, tmp_path):
    # A psycopg that cannot be imported, first on the path: the driver
    # as a machine without it has it.
    hidden = tmp_path / "hide"
    hidden.mkdir()
    (hidden / "psycopg.py").write_text("raise ImportError('no psycopg here')\n")
    env = child_env()
    env["PYTHONPATH"] = "%s:%s" % (hidden, env["PYTHONPATH"])
    line = refused(serve(tmp_path / "srv", cluster.conf(cluster.database()), env),
                   "psycopg is not installed")
    assert "python3 -m pip install" in line


def test_a_newer_schema_is_left_untouched(cluster, tmp_path):
    name = cluster.database()
    with cluster.connect(name) as conn:
        conn.execute("CREATE TABLE texmate_schema (version BIGINT NOT NULL)")
        conn.execute("INSERT INTO texmate_schema VALUES (99)")
    result = serve(tmp_path, cluster.conf(name))
    assert result.returncode == 2, result.stderr
    assert "schema version 99" in result.stderr and "upgrade texmate_ds" in result.stderr
    with cluster.connect(name) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    assert tables == ["texmate_schema"]


def test_two_processes_start_on_one_new_database(cluster, tmp_path):
    lines = cluster.conf(cluster.database())
    first = Server(tmp_path / "a", BASE_CONF + "\n" + lines, engine="postgresql")
    second = Server(tmp_path / "b", BASE_CONF + "\n" + lines, engine="postgresql")
    try:
        first.start()
        second.start()
        assert "schema version" in second.output()
        db = second.database()
        try:
            assert db.one("SELECT count(*) FROM users")[0] == 1
        finally:
            db.close()
    finally:
        first.kill()
        second.kill()

"""A real PostgreSQL for the tests: Debian's ``postgresql`` package, a
cluster made by ``initdb`` in a temporary folder and started by ``pg_ctl``
on 127.0.0.1 and a free port, as the ``postgres`` user when the tests run
as root (PostgreSQL refuses to run as root). Trust authentication, only
on loopback; ``fsync`` off (the tests prove the server's promises, not
the disk's: a kill -9 of PostgreSQL itself is not among them), on for
the benchmark (``Cluster(fsync=True)``: bench/scaleout.py compares it
with SQLite's fsync per commit).

`available()` says why there is none (the package or the driver
missing); the fixtures skip with that reason. `Cluster.database()` makes
a new, empty database for one server and gives its txm.conf lines.
"""

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

USER = "postgres"
_counter = itertools.count(1)


def _bin_dir():
    """The newest installed PostgreSQL's bin folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else None


def available():
    """None, or why PostgreSQL tests cannot run here."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (python3 -m pip install psycopg; .ci/run does)"
    if _bin_dir() is None:
        return "PostgreSQL is not installed (apt-get install postgresql; .ci/run does)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(USER)
        except KeyError:
            return "no %s user to run PostgreSQL as (it refuses root)" % USER
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A PostgreSQL cluster in a new folder of the system's temporary one
    (pytest's are closed to the postgres user), running until `remove()`."""

    def __init__(self, fsync=False):
        self.fsync = fsync
        self.bin = _bin_dir()
        self.folder = tempfile.mkdtemp(prefix="txm-postgresql-")
        self.data = os.path.join(self.folder, "data")
        self.log = os.path.join(self.folder, "postgres.log")
        self.port = free_port()
        os.makedirs(self.folder, exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(USER)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", USER, "-E", "UTF8",
                  "--locale=C.UTF-8")
        self.start()

    def _run(self, tool, *args, check=True):
        cmd = [os.path.join(self.bin, tool)] + list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", USER, "--"] + cmd
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                                cwd=self.folder)
        if check and result.returncode != 0:
            raise RuntimeError("%s failed (%d): %s%s\n%s" % (
                tool, result.returncode, result.stdout, result.stderr, self.log_text()))
        return result

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def start(self):
        durable = "on" if self.fsync else "off"
        options = ("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=%s"
                   " -c synchronous_commit=on -c full_page_writes=%s -c max_connections=300"
                   % (self.port, self.folder, durable, durable))
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", self.log, "-w", "-t", "60",
                  "start")

    def stop(self, mode="fast"):
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def restart(self, down_seconds=0.0):
        """Stop (dropping every connection), wait, and start again."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def connect(self, dbname="postgres"):
        import psycopg
        return psycopg.connect(host="127.0.0.1", port=self.port, user=USER, dbname=dbname,
                               autocommit=True)

    def database(self, name=None):
        """A new empty database: its name."""
        name = name or "t%d_%d" % (os.getpid(), next(_counter))
        with self.connect() as conn:
            conn.execute('CREATE DATABASE "%s"' % name)
        return name

    def drop(self, name):
        with self.connect() as conn:
            conn.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)

    def conf(self, name):
        """The txm.conf lines of a server on database `name`."""
        return ("[database]\nDATABASE_ENGINE: postgresql\nDATABASE_NAME: %s\n"
                "DATABASE_HOST: 127.0.0.1\nDATABASE_PORT: %d\nDATABASE_USER: %s\n"
                % (name, self.port, USER))

    def settings_values(self, name):
        """Settings(**...) of a database `name`."""
        return dict(DATABASE_ENGINE="postgresql", DATABASE_NAME=name,
                    DATABASE_HOST="127.0.0.1", DATABASE_PORT=self.port, DATABASE_USER=USER)

    def remove(self):
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)

"""A real PostgreSQL (Debian's package) in a temporary directory on a free loopback port, for the
recorder's tests and tools/bench_fleet.py.

    with PostgresServer() as server:
        server.url   # postgresql://meterkit@127.0.0.1:<port>/postgres
"""
import glob
import os
import shutil
import subprocess
import tempfile

from broker import free_port

RECORDER_TABLES = ("readings, readings_minutely, readings_hourly, readings_daily, "
                   "meterkit_aggregated")   # what the recorder makes in PostgreSQL


def pg_tool(name):
    found = shutil.which(name) or sorted(glob.glob("/usr/lib/postgresql/*/bin/" + name))
    assert found, "PostgreSQL is not installed: apt-get install postgresql"
    return found if isinstance(found, str) else found[-1]


class PostgresServer:
    def __init__(self, settings=()):
        """settings: extra `-c name=value` server settings."""
        self.settings = settings
        self.url = self.directory = None

    def start(self):
        self.directory = tempfile.mkdtemp(prefix="meterkit-pg-")   # not 0700: postgres must enter
        self.as_postgres = []
        if os.geteuid() == 0:   # initdb refuses root
            shutil.chown(self.directory, "postgres", "postgres")
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        self.data, port = os.path.join(self.directory, "data"), free_port()
        subprocess.run(self.as_postgres + [pg_tool("initdb"), "-D", self.data, "-A", "trust", "-U",
                                           "meterkit", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True)
        options = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off" % (port, self.directory)
        options += "".join(" -c %s" % setting for setting in self.settings)
        subprocess.run(self.as_postgres + [pg_tool("pg_ctl"), "-D", self.data, "-o", options, "-l",
                                           os.path.join(self.directory, "log"), "-w", "start"],
                       check=True, capture_output=True)
        self.url = "postgresql://meterkit@127.0.0.1:%d/postgres" % port
        return self

    def postmaster_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as file:
            return int(file.readline())

    def stop(self):
        if self.directory:
            subprocess.run(self.as_postgres + [pg_tool("pg_ctl"), "-D", self.data, "-m",
                                               "immediate", "stop"], capture_output=True)
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def grafana_sql(sql, start, end, meter=""):
    """A dashboard query as Grafana's PostgreSQL datasource sends it for [start, end] (epoch s)."""
    import datetime
    import re

    def iso(epoch):
        return "'%s'" % datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat()
    sql = re.sub(r"\$__timeFilter\((\w+)\)", lambda match: "%s BETWEEN %s AND %s"
                 % (match.group(1), iso(start), iso(end)), sql)
    return sql.replace("$__timeFrom()", iso(start)).replace("$__timeTo()", iso(end)).replace(
        "$meter", meter)

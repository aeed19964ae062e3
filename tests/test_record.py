"""The recorder (SQLite and a real PostgreSQL started here), `meterkit record` against a real
mosquitto (replays, malformed payloads, broker and recorder restarts), `meterkit export` CSV,
and the Grafana dashboards' SQL run against both databases."""
import decimal
import json
import pathlib
import re
import sqlite3
import subprocess
import sys
import threading
import time
from decimal import Decimal

import pytest

from broker import Broker, free_port
from postgres import RECORDER_TABLES, PostgresServer, grafana_sql
from dongle import topics
from meterkit.exact import Exact
from meterkit.reading import Reading
from meterkit_host import cli
from meterkit_host.recorder import StoreError, open_store

ROOT = pathlib.Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "deploy" / "grafana"
T0 = 1714521600   # 2024-05-01T00:00:00Z


def sample(meter="LGZ1030655933512", at="2024-05-01T10:00:00+02:00", power="1.234"):
    reading = Reading(meter, at)
    reading.add("0-0:96.1.1", "4530303433303037")   # text: not a number, not stored
    reading.add("1-0:1.8.0", Exact(123456789, -3), "kWh")
    reading.add("1-0:1.7.0", Exact.parse(power), "kW")
    reading.add("1-0:32.7.0", Exact(2301, -1), "V")
    return reading


# -- PostgreSQL, the real server from Debian's package, in a temp dir on a free port ---------------

@pytest.fixture(scope="module")
def postgres_server():
    with PostgresServer() as server:
        yield server.url


@pytest.fixture
def postgres(postgres_server):
    import psycopg
    with psycopg.connect(postgres_server, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS " + RECORDER_TABLES)
    return postgres_server


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return "sqlite:///%s" % (tmp_path / "meter.db")
    return request.getfixturevalue("postgres")


# -- the store -------------------------------------------------------------------------------------

def test_store_reading_is_exact_and_idempotent(db_url):
    store = open_store(db_url)
    assert store.store_reading(sample()) == 6   # 3 numeric OBIS values + 3 harmonized
    assert store.store_reading(sample()) == 0   # the dongle's store-and-forward replays it
    rows = list(store.rows(T0, T0 + 86400))
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == [
        (T0 + 8 * 3600, "1-0:1.7.0", "1.234", "kW"),
        (T0 + 8 * 3600, "1-0:1.8.0", "123456.789", "kWh"),
        (T0 + 8 * 3600, "1-0:32.7.0", "230.1", "V"),
        (T0 + 8 * 3600, "energy_in", "123456.789", "kWh"),
        (T0 + 8 * 3600, "power_in", "1234", "W"),
        (T0 + 8 * 3600, "voltage_l1", "230.1", "V")]
    assert {r[1] for r in rows} == {"LGZ1030655933512"}


def test_store_harmonized_keeps_every_digit(db_url):
    store = open_store(db_url)
    digits = "123456789012345.678901234"   # a double would keep ~16 of these 24 digits
    assert store.store_harmonized("m1", T0, "energy_in", digits) == 1
    assert store.store_harmonized("m1", T0, "energy_in", digits) == 0
    assert store.store_harmonized("m1", T0 + 1, "voltage_l1", "230.0") == 1
    assert [r[3] for r in store.rows(T0, T0 + 2)] == [digits, "230.0"]
    with pytest.raises(ValueError):
        store.store_harmonized("m1", T0, "power_in", "12 W")


def test_postgres_schema_is_numeric(postgres):
    import psycopg
    store = open_store(postgres)
    assert store.timescale is False   # no TimescaleDB here: a plain table, same queries
    with psycopg.connect(postgres) as db:
        kinds = dict(db.execute("SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_name = 'readings'").fetchall())
    assert kinds["value"] == "numeric" and kinds["time"] == "timestamp with time zone"


def test_bad_database_urls_have_clear_messages(tmp_path):
    with pytest.raises(StoreError, match="unknown database URL"):
        open_store("mysql://x")
    with pytest.raises(StoreError, match="cannot use PostgreSQL"):
        open_store("postgresql://nobody@127.0.0.1:%d/none?connect_timeout=2" % free_port())
    with pytest.raises(StoreError, match="cannot open SQLite"):
        open_store("sqlite:///%s/missing/dir/x.db" % tmp_path)


# -- export ----------------------------------------------------------------------------------------

def test_export_csv(db_url, capsys):
    store = open_store(db_url)
    store.store_reading(sample())
    store.store_harmonized("other", T0 + 60, "power_in", "7")
    store.store_harmonized("other", T0 + 86400, "power_in", "8")   # the next day: outside
    store.close()
    assert cli.main(["export", "--db", db_url, "--from", "2024-05-01", "--to", "2024-05-02",
                     "--names", "power_in", "energy_in"]) == 0
    assert capsys.readouterr().out == (
        "time,meter,name,value,unit\n"
        "2024-05-01T00:01:00Z,other,power_in,7,W\n"
        "2024-05-01T08:00:00Z,LGZ1030655933512,energy_in,123456.789,kWh\n"
        "2024-05-01T08:00:00Z,LGZ1030655933512,power_in,1234,W\n")
    assert cli.main(["export", "--db", db_url, "--from", "2024-05-01T10:00+02:00",
                     "--to", "2024-05-01T08:00:01", "--meter", "LGZ1030655933512"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7 and lines[1] == "2024-05-01T08:00:00Z,LGZ1030655933512,1-0:1.7.0,1.234,kW"


def test_export_refuses_bad_arguments(tmp_path, capsys):
    assert cli.main(["export", "--db", "sqlite:///%s/none.db" % tmp_path, "--from", "2024-05-01",
                     "--to", "2024-05-02"]) == 2
    assert "no such database" in capsys.readouterr().err
    assert cli.main(["export", "--db", "sqlite:///x.db", "--from", "2024-05-02", "--to", "2024-05-01"]) == 2
    with pytest.raises(SystemExit):
        cli.main(["export", "--from", "yesterday", "--to", "2024-05-01"])
    assert "not an ISO 8601 time" in capsys.readouterr().err


# -- `meterkit record` against a real mosquitto ----------------------------------------------------

class Recorder:
    """`meterkit record` as a subprocess; its log lines collected from stderr."""

    def __init__(self, *argv):
        command = [sys.executable, "-m", "meterkit_host.cli", "record"] + list(argv)
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        self.lines = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def wait_for(self, text, count=1, timeout=20):
        wait_until(lambda: sum(text in line for line in self.lines) >= count, timeout,
                   "recorder never logged %r:\n%s" % (text, "\n".join(self.lines)))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def wait_until(condition, timeout=20, message="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def publish(port, messages):
    """QoS 1 publishes, each acknowledged by the broker before the next."""
    for topic, payload in messages:
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic,
                        "-m", payload if isinstance(payload, str) else payload.decode()],
                       check=True, timeout=20)


def count_rows(url, where="1=1"):
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url[len("sqlite:///"):]) as db:
            return db.execute("SELECT count(*) FROM readings WHERE " + where).fetchone()[0]
    import psycopg
    with psycopg.connect(url) as db:
        return db.execute("SELECT count(*) FROM readings WHERE " + where).fetchone()[0]


def dongle_messages(reading, received=T0):
    """What a dongle publishes for a reading: harmonized topics and the raw state document."""
    return topics.harmonized(reading, "smartmeter", received) + [topics.raw_state(reading, "smartmeter", received)]


@pytest.fixture
def persistent_broker(tmp_path):
    # the broker keeps sessions across its own restart, as a deployed mosquitto does
    broker = Broker(tmp_path, extra_conf="persistence true\npersistence_location %s/\n" % tmp_path)
    with broker:
        yield broker


def test_record_replay_and_malformed(persistent_broker, db_url):
    recorder = Recorder("--mqtt", "mqtt://127.0.0.1:%d" % persistent_broker.port, "--db", db_url,
                        "--raw", "--client-id", "rec-replay")
    try:
        recorder.wait_for("subscribed")
        batch = dongle_messages(sample(at="2024-05-01T10:00:00+02:00")) + \
            dongle_messages(sample(at="2024-05-01T10:00:10+02:00", power="0.5"))
        publish(persistent_broker.port, batch)
        wait_until(lambda: count_rows(db_url) == 12, message="batch not stored")
        publish(persistent_broker.port, [("smartmeter/bad/power/power_in", "{\"value\": "),
                                         ("smartmeter/bad/power/power_in", '{"timestamp": 1, "value": "x"}')])
        publish(persistent_broker.port, batch)   # store-and-forward replays the whole batch
        publish(persistent_broker.port, [("smartmeter/late/power/power_in", '{"timestamp": %d, "value": 5}' % T0)])
        wait_until(lambda: count_rows(db_url, "meter = 'late'") == 1, message="recorder stopped")
        assert count_rows(db_url) == 13   # the replay added nothing
        assert count_rows(db_url, "meter = 'bad'") == 0
        recorder.wait_for("skipped smartmeter/bad/power/power_in", count=2)
        assert recorder.proc.poll() is None
    finally:
        recorder.stop()


def test_broker_and_recorder_restarts_lose_nothing(persistent_broker, tmp_path):
    url = "sqlite:///%s" % (tmp_path / "restart.db")
    argv = ("--mqtt", "mqtt://127.0.0.1:%d" % persistent_broker.port, "--db", url, "--client-id", "rec-restart")
    message = '{"timestamp": %d, "value": %d}'
    recorder = Recorder(*argv)
    try:
        recorder.wait_for("subscribed")
        publish(persistent_broker.port, [("smartmeter/m/power/power_in", message % (T0, 1))])
        wait_until(lambda: count_rows(url) == 1)
        persistent_broker.stop()
        recorder.wait_for("disconnected")
        persistent_broker.start()   # same port; the recorder is still waiting to reconnect
        publish(persistent_broker.port, [("smartmeter/m/power/power_in", message % (T0 + 1, 2))])
        wait_until(lambda: count_rows(url) == 2, message="lost across the broker restart")
        recorder.stop()
        publish(persistent_broker.port, [("smartmeter/m/power/power_in", message % (T0 + 2, 3))])
        recorder = Recorder(*argv)   # same client id: the broker kept the message for us
        wait_until(lambda: count_rows(url) == 3, message="lost across the recorder restart")
        recorder.wait_for("session resumed")
    finally:
        recorder.stop()


def test_record_config_errors(tmp_path, capsys):
    config = tmp_path / "record.json"
    config.write_text(json.dumps({"mqtt": "mqtt://127.0.0.1", "databse": "sqlite:///x.db"}))
    assert cli.main(["record", "--config", str(config)]) == 2
    assert "config.databse: unknown key" in capsys.readouterr().err
    config.write_text(json.dumps({"raw": "yes"}))
    assert cli.main(["record", "--config", str(config)]) == 2
    assert "config.raw: must be true or false" in capsys.readouterr().err
    assert cli.main(["record", "--db", "sqlite:///%s" % (tmp_path / "x.db"), "--mqtt", "http://x"]) == 2
    assert "is not mqtt://" in capsys.readouterr().err


# -- Grafana ---------------------------------------------------------------------------------------

def dashboard(kind):
    return json.loads((GRAFANA / "dashboards" / ("meterkit-%s.json" % kind)).read_text())


def queries(board):
    for panel in board["panels"]:
        for target in panel["targets"]:
            yield panel["title"], target.get("rawSql") or target["queryText"]


def test_dashboards_match_the_provisioned_datasources():
    provisioned = (GRAFANA / "provisioning" / "datasources" / "meterkit.yaml").read_text()
    uids = dict(re.findall(r"uid: (\S+)\n\s+type: (\S+)", provisioned))
    assert uids == {"meterkit-sqlite": "frser-sqlite-datasource",
                    "meterkit-postgresql": "grafana-postgresql-datasource"}
    for kind in ("sqlite", "postgresql"):
        board = dashboard(kind)
        assert [p["title"] for p in board["panels"]] == ["Power in / out", "Energy per day", "Voltages"]
        sources = [p["datasource"] for p in board["panels"]] + [t["datasource"] for p in board["panels"]
                                                                for t in p["targets"]]
        assert {(s["uid"], s["type"]) for s in sources} == {("meterkit-%s" % kind, uids["meterkit-%s" % kind])}
    dashboards = (GRAFANA / "provisioning" / "dashboards" / "meterkit.yaml").read_text()
    assert "type: file" in dashboards and "path: " in dashboards


def _filled(url):
    store = open_store(url)
    for minute in range(0, 48 * 60, 30):   # two days, a value every half hour
        reading = Reading("m1")
        reading.add("1-0:1.8.0", Exact(1000 + minute, -1), "kWh")   # +0.1 kWh a minute
        reading.add("1-0:1.7.0", Exact(minute), "W")
        reading.add("1-0:32.7.0", Exact(2300 + minute % 7, -1), "V")
        store.store_reading(reading, received=T0 + minute * 60)
    store.close()


def test_dashboard_sql_runs_on_sqlite(tmp_path):
    url = "sqlite:///%s" % (tmp_path / "g.db")
    _filled(url)
    db = sqlite3.connect(str(tmp_path / "g.db"))
    results = {}
    for title, sql in queries(dashboard("sqlite")):
        sql = sql.replace("$meter", "m1").replace("$__unixEpochFrom()", str(T0))
        results.setdefault(title, []).append(db.execute(sql.replace("$__unixEpochTo()", str(T0 + 2 * 86400))).fetchall())
    assert len(results["Power in / out"][0]) == 96 and results["Power in / out"][1] == []
    assert [(t, round(e, 1)) for t, e in results["Energy per day"][0]] == [(T0, 141.0), (T0 + 86400, 141.0)]
    assert results["Voltages"][0][0] == (T0, 230.0)


def test_dashboard_sql_runs_on_postgres(postgres):
    import psycopg
    _filled(postgres)
    assert open_store(postgres).refresh_aggregates(until=T0 + 2 * 86400) == T0 + 2 * 86400
    results = {}
    with psycopg.connect(postgres) as db:
        for span in (3600, 2 * 86400, 10 * 86400):   # raw rows, minute and hourly averages
            for title, sql in queries(dashboard("postgresql")):
                rows = db.execute(grafana_sql(sql, T0, T0 + span - 1, "m1")).fetchall()
                results.setdefault((title, span), []).append(rows)
    energy = results["Energy per day", 2 * 86400][0]
    assert [str(e) for _, e in energy] == ["141.0", "141.0"]   # NUMERIC: exact, no rounding needed
    for span in (2 * 86400, 10 * 86400):
        assert results["Energy per day", span][1] == []         # the meter sends no energy_out
    assert len(results["Power in / out", 3600][0]) == 2
    assert len(results["Power in / out", 2 * 86400][0]) == 96
    assert len(results["Power in / out", 10 * 86400][0]) == 48   # one hour: two readings averaged
    assert results["Power in / out", 10 * 86400][0][1][1] == 75  # (60 + 90) / 2 W
    assert results["Voltages", 2 * 86400][0][0][1] == decimal.Decimal("230.0")


def test_unreachable_broker_is_retried_until_it_comes(tmp_path):
    url = "sqlite:///%s" % (tmp_path / "late.db")
    broker = Broker(tmp_path)   # its port is chosen, nothing listens yet
    recorder = Recorder("--mqtt", "mqtt://127.0.0.1:%d" % broker.port, "--db", url, "--client-id", "rec-late")
    try:
        recorder.wait_for("unreachable; retrying", count=2)
        assert recorder.proc.poll() is None
        with broker:
            recorder.wait_for("subscribed")
            publish(broker.port, [("smartmeter/m/power/power_in", '{"timestamp": %d, "value": 1}' % T0)])
            wait_until(lambda: count_rows(url) == 1)
    finally:
        recorder.stop()


# -- the three-phase submeter dashboards, on readings the Modbus codec made from the simulator ----

SUBMETER_PANELS = ["Voltage", "Current", "Active power (import +, export -)", "Apparent power",
                   "Reactive power (import +, export -)", "Power factor", "Frequency",
                   "Energy per day", "Voltage THD", "Current THD"]
# one series of each panel: (panel, series), the simulator's value for it (simulate_modbus.KNOWN)
SUBMETER_SHOWS = {("Voltage", "L1"): "230.1", ("Current", "N"): "0.4",
                  ("Active power (import +, export -)", "L1"): "1200.5",
                  ("Active power (import +, export -)", "L2"): "-340.25",
                  ("Active power (import +, export -)", "total"): "872.35",
                  ("Apparent power", "L3"): "15",
                  ("Reactive power (import +, export -)", "L2"): "-20.5",
                  ("Power factor", "L2"): "-0.97", ("Power factor", "total"): "0.95",
                  ("Frequency", "f"): "49.98", ("Voltage THD", "L3"): "2.4",
                  ("Current THD", "L3"): "20.1", ("Energy per day", "import"): "4.5",
                  ("Energy per day", "export"): "0"}


def submeter_dashboard(kind):
    return json.loads((GRAFANA / "dashboards" / ("meterkit-submeter-%s.json" % kind)).read_text())


def _filled_with_a_submeter(url):
    """Two readings of a simulated SDM630 (slave 1) five minutes apart, through the real codec
    and polling plan, and a DSMR meter beside it (which the meter picker leaves out)."""
    from meterkit.modbus import poll, regmap
    from meterkit_host.simulate_modbus import BusSim, Slave
    slave = Slave(regmap.load("sdm630"), 1)
    wire, bus = BusSim([slave]), poll.Bus([poll.Meter(slave.map, 1)])
    store = open_store(url)
    for minutes, energy in ((0, "12345.67"), (5, "12350.17")):
        slave.set("energy_in", energy)
        now, events = minutes * 60000, []
        request = bus.poll(now)
        while request is not None:
            events += bus.answer(request, wire.feed(request.frame)[0], now)
            request = bus.poll(now)
        [reading] = [r for kind, _, r in events if kind == "reading"]
        store.store_reading(reading, received=T0 + 3600 + minutes * 60)
    store.store_reading(sample())
    store.close()


def _submeter_results(run, kind):
    """{(panel, series): [values]} for every target of the dashboard."""
    results = {}
    board = submeter_dashboard(kind)
    for panel in board["panels"]:
        for target in panel["targets"]:
            sql = (target.get("rawSql") or target["queryText"]).replace("$meter", "sdm630-1")
            series = re.search(r'AS "([^"]+)" FROM', sql).group(1)
            results[(panel["title"], series)] = [row[-1] for row in run(sql)]
    picker = board["templating"]["list"][0]["definition"]
    return results, [row[0] for row in run(picker)]


def test_submeter_dashboards_match_the_provisioned_datasources():
    for kind, type_ in (("sqlite", "frser-sqlite-datasource"),
                        ("postgresql", "grafana-postgresql-datasource")):
        board = submeter_dashboard(kind)
        assert board["uid"] == "meterkit-submeter-" + kind
        assert [p["title"] for p in board["panels"]] == SUBMETER_PANELS
        sources = [p["datasource"] for p in board["panels"]] + [
            t["datasource"] for p in board["panels"] for t in p["targets"]] + [
            board["templating"]["list"][0]["datasource"]]
        assert {(s["uid"], s["type"]) for s in sources} == {("meterkit-" + kind, type_)}
    sqlite_board, pg_board = submeter_dashboard("sqlite"), submeter_dashboard("postgresql")
    assert [[t["refId"] for t in p["targets"]] for p in sqlite_board["panels"]] == \
        [[t["refId"] for t in p["targets"]] for p in pg_board["panels"]]


def test_submeter_dashboard_sql_runs_on_sqlite(tmp_path):
    url = "sqlite:///%s" % (tmp_path / "s.db")
    _filled_with_a_submeter(url)
    db = sqlite3.connect(str(tmp_path / "s.db"))

    def run(sql):
        sql = sql.replace("$__unixEpochFrom()", str(T0))
        sql = sql.replace("$__unixEpochTo()", str(T0 + 86400))
        return db.execute(sql).fetchall()
    results, meters = _submeter_results(run, "sqlite")
    assert meters == ["sdm630-1"]
    assert all(len(values) == (1 if panel == "Energy per day" else 2)
               for (panel, _), values in results.items()), results
    for key, text in SUBMETER_SHOWS.items():
        assert results[key][0] == float(text), key


def test_submeter_dashboard_sql_runs_on_postgres(postgres):
    import psycopg
    _filled_with_a_submeter(postgres)
    with psycopg.connect(postgres) as db:
        db.execute("SET timezone = 'UTC'")

        def run(sql):
            return db.execute(sql.replace("$__timeFilter(time)", "time BETWEEN to_timestamp(%d) "
                                          "AND to_timestamp(%d)" % (T0, T0 + 86399))).fetchall()
        results, meters = _submeter_results(run, "postgresql")
    assert meters == ["sdm630-1"]
    assert all(len(values) == (1 if panel == "Energy per day" else 2)
               for (panel, _), values in results.items()), results
    for key, text in SUBMETER_SHOWS.items():    # NUMERIC: the meter's digits, exactly
        assert results[key][0].normalize() == Decimal(text).normalize(), key

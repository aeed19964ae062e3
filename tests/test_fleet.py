"""A fleet into one database: `meterkit simulate --fleet` through a real mosquitto into a real
PostgreSQL with a group of recorders, one killed and one restarted on the way; what mosquitto does
with a lost member of a shared subscription (the design rests on it); the aggregates."""
import decimal
import json
import pathlib
import subprocess
import sys
import threading
import time

import pytest

from broker import Broker
from postgres import RECORDER_TABLES, PostgresServer, grafana_sql
from meterkit_host.fleet import fleet
from meterkit_host.recorder import open_store
from meterkit_host.record import Recorder

GRAFANA = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboards"
PROFILES = "dsmr5,e450,smarty,evn,dsmr22"
DONGLES, READINGS = 200, 60
CLOCK = int(time.time()) // 60 * 60 - 30   # half the run before the aggregates' watermark


@pytest.fixture(scope="module")
def postgres():
    with PostgresServer() as server:
        yield server.url


@pytest.fixture
def broker(tmp_path):
    # no cap on a session's queue: mosquitto's default (1000) drops what a lost member is given
    with Broker(tmp_path, extra_conf="max_queued_messages 0\n") as running:
        yield running


class Process:
    """A `meterkit` subcommand; its stderr lines collected."""

    def __init__(self, *argv):
        self.proc = subprocess.Popen([sys.executable, "-m", "meterkit_host"] + list(argv),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def logged(self, text):
        return any(text in line for line in self.lines)

    def wait_for(self, text, timeout=30):
        wait_until(lambda: self.logged(text), timeout, "never logged %r:\n%s"
                   % (text, "\n".join(self.lines)))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def wait_until(condition, timeout=30, message="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


def published_values(count, readings):
    """{(meter, time, name, value)} from the harmonized topics the fleet publishes."""
    values = set()
    for dongle in fleet(count, PROFILES.split(","), start=CLOCK, interval=1):
        for _ in range(readings):
            messages, _ = dongle.messages("smartmeter")
            for topic, payload in messages[:-1]:   # the last one is the state document
                doc = json.loads(payload, parse_float=decimal.Decimal)
                _, meter, _, name = topic.split("/")
                value = format(decimal.Decimal(doc["value"]), "f")
                values.add((meter, doc["timestamp"], name, value))
    return values


def stored_values(url):
    import psycopg
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT meter, extract(epoch FROM time)::bigint, name, value "
                          "FROM readings")
        return [(meter, at, name, format(value, "f")) for meter, at, name, value in rows]


def test_a_fleet_through_three_recorders_one_killed_one_restarted(broker, postgres):
    url = "mqtt://127.0.0.1:%d" % broker.port

    def recorder(number):
        return Process("record", "--mqtt", url, "--db", postgres, "--group", "fleet", "--client-id",
                       "rec-%d" % number, "--from-state", "--adopt-after", "2",
                       "--aggregate-every", "1")

    import psycopg
    db = psycopg.connect(postgres, autocommit=True)
    db.execute("DROP TABLE IF EXISTS " + RECORDER_TABLES)
    expected = published_values(DONGLES, READINGS)
    recorders = [recorder(n) for n in (1, 2, 3)]
    restarted = None
    try:
        for process in recorders:
            process.wait_for("subscribed")
        simulator = Process("simulate", "--fleet", str(DONGLES), "--mqtt", url, "--profile",
                            PROFILES, "--interval", "1", "--speed", "4", "--count",
                            str(READINGS), "--start", str(CLOCK))
        rows = lambda: db.execute("SELECT count(*) FROM readings").fetchone()[0]
        wait_until(lambda: rows() >= len(expected) // 4, 60, "the fleet's readings do not arrive")
        recorders[1].proc.kill()          # rec-2 dies with messages in flight; nobody restarts it
        wait_until(lambda: rows() >= len(expected) // 2, 60, "stalled after rec-2 was killed")
        recorders[2].stop()               # rec-3 restarts: the broker queues its share meanwhile
        restarted = recorder(3)
        assert simulator.proc.wait(timeout=120) == 0
        assert "%d readings" % (DONGLES * READINGS) in simulator.proc.stdout.read()
        wait_until(lambda: rows() >= len(expected), 120, "readings lost: %d of %d stored"
                   % (rows(), len(expected)))
        stored = stored_values(postgres)
        assert len(stored) == len(expected) and set(stored) == expected   # each exactly once
        assert any(process.logged("adopted rec-2") for process in recorders + [restarted])
        assert restarted.logged("session resumed")
    finally:
        for process in recorders + [restarted]:
            if process:
                process.stop()
        db.close()
    check_aggregates(postgres, until=CLOCK + 7200)


def check_aggregates(url, until):
    """The plain aggregates hold every stored row exactly once, folded by the job or the insert."""
    store = open_store(url)
    assert store.refresh_aggregates(until=until) == until
    raw = ("SELECT meter, name, date_trunc('%s', time, 'UTC'), count(*), sum(value), min(value), "
           "max(value), min(time), (array_agg(value ORDER BY time))[1], max(time), "
           "(array_agg(value ORDER BY time DESC))[1] FROM readings GROUP BY 1, 2, 3")
    for table, bucket in (("readings_minutely", "minute"), ("readings_hourly", "hour"),
                          ("readings_daily", "day")):
        folded = store.db.execute("SELECT * FROM %s" % table).fetchall()
        assert folded and sorted(folded) == sorted(store.db.execute(raw % bucket).fetchall())


def test_mosquitto_keeps_a_lost_members_share_for_its_client_id(broker):
    """The broker behaviour the group design rests on (mosquitto 2.0): the messages in flight to
    a member that dies, and its share of the ones published after, wait in its session; the other
    member gets none of them; whoever connects with that client id gets them all."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    def member(client_id, acknowledge):
        got = []
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5, manual_ack=True)

        def on_message(client, userdata, message):
            got.append(int(message.payload))
            if acknowledge:
                client.ack(message.mid, message.qos)
        client.on_message = on_message
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        properties.ReceiveMaximum = 1000
        client.connect("127.0.0.1", broker.port, clean_start=False, properties=properties)
        client.subscribe("$share/g/t/#", qos=1)
        client.loop_start()
        return client, got

    lost, got_lost = member("lost", acknowledge=False)
    other, got_other = member("other", acknowledge=True)
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="publisher")
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    try:
        def publish(numbers):
            for number in numbers:
                publisher.publish("t/x", str(number), qos=1).wait_for_publish(10)
        publish(range(100))
        wait_until(lambda: len(got_lost) + len(got_other) == 100)
        in_flight = list(got_lost)
        assert in_flight, "the round robin gave the member nothing"
        lost.loop_stop()
        lost.socket().close()           # dies without a DISCONNECT, nothing acknowledged
        time.sleep(1)
        publish(range(100, 200))
        time.sleep(1)
        assert not set(in_flight) & set(got_other)          # not handed to the other member
        assert len(got_other) < 150                         # and it did not get all new ones
        heir, got_heir = member("lost", acknowledge=True)   # the same client id: the session
        wait_until(lambda: len(set(got_other) | set(got_heir)) == 200, 10,
                   "lost: %s" % sorted(set(range(200)) - set(got_other) - set(got_heir)))
        assert set(in_flight) <= set(got_heir)
        heir.disconnect()
    finally:
        other.disconnect()
        publisher.disconnect()


def test_state_documents_give_the_harmonized_values():
    """--from-state stores from one state document what the per-value topics carry."""
    recorder = Recorder(None, "smartmeter", from_state=True)
    for dongle in fleet(10, PROFILES.split(","), start=CLOCK):
        for _ in range(3):
            messages, _ = dongle.messages("smartmeter")
            per_value = [row for topic, payload in messages[:-1]
                         for row in Recorder(None, "smartmeter").rows(topic, payload)]
            from_state = recorder.rows(*messages[-1])
            assert from_state and sorted(from_state) == sorted(per_value)


def test_aggregates_count_late_and_replayed_rows_once(postgres):
    import psycopg
    with psycopg.connect(postgres, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS " + RECORDER_TABLES)
    store = open_store(postgres)
    t0 = 1714521600   # 2024-05-01T00:00Z
    rows = [("m%d" % m, t0 + s, "energy_in", "%d.5" % (1000 + s), "kWh") for m in range(3)
            for s in range(0, 7200, 90)]
    assert store.insert(rows[::2]) == len(rows[::2])
    assert store.refresh_aggregates(until=t0 + 3600, step_s=600) == t0 + 3600
    assert store.insert(rows) == len(rows) - len(rows[::2])   # the rest: on both sides of it
    assert store.insert(rows[:40]) == 0                        # replayed: nothing new
    check_aggregates(postgres, until=t0 + 86400)
    energy = store.db.execute(
        "SELECT high - low, n FROM readings_daily WHERE meter = 'm1'").fetchone()
    assert (str(energy[0]), energy[1]) == ("7110.0", 80)
    board = json.loads((GRAFANA / "meterkit-fleet.json").read_text())
    results = [store.db.execute(grafana_sql(panel["targets"][0]["rawSql"], t0, t0 + 86400))
               .fetchall() for panel in board["panels"]]
    assert [(int(at.timestamp()), str(energy)) for at, energy in results[0]] == [(t0, "21330.0")]
    assert sorted((meter, str(energy)) for meter, energy in results[1]) == [
        ("m0", "7110.0"), ("m1", "7110.0"), ("m2", "7110.0")]
    assert results[2] == []   # no power_in rows


def test_every_writer_keeps_the_aggregates(postgres):
    """`meterkit read` and `smgw` store through the same class: its inserts fold the aggregates
    every aggregate_every seconds, no `meterkit record` needed."""
    import psycopg
    with psycopg.connect(postgres, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS " + RECORDER_TABLES)
    store = open_store(postgres, aggregate_every=1)
    now = int(time.time()) // 60 * 60
    assert store.insert([("m", now - 120 + s, "power_in", str(s), "W") for s in range(60)]) == 60
    time.sleep(1.1)
    assert store.insert([("m", now - 60, "power_in", "7", "W")]) == 1
    folded = store.db.execute("SELECT sum(n), sum(total) FROM readings_minutely").fetchone()
    assert (folded[0], str(folded[1])) == (61, "1777")   # 0 + 1 + ... + 59 and the 7


def test_a_database_that_is_down_is_retried_a_bad_one_is_not(tmp_path, capsys):
    """Exit 1 when PostgreSQL cannot be reached (systemd starts the recorder again), 2 for a
    database URL that no retry fixes (the units' RestartPreventExitStatus)."""
    from broker import free_port
    from meterkit_host import cli
    down = "postgresql://nobody@127.0.0.1:%d/none?connect_timeout=2" % free_port()
    assert cli.main(["record", "--db", down, "--group", "fleet"]) == 1
    assert "cannot use PostgreSQL" in capsys.readouterr().err
    assert cli.main(["record", "--db", "mysql://x", "--group", "fleet"]) == 2


def test_recorders_starting_together_create_the_tables_once(postgres):
    """CREATE TABLE IF NOT EXISTS races in PostgreSQL (a duplicate pg_type key): a group whose
    members start at once must not trip over it."""
    import psycopg
    for _ in range(3):
        with psycopg.connect(postgres, autocommit=True) as db:
            db.execute("DROP TABLE IF EXISTS " + RECORDER_TABLES)
        failures, ready = [], threading.Barrier(4)

        def start():
            ready.wait()
            try:
                open_store(postgres).close()
            except Exception as error:   # the race, if it were there
                failures.append(error)
        threads = [threading.Thread(target=start) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []

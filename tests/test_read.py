"""`meterkit read` end to end: the simulator serves a pseudo-terminal, `read` opens it like a serial
port, and what it decodes must arrive on a real mosquitto (exactly the firmware's topics), on
stdout and in the SQLite recorder. Plus the bad days: broker down, port unplugged, garbage, bad
config. The processes are the real commands; only the slow-sink test uses a stand-in sink.
"""
import io
import json
import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from broker import Broker, Subscriber, free_port
from dongle import profiles, topics
from meterkit.clock import epoch_seconds
from meterkit.harmonize import harmonize
from meterkit.stream import StreamDecoder
from meterkit_host import cli, hostconfig, sources
from meterkit_host.simulate import Meter
from meterkit_host.mqtt_sink import MqttSink
from meterkit_host.sinks import Fanout, QueueSink, StdoutSink

KEY = "000102030405060708090A0B0C0D0E0F"
PROFILES = [("dsmr5", None), ("smarty", KEY), ("e450", None)]
METERKIT = [sys.executable, "-m", "meterkit_host"]


class Process:
    """A command with its stdout lines in a queue and its stderr lines collected."""

    def __init__(self, *argv):
        self.proc = subprocess.Popen(METERKIT + list(argv), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines, self.errors = queue.Queue(), []
        self.error_seen = threading.Condition()
        threading.Thread(target=self._pump_out, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump_out(self):
        for line in self.proc.stdout:
            self.lines.put(line)

    def _pump_err(self):
        for line in self.proc.stderr:
            with self.error_seen:
                self.errors.append(line.rstrip("\n"))
                self.error_seen.notify_all()

    def line(self, timeout=20):
        return self.lines.get(timeout=timeout)

    def wait_err(self, text, count=1, timeout=20):
        """The stderr lines containing text, once there are `count` of them."""
        with self.error_seen:
            found = lambda: [e for e in self.errors if text in e]   # noqa: E731
            assert self.error_seen.wait_for(lambda: len(found()) >= count, timeout), \
                "no %r on stderr:\n%s" % (text, "\n".join(self.errors))
            return found()

    def stop(self):
        """SIGTERM, as systemd stops the service; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def simulator(profile, key=None, *more):
    sim = Process("simulate", "--profile", profile, "--pty", "--interval", "0.2",
                  *(["--key", key] if key else []), *more)
    sim.pty = sim.wait_err("/dev/")[0].strip()
    return sim


def reader(*argv):
    return Process("read", *argv)


@pytest.fixture
def processes():
    started = []
    yield started.append
    for process in started:
        process.stop()


def expected_readings(profile, key, frames=600):
    """What the simulator sends, decoded by the core: {meter timestamp: Reading}."""
    meter = Meter(profile, key, seed=0)
    framings = profiles.framings(sources.firmware_profile(profile))
    decoder = StreamDecoder(bytes.fromhex(key) if key else None, framings=framings)
    readings = {}
    for _ in range(frames):
        for reading in decoder.feed(meter.next()[0]):
            readings[reading.timestamp] = reading
    return readings


def firmware_messages(reading, announce):
    """(topic, payload text) the dongle publishes for this reading (dongle.publisher's choice)."""
    out = topics.harmonized(reading, "smartmeter") + topics.raw_values(reading, "smartmeter")
    out.append(topics.raw_state(reading, "smartmeter"))
    if announce:
        out += topics.discovery(reading, "smartmeter", "homeassistant", "meterkit")
        status, online, _ = topics.availability("smartmeter", topics.device_id(reading))
        out.append((status, online))
    return set((topic, payload.decode()) for topic, payload in out)


@pytest.mark.parametrize("profile,key", PROFILES)
def test_readings_reach_mqtt_stdout_and_recorder(tmp_path, processes, profile, key):
    expected = expected_readings(profile, key)
    database = tmp_path / "readings.db"
    with Broker(tmp_path) as broker:
        subscriber = Subscriber(broker.port, "#")
        try:
            sim = simulator(profile, key)
            processes(sim)
            read = reader("--port", sim.pty, "--profile", profile, *(["--key", key] if key else []),
                          "--mqtt", "mqtt://127.0.0.1:%d" % broker.port, "--stdout",
                          "--record", "sqlite:///%s" % database, "--spool", str(tmp_path / "spool"))
            processes(read)
            lines = [json.loads(read.line()) for _ in range(3)]
            readings = [expected[line["timestamp"]] for line in lines]
            for line, reading in zip(lines, readings):   # stdout: the decode contract's line
                assert line.pop("source") == sim.pty[len("/dev/"):].replace("/", "-")
                assert abs(line.pop("received") - time.time()) < 60
                assert line == json.loads(reading.to_json())
            want = set()
            for i, reading in enumerate(readings):
                want |= firmware_messages(reading, announce=i == 0)
            root = "smartmeter/%s/" % topics.device_id(readings[0])
            got, diagnostics = set(), None
            while not (want <= got and diagnostics):
                topic, _, _, payload = subscriber.next_message().split(" ", 3)
                got.add((topic, payload))
                if topic == root + "diagnostics":
                    diagnostics = json.loads(payload)
            assert diagnostics["frames_ok"] >= 1 and diagnostics["mqtt_connected"] is True
            assert read.stop() == 0
            while (root + "status", "offline") not in got:   # a clean stop says so
                got.add(tuple(subscriber.next_message().split(" ", 3)[::3]))
        finally:
            subscriber.close()
    from meterkit_host.recorder import open_store
    stored = dict(((at, name), value) for at, _, name, value, _ in open_store("sqlite:///%s" % database)
                  .rows(0, 1 << 40))
    for reading in readings:
        at = epoch_seconds(reading.timestamp)
        for name, value in harmonize(reading):
            assert stored[(at, name)] == str(value)   # exact text, never a float


def durable_subscriber(port, topic):
    """A paho client with a persistent session: the broker keeps its messages across restarts."""
    import paho.mqtt.client as paho
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="durable-test", clean_session=False)
    client.reconnect_delay_set(1, 1)
    client.messages = queue.Queue()
    subscribed = threading.Event()
    client.on_connect = lambda c, userdata, flags, reason, props: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = lambda c, userdata, message: client.messages.put(message.payload)
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert subscribed.wait(10)
    return client


def test_broker_down_then_up_loses_nothing(tmp_path, processes):
    persist = "persistence true\npersistence_location %s/\nmax_queued_messages 0\n" % tmp_path
    broker = Broker(tmp_path, extra_conf=persist).start()
    subscriber = durable_subscriber(broker.port, "smartmeter/+/power/power_in")
    try:
        sim = simulator("dsmr5")
        processes(sim)
        read = reader("--port", sim.pty, "--profile", "dsmr5", "--stdout",
                      "--mqtt", "mqtt://127.0.0.1:%d" % broker.port, "--spool", str(tmp_path / "spool"))
        processes(read)
        stamps = [json.loads(read.line())["timestamp"] for _ in range(3)]
        broker.stop()
        stamps += [json.loads(read.line())["timestamp"] for _ in range(8)]   # still reading
        read.wait_err("lost the connection to 127.0.0.1:%d" % broker.port)
        read.wait_err("cannot reach the broker at 127.0.0.1:%d" % broker.port)   # retried, still down
        broker.start()
        read.wait_err("replaying")
        stamps += [json.loads(read.line())["timestamp"] for _ in range(2)]
        assert read.stop() == 0
        want = set(epoch_seconds(stamp) for stamp in stamps)
        got = []
        while not want <= set(got):
            got.append(json.loads(subscriber.messages.get(timeout=20))["timestamp"])
        assert got == sorted(got), "replayed out of order"
    finally:
        subscriber.loop_stop()
        broker.stop()


def test_unreachable_broker_and_garbage_keep_the_service_running(tmp_path, processes):
    sim = simulator("dsmr5", None, "--garbage", "0.5")
    processes(sim)
    port = free_port()
    read = reader("--port", sim.pty, "--profile", "dsmr5", "--stdout",
                  "--mqtt", "mqtt://127.0.0.1:%d" % port, "--spool", str(tmp_path / "spool"))
    processes(read)
    for _ in range(6):
        json.loads(read.line())   # stdout is not held up by the dead broker
    read.wait_err("cannot reach the broker at 127.0.0.1:%d" % port)
    read.wait_err("frame rejected (crc)")
    assert read.stop() == 0
    summary = read.wait_err("frames rejected,")[0]
    assert " 0 frames rejected" not in summary and " 0 bytes skipped" not in summary
    assert read.wait_err("readings stay buffered in")


def test_unplugged_port_is_retried_and_recovers(tmp_path, processes):
    port = tmp_path / "meter"
    read = reader("--port", str(port), "--profile", "dsmr5", "--stdout")
    processes(read)
    read.wait_err("cannot open %s" % port)
    read.wait_err("retrying in 2 s")
    assert read.proc.poll() is None
    sim = simulator("dsmr5")
    processes(sim)
    os.symlink(sim.pty, port)                  # plugged in
    read.line()
    sim.stop()                                 # unplugged
    read.wait_err("lost %s" % port)
    assert read.proc.poll() is None
    sim = simulator("dsmr5")                   # plugged in again
    processes(sim)
    os.unlink(port)
    os.symlink(sim.pty, port)
    read.wait_err("reading %s at 115200 8N1" % port, count=2)
    while not read.lines.empty():
        read.lines.get()
    json.loads(read.line())                    # readings flow again
    assert read.stop() == 0
    assert read.wait_err("stopping")


# ---- configuration -----------------------------------------------------------------------------

GOOD = {"sources": [{"port": "/dev/ttyUSB0", "profile": "dsmr5"}], "stdout": True}


def problems(doc):
    with pytest.raises(hostconfig.ConfigError) as caught:
        hostconfig.validate(doc)
    return caught.value.problems


def test_config_defaults_and_names():
    config = hostconfig.validate(dict(GOOD, mqtt={"url": "mqtts://u:p%40ss@broker"}))
    assert config["sources"][0]["name"] == "ttyUSB0"
    assert config["mqtt"]["base_topic"] == "smartmeter"
    assert hostconfig.parse_mqtt_url(config["mqtt"]["url"]) == {
        "host": "broker", "port": 8883, "tls": True, "user": "u", "password": "p@ss"}


def test_config_errors_name_the_field():
    assert problems({"sources": [{"port": "/dev/x", "profile": "dsmr5", "prot": 1}], "stdout": True,
                     "mqt": {}}) == [
        "mqt: unknown field (known: sources, gateways, mqtt, recorder, telegram, stdout)",
        "sources[0].prot: unknown field (known: name, port, profile, key, auth_key, line, slave, meters, intervals, timeout_ms, retry_s)"]
    assert problems({"sources": [{"port": "/dev/x", "profile": "dsmr9", "key": "12"}], "stdout": 1}) == [
        "sources[0].profile: must be one of " + ", ".join(hostconfig.profile_names()),
        "sources[0].key: must be 32 hex digits (16 bytes) or empty",
        "stdout: must be true or false"]
    assert problems({"sources": [{"port": "/dev/x", "profile": "smarty"}, {"port": "/dev/x",
                                                                           "profile": "e450"}]}) == [
        "sources[0].key: the smarty profile needs the meter's key",
        "sources[1].name: 'x' is used twice (names must differ)",
        "sources[1].port: /dev/x is read twice",
        "(document): no sink: set mqtt, recorder, telegram or stdout = true"]
    assert problems(dict(GOOD, mqtt={"url": "http://broker"}, recorder={"url": "mysql://x"})) == [
        "mqtt.url: must look like mqtt://[user:password@]host[:port] (or mqtts:// for TLS)",
        "recorder.url: must be sqlite:///path/readings.db or postgresql://[user@]host/db"]
    assert problems({"sources": [{"profile": "dsmr5", "line": "9600 7X1"}], "stdout": True}) == [
        "sources[0].port: missing", "sources[0].line: must look like '2400 8E1': baud, then "
        "data bits 7|8, parity N|E|O, stop bits 1|2"]
    assert problems({"sources": []}) == [
        "sources: must be a list of at least one meter (port, profile, ...)"]


def test_config_files_json_and_toml(tmp_path, capsys):
    toml = tmp_path / "read.toml"
    toml.write_text('stdout = true\n[[sources]]\nport = "/dev/ttyAMA0"\nprofile = "hdlc_dlms"\n'
                    'line = "2400 8N1"\n')
    assert hostconfig.load(str(toml))["sources"][0]["line"] == "2400 8N1"
    bad = tmp_path / "read.json"
    bad.write_text('{"sources": [{"port": "/dev/x", "profile": "dsmr5", "baud": 9600}], "stdout": true}')
    assert cli.main(["read", "--config", str(bad)]) == 2
    assert "sources[0].baud: unknown field" in capsys.readouterr().err
    bad.write_text('{"sources": [')
    assert cli.main(["read", "--config", str(bad)]) == 2
    assert "read.json: not valid JSON" in capsys.readouterr().err
    assert cli.main(["read", "--config", str(toml), "--port", "/dev/x"]) == 2
    assert "--config and --port" in capsys.readouterr().err
    assert cli.main(["read", "--port", "/dev/x"]) == 2
    assert "give --config FILE, or --port and --profile" in capsys.readouterr().err


def test_the_shipped_example_config_and_unit():
    deploy = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "systemd"
    config = hostconfig.load(str(deploy / "read.example.toml"))
    assert [source["profile"] for source in config["sources"]] == ["dsmr5"]
    assert config["mqtt"]["url"].startswith("mqtt://") and config["recorder"]["url"].startswith("sqlite:")
    unit = (deploy / "meterkit-read.service").read_text()
    assert "ExecStart=/opt/meterkit/bin/meterkit read --config /etc/meterkit/read.toml" in unit
    assert "StateDirectory=meterkit" in unit and "RestartPreventExitStatus=2" in unit


def test_serial_lines_come_from_the_firmware_profiles():
    assert sources.candidate_lines("dsmr5") == [(115200, 8, None, 1, False)]
    assert sources.candidate_lines("dsmr22") == [(9600, 7, 0, 1, False)]
    assert sources.candidate_lines("e450") == [(2400, 8, 0, 1, False), (2400, 8, None, 1, False)]
    assert sources.candidate_lines("dsmr5", "2400 8o2") == [(2400, 8, 1, 2, False)]
    assert len(sources.candidate_lines("auto")) == 4   # inverted and plain lines are one on a PC
    assert sources.serial_settings((9600, 7, 0, 1, True)) == {
        "baudrate": 9600, "bytesize": 7, "parity": "E", "stopbits": 1}


# ---- sinks ---------------------------------------------------------------------------------------

class StuckSink(QueueSink):
    """A sink whose database hangs until released."""
    name = "stuck"

    def __init__(self):
        QueueSink.__init__(self, size=10)
        self.release = threading.Event()

    def handle(self, source, reading, received):
        self.release.wait()


def test_a_stuck_sink_never_blocks_the_reader():
    reading = next(iter(expected_readings("dsmr5", None, 1).values()))
    stuck, out = StuckSink(), io.StringIO()
    fanout = Fanout([stuck, StdoutSink(out)])
    fanout.start()
    for n in range(500):
        fanout.reading("m", reading, n)       # returns at once although `stuck` takes nothing
    stuck.release.set()
    fanout.stop(10)
    assert [json.loads(line)["received"] for line in out.getvalue().splitlines()] == list(range(500))
    assert stuck.dropped >= 500 - 10 - 1      # its bounded queue kept the newest


def test_a_refused_login_is_logged_and_buffered(tmp_path, caplog):
    reading = next(iter(expected_readings("dsmr5", None, 1).values()))
    with Broker(tmp_path, users={"meter": "right"}) as broker:
        config = hostconfig.validate(dict(GOOD, mqtt={
            "url": "mqtt://meter:wrong@127.0.0.1:%d" % broker.port, "spool": str(tmp_path / "spool")}))
        sink = MqttSink(config["mqtt"])
        sink.put("m", reading, 1700000000)
        sink.start()
        deadline = time.monotonic() + 20
        while "refused us" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        sink.stop(1)
    assert "the broker at 127.0.0.1:%d refused us: Not authorized" % broker.port in caplog.text
    assert "1 readings buffered" in caplog.text
    assert len(MqttSink(config["mqtt"]).spool) == 1    # kept on disk for the next start

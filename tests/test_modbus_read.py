"""`meterkit read` on a Modbus RTU bus, end to end: the project's simulator (the core's maps and
codec, slave side) serves a simulated SDM630 (slave 1) and SDM120 (slave 2) on a pseudo-terminal;
the real `meterkit read` polls them and publishes to a real mosquitto. The exact float32 values
arrive; slave 2 switched off mid-run is reported offline while slave 1 keeps its intervals, and
online again when it returns. Bad answers (CRC, exception, short, garbled) are counted and named."""
import json
import sys
import time

import pytest

from broker import Broker
from firmware_harness import Subscriber
from test_read import Process

from meterkit.modbus import regmap
from meterkit_host import hostconfig
from meterkit_host.simulate_modbus import BusSim, PtyBus, Slave


def _config(tmp_path, pty, broker_port, more=""):
    path = tmp_path / "read.toml"
    path.write_text("""
[[sources]]
name = "bus"
port = "%s"
profile = "modbus"
line = "19200 8E1"
timeout_ms = 100
retry_s = 2
[[sources.meters]]
model = "sdm630"
slave = 1
[[sources.meters]]
model = "sdm120"
slave = 2
[sources.intervals]
current = 1
voltage = 2
energy = 30
%s
[mqtt]
url = "mqtt://127.0.0.1:%d"
spool = "%s"
diagnostics_interval = 1
""" % (pty, more, broker_port, tmp_path / "spool"))
    return path


def _values(subscriber, meter):
    """{obis: value text} of the newest state document of a meter."""
    docs = subscriber.on("smartmeter/%s/state" % meter)
    merged = {}
    for doc in docs:
        for code, v in json.loads(doc)["values"].items():
            merged[code] = v
    return merged


def test_two_meters_exact_values_and_a_dead_one_comes_back(tmp_path):
    sdm630 = Slave(regmap.load("sdm630"), 1)
    sdm120 = Slave(regmap.load("sdm120"), 2, {"voltage_l1": "229.9", "power_in": "-100.5"})
    bus = BusSim([sdm630, sdm120])
    pty = PtyBus(bus)
    with Broker(tmp_path) as broker, Subscriber(broker.port) as sub:
        read = Process("read", "--config", str(_config(tmp_path, pty.path, broker.port)))
        try:
            assert sub.wait_until(lambda: sub.on("smartmeter/sdm120-2/state") and
                                  sub.on("smartmeter/sdm630-1/power/power_in"), 30), "\n".join(read.errors)
            # the exact float32 values, as the meter's shortest decimals, on the harmonized topics
            assert json.loads(sub.on("smartmeter/sdm630-1/voltage/voltage_l1")[0])["value"] == 230.1
            raw = sub.on("smartmeter/sdm630-1/voltage/voltage_l1")[0].decode()
            assert raw.endswith('"value": 230.1}')
            assert sub.on("smartmeter/sdm120-2/power/power_out")[0].decode().endswith('"value": 100.5}')
            assert sub.on("smartmeter/sdm630-1/energy/energy_in")[0].decode().endswith('"value": 12345.67}')
            # every value, as the raw state document states it (value, unit, OBIS)
            assert sub.wait_until(lambda: _values(sub, "sdm630-1").keys() >= sdm630.expected().keys(), 20)
            for meter, slave in (("sdm630-1", sdm630), ("sdm120-2", sdm120)):
                got = _values(sub, meter)
                for code, text in slave.expected().items():
                    assert str(got[code]["value"]) == text or json.dumps(got[code]["value"]) == text, code
            pf = json.loads(sub.on("smartmeter/sdm630-1/state")[0])["values"]
            assert '"1-0:33.7.0": {"value": 0.992, "unit": ""}' in sub.on("smartmeter/sdm630-1/state")[0].decode() \
                or pf.get("1-0:33.7.0") is None
            assert sub.on("homeassistant/sensor/meterkit_sdm630-1/voltage_l1/config")
            assert sub.on("smartmeter/sdm630-1/status")[-1] == b"online"

            # slave 2 switched off: reported offline; slave 1 keeps reading its currents each second
            sdm120.on = False
            off_at = time.monotonic()
            assert sub.wait_until(lambda: sub.on("smartmeter/sdm120-2/status")[-1:] == [b"offline"], 20), \
                read.errors[-20:]
            before = len(sub.on("smartmeter/sdm630-1/current/current_l1"))
            time.sleep(4)
            assert len(sub.on("smartmeter/sdm630-1/current/current_l1")) - before >= 3
            diag = json.loads(sub.on("smartmeter/sdm120-2/diagnostics")[-1])
            assert diag["online"] is False and diag["timeout"] >= 3
            assert "no answer" in diag["last_error"]
            assert time.monotonic() - off_at < 15

            # back on: online again and read again
            count = len(sub.on("smartmeter/sdm120-2/state"))
            sdm120.on = True
            assert sub.wait_until(lambda: sub.on("smartmeter/sdm120-2/status")[-1:] == [b"online"], 20)
            assert sub.wait_until(lambda: len(sub.on("smartmeter/sdm120-2/state")) > count, 20)

            # misbehaviour: counted and named, the reader keeps going
            for fault in ("crc", "exception", "short", "garble"):
                sdm630.fault = fault
                assert sub.wait_until(lambda: sdm630.fault is None, 10)
            n = len(sub.on("smartmeter/sdm630-1/state"))
            assert sub.wait_until(lambda: len(sub.on("smartmeter/sdm630-1/state")) > n + 2, 20)
            read.wait_err("CRC error", timeout=10)
            read.wait_err("exception 2 (illegal data address)", timeout=10)
        finally:
            assert read.stop() == 0
            pty.close()
    assert read.proc.returncode == 0


def test_command_line_form_and_config_errors():
    args = type("Args", (), dict(port="/dev/ttyUSB0", profile="sdm630", line="19200 8E1", slave=3,
                                 key=None, auth_key=None, mqtt=None, record=None, stdout=True,
                                 spool=None, base="smartmeter"))()
    config = hostconfig.from_args(args)
    source = config["sources"][0]
    assert source["meters"] == [{"model": "sdm630", "slave": 3, "id": "", "map": ""}]
    assert source["line"] == "19200 8E1"
    with pytest.raises(hostconfig.ConfigError) as caught:
        hostconfig.validate({"stdout": True, "sources": [
            {"port": "/dev/x", "profile": "modbus", "meters": [{"model": "sdm999", "slave": 1}]},
            {"port": "/dev/y", "profile": "modbus", "meters": [{"model": "sdm120", "slave": 1},
                                                                {"model": "sdm120", "slave": 1}]},
            {"port": "/dev/z", "profile": "sdm120", "intervals": {"voltage": 0}}]})
    problems = caught.value.problems
    assert any(p.startswith("sources[0].meters: [0].model: must be one of sdm630") for p in problems)
    assert "sources[2].intervals: must be 1..86400" in problems


def test_simulator_command_serves_a_pty(tmp_path):
    sim = Process("simulate-modbus", "--meter", "sdm120:5", "--pty", "--set", "5:voltage_l1=231.7")
    try:
        path = sim.wait_err("/dev/")[0].strip()
        import serial
        from meterkit.modbus import rtu
        with serial.Serial(path, timeout=2) as port:
            port.write(rtu.read_request(5, 4, 0, 2))
            answer = port.read(9)
        assert answer[:3] == b"\x05\x04\x04"
        import struct
        assert struct.unpack(">f", rtu.parse_response(answer, 5, 4, 2))[0] == pytest.approx(231.7)
    finally:
        sim.stop()


def test_export_wide_one_column_per_quantity(tmp_path):
    import io
    from meterkit_host import export
    from meterkit_host.recorder import open_store
    from meterkit.modbus import poll
    from meterkit_host.simulate_modbus import BusSim as _Bus
    sdm = Slave(regmap.load("sdm120"), 1)
    bus = poll.Bus([poll.Meter(sdm.map, 1)])
    sim = _Bus([sdm])
    reading = None
    while reading is None:
        request = bus.poll(0)
        for kind, _, what in bus.answer(request, sim.feed(request.frame)[0], 0):
            if kind == "reading":
                reading = what
    store = open_store("sqlite:///%s" % (tmp_path / "r.db"))
    store.store_reading(reading, received=1714521600)
    store.close()
    args = type("Args", (), dict(db="sqlite:///%s" % (tmp_path / "r.db"), start=1714521600,
                                 end=1714521601, meter=None, names=None, wide=True))()
    out = io.StringIO()
    assert export.run(args, out) == 0
    header, row = out.getvalue().splitlines()[:2]
    columns = dict(zip(header.split(","), row.split(",")))
    assert columns["time"] == "2024-05-01T00:00:00Z" and columns["meter"] == "sdm120-1"
    assert any(k.startswith("voltage_l1") or k.startswith("1-0:32.7.0") for k in columns)
    assert "230.1" in row.split(",")

"""The firmware's `modbus` profile on the MicroPython unix port: its meter "UART" is a TCP socket
to the project's Modbus simulator (as the P1 simulator is bridged in firmware_harness), two slaves
on one bus, a real mosquitto. The exact float32 values arrive; slave 2 switched off mid-run is
reported offline while slave 1 keeps its intervals, and online again when it returns."""
import json
import time

from broker import Broker
from firmware_harness import Firmware, Subscriber

from meterkit.modbus import regmap
from meterkit_host.simulate_modbus import BusSim, Slave, TcpBus

import sys
from conftest import CORE
sys.path.insert(0, str(CORE))
from dongle import config  # noqa: E402


def _merged(sub, meter):
    merged = {}
    for doc in sub.on("smartmeter/%s/state" % meter):
        merged.update(json.loads(doc)["values"])
    return merged


def test_modbus_profile_two_slaves_one_switched_off(tmp_path):
    sdm630 = Slave(regmap.load("sdm630"), 1)
    sdm120 = Slave(regmap.load("sdm120"), 2, {"voltage_l1": "229.9", "power_in": "-100.5"})
    served = TcpBus(BusSim([sdm630, sdm120]))
    meter = {"profile": "modbus", "modbus": "sdm630:1 sdm120:2", "line": "19200 8E1",
             "intervals": "current=1 voltage=2 energy=30", "modbus_timeout_ms": 100,
             "modbus_retry_s": 2}
    with Broker(tmp_path) as broker, Subscriber(broker.port) as sub:
        fw = Firmware(tmp_path, {"meter": meter, "publish": {"diagnostics_interval": 1}},
                      broker.port, served.port).start()
        try:
            assert sub.wait_until(lambda: sub.on("smartmeter/sdm120-2/state") and
                                  sub.on("smartmeter/sdm630-1/state"), 60), "\n".join(fw.lines[-30:])
            assert sub.on("smartmeter/sdm630-1/voltage/voltage_l1")[0].decode().endswith('"value": 230.1}')
            assert sub.on("smartmeter/sdm120-2/power/power_out")[0].decode().endswith('"value": 100.5}')
            assert sub.wait_until(lambda: _merged(sub, "sdm630-1").keys() >= sdm630.expected().keys(), 30)
            for name, slave in (("sdm630-1", sdm630), ("sdm120-2", sdm120)):
                got = _merged(sub, name)
                for code, text in slave.expected().items():
                    assert str(got[code]["value"]) == text or json.dumps(got[code]["value"]) == text, code
            # the same bytes as the host: the state document is written by the shared topics code
            assert b'"1-0:33.7.0": {"value": 0.992, "unit": ""}' in sub.on("smartmeter/sdm630-1/state")[0]
            assert sub.wait_until(lambda: sub.on("smartmeter/sdm630-1/status")[-1:] == [b"online"], 10)

            sdm120.on = False
            assert sub.wait_until(lambda: sub.on("smartmeter/sdm120-2/status")[-1:] == [b"offline"], 30), \
                "\n".join(fw.lines[-30:])
            before = len(sub.on("smartmeter/sdm630-1/current/current_l1"))
            time.sleep(4)
            assert len(sub.on("smartmeter/sdm630-1/current/current_l1")) - before >= 3
            diag = [json.loads(p) for p in sub.on("smartmeter/%s/diagnostics" % _node(sub))]
            assert diag, sorted(set(sub.topics())) and diag[-1]["meters_offline"] == 1 and diag[-1]["modbus_timeout"] >= 3

            sdm120.on = True
            count = len(sub.on("smartmeter/sdm120-2/state"))
            assert sub.wait_until(lambda: sub.on("smartmeter/sdm120-2/status")[-1:] == [b"online"], 30)
            assert sub.wait_until(lambda: len(sub.on("smartmeter/sdm120-2/state")) > count, 20)
            sdm630.fault = "crc"
            assert sub.wait_until(lambda: sdm630.fault is None, 10)
            served.hang_up()                       # the end of the run (--exit-at-end)
            stats = fw.wait(60)
            assert stats["modbus_crc"] >= 1 and stats["meters_online"] == 2
            assert "CRC error" in "\n".join(fw.lines) or stats["last_error"]
        finally:
            fw.stop()
            served.close()


def _node(sub):
    """The dongle's own id: the diagnostics topic that carries meters_online."""
    for topic in sub.topics():
        if topic.endswith("/diagnostics") and "sdm" not in topic:
            return topic.split("/")[1]
    return "none"


def test_config_checks_the_modbus_fields():
    cfg, errors = config.validate({"meter": {"profile": "modbus", "modbus": "sdm630:1 sdm999:2",
                                             "line": "19200 8X1", "intervals": "voltage=0"}})
    assert "meter.modbus: 'sdm999': the models are sdm630, sdm530, sdm230, sdm120, sdm72dm, abb_b23" in errors
    assert any(e.startswith("meter.line: must be empty or like '19200 8E1'") for e in errors)
    assert any(e.startswith("meter.intervals: must be name=seconds") for e in errors)
    assert len([e for e in errors if e.startswith("meter.modbus:")]) == 1   # the reason, once
    cfg, errors = config.validate({"meter": {"profile": "modbus"}})
    assert errors == ["meter.modbus: the modbus profile needs its meters, e.g. sdm630:1"]
    cfg, errors = config.validate({"meter": {"profile": "modbus", "modbus": "sdm630:1 sdm120:1"}})
    assert "meter.modbus: slave 1 is listed twice" in errors
    cfg, errors = config.validate({"meter": {"profile": "modbus", "modbus": "sdm630:1:heatpump b23:7"}})
    assert errors == []

"""`meterkit smgw` and [[gateways]] sources of `meterkit read` against simulated Smart Meter
Gateways (tests/smgw_sim.py: HTTPS on 127.0.0.1, a self-signed certificate made here, digest auth,
each family's pages or JSON, several meters with advancing readings).

End to end, per family: the real `meterkit read` process publishes to a real mosquitto and stores
into SQLite and a real PostgreSQL, with the gateway's values and capture times. Then the bad days,
with the service run in-process: wrong password, changed certificate, 500, a hang, a second
session, no or several session cookies, malformed pages — each a clear message, and the service
goes on (readings resume once the gateway behaves). The lockout guard holds whatever fails.
"""
import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
from decimal import Decimal

import pytest

from broker import Broker, Subscriber, make_ca
from smgw_sim import STEP_S, T0, Gateway, expected, wait_until
from test_read import Process
from test_record import postgres, postgres_server   # noqa: F401 (the fixtures)

from meterkit_host import hostconfig, read
from meterkit_host.recorder import open_store
from meterkit_host.smgw.session import Http
from meterkit_host.smgw.guard import HostLock

FAMILIES = ("ppc", "theben", "emh")
METERKIT = [sys.executable, "-m", "meterkit_host"]


def gateway_entry(gw, tmp_path, **fields):
    entry = {"name": "smgw", "url": gw.url, "user": gw.user, "password": gw.password,
             "family": "auto", "interval_s": 1, "backoff_max_s": 1, "timeout_s": 2,
             "max_logins_per_hour": 120, "state_dir": str(tmp_path / "state")}
    entry.update(fields)
    return entry


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return "sqlite:///%s" % (tmp_path / "readings.db")
    return request.getfixturevalue("postgres")


# -- end to end: the real command, a real broker, both databases -------------------------------

def write_toml(path, gateway, broker_port, db, spool):
    lines = ["[[gateways]]"]
    for key, value in gateway.items():
        lines.append("%s = %s" % (key, json.dumps(value)))
    lines += ["[mqtt]", 'url = "mqtt://127.0.0.1:%d"' % broker_port, "diagnostics_interval = 1",
              "spool = %s" % json.dumps(str(spool)),
              "[recorder]", "url = %s" % json.dumps(db)]
    path.write_text("\n".join(lines) + "\n")


def collect(subscriber, want, timeout=60):
    """Messages until every (topic, predicate) in want matched: {topic: payload}."""
    got, deadline = {}, time.monotonic() + timeout
    while not all(topic in got and check(got[topic]) for topic, check in want.items()):
        assert time.monotonic() < deadline, "missing: %s" % sorted(
            t for t, check in want.items() if not (t in got and check(got[t])))
        topic, _, _, payload = subscriber.next_message().split(" ", 3)
        got[topic] = payload
    return got


def harmonized(value, at):
    return lambda payload: json.loads(payload, parse_float=Decimal) == {
        "timestamp": at, "value": Decimal(value)}


@pytest.mark.parametrize("family", FAMILIES)
def test_readings_reach_mqtt_and_the_recorder(tmp_path, family, db_url):
    energy_meter = {"ppc": "1lgz0072999211", "theben": "UP-1EBZ0100123456",
                    "emh": "1EMH0012345678"}[family]
    other_meter = {"ppc": "7elster000123", "theben": "UP-7ITF0000004321",
                   "emh": "8KAM0000000042"}[family]
    to_kwh = (lambda text: str(Decimal(text) / 1000)) if family != "ppc" else str
    with Gateway(tmp_path, family) as gw, Broker(tmp_path) as broker:
        config = tmp_path / "read.toml"
        write_toml(config, gateway_entry(gw, tmp_path), broker.port, db_url, tmp_path / "spool")
        subscriber = Subscriber(broker.port, "#")
        service = Process("read", "--config", str(config))
        try:
            first = expected(family, T0)
            energy = to_kwh(first[energy_meter]["1-0:1.8.0"][0])
            root = "smartmeter/%s/" % energy_meter
            got = collect(subscriber, {
                root + "energy/energy_in": harmonized(energy, T0),
                root + "state": lambda p: json.loads(p)["meter_id"] == energy_meter,
                "smartmeter/%s/state" % other_meter: lambda p: True,
                "homeassistant/sensor/meterkit_smgw/firmware/config": lambda p: True,
                "homeassistant/sensor/meterkit_%s/energy_in/config" % energy_meter: lambda p: True,
                "smartmeter/smgw/diagnostics": lambda p: json.loads(p)["polls_ok"] >= 1,
                "smartmeter/smgw/state": lambda p: True})
            state = json.loads(got[root + "state"], parse_float=Decimal)
            assert state["timestamp"] == T0
            for obis, (value, unit) in first[energy_meter].items():
                assert state["values"][obis] == {"value": Decimal(value), "unit": unit}
            device = json.loads(got["homeassistant/sensor/meterkit_smgw/firmware/config"])["device"]
            firmware = {"ppc": "33918-34868", "theben": "3.0.12-abcdef01", "emh": "unknown"}[family]
            assert device["sw_version"] == firmware and device["name"] == "Smart Meter Gateway smgw"
            meter_device = json.loads(got["homeassistant/sensor/meterkit_%s/energy_in/config"
                                          % energy_meter])["device"]
            assert meter_device["model"] == "meter behind a Smart Meter Gateway"
            diagnostics = json.loads(got["smartmeter/smgw/diagnostics"])
            assert diagnostics["family"] == family and diagnostics["meters"] == len(first)
            gateway_state = json.loads(got["smartmeter/smgw/state"])
            assert abs(gateway_state["timestamp"] - time.time()) < 60   # the gateway's clock

            gw.advance()   # the next 15 minutes: new values, published with their capture time
            later = to_kwh(expected(family, T0 + STEP_S)[energy_meter]["1-0:1.8.0"][0])
            collect(subscriber, {root + "energy/energy_in": harmonized(later, T0 + STEP_S)})
            assert service.stop() == 0
        finally:
            subscriber.close()
            service.stop()
    store = open_store(db_url)
    rows = dict(((meter, at, name), (value, unit))
                for at, meter, name, value, unit in store.rows(T0 - 86400, T0 + 86400))
    store.close()
    for at in (T0, T0 + STEP_S):
        for meter, registers in expected(family, at).items():
            for obis, (value, unit) in registers.items():
                assert Decimal(rows[(meter, at, obis)][0]) == Decimal(value)   # exact digits
                assert rows[(meter, at, obis)][1] == unit
        assert Decimal(rows[(energy_meter, at, "energy_in")][0]) == Decimal(
            to_kwh(expected(family, at)[energy_meter]["1-0:1.8.0"][0]))
    assert all(meter != "smgw" for meter, _, _ in rows)   # the gateway's own reading has no numbers


# -- the service in-process: bad days -----------------------------------------------------------

class Service:
    """read.serve on a config with one or more gateways, printing JSON lines into a buffer."""

    def __init__(self, *gateways):
        self.config = hostconfig.validate({"gateways": list(gateways), "stdout": True})
        self.stop_event = threading.Event()
        self.out = io.StringIO()
        self.thread = threading.Thread(target=read.serve,
                                       args=(self.config, self.stop_event, self.out), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stop_event.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the service did not stop"

    def readings(self, meter=None):
        lines = [json.loads(line, parse_float=Decimal) for line in self.out.getvalue().splitlines()]
        return [line for line in lines if meter is None or line["meter_id"] == meter]

    def wait_reading(self, meter, at, timeout=30):
        wait_until(lambda: any(r["timestamp"] == at for r in self.readings(meter)), timeout,
                   "a reading of %s at %s" % (meter, at))


def iso(epoch, family):
    """How the reader writes a capture time: Theben's in UTC, the others' in Berlin time."""
    import datetime
    from zoneinfo import ZoneInfo
    zone = datetime.timezone.utc if family == "theben" else ZoneInfo("Europe/Berlin")
    return datetime.datetime.fromtimestamp(epoch, zone).isoformat()


METER = {"ppc": "1lgz0072999211", "theben": "UP-1EBZ0100123456", "emh": "1EMH0012345678"}


def logged(caplog, text, count=1, timeout=30):
    """The log lines containing text, once there are `count` of them."""
    try:
        wait_until(lambda: sum(text in r.getMessage() for r in caplog.records) >= count, timeout,
                   "%d log line(s) with %r" % (count, text))
    except AssertionError as e:
        raise AssertionError("%s; got:\n%s" % (e, "\n".join(r.getMessage()
                                                              for r in caplog.records)))
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.fixture(autouse=True)
def smgw_logs(caplog):
    caplog.set_level(logging.INFO, logger="meterkit")


def recovers(service, gw, family):
    """The gateway behaves again: the next capture time is read (the service kept running)."""
    gw.mode = "ok"
    gw.advance()
    service.wait_reading(METER[family], iso(gw.now(), family))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode,message", [
    ("error500", "answered HTTP 500"),
    ("hang", "no answer from 127.0.0.1:"),
    ("malformed", ""),
])
def test_a_misbehaving_gateway_is_named_and_survived(tmp_path, caplog, family, mode, message):
    with Gateway(tmp_path, family) as gw, Service(gateway_entry(gw, tmp_path)) as service:
        service.wait_reading(METER[family], iso(T0, family))
        gw.mode = mode
        if mode == "malformed":
            message = {"ppc": "not a number: '12,3,4'", "theben": "answer of 127.0.0.1:%d is not "
                       "JSON" % gw.port, "emh": "the meter list from 127.0.0.1:%d is not JSON"
                       % gw.port}[family]
        lines = logged(caplog, message)
        assert "smgw: " in lines[0] and "next try" in lines[0]
        if mode == "hang" and family == "theben":
            assert "stays silent when the user name or password is wrong" in lines[0]
        recovers(service, gw, family)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_wrong_password_is_named_and_retried(tmp_path, caplog, family):
    with Gateway(tmp_path, family) as gw, \
            Service(gateway_entry(gw, tmp_path, password="wrong")) as service:
        if family == "theben":
            logged(caplog, "refused user 'han-user' (HTTP 401")
        else:
            lines = logged(caplog, "refused user 'han-user' (HTTP 401", count=2)   # retried
            assert "wrong user name or password" in lines[0]
        assert service.thread.is_alive() and not service.readings(METER[family])


def test_theben_needs_the_md5_answer(tmp_path):
    """The simulated Conexa offers SHA-256 but checks MD5, like the firmware: requests' own
    choice fails, the family's forced MD5 works."""
    with Gateway(tmp_path, "theben") as gw:
        spec = hostconfig.validate({"gateways": [gateway_entry(gw, tmp_path)], "stdout": True})
        spec = spec["gateways"][0]
        with HostLock(spec["state_dir"], "127.0.0.1:%d" % gw.port, 5) as state:
            for force_md5, status in ((False, 401), (True, 200)):
                http = Http(spec, state, force_md5=force_md5)
                http.open()
                body = b'{"method": "smgw-info"}'
                page = http.fetch("POST", "/smgw/m2m/%s.sm/json" % gw.user, "smgw-info",
                                  data=body, headers={"X-Content-Length": str(len(body))})
                http.close()
                assert page.status == status


def test_a_changed_certificate_is_refused_until_accepted(tmp_path, caplog):
    with Gateway(tmp_path, "ppc") as gw:
        entry = gateway_entry(gw, tmp_path)
        with Service(entry) as service:
            service.wait_reading(METER["ppc"], iso(T0, "ppc"))
            assert logged(caplog, "pinned its certificate, SHA-256 " + gw.fingerprint)
            old, logins = gw.fingerprint, len(gw.logins)
            gw.new_certificate()
            lines = logged(caplog, "the certificate of 127.0.0.1:%d changed" % gw.port, count=2)
            assert "pinned SHA-256 %s, now %s" % (old, gw.fingerprint) in lines[0]
            assert "No credentials were sent" in lines[0] and "--accept-new-cert" in lines[0]
            assert len(gw.logins) == logins   # nothing reached the new certificate's owner
        path = tmp_path / "read.json"
        path.write_text(json.dumps({"gateways": [entry], "stdout": True}))
        done = subprocess.run(METERKIT + ["smgw", "--config", str(path), "--accept-new-cert"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "forgot the pin SHA-256 " + old in done.stdout
        caplog.clear()
        with Service(entry) as service:
            gw.advance()
            service.wait_reading(METER["ppc"], iso(gw.now(), "ppc"))
            assert logged(caplog, "pinned its certificate, SHA-256 " + gw.fingerprint)


def test_ppc_second_session_is_refused_and_waited_out(tmp_path, caplog):
    with Gateway(tmp_path, "ppc") as gw, Service(gateway_entry(gw, tmp_path)) as service:
        service.wait_reading(METER["ppc"], iso(T0, "ppc"))
        gw.mode = "second_session"   # a browser or TRuDI holds the one session
        line = logged(caplog, "sent a page without a session")[0]
        assert "another session is probably open" in line and "TRuDI" in line
        gw.session = None            # ... and logs out
        recovers(service, gw, "ppc")


@pytest.mark.parametrize("mode", ["no_cookie", "many_cookies"])
def test_ppc_session_cookies_missing_or_many(tmp_path, caplog, mode):
    with Gateway(tmp_path, "ppc") as gw:
        gw.mode = mode
        with Service(gateway_entry(gw, tmp_path)) as service:
            service.wait_reading(METER["ppc"], iso(T0, "ppc"))
            if mode == "no_cookie":
                assert logged(caplog, "set no session cookie; going on with the form token")
            gw.advance()
            service.wait_reading(METER["ppc"], iso(gw.now(), "ppc"))
            assert ("POST", "/cgi-bin/hanservice.cgi", "logout") in gw.requests


def test_two_logins_of_one_gateway_never_overlap(tmp_path, caplog):
    """Import and feed-in credentials on one PPC gateway: two sources, one session at a time."""
    with Gateway(tmp_path, "ppc") as gw:
        entries = [gateway_entry(gw, tmp_path, name=name) for name in ("import", "feedin")]
        with Service(*entries) as service:
            wait_until(lambda: sum(r.getMessage().count("new reading(s)") for r in caplog.records)
                       >= 6, 60, "three cycles of each source")
            assert not [r for r in caplog.records if "without a session" in r.getMessage()]
            assert {r["source"] for r in service.readings()} == {"import", "feedin"}


def test_the_lockout_guard_holds_whatever_fails(tmp_path, caplog):
    """At most max_logins_per_hour logins, failing ones included, also across a restart."""
    with Gateway(tmp_path, "ppc") as gw:
        gw.mode = "error500"
        entry = gateway_entry(gw, tmp_path, family="ppc", max_logins_per_hour=3)
        with Service(entry):
            logged(caplog, "answered HTTP 500", count=3)
            line = logged(caplog, "lockout guard: 3 logins to 127.0.0.1:%d in the last hour"
                          % gw.port)[0]
            assert "max_logins_per_hour = 3" in line
            time.sleep(3)   # three more intervals: no login
            assert len(gw.logins) == 3
        caplog.clear()
        with Service(entry):   # systemd restarts it: the budget is on disk
            logged(caplog, "lockout guard: 3 logins")
            time.sleep(2)
        assert len(gw.logins) == 3


def test_a_client_certificate_is_presented(tmp_path, caplog):
    paths = make_ca(tmp_path, "han-client")
    with Gateway(tmp_path, "emh", client_ca=paths["ca"]) as gw:
        with Service(gateway_entry(gw, tmp_path, name="nocert")):
            line = logged(caplog, "TLS with 127.0.0.1")[0]
            assert "set client_cert and client_key" in line
        with Service(gateway_entry(gw, tmp_path, client_cert=str(paths["cert"]),
                                   client_key=str(paths["key"]))) as service:
            service.wait_reading(METER["emh"], iso(T0, "emh"))


def test_ppc_daily_mode_reads_yesterdays_values(tmp_path):
    """--mode daily: yesterday's 15-minute values with their capture times, all of them."""
    import datetime
    from zoneinfo import ZoneInfo
    with Gateway(tmp_path, "ppc") as gw:
        db = tmp_path / "daily.db"
        env = dict(os.environ, METERKIT_SMGW_PASSWORD=gw.password,
                   STATE_DIRECTORY=str(tmp_path / "state"))
        done = subprocess.run(METERKIT + ["smgw", "--url", gw.url, "--user", gw.user, "--once",
                                          "--mode", "daily", "--record", "sqlite:///%s" % db],
                              capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stderr
    berlin = ZoneInfo("Europe/Berlin")
    today = datetime.datetime.now(berlin).replace(hour=0, minute=0, second=0, microsecond=0)
    start = int((today - datetime.timedelta(days=1)).timestamp())
    end = int((today + datetime.timedelta(minutes=15)).timestamp())
    store = open_store("sqlite:///%s" % db)
    rows = [(at, value) for at, meter, name, value, _ in store.rows(0, 1 << 40)
            if meter == METER["ppc"] and name == "1-0:1.8.0"]
    assert [at for at, _ in rows] == list(range(start, end + 1, STEP_S))
    for at, value in rows:
        assert Decimal(value) == Decimal(expected("ppc", at)[METER["ppc"]]["1-0:1.8.0"][0])


def test_once_prints_every_meter_and_fails_cleanly(tmp_path):
    with Gateway(tmp_path, "emh") as gw:
        env = dict(os.environ, METERKIT_SMGW_PASSWORD=gw.password,
                   STATE_DIRECTORY=str(tmp_path / "state"))
        argv = METERKIT + ["smgw", "--url", gw.url, "--user", gw.user, "--once", "--stdout"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert {line["meter_id"] for line in lines} == {"smgw-127-0-0-1", "1EMH0012345678",
                                                        "8KAM0000000042"}
        gw.mode = "error500"
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 1 and "answered HTTP 500" in done.stderr


@pytest.mark.parametrize("gateway,problem", [
    ({"url": "http://192.168.1.200", "user": "u", "password": "p"}, "gateways[0].url: must look"),
    ({"url": "https://192.168.1.200", "user": "u"}, "gateways[0]: give password or password_file"),
    ({"url": "https://192.168.1.200", "user": "u", "password": "p", "famly": "ppc"},
     "gateways[0].famly: unknown field"),
    ({"url": "https://192.168.1.200", "user": "u", "password": "p", "timezone": "Mars/Base"},
     "gateways[0].timezone: not a time zone"),
    ({"url": "https://192.168.1.200", "user": "u", "password": "p", "mode": "hourly"},
     "gateways[0].mode: must be one of interval, daily"),
])
def test_bad_gateway_configs_are_refused_with_their_path(gateway, problem):
    with pytest.raises(hostconfig.ConfigError) as e:
        hostconfig.validate({"gateways": [gateway], "stdout": True})
    assert any(p.startswith(problem) for p in e.value.problems), e.value.problems



def test_the_example_gateway_block_is_valid(tmp_path):
    """deploy/systemd/read.example.toml's commented [[gateways]] block, uncommented, loads."""
    import pathlib
    example = (pathlib.Path(__file__).resolve().parent.parent / "deploy" / "systemd"
               / "read.example.toml").read_text().splitlines()
    start = next(i for i, line in enumerate(example) if line.startswith("# [[gateways]]"))
    block = []
    for line in example[start:]:
        if not line.startswith("# "):
            break
        block.append(line[2:])
    doc = "\n".join(block).replace('password_file = "/etc/meterkit/smgw.password"',
                                   'password = "secret"')
    doc += '\nstate_dir = "%s"\n[recorder]\nurl = "sqlite:///%s/r.db"\n' % (tmp_path, tmp_path)
    doc = doc.replace('state_dir = ""', "")
    path = tmp_path / "read.toml"
    path.write_text(doc)
    config = hostconfig.load(str(path))
    gateway = config["gateways"][0]
    assert gateway["url"] == "https://192.168.1.200" and gateway["interval_s"] == 300
    assert gateway["max_logins_per_hour"] == 12 and config["sources"] == []

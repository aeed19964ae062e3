"""Home Assistant as a real client: the firmware on the unix port for a DSMR 5, a Smarty, an L+G
E450 and an EVN meter, a real mosquitto, and the pinned Home Assistant (tests/ha_harness.py)
onboarded with the MQTT integration added through its config flow. Everything is asserted
through HA's REST and websocket APIs: the devices and entities our discovery makes, their values,
the energy dashboard's validation, availability, HA's birth message, the update entity, and HA's
log. One HA start for all of it (the module's fixture); the tests run in file order on it.

    pytest -m homeassistant          # just this
"""
import json
import os
import socket
import threading
import time
from decimal import Decimal

import pytest

from broker import Broker
from firmware_harness import FIRMWARE_PROFILE, Firmware, Meter, Subscriber
from ha_harness import HomeAssistant, ha_venv, wait_until
from meterkit.harmonize import QUANTITY, harmonize
from meterkit.reading import Reading
from meterkit.stream import StreamDecoder
from ota_harness import Device, Serve, make_keys, make_release

from dongle import topics  # noqa: E402  (conftest puts firmware/lib on the path)

pytestmark = pytest.mark.homeassistant

KEY = "000102030405060708090A0B0C0D0E0F"
AUTH_KEY = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
METERS = {   # simulator profile -> (key, auth key, HA device model)
    "dsmr5": (None, None, "DSMR P1 meter"),
    "smarty": (KEY, None, "DSMR meter, encrypted P1 (Smarty)"),
    "e450": (KEY, AUTH_KEY, "DLMS/COSEM meter (HDLC)"),
    "evn": (KEY, None, "DLMS/COSEM meter (M-Bus)")}
FIRST = 3   # telegrams a meter sends on each new connection

# What HA must make of each sensor, written out here rather than read from discovery.py:
# quantity or diagnostics key -> (device_class, state_class, unit)
SENSORS = {"power": ("power", "measurement", "W"),
           "energy": ("energy", "total_increasing", "kWh"),
           "voltage": ("voltage", "measurement", "V"),
           "current": ("current", "measurement", "A"),
           "gas": ("gas", "total_increasing", "m\u00b3"),
           "frames_ok": (None, "total_increasing", None),
           "frames_errors": (None, "total_increasing", None),
           "heap_free": ("data_size", "measurement", "B"),
           "rssi": ("signal_strength", "measurement", "dBm"),
           "uptime_s": ("duration", "total_increasing", "s")}
DIAGNOSTICS = ("frames_ok", "frames_errors", "heap_free", "rssi", "uptime_s")


class MeterServer:
    """A simulated meter on TCP (the unix port's UART): FIRST telegrams to every new connection
    (the firmware reconnects after a restart), more on more(); what each stated is kept."""

    def __init__(self, profile):
        key, auth_key, _ = METERS[profile]
        self.meter = Meter(profile, key, auth_key, seed=sorted(METERS).index(profile))   # own ids
        self.decoder = StreamDecoder(bytes.fromhex(key) if key else None,
                                     bytes.fromhex(auth_key) if auth_key else None)
        self.expected = []
        self.sent = 0   # on the current connection: the dongle's frames_ok counts from its start
        self.connections = 0
        self.reading = None   # the last frame decoded here: the meter's id as the dongle sees it
        self.lock = threading.Lock()
        self.client = None
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(4)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                if self.client is not None:
                    self.client.close()
                self.client = client
                self.sent = 0
            self.more(FIRST)
            self.connections += 1

    def more(self, count=1):
        with self.lock:
            for _ in range(count if self.client is not None else 0):
                frames, expected = self.meter.next_frames()
                data = b"".join(frames)
                events = self.decoder.feed(data)
                self.reading = [e for e in events if isinstance(e, Reading)][-1]
                try:
                    self.client.sendall(data)
                except OSError:
                    return
                self.expected.append(expected)
                self.sent += 1

    def close(self):
        self.server.close()
        with self.lock:
            if self.client is not None:
                self.client.close()


def harmonized_last(server):
    """{harmonized name: exact value} of the last telegram, from what the simulator stated."""
    reading = Reading()
    for obis, value in server.expected[-1].items():
        if obis != "timestamp":
            reading.add(obis, value[0], value[1])
    return dict(harmonize(reading))


class Dongle:
    """One firmware on the unix port, kept running (no --exit-at-end): killed and started again
    by the tests. dsmr5 runs laid out as `meterkit deploy` leaves it (ota_harness.Device), with a
    release server, for the update entity; the others run from the tree."""

    def __init__(self, profile, tmp, broker_port, ota_url=None, keys=None):
        self.profile = profile
        self.server = MeterServer(profile)
        key, auth_key, self.model = METERS[profile]
        folder = tmp / profile
        folder.mkdir()
        meter = {"profile": FIRMWARE_PROFILE[profile], "key": key or "", "auth_key": auth_key or "",
                 "source": "tcp:127.0.0.1:%d" % self.server.port}
        mqtt = {"host": "127.0.0.1", "port": broker_port}
        publish = {"diagnostics_interval": 1}
        if ota_url:
            self.fw = Device(folder, keys, extra_config={
                "meter": meter, "mqtt": mqtt, "publish": publish,
                "ota": {"url": ota_url, "check_interval_s": 1}})
            self.argv, self.cwd = None, None
        else:
            self.fw = Firmware(folder, {"meter": meter, "publish": publish}, broker_port)
            self.argv = [a for a in self.fw.argv if a != "--exit-at-end"]
            # the dongle's node id is a hash of METERKIT_DIR (the cwd otherwise, the same for all)
            self.env = dict(os.environ, METERKIT_DIR=str(self.fw.directory))
            self.env.pop("MICROPYPATH", None)

    def start(self):
        if self.argv is None:
            self.fw.start()
        else:
            self.fw.launch(self.argv, self.env, self.fw.cwd)
        self.fw.lines = []
        return self

    def kill(self):
        self.fw.stop()   # SIGKILL: no goodbye, the broker sends the last will

    # what HA should know the meter as
    @property
    def name(self):
        return topics.meter_name(self.server.reading)

    @property
    def key(self):
        return topics.ha_key(self.server.reading)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ha")
    venv = ha_venv()   # installs on first use; a failure fails here, loudly
    keys = make_keys(tmp)
    release = make_release(tmp, keys, "0.2.0")
    with Broker(tmp) as broker, Subscriber(broker.port, topic="homeassistant/#") as sub, \
            Serve(release) as url, HomeAssistant(venv, tmp) as ha:
        entry = ha.add_mqtt(broker.port)
        dongles = {}
        try:
            for profile in METERS:
                dongles[profile] = Dongle(profile, tmp, broker.port,
                                          url if profile == "dsmr5" else None, keys).start()
            yield {"ha": ha, "broker": broker, "sub": sub, "dongles": dongles, "entry": entry}
        finally:
            for dongle in dongles.values():
                dongle.kill()
                dongle.server.close()


def devices_by_name(ha):
    return dict((d["name"], d) for d in ha.ws("config/device_registry/list")
                if d["manufacturer"] == "meterkit")


def entities_of(ha, device_id):
    return [e for e in ha.ws("config/entity_registry/list") if e["device_id"] == device_id]


def sensors_of(ha, dongle):
    """(device, {name: entity registry entry}) of the meter's sensors, named by their
    unique_id: '<device identifier>_<name>'; (None, {}) before HA made the device."""
    device = devices_by_name(ha).get("Smart meter " + dongle.name)
    if device is None:
        return None, {}
    identifier = device["identifiers"][0][1]
    return device, dict((e["unique_id"][len(identifier) + 1:], e)
                        for e in entities_of(ha, device["id"])
                        if e["entity_id"].startswith("sensor."))


def sensor_kinds(dongle):
    """{unique_id suffix: SENSORS key} for every sensor the meter's device should have."""
    kinds = dict((name, QUANTITY[name]) for name in harmonized_last(dongle.server))
    kinds.update((key, key) for key in DIAGNOSTICS)
    return kinds


def values_arrived(ha, world, dongle):
    """True once HA shows every value of the dongle's last telegram, exactly."""
    if dongle.server.reading is None:
        return False   # the firmware has not connected to its meter yet
    device, sensors = sensors_of(ha, dongle)
    if device is None:
        return False
    states = ha.states()
    want = harmonized_last(dongle.server)
    for name, entry in sensors.items():
        state = states.get(entry["entity_id"], {}).get("state")
        if name in want and (state in (None, "unknown", "unavailable")
                             or Decimal(state) != Decimal(str(want[name]))):
            return False
        if name == "frames_ok" and state != str(dongle.server.sent):
            return False
    return True


def wait_for_values(world, timeout=90):
    """Until HA shows every dongle's last telegram. A value published before HA subscribed to
    its topic is not seen (state topics are not retained; a real meter sends the next one within
    seconds): so while HA's entities exist but lag, the meter sends one more telegram now and
    then, and the newest is the one to see."""
    ha = world["ha"]
    for dongle in world["dongles"].values():
        deadline = time.monotonic() + timeout
        nudged = time.monotonic()
        while not values_arrived(ha, world, dongle):
            now = time.monotonic()
            if now > deadline:
                device, sensors = sensors_of(ha, dongle)
                states = ha.states()
                raise AssertionError("HA does not show %s's values (%s sent, last %s):\n%s" % (
                    dongle.profile, dongle.server.sent, harmonized_last(dongle.server),
                    "\n".join("%s %s" % (e["entity_id"],
                                        states.get(e["entity_id"], {}).get("state"))
                              for e in sensors.values()) or "no device: %s" % sorted(
                                  devices_by_name(ha))))
            if now - nudged > 3 and sensors_of(ha, dongle)[1]:
                dongle.server.more(1)
                nudged = now
            time.sleep(0.25)


def test_one_device_per_meter_every_entity_exact(world):
    ha = world["ha"]
    wait_for_values(world)
    devices = devices_by_name(ha)
    assert len(devices) == 4, sorted(devices)
    states = ha.states()
    for dongle in world["dongles"].values():
        device = devices["Smart meter " + dongle.name]
        assert (device["manufacturer"], device["model"], device["sw_version"]) == (
            "meterkit", dongle.model, "0.1.0")
        # the identifier carries the meter id as sent (hex for DSMR): unique_ids are unchanged
        (domain, identifier), = device["identifiers"]
        assert domain == "mqtt" and identifier.endswith("_" + dongle.key), identifier
        if dongle.profile in ("dsmr5", "smarty"):
            assert dongle.key != dongle.name and dongle.name.isalnum(), dongle.name
        entries = entities_of(ha, device["id"])
        kinds = sensor_kinds(dongle)
        sensors = [e for e in entries if e["entity_id"].startswith("sensor.")]
        updates = [e for e in entries if e["entity_id"].startswith("update.")]
        assert len(updates) == 1 and len(sensors) == len(kinds), [e["entity_id"] for e in entries]
        want = harmonized_last(dongle.server)
        slug = "smart_meter_" + dongle.name.lower()
        for entry in sensors:
            name = entry["unique_id"][len(identifier) + 1:]
            assert entry["unique_id"] == identifier + "_" + name and name in kinds, entry
            assert entry["entity_id"].startswith("sensor.%s_" % slug), entry["entity_id"]
            state = states[entry["entity_id"]]
            attributes = state["attributes"]
            got = (attributes.get("device_class"), attributes.get("state_class"),
                   attributes.get("unit_of_measurement"))
            assert got == SENSORS[kinds[name]], (entry["entity_id"], got)
            if name in want:
                assert Decimal(state["state"]) == Decimal(str(want[name])), (
                    entry["entity_id"], state["state"], want[name])
            assert entry["entity_category"] == ("diagnostic" if name in DIAGNOSTICS else None)
        diagnostics = dict((e["unique_id"][len(identifier) + 1:], states[e["entity_id"]]["state"])
                           for e in sensors)
        assert diagnostics["frames_ok"] == str(dongle.server.sent)
        assert diagnostics["frames_errors"] == "0"
        assert int(diagnostics["heap_free"]) > 0 and int(diagnostics["uptime_s"]) >= 0
        assert diagnostics["rssi"] == "unknown"   # the unix port has no radio: null
        update = states[updates[0]["entity_id"]]
        assert updates[0]["entity_id"] == "update.%s_firmware" % slug
        assert updates[0]["entity_category"] == "config"
        assert update["attributes"]["device_class"] == "firmware"
        assert update["attributes"]["installed_version"] == "0.1.0"


def test_energy_dashboard_validates(world):
    ha = world["ha"]
    wait_for_values(world)
    entity = {}   # (profile, harmonized name) -> entity id
    for dongle in world["dongles"].values():
        for name, entry in sensors_of(ha, dongle)[1].items():
            entity[dongle.profile, name] = entry["entity_id"]
    flows_from, flows_to = [], []
    for (profile, name), entity_id in sorted(entity.items()):
        if name.startswith("energy_in"):
            flows_from.append({"stat_energy_from": entity_id, "stat_cost": None,
                               "entity_energy_price": None, "number_energy_price": None})
        elif name.startswith("energy_out"):
            flows_to.append({"stat_energy_to": entity_id, "stat_compensation": None,
                             "entity_energy_price": None, "number_energy_price": None})
    gas = [entity_id for (profile, name), entity_id in entity.items() if name == "gas"]
    assert len(flows_from) >= 4 and len(flows_to) >= 4 and gas, sorted(entity)
    sources = [{"type": "grid", "flow_from": flows_from, "flow_to": flows_to,
                "cost_adjustment_day": 0}]
    sources += [{"type": "gas", "stat_energy_from": g, "stat_cost": None,
                 "entity_energy_price": None, "number_energy_price": None} for g in gas]
    ha.ws("energy/save_prefs", energy_sources=sources)
    ha.ws("meterkit_probe/compile_statistics")
    listed = dict((s["statistic_id"], s) for s in ha.ws("recorder/list_statistic_ids",
                                                         statistic_type="sum"))
    for source in flows_from + flows_to:
        stat = source.get("stat_energy_from") or source.get("stat_energy_to")
        assert listed[stat]["statistics_unit_of_measurement"] == "kWh", listed.get(stat)
    for g in gas:
        assert listed[g]["statistics_unit_of_measurement"] == "m\u00b3", listed.get(g)
    report = ha.ws("energy/validate")
    problems = [issue for group in report["energy_sources"] for issue in group]
    problems += [issue for group in report["device_consumption"] for issue in group]
    assert problems == [], json.dumps(report, indent=1)
    assert len(report["energy_sources"]) == len(sources)


def test_last_will_and_restart(world):
    ha = world["ha"]
    wait_for_values(world)
    dongles = world["dongles"].values()

    def ours(states):
        return [s for e, s in states.items() if e.startswith(("sensor.smart_meter_",
                                                               "update.smart_meter_"))]
    for dongle in dongles:
        dongle.kill()
    wait_until(lambda: all(s["state"] == "unavailable" for s in ours(ha.states())), 30,
               what="every entity unavailable after the dongles were killed")
    assert len(ours(ha.states())) >= 4 * (1 + len(DIAGNOSTICS) + 4)
    connections = [dongle.server.connections for dongle in dongles]
    for dongle in dongles:
        dongle.start()   # reconnects to its meter, which sends FIRST new telegrams
    wait_until(lambda: [d.server.connections for d in dongles] == [n + 1 for n in connections],
               30, what="every dongle reading its meter again")
    wait_for_values(world)   # the new telegrams' values, not the ones HA had before
    assert not [s["entity_id"] for s in ours(ha.states()) if s["state"] == "unavailable"]
    # a restarted dongle remembers its meter (name and HA key): nothing moved to a new device
    devices = devices_by_name(ha)
    assert len(devices) == 4, sorted(devices)
    for device in devices.values():
        kinds = [e["entity_id"].split(".")[0] for e in entities_of(ha, device["id"])]
        assert kinds.count("update") == 1 and kinds.count("sensor") > len(DIAGNOSTICS), kinds


def test_home_assistant_online_makes_the_dongles_announce_again(world):
    """HA's birth message (homeassistant/status online, sent each time its MQTT integration
    connects: here after a reload of the entry) makes every dongle send its configs again with
    its next reading, and the values come back into the re-made entities."""
    ha, sub = world["ha"], world["sub"]
    wait_for_values(world)
    seen = len(sub.messages)
    status, answer = ha.rest("POST", "/api/config/config_entries/entry/%s/reload" % world["entry"])
    assert status == 200, answer

    def after():
        with sub.lock:
            return sub.messages[seen:]
    wait_until(lambda: [m for m in after() if m[0] == "homeassistant/status" and m[1] == b"online"],
               30, what="HA's birth message")
    for dongle in world["dongles"].values():
        dongle.server.more(1)
    for dongle in world["dongles"].values():
        wanted = "homeassistant/sensor/%s/frames_ok/config" % (
            devices_by_name(ha)["Smart meter " + dongle.name]["identifiers"][0][1])
        wait_until(lambda: [m for m in after() if m[0] == wanted and not m[2]], 30,
                   what="%s announced again" % dongle.profile)
    wait_for_values(world)


def test_update_entity_installs_the_served_release(world):
    ha = world["ha"]
    dongle = world["dongles"]["dsmr5"]
    wait_for_values(world)
    entity_id = "update.smart_meter_%s_firmware" % dongle.name.lower()
    state = wait_until(lambda: (lambda s: s if s["attributes"].get("latest_version") == "0.2.0"
                                else None)(ha.states()[entity_id]), 60,
                       what="the update entity seeing 0.2.0")
    assert state["state"] == "on"   # an update is available
    assert state["attributes"]["installed_version"] == "0.1.0"
    assert state["attributes"]["title"] == "meterkit"
    ha.call_service("update", "install", {"entity_id": entity_id})
    dongle.fw.wait_for("boot: app 0.2.0 (trial)", 120)
    state = wait_until(lambda: (lambda s: s if s["attributes"].get("installed_version") == "0.2.0"
                                else None)(ha.states()[entity_id]), 90,
                       what="the update entity showing 0.2.0 installed")
    assert state["state"] == "off" and state["attributes"]["latest_version"] == "0.2.0"
    device = devices_by_name(ha)["Smart meter " + dongle.name]
    assert device["sw_version"] == "0.2.0"


def test_log_holds_nothing_about_our_discovery(world):
    """No warning or error that names MQTT, discovery, our topics, devices or entities; the
    rest (integrations onboarding sets up without their packages here) is shown, not failed."""
    ha = world["ha"]
    ours = ("mqtt", "meterkit", "smartmeter", "homeassistant/", "smart_meter", "Smart meter",
            "sensor.", "update.", "discovery", "energy", "statistic")
    records = ha.log_records()
    mine = [r for r in records if r[1].startswith(("homeassistant.components.mqtt",
                                                   "homeassistant.components.sensor",
                                                   "homeassistant.components.update",
                                                   "homeassistant.components.energy",
                                                   "homeassistant.helpers.entity"))
            or any(word in r[2].split("\n", 1)[0] for word in ours)]
    mine = [r for r in mine if "custom integration meterkit_probe" not in r[2]]
    print("\n".join("%s [%s] %s" % (level, logger, text.split("\n", 1)[0][:200])
                    for level, logger, text in records))
    assert mine == [], "\n\n".join("%s [%s] %s" % r for r in mine)
    issues = [i for i in ha.ws("repairs/list_issues")["issues"]
              if i["domain"] in ("mqtt", "sensor", "update", "energy", "recorder")]
    assert issues == [], issues   # e.g. a deprecated discovery option would raise one

"""dongle/hw/esp32.py (and the ESP32 parts of hw/image.py) run on the MicroPython unix port
against stand-ins of machine, network and esp32 written to MicroPython's documented behaviour
(tests/esp32_standins/). The whole app runs with METERKIT_HW=esp32 (hw.load() on the unix port).
"""
import json
import os
import pathlib
import subprocess

from conftest import CORE, PEERS, ROOT, micropython_binary, run_micropython, vector_bytes

STANDINS = ROOT / "tests" / "esp32_standins"


def dsmr5_telegram():
    for v in json.loads((PEERS / "ndokter_dsmr_parser.json").read_text()):
        if v["id"] == "dsmr_parser/TELEGRAM_V5":
            return vector_bytes(v)
    raise AssertionError("TELEGRAM_V5 vector missing")


def mbus_frames():
    for v in json.loads((PEERS / "nooxnet_smart_meter_mbus_dlms.json").read_text()):
        return vector_bytes(v), v["key_hex"]


def run(code):
    """Run code on the unix port with the stand-ins importable; its printed lines."""
    prelude = "import sys\nsys.path.insert(0, %r)\n" % str(STANDINS)
    return run_micropython(prelude + code, extra_path=[STANDINS]).strip().splitlines()


BOARD_P1 = ('{"name": "esp32-p1", "uart": {"id": 2, "rx": 16, "tx": 17, "rxbuf": 8192}, '
            '"inverts_rx": False, "request_pin": 4, "led": {"pin": 2, "active_low": False}, '
            '"button": {"pin": 0}, "default_profile": "dsmr5"}')
BOARD_C3 = ('{"name": "esp32c3-p1", "uart": {"id": 1, "rx": 20, "tx": 21, "rxbuf": 8192}, '
            '"inverts_rx": True, "request_pin": 3, "led": {"pin": 8, "active_low": True}, '
            '"button": None, "default_profile": "dsmr5"}')


def test_meter_port_reads_and_decodes_a_dsmr5_meter_with_the_p1_line_applied():
    out = run("""
import asyncio, machine
from dongle.hw import esp32 as hw
from dongle import profiles
from meterkit.stream import StreamDecoder
from meterkit.reading import Reading
board = %s
machine.wire(16, %r * 3, profiles.DSMR5)   # P1: inverted at the pin, no inverter on the board
port = hw.MeterPort(board, profiles.DSMR5, None)
print("request", machine.PINS[4].mode == machine.Pin.OUT, machine.PINS[4].value())
uart = machine.UARTS[-1]
print("uart", uart.id, uart.rx, uart.tx, uart.rxbuf, uart.inits[-1][:4],
      uart.inits[-1][4] == machine.UART.INV_RX)
async def main():
    decoder, readings, buf = StreamDecoder(framings=("p1",)), [], bytearray(512)
    while len(readings) < 3:
        n = await port.readinto(buf)
        readings += [e for e in decoder.feed(buf[:n]) if isinstance(e, Reading)]
    print("readings", len(readings), readings[0].values[0][0], len(readings[0].values))
    port.close()
    print("closed", not uart.active)
asyncio.run(main())
""" % (BOARD_P1, dsmr5_telegram()))
    assert out[0] == "request True 1"
    assert out[1] == "uart 2 16 17 8192 (115200, 8, None, 1) True"
    assert out[2].startswith("readings 3 ") and int(out[2].split()[-1]) > 10
    assert out[3] == "closed True"


def test_board_inverter_means_no_uart_inversion_and_a_wrong_line_reads_garbage():
    out = run("""
import asyncio, machine
from dongle.hw import esp32 as hw
from dongle import profiles
board = %s
machine.wire(20, b"/ISK5" * 10, (115200, 8, None, 1, False))  # the board's NPN undid the P1 inversion
machine.WIRES[20].repeat = True
port = hw.MeterPort(board, profiles.DSMR5, None)
print(machine.UARTS[-1].inits[-1][4])
async def main():
    buf = bytearray(512)
    n = await port.readinto(buf)
    print(bytes(buf[:min(n, 5)]))
    port.set_line(profiles.MBUS_8E1)
    n = await port.readinto(buf)
    print(machine.UARTS[-1].inits[-1][:4], bytes(buf[:min(n, 5)]) != b"/ISK5")
asyncio.run(main())
""" % BOARD_C3)
    assert out == ["0", "b'/ISK5'", "(2400, 8, 0, 1) True"]


def test_auto_search_sets_the_uart_line_until_an_mbus_meter_decodes():
    raw, key = mbus_frames()
    out = run("""
import asyncio, machine, os
from binascii import unhexlify
from dongle.hw import esp32 as hw
from dongle import profiles
from dongle.reader import Reader
from dongle.spool import Spool
board = %s
board["request_pin"] = None
machine.wire(16, %r, profiles.MBUS_8E1)
machine.WIRES[16].repeat = True          # the meter sends again and again
auto = profiles.AutoLine(profiles.lines("auto"), first=profiles.DSMR5, window_ms=30)
port = hw.MeterPort(board, auto.line, None)
try:
    os.mkdir("/tmp/h20-spool")
except OSError:
    pass
stats = {"meter_bytes": 0, "readings": 0, "line_switches": 0}
for k in ("frames_ok", "frames_crc", "frames_auth", "frames_replay", "frames_format",
          "skipped_bytes", "throttled", "dropped_oversize"):
    stats[k] = 0
reader = Reader(port, auto, Spool("/tmp/h20-spool", 4, 65536), stats, unhexlify(%r), None,
                profiles.framings("auto"))
async def main():
    task = asyncio.create_task(reader.run())
    for _ in range(400):
        if auto.locked:
            break
        await asyncio.sleep_ms(10)
    task.cancel()
    print("locked", auto.locked, profiles.describe(auto.line))
    print("uart", machine.UARTS[-1].inits[-1], "switches", stats["line_switches"] > 0)
asyncio.run(main())
""" % (BOARD_P1, raw, key))
    assert out[0] == "locked True 2400 8E1"
    assert out[1] == "uart (2400, 8, 0, 1, 0) switches True"


WIFI_PRELUDE = """
import asyncio, network
from dongle.hw import esp32 as hw
_sleep_ms = asyncio.sleep_ms
asyncio.sleep_ms = lambda ms: _sleep_ms(1)   # the Wi-Fi waits take 15-20 s of real time
network.AIR[:] = [dict(ssid="home", password="secret", rssi=-61, authmode=3),
                  dict(ssid="cafe", password="", rssi=-80, authmode=0),
                  dict(ssid="", password="", rssi=-40, authmode=3),
                  dict(ssid=b"bad\\xff", password="", rssi=-50, authmode=0),
                  dict(ssid="near", password="x", rssi=-30, authmode=4, wrong_key=204)]
"""


def test_wifi_connects_keeps_up_after_a_drop_and_reports_rssi():
    out = run(WIFI_PRELUDE + """
wifi = hw.Wifi("home", "secret")
async def main():
    print(wifi.connected, wifi.rssi())
    await wifi.keep_up()
    print(wifi.connected, wifi.rssi())
    saved = network.AIR[:]
    network.AIR[:] = []
    network.drop()                      # the router reboots: the driver keeps reconnecting
    await wifi.keep_up()
    print(wifi.connected, wifi.rssi())
    network.AIR[:] = saved
    await wifi.keep_up()
    print(wifi.connected, wifi.rssi())
    wifi.configure("cafe", "")
    print(wifi.connected)
    await wifi.keep_up()
    print(wifi.connected, wifi.rssi())
asyncio.run(main())
""")
    assert out == ["False None", "True -61", "False None", "True -61", "False", "True -80"]


def test_wifi_scan_maps_strongest_first_without_hidden_or_undecodable_names():
    out = run(WIFI_PRELUDE + "print(hw.Wifi('', '').scan())")
    assert out == ["[('near', -30, True), ('home', -61, True), ('cafe', -80, False)]"]


def test_try_connect_names_success_wrong_password_and_missing_network():
    out = run(WIFI_PRELUDE + """
wifi = hw.Wifi("home", "secret")
async def main():
    for ssid, password in (("home", "secret"), ("home", "wrong"), ("gone", "x"), ("near", "y")):
        print(await wifi.try_connect(ssid, password))
    print(wifi.connected, network.WLAN(network.STA_IF).status())
    await wifi.keep_up()                 # the configured network comes back
    print(wifi.connected)
asyncio.run(main())
""")
    assert out[0] == "(True, 'connected, got address 192.168.1.23')"
    assert out[1] == "(False, 'wrong password')"
    assert out[2] == "(False, 'network not found')"
    assert out[3] == "(False, 'wrong password (the WPA handshake timed out)')"
    assert out[4].startswith("False ") and out[5] == "True"


def test_access_point_button_led_watchdog_and_the_small_functions():
    out = run("""
import machine, network
from dongle.hw import esp32 as hw
board = %s
ap = hw.AccessPoint()
print(ap.active)
ap.up("meterkit-1234")
print(ap.active, ap.ip, network.WLAN(network.AP_IF).config("essid"),
      network.WLAN(network.AP_IF).config("authmode") == network.AUTH_OPEN)
ap.down()
print(ap.active)
button = hw.Button(board, "")
print(button.pressed(), machine.PINS[0].pull == machine.Pin.PULL_UP)
machine.LEVELS[0] = 0
print(button.pressed())
print(hw.Button(dict(board, button=None), "").pressed())
led = hw.Led(board)
led.set(True); a = machine.PINS[2].value()
led.set(False); b = machine.PINS[2].value()
c3 = hw.Led({"led": {"pin": 8, "active_low": True}})
c3.set(True); c = machine.PINS[8].value()
print(a, b, c, hw.Led({"led": None}).set(True))
dog = hw.Watchdog(30000)
dog.feed(); dog.feed()
print(machine.WDTS[-1].timeout, machine.WDTS[-1].feeds)
print(hw.free_heap() > 0, hw.unique_id(), hw.NAME, hw.DNS_PORT)
print(repr(hw.data_dir(["main.py"])), hw.board_roots(""), hw.WEB_ROOT)
try:
    hw.reset()
except SystemExit:
    print("reset", len(machine.RESETS))
""" % BOARD_P1)
    assert out == ["False", "True 192.168.4.1 meterkit-1234 True", "False", "False True", "True",
                   "False", "1 0 0 None", "30000 2", "True 240ac4123456 esp32 53",
                   "'' ['/boards'] %s/firmware/www" % ROOT, "reset 1"]


def test_web_root_follows_the_app_tree_on_the_device():
    """/apps/<v>/lib/dongle/hw/esp32.py -> /apps/<v>/www; /lib/... or frozen code -> /www."""
    def web_root(path):
        return "/".join(path.split("/")[:-4]) + "/www"   # the expression in hw/esp32.py
    source = (CORE / "dongle" / "hw" / "esp32.py").read_text()
    assert 'WEB_ROOT = "/".join(__file__.split("/")[:-4]) + "/www"' in source
    assert web_root("/apps/0.2.0/lib/dongle/hw/esp32.py") == "/apps/0.2.0/www"
    assert web_root("/lib/dongle/hw/esp32.mpy") == "/www"
    assert web_root("dongle/hw/esp32.py") == "/www"


def test_image_streams_into_the_next_partition_verifies_and_boots_it():
    out = run("""
import asyncio, esp32, os, hashlib
from binascii import hexlify
os.putenv("METERKIT_HW", "esp32")
from dongle.hw import image
from dongle import ota
slot = image.next_slot("/nonexistent")
print(type(slot).__name__, slot.size, slot.part.label)
payload = b"\\xe9" + bytes(range(256)) * 40          # 10241 bytes: 3 blocks, the last padded
entry = {"size": len(payload), "sha256": hexlify(hashlib.sha256(payload).digest()).decode()}
async def get(server, path, sink, limit):
    for at in range(0, len(payload), 1000):
        sink(payload[at:at + 1000])
    return len(payload)
ota.get = get
asyncio.run(ota.flash_image(None, entry, slot))
print(bytes(esp32.FLASH["ota_1"][:len(payload)]) == payload, esp32.FLASH["ota_1"][len(payload)])
slot.set_boot()
print(esp32.OTADATA["boot"], esp32.OTADATA["state"])
image.mark_valid("/nonexistent")
print(esp32.OTADATA["state"])
entry["sha256"] = "00" * 32
try:
    asyncio.run(ota.flash_image(None, entry, image.next_slot("/nonexistent")))
except ota.Rejected as e:
    print("rejected", e)
""")
    assert out[0] == "EspSlot 65536 ota_1"
    assert out[1] == "True 255"
    assert out[2] == "ota_1 new"
    assert out[3] == "valid"
    assert out[4].startswith("rejected hash mismatch")


def test_the_whole_app_runs_on_the_esp32_hardware_layer(tmp_path):
    """dongle.app with METERKIT_HW=esp32: the UART reads a DSMR5 meter, Wi-Fi joins, the
    watchdog is fed, the status names the platform. Only the storage is moved: the device's
    LittleFS root ("" in hw/esp32.py) is a temporary folder here, and the ports are free ones."""
    (tmp_path / "config.json").write_text(json.dumps({
        "wifi": {"ssid": "home", "password": "secret-pass"}, "meter": {"profile": "dsmr5"},
        "board": {"name": "esp32-p1"}, "http": {"port": 0}}))
    out = run("""
import asyncio, machine, network, os
os.putenv("METERKIT_HW", "esp32")
from dongle.hw import esp32 as hw
hw.data_dir = lambda argv: %r
hw.board_roots = lambda data: [%r]
hw.DNS_PORT = 0
network.AIR[:] = [dict(ssid="home", password="secret-pass", rssi=-58, authmode=3)]
machine.wire(16, %r, (115200, 8, None, 1, True))
machine.WIRES[16].repeat = True
from dongle import app as dongle_app
a = dongle_app.App(["main.py"])
async def stop_after_readings():
    for _ in range(500):
        if a.stats["readings"] >= 2 and a.wifi.connected:
            break
        await asyncio.sleep_ms(10)
    await asyncio.sleep_ms(1100)         # one housekeeping round
    a.restart = True
async def main():
    asyncio.create_task(stop_after_readings())
    await a.run()
asyncio.run(main())
from dongle import profiles
print("status", a.hw.NAME, a.board["name"], profiles.describe(a.auto.line),
      a.stats["readings"] >= 2, a.stats["rssi"])
print("hw", machine.PINS[4].value(), machine.WDTS[-1].timeout, machine.WDTS[-1].feeds > 0,
      machine.UARTS[-1].inits[-1][4] == machine.UART.INV_RX, machine.UARTS[-1].active)
""" % (str(tmp_path), str(ROOT / "boards"), dsmr5_telegram()))
    assert "status esp32 esp32-p1 115200 8N1 inverted True -58" in out, out
    assert "hw 1 30000 True True False" in out, out

"""ESP32 (and -C3/-S3): machine.UART for the meter, network.WLAN, machine.WDT, flash at /.

Can't run on the build machines; kept small and compile-checked with mpy-cross."""
import asyncio
import gc

import machine
import network

NAME = "esp32"
# the pages ship in the app tree, www/ beside lib/: /apps/<version>/www; /www for /lib or frozen code
WEB_ROOT = "/".join(__file__.split("/")[:-4]) + "/www"
DNS_PORT = 53


def data_dir(argv):
    return ""   # the LittleFS root: /config.json, /spool/


def board_roots(data):
    return ["/boards"]


class MeterPort:
    def __init__(self, board, line, source):
        self.board = board
        if board["request_pin"] is not None:   # P1: the meter sends only while this is high
            machine.Pin(board["request_pin"], machine.Pin.OUT, value=1)
        self.de = None   # RS485: the transceiver's DE/RE pin, high only while we send
        if board.get("rs485_de") is not None:
            self.de = machine.Pin(board["rs485_de"], machine.Pin.OUT, value=0)
        u = board["uart"]
        self.uart = machine.UART(u["id"], rx=u["rx"], tx=u["tx"], rxbuf=u["rxbuf"])
        self.set_line(line)
        self.stream = asyncio.StreamReader(self.uart)

    def set_line(self, line):
        baud, bits, parity, stop, inverted = line
        invert = machine.UART.INV_RX if inverted != self.board["inverts_rx"] else 0
        self.uart.init(baudrate=baud, bits=bits, parity=parity, stop=stop, invert=invert,
                       timeout=0)

    async def write(self, data):
        """Send a request (Modbus); with a DE/RE pin, drive the bus only while the bytes go out:
        txdone() is true once the last stop bit left, then the meter may answer."""
        if self.de is not None:
            self.de.value(1)
        self.uart.write(data)
        if self.de is not None:
            while not self.uart.txdone():   # a request is 8 bytes: a few ms at 9600 baud
                pass
            self.de.value(0)

    async def readinto(self, buf):
        """Fill buf with what the UART received (waits for at least one byte)."""
        return await self.stream.readinto(buf) or 0

    def close(self):
        self.uart.deinit()


class Wifi:
    def __init__(self, ssid, password):
        self.ssid, self.password = ssid, password
        self.wlan = network.WLAN(network.STA_IF)
        self.wlan.active(True)

    @property
    def connected(self):
        return self.wlan.isconnected()

    async def keep_up(self):
        """Connect (without blocking the loop) if we are not; give up after 20 s, retry later."""
        if self.wlan.isconnected() or not self.ssid:
            return
        # after a drop the driver is still reconnecting on its own, and connect() would raise
        # "Wifi Internal Error" (micropython#7139): stop it, then join the configured network
        self.wlan.disconnect()
        try:
            self.wlan.connect(self.ssid, self.password)
        except OSError:
            return   # the radio is busy: the next round tries again
        for _ in range(40):
            if self.wlan.isconnected():
                return
            await asyncio.sleep_ms(500)
        self.wlan.disconnect()

    def rssi(self):
        return self.wlan.status("rssi") if self.wlan.isconnected() else None

    def configure(self, ssid, password):
        self.ssid, self.password = ssid, password
        self.wlan.disconnect()

    def scan(self):
        """[(ssid, rssi, secure)], strongest first, hidden networks left out."""
        found = []
        for ssid, _, _, rssi, authmode, hidden in self.wlan.scan():
            try:
                name = ssid.decode()
            except UnicodeError:
                continue
            if name and not hidden:
                found.append((name, rssi, authmode != 0))
        found.sort(key=lambda network: -network[1])
        return found

    async def try_connect(self, ssid, password):
        """Join ssid for up to 15 s; the configured network is rejoined by keep_up()."""
        self.wlan.disconnect()
        # with the default endless reconnects status() says STAT_CONNECTING for ever; a few
        # retries, then it names the failure (wrong password, network not found)
        self.wlan.config(reconnects=3)
        try:
            self.wlan.connect(ssid, password)
            for _ in range(30):
                await asyncio.sleep_ms(500)
                if self.wlan.isconnected():
                    ip = self.wlan.ifconfig()[0]
                    self.wlan.disconnect()
                    return True, "connected, got address %s" % ip
            status = self.wlan.status()
            self.wlan.disconnect()
        finally:
            self.wlan.config(reconnects=-1)
        if status == network.STAT_WRONG_PASSWORD:
            return False, "wrong password"
        if status == getattr(network, "STAT_HANDSHAKE_TIMEOUT", None):   # how most APs refuse a key
            return False, "wrong password (the WPA handshake timed out)"
        if status == network.STAT_NO_AP_FOUND:
            return False, "network not found"
        return False, "could not connect (status %s)" % status


class AccessPoint:
    def __init__(self):
        self.wlan = network.WLAN(network.AP_IF)

    @property
    def active(self):
        return self.wlan.active()

    @property
    def ip(self):
        return self.wlan.ifconfig()[0]

    def up(self, essid):
        self.wlan.active(True)
        self.wlan.config(essid=essid, authmode=network.AUTH_OPEN)

    def down(self):
        self.wlan.active(False)


class Button:
    def __init__(self, board, data):
        button = board.get("button")
        self.pin = machine.Pin(button["pin"], machine.Pin.IN, machine.Pin.PULL_UP) if button else None

    def pressed(self):
        return self.pin is not None and self.pin.value() == 0


def reset():
    machine.reset()


class Watchdog:
    def __init__(self, timeout_ms):
        self.wdt = machine.WDT(timeout=timeout_ms)

    def feed(self):
        self.wdt.feed()


class Led:
    def __init__(self, board):
        led = board["led"]
        self.pin = machine.Pin(led["pin"], machine.Pin.OUT) if led else None
        self.active_low = bool(led and led.get("active_low"))

    def set(self, on):
        if self.pin is not None:
            self.pin.value(bool(on) != self.active_low)


def free_heap():
    return gc.mem_free()


def unique_id():
    return "".join("%02x" % b for b in machine.unique_id())

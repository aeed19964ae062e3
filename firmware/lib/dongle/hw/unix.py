"""The unix port: the meter "UART" is a TCP socket (the simulator) or a capture file, Wi-Fi is
always up, config and spool live in a local folder (argv[1], else $METERKIT_DIR)."""
import asyncio
import gc
import os
import sys

NAME = "unix"
# The app tree, www/ beside lib/: <tree>/lib/dongle/hw/unix.py. A frozen module is just
# "dongle/hw/unix.py"; its tree is the loader's folder, as / is on the ESP32.
if __file__.startswith("dongle/"):
    _APP = sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else "."
else:
    _APP = "/".join(__file__.split("/")[:-4]) or "."
WEB_ROOT = _APP + "/www"
DNS_PORT = int(os.getenv("METERKIT_DNS_PORT") or 5353)   # 53 needs root


def data_dir(argv):
    folder = argv[1] if len(argv) > 1 and not argv[1].startswith("-") else None
    folder = folder or os.getenv("METERKIT_DIR") or "meterkit-data"
    try:
        os.mkdir(folder)
    except OSError:   # exists
        pass
    return folder


def board_roots(data):
    return [data + "/boards", _APP + "/../boards"]   # firmware/ -> the repo's boards/


class MeterPort:
    """source: 'tcp:HOST:PORT' or a file path. The line settings are only recorded."""

    def __init__(self, board, line, source):
        if not source:
            raise ValueError("meter.source must be set on the unix port (tcp:HOST:PORT or a file)")
        self.source = source
        self.lines = [line]     # every line the runtime asked for, in order
        self._reader = self._writer = self._file = None

    def set_line(self, line):
        self.lines.append(line)

    async def readinto(self, buf):
        """Fill buf with what the meter sent; 0 at the end of the source."""
        if self.source.startswith("tcp:"):
            return await self._readinto_tcp(buf)
        if self._file is None:
            self._file = open(self.source, "rb")
        await asyncio.sleep(0)   # a file never waits; let the other tasks run between chunks
        return self._file.readinto(buf) or 0

    async def _connect(self):
        if self._reader is None:
            host, port = self.source[4:].rsplit(":", 1)
            self._reader, self._writer = await asyncio.open_connection(host, int(port))

    async def write(self, data):
        """Send to the meter (Modbus requests); TCP sources only."""
        await self._connect()
        self._writer.write(data)
        await self._writer.drain()

    async def _readinto_tcp(self, buf):
        await self._connect()
        try:
            n = await self._reader.readinto(buf)
        except OSError:
            n = 0
        if not n:
            self.close()
        return n or 0

    def close(self):
        if self._writer is not None:
            self._writer.close()
            sock = getattr(self._writer, "s", None)   # MicroPython's close() leaves the socket
            if sock is not None:                      # open until wait_closed(): the simulator
                sock.close()                          # would wait for this client forever
        if self._file is not None:
            self._file.close()
        self._reader = self._writer = self._file = None


class Wifi:
    connected = True

    def __init__(self, ssid, password):
        pass

    async def keep_up(self):
        pass

    def rssi(self):
        return None

    def configure(self, ssid, password):
        pass

    def scan(self):
        """[(ssid, rssi, secure)]: a fixed sample, there is no radio here."""
        return [("meterkit-lab", -48, True), ("Guest", -71, False)]

    async def try_connect(self, ssid, password):
        await asyncio.sleep(0)
        return bool(ssid), "simulated on the unix port: %s" % ("ok" if ssid else "no SSID")


class AccessPoint:
    """Simulated: the portal is the local HTTP port, its DNS answers with localhost."""
    ip = "127.0.0.1"

    def __init__(self):
        self.active = False
        self.essid = None

    def up(self, essid):
        self.active, self.essid = True, essid

    def down(self):
        self.active = False


class Button:
    """The "button" is held while the file DATA/button exists (tests press it that way)."""

    def __init__(self, board, data):
        self.path = data + "/button"

    def pressed(self):
        try:
            os.stat(self.path)
            return True
        except OSError:
            return False


def reset():
    pass   # the unix port restarts the App in-process (app.main)


class Watchdog:
    def __init__(self, timeout_ms):
        pass

    def feed(self):
        pass


class Led:
    def __init__(self, board):
        self.on = False

    def set(self, on):
        self.on = on


def free_heap():
    return gc.mem_free()


def unique_id():
    return "%08x" % (hash(os.getenv("METERKIT_DIR") or os.getcwd()) & 0xFFFFFFFF)

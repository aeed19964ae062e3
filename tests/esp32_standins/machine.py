"""Stand-in for MicroPython's `machine` on the ESP32 port, for running dongle/hw/esp32.py on the
unix port. A test fixture, not product code. Modelled on the documented behaviour:

* Pin(id, mode=-1, pull=-1, *, value=None): IN/OUT/OPEN_DRAIN, PULL_UP/PULL_DOWN; value() reads
  the level (an input reads LEVELS[id], else what its pull gives), value(x) drives an output.
* UART(id, baudrate, bits, parity, stop, *, tx, rx, rts, cts, txbuf, rxbuf, timeout,
  timeout_char, invert, flow): unknown keywords are a TypeError; bits 5-8, parity None/0 (even)/
  1 (odd), stop 1/2, invert a mask of INV_TX/INV_RX/INV_RTS/INV_CTS; init() takes the same line
  keywords again. read(n) -> bytes, or None when nothing is waiting; any() -> bytes waiting. A
  stream: asyncio.StreamReader polls it (ioctl MP_STREAM_POLL).
* WDT(id=0, timeout=5000) with feed(); reset() never returns; unique_id() -> the 6-byte MAC.

The meter is a signal on an RX pin (test hook): wire(pin, data_or_socket, line), line = (baud,
bits, parity, stop, inverted at the pin). A UART on that pin reads the bytes only when its
settings match the line (invert=INV_RX undoing an inverted pin); any mismatch reads garbage, as
a real UART does.
"""
import io
import select

PINS = {}      # id -> the last Pin made on it
LEVELS = {}    # id -> level an input pin reads (test hook: 0 = a button held down)
WIRES = {}     # rx pin -> Wire
UARTS = []     # every UART made, in order
WDTS = []
RESETS = []


class Pin:
    IN, OUT, OPEN_DRAIN = 1, 3, 7
    PULL_UP, PULL_DOWN = 2, 1
    IRQ_RISING, IRQ_FALLING = 1, 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None):
        if mode not in (-1, Pin.IN, Pin.OUT, Pin.OPEN_DRAIN):
            raise ValueError("invalid pin mode")
        if pull not in (-1, None, Pin.PULL_UP, Pin.PULL_DOWN):
            raise ValueError("invalid pull")
        self.id, self.mode, self.pull = id, mode, pull
        self.level = 0 if value is None else int(bool(value))
        PINS[id] = self

    def value(self, *level):
        if level:
            self.level = int(bool(level[0]))
            return None
        if self.mode == Pin.IN:
            return LEVELS.get(self.id, 1 if self.pull == Pin.PULL_UP else 0)
        return self.level

    def __call__(self, *level):
        return self.value(*level)


class Wire:
    """What arrives at an RX pin: bytes (consumed as read) or a connected TCP socket."""

    def __init__(self, source, line):
        self.line, self.repeat, self.source = line, False, source   # repeat: the meter sends again
        self.data = source if isinstance(source, (bytes, bytearray)) else None
        self.sock = None if self.data is not None else source
        if self.sock is not None:
            self.sock.setblocking(False)
            self.poller = select.poll()
            self.poller.register(self.sock, select.POLLIN)

    def ready(self):
        if self.sock is None:
            return len(self.data) > 0
        return bool(self.poller.poll(0))

    def take(self, n):
        if self.sock is None:
            chunk, self.data = self.data[:n], self.data[n:]
            if not self.data and self.repeat:
                self.data = self.source
            return bytes(chunk)
        try:
            chunk = self.sock.recv(n)
        except OSError:
            return b""
        if not chunk:   # the simulator hung up: the line goes quiet
            self.sock, self.data = None, b""
        return chunk


def wire(pin, source, line):
    """Test hook: the meter's signal on `pin` (bytes or a TCP socket), sent with `line`."""
    WIRES[pin] = Wire(source, line)


def _garbage(chunk):
    return bytes((b * 37 + 11) & 0xFF for b in chunk)   # deterministic, never the real bytes


class UART(io.IOBase):
    INV_TX, INV_RX, INV_RTS, INV_CTS = 1 << 22, 1 << 19, 1 << 23, 1 << 20
    RTS, CTS = 1, 2

    def __init__(self, id, baudrate=115200, bits=8, parity=None, stop=1, *, tx=None, rx=None,
                 rts=None, cts=None, txbuf=256, rxbuf=256, timeout=0, timeout_char=0, invert=0,
                 flow=0):
        if id not in (0, 1, 2):
            raise ValueError("UART(%s) does not exist" % id)
        if rxbuf < 0 or txbuf < 0:
            raise ValueError("buffer sizes must be >= 0")
        self.id, self.tx, self.rx, self.rxbuf = id, tx, rx, rxbuf
        self.inits = []   # every line setting applied, in order (tests read it)
        self.active = True
        UARTS.append(self)
        self.init(baudrate, bits, parity, stop, timeout=timeout, invert=invert)

    def init(self, baudrate=None, bits=None, parity=-1, stop=None, *, tx=None, rx=None,
             rts=None, cts=None, txbuf=None, rxbuf=None, timeout=None, timeout_char=None,
             invert=None, flow=None):
        if bits is not None and bits not in (5, 6, 7, 8):
            raise ValueError("invalid data bits")
        if parity not in (-1, None, 0, 1):
            raise ValueError("invalid parity")
        if stop is not None and stop not in (1, 2):
            raise ValueError("invalid stop bits")
        mask = UART.INV_TX | UART.INV_RX | UART.INV_RTS | UART.INV_CTS
        if invert is not None and invert & ~mask:
            raise ValueError("invalid inversion mask")
        last = self.inits[-1] if self.inits else (115200, 8, None, 1, 0)
        setting = (last[0] if baudrate is None else baudrate, last[1] if bits is None else bits,
                   last[2] if parity == -1 else parity, last[3] if stop is None else stop,
                   last[4] if invert is None else invert)
        self.inits.append(setting)
        self.active = True

    def _matches(self, line):
        baud, bits, parity, stop, inverted = line
        mine = self.inits[-1]
        return mine[:4] == (baud, bits, parity, stop) and bool(mine[4] & UART.INV_RX) == inverted

    def _wire(self):
        return WIRES.get(self.rx) if self.active else None

    def any(self):
        w = self._wire()
        return (len(w.data) if w.sock is None else int(w.ready())) if w else 0

    def read(self, n=-1):
        w = self._wire()
        if w is None or not w.ready():
            return None   # nothing waiting (timeout=0)
        chunk = w.take(self.rxbuf if n is None or n < 0 else min(n, self.rxbuf))
        if not chunk:
            return None
        return chunk if self._matches(w.line) else _garbage(chunk)

    def readinto(self, buf, n=-1):
        chunk = self.read(len(buf) if n < 0 else n)
        if chunk is None:
            return None
        buf[:len(chunk)] = chunk
        return len(chunk)

    def write(self, data):
        return len(data)

    def ioctl(self, request, arg):
        if request == 3:   # MP_STREAM_POLL: readable when bytes wait (or the socket has them)
            w = self._wire()
            return arg & 1 if w is not None and w.ready() else 0
        return 0

    def deinit(self):
        self.active = False


class WDT:
    def __init__(self, id=0, timeout=5000):
        if timeout < 1:
            raise ValueError("WDT timeout too short")
        self.timeout, self.feeds = timeout, 0
        WDTS.append(self)

    def feed(self):
        self.feeds += 1


def reset():
    RESETS.append(1)
    raise SystemExit("machine.reset()")   # the device reboots: nothing after it runs


def unique_id():
    return b"\x24\x0a\xc4\x12\x34\x56"

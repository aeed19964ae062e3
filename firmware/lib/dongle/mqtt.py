"""A small asyncio MQTT 3.1.1 client for the dongle (and the host: it runs on CPython too).

umqtt.simple blocks the event loop on connect and on reads; this one does not (the broker's name is
looked up once, on the first connect: MicroPython's DNS lookup blocks). One reader at a
time owns the socket (a lock), so `poll()` can run in its own task while another task publishes and
waits for its PUBACK. Every wait is bounded. A broken connection closes the socket, sets
`connected` to False and raises MQTTError with a reason; the caller reconnects and requeues.

Each bounded wait costs about 1 KB of short-lived heap on MicroPython (asyncio.wait_for makes
tasks), so waits that cannot block go without one, and incoming bytes are read in chunks: a
broker's small answer takes one bounded wait, not one per field.
"""
import asyncio

from . import unload

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    from operator import sub as ticks_diff
    from time import monotonic

    def ticks_ms():
        return int(monotonic() * 1000)

MAX_INCOMING = 16384    # bytes; a bigger packet from the broker is refused (ESP32 heap)
ACK_TIMEOUT_MS = 10000  # PUBACK/SUBACK/CONNACK and the rest of a started packet
IDLE_POLL_MS = 60000    # poll() wait when keepalive is off
READ_CHUNK = 64         # bytes asked of the socket at a time: any ack fits, few bytes wasted


class MQTTError(Exception):
    pass


async def _within(awaitable, ms):
    """await with a deadline in ms; raises asyncio.TimeoutError."""
    if hasattr(asyncio, "wait_for_ms"):
        return await asyncio.wait_for_ms(awaitable, ms)
    return await asyncio.wait_for(awaitable, ms / 1000)


def _packet(first, *fields):
    """One control packet, built in a single buffer: the first byte, the remaining length (7 bits
    a byte, low first), then the fields: bytes as they are, an int as 2 bytes (lengths, ids)."""
    size = 0
    for field in fields:
        size += 2 if isinstance(field, int) else len(field)
    at = 2
    while size >> 7 * (at - 1):
        at += 1
    packet = bytearray(at + size)
    packet[0] = first
    for i in range(1, at):
        packet[i] = (size >> 7 * (i - 1)) & 0x7F | (0x80 if i < at - 1 else 0)
    for field in fields:
        if isinstance(field, int):
            packet[at] = field >> 8
            packet[at + 1] = field & 0xFF
            at += 2
        else:
            packet[at:at + len(field)] = field
            at += len(field)
    return packet


def _os_reason(error):
    import errno
    code = getattr(error, "errno", None)
    name = errno.errorcode.get(code) if code else None
    return name or str(error) or type(error).__name__


class MQTTClient:
    def __init__(self, client_id, host, port=1883, user=None, password=None, keepalive=60,
                 ssl=None, will=None):
        self.client_id = client_id
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.ssl = ssl
        self.will = will              # (topic, payload, retain, qos)
        self.connected = False
        self._reader = self._writer = None
        self._callback = None
        self._read_lock = self._write_lock = None   # made in connect(), inside the event loop
        self._next_id = 0
        self._pending = {}           # packet id -> None while waiting, then the ack body
        self._inbox = b""            # bytes read but not yet handled: a packet's start
        self._last_sent = 0
        self._ping_sent = None       # ticks of an unanswered PINGREQ
        self._ip = None              # the broker's address, looked up once
        self.last_error = None       # why the last connection ended (or failed)

    def set_callback(self, fn):
        """fn(topic: bytes, payload: bytes) for every incoming PUBLISH."""
        self._callback = fn

    # -- connection ------------------------------------------------------------------------------

    async def connect(self, timeout=10):
        """Open the connection (bounded by timeout s); raises MQTTError with the reason. Its code
        runs once per connection: loaded for the call, forgotten after (mqtt_connect.py)."""
        from .mqtt_connect import connect
        try:
            await connect(self, timeout)
        finally:
            unload("mqtt_connect")

    async def disconnect(self):
        if self.connected:
            try:
                await self._send(b"\xe0\x00")
            except MQTTError:
                pass
            await self._close()

    async def _close(self):
        writer, self._reader, self._writer = self._writer, None, None
        self.connected = False
        if writer is not None:
            try:
                writer.close()
                await _within(writer.wait_closed(), 1000)
            except Exception:  # the socket is gone either way
                pass

    async def _lost(self, reason):
        """End the connection and raise: the stream position is unknown after any fault."""
        self.last_error = reason
        await self._close()
        raise MQTTError(reason)

    # -- sending ---------------------------------------------------------------------------------

    async def _send(self, packet):
        if not self.connected:
            raise MQTTError("not connected")
        writer, lock = self._writer, self._write_lock
        try:
            if not lock.locked():   # nobody drains: write now
                writer.write(packet)
                packet = None
                # MicroPython's stream writes at once and keeps what the socket did not take in
                # out_buf: with nothing kept, drain() only yields and needs no deadline or lock
                if not getattr(writer, "out_buf", True):
                    await writer.drain()
                    self._last_sent = ticks_ms()
                    return
            await lock.acquire()   # one drain at a time: each is bounded
            try:
                if packet:
                    writer.write(packet)
                await _within(writer.drain(), ACK_TIMEOUT_MS)
            finally:
                lock.release()
        except asyncio.TimeoutError:
            await self._lost("sending to the broker timed out")
        except (OSError, AttributeError) as e:  # AttributeError: closed under our feet
            await self._lost("connection lost while sending: %s" % _os_reason(e))
        self._last_sent = ticks_ms()

    async def publish(self, topic, payload, retain=False, qos=0):
        """Send one message; with qos=1 wait (bounded) for the broker's PUBACK, else raise."""
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1")
        if isinstance(payload, str):
            payload = payload.encode()
        if isinstance(topic, str):
            topic = topic.encode()
        first = 0x30 | (qos << 1) | (1 if retain else 0)
        if not qos:
            return await self._send(_packet(first, len(topic), topic, payload))
        self._next_id = packet_id = self._next_id % 0xFFFF + 1
        await self._acknowledged(_packet(first, len(topic), topic, packet_id, payload),
                                 packet_id, "PUBACK")

    async def subscribe(self, topic, qos=0):
        self._next_id = packet_id = self._next_id % 0xFFFF + 1
        name = topic.encode()
        packet = _packet(0x82, packet_id, len(name), name, bytes((qos,)))
        codes = await self._acknowledged(packet, packet_id, "SUBACK")
        if codes[0] == 0x80:
            raise MQTTError("the broker refused the subscription to %s" % topic)

    async def _acknowledged(self, packet, packet_id, name):
        """Send packet, then read packets (or let the task in poll() read them) until packet_id
        is acknowledged, within ACK_TIMEOUT_MS. Returns the ack's body after the packet id."""
        self._pending[packet_id] = None
        try:
            await self._send(packet)
            sent = ticks_ms()
            while self._pending.get(packet_id) is None:
                left = ACK_TIMEOUT_MS - ticks_diff(ticks_ms(), sent)
                if left <= 0:
                    raise MQTTError("no %s from the broker within %d ms" % (name, ACK_TIMEOUT_MS))
                await self._receive(left, packet_id)
            return self._pending[packet_id]
        finally:
            self._pending.pop(packet_id, None)

    # -- receiving -------------------------------------------------------------------------------

    async def poll(self, timeout_ms=None):
        """Handle one incoming packet; wait at most timeout_ms (default: until a ping is due).

        Sends PINGREQ on keepalive and ends the connection if the broker stops answering.
        Returns True if a packet was handled."""
        if not self.connected:
            raise MQTTError("not connected")
        wait = IDLE_POLL_MS
        if self.keepalive:   # ping when idle, fail when a ping goes unanswered
            period = self.keepalive * 1000
            now = ticks_ms()
            if self._ping_sent is not None:
                if ticks_diff(now, self._ping_sent) >= period:
                    await self._lost("the broker stopped answering (no PINGRESP)")
                wait = period - ticks_diff(now, self._ping_sent)
            elif ticks_diff(now, self._last_sent) >= period // 2:
                await self._send(b"\xc0\x00")
                self._ping_sent = ticks_ms()
                wait = period
            else:
                wait = period // 2 - ticks_diff(now, self._last_sent)
        if timeout_ms is not None:
            wait = min(wait, timeout_ms)
        return await self._receive(max(wait, 1))

    async def _receive(self, wait_ms, packet_id=None):
        """As the only reader, wait up to wait_ms for one packet and dispatch it; not if another
        reader got packet_id's ack meanwhile. True if a packet was handled."""
        lock = self._read_lock
        if lock.locked():
            try:
                await _within(lock.acquire(), wait_ms)
            except asyncio.TimeoutError:
                return False
        else:   # free: taken at once (or after a waiter it was handed to: bounded by its wait)
            await lock.acquire()
        try:
            if packet_id is not None and self._pending.get(packet_id) is not None:
                return False
            if not self.connected:
                raise MQTTError(self.last_error or "not connected")
            try:
                first, body = await self._read_packet(wait_ms)
            except asyncio.TimeoutError:
                return False
            await self._dispatch(first, body)
            return True
        finally:
            lock.release()

    async def _read_packet(self, wait_ms):
        """One packet as (first byte, body). The bytes are read in chunks into _inbox, so a wait
        that times out loses none: it raises asyncio.TimeoutError while no packet has begun; once
        one has, the rest must follow within ACK_TIMEOUT_MS or the connection ends."""
        begun = None   # ticks when a packet's first bytes arrived
        while True:
            inbox = self._inbox
            want = READ_CHUNK
            length = shift = 0
            for at in range(1, len(inbox)):   # the remaining length: 1-4 bytes
                byte = inbox[at]
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    if length > MAX_INCOMING:
                        await self._lost("the broker sent a %d-byte packet (limit %d)"
                                         % (length, MAX_INCOMING))
                    end = at + 1 + length
                    if len(inbox) >= end:
                        self._inbox = inbox[end:] if len(inbox) > end else b""
                        return inbox[0], inbox[at + 1:end]
                    want = max(want, end - len(inbox))
                    break
                shift += 7
                if shift > 21:
                    await self._lost("malformed packet from the broker: remaining length too long")
            if inbox:
                if begun is None:
                    begun = ticks_ms()
                wait_ms = max(ACK_TIMEOUT_MS - ticks_diff(ticks_ms(), begun), 1)
            try:
                data = await _within(self._reader.read(want), wait_ms)
            except asyncio.TimeoutError:
                if not inbox:
                    raise   # (an OSError on CPython 3.11+): nothing was consumed, the caller decides
                await self._lost("the broker stalled in the middle of a packet")
            except OSError as e:
                await self._lost("connection lost: %s" % _os_reason(e))
            if not data:
                await self._lost("the broker closed the connection in the middle of a packet"
                                 if inbox else "the broker closed the connection")
            self._inbox = inbox + data if inbox else data

    async def _dispatch(self, first, body):
        if first >> 4 == 3:   # PUBLISH
            qos = (first >> 1) & 3
            end = 2 + (body[0] << 8 | body[1]) if len(body) > 1 else 0
            if qos > 1 or not end:
                await self._lost("unsupported or malformed PUBLISH from the broker")
            if end + (2 if qos else 0) > len(body):
                await self._lost("malformed PUBLISH from the broker: topic runs past the packet")
            if self._callback:
                self._callback(body[2:end], body[end + 2:] if qos else body[end:])
            if qos:  # acknowledge after the callback ran: at-least-once
                await self._send(_packet(0x40, body[end:end + 2]))
        elif (first == 0x40 and len(body) == 2) or (first == 0x90 and len(body) >= 3):
            packet_id = body[0] << 8 | body[1]
            if packet_id in self._pending:
                self._pending[packet_id] = body[2:]   # SUBACK return codes; b"" for PUBACK
        elif first == 0xD0 and not body:
            self._ping_sent = None
        elif first == 0xB0 and len(body) == 2:
            pass  # UNSUBACK: we never unsubscribe, nothing waits for it
        else:
            await self._lost("malformed or unexpected packet from the broker (0x%02x, %d bytes)"
                             % (first, len(body)))

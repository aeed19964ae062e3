"""A small asyncio MQTT 3.1.1 client for the dongle (and the host: it runs on CPython too).

umqtt.simple blocks the event loop on connect and on reads; this one does not (the broker's name is
looked up once, on the first connect: MicroPython's DNS lookup blocks). One reader at a
time owns the socket (a lock), so `poll()` can run in its own task while another task publishes and
waits for its PUBACK. Every wait is bounded. A broken connection closes the socket, sets
`connected` to False and raises MQTTError with a reason; the caller reconnects and requeues.
"""
import asyncio
import socket

try:
    from time import ticks_ms, ticks_add, ticks_diff
except ImportError:  # CPython
    from time import monotonic

    def ticks_ms():
        return int(monotonic() * 1000)

    def ticks_add(a, b):
        return a + b

    def ticks_diff(a, b):
        return a - b

CONNACK_REASONS = (None, "unacceptable protocol version", "client identifier rejected",
                   "server unavailable", "bad user name or password", "not authorized")
MAX_INCOMING = 16384    # bytes; a bigger packet from the broker is refused (ESP32 heap)
ACK_TIMEOUT_MS = 10000  # PUBACK/SUBACK/CONNACK and the rest of a started packet
IDLE_POLL_MS = 60000    # poll() wait when keepalive is off


class MQTTError(Exception):
    pass


async def _within(awaitable, ms):
    """await with a deadline in ms; raises asyncio.TimeoutError."""
    if hasattr(asyncio, "wait_for_ms"):
        return await asyncio.wait_for_ms(awaitable, ms)
    return await asyncio.wait_for(awaitable, ms / 1000)


def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _text(value):
    if isinstance(value, str):
        value = value.encode()
    return len(value).to_bytes(2, "big") + value


def _packet(first, body):
    return bytes((first,)) + _varint(len(body)) + body


def _os_reason(error):
    import errno
    code = getattr(error, "errno", None)
    name = errno.errorcode.get(code) if code else None
    return name or str(error) or type(error).__name__


def tls_context(ca_pem=None):
    """An ssl context for MQTTClient(ssl=...), the same on MicroPython and CPython. With the
    broker's CA certificate (PEM) the broker is verified; without one the link is encrypted but
    the broker is not authenticated (the ESP32 has no CA store)."""
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_pem:
        import binascii
        lines = ca_pem.strip().split("\n")
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=binascii.a2b_base64("".join(lines[1:-1])))  # DER
    else:
        if hasattr(context, "check_hostname"):
            context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


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
        self._reader = self._writer = None
        self._callback = None
        self._read_lock = self._write_lock = None   # made in connect(), inside the event loop
        self._next_id = 0
        self._pending = {}           # packet id -> None while waiting, then the ack body
        self._last_sent = 0
        self._ping_sent = None       # ticks of an unanswered PINGREQ
        self._ip = None              # the broker's address, looked up once
        self.last_error = None       # why the last connection ended (or failed)

    def _address(self):
        """The broker's IP. MicroPython's open_connection looks names up synchronously, and a slow
        DNS at every reconnect would stall the meter reader (115200 baud fills the UART buffer in
        a fraction of a second), so the name is looked up once. TLS keeps the name: the
        certificate check needs it. (The unix port hands out raw sockaddrs: it keeps the name.)"""
        if self.ssl:
            return self.host
        if self._ip is None:
            found = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0][-1]
            self._ip = found[0] if isinstance(found, tuple) else self.host
        return self._ip

    @property
    def connected(self):
        return self._writer is not None

    def set_callback(self, fn):
        """fn(topic: bytes, payload: bytes) for every incoming PUBLISH."""
        self._callback = fn

    # -- connection ------------------------------------------------------------------------------

    async def connect(self, timeout=10):
        if self.connected:
            await self._close()
        where = "%s:%d" % (self.host, self.port)
        try:
            opened = asyncio.open_connection(self._address(), self.port, ssl=self.ssl or None)
            self._reader, self._writer = await _within(opened, timeout * 1000)
            self._read_lock, self._write_lock = asyncio.Lock(), asyncio.Lock()
            self._pending = {}
            self._ping_sent = None
            self._writer.write(self._connect_packet())   # a refused connect shows up here
            await _within(self._writer.drain(), timeout * 1000)
            self._last_sent = ticks_ms()
            first, body = await self._read_packet(timeout * 1000)
        except asyncio.TimeoutError:
            await self._lost("no answer from %s within %d s" % (where, timeout))
        except OSError as e:
            self._ip = None   # look the name up again next time: the broker may have moved
            await self._lost("cannot connect to %s: %s" % (where, _os_reason(e)))
        except ValueError as e:  # MicroPython's TLS handshake failures (bad certificate, ...)
            await self._lost("cannot connect to %s: TLS: %s" % (where, " ".join(str(e).split())))
        except MQTTError as e:
            await self._lost("cannot connect to %s: %s" % (where, e))
        if first != 0x20 or len(body) != 2:
            await self._lost("%s answered with packet 0x%02x instead of CONNACK" % (where, first))
        if body[1]:
            reason = CONNACK_REASONS[body[1]] if body[1] < 6 else "code %d" % body[1]
            await self._lost("%s refused the connection: %s" % (where, reason))
        self.last_error = None

    def _connect_packet(self):
        flags = 0x02  # clean session: undelivered readings live in our own spool, not the broker
        payload = _text(self.client_id)
        if self.will:
            topic, message, retain, qos = self.will
            flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
            payload += _text(topic) + _text(message)
        if self.user is not None:
            flags |= 0x80
            payload += _text(self.user)
            if self.password is not None:
                flags |= 0x40
                payload += _text(self.password)
        header = b"\x00\x04MQTT\x04" + bytes((flags,)) + self.keepalive.to_bytes(2, "big")
        return _packet(0x10, header + payload)

    async def disconnect(self):
        if self.connected:
            try:
                await self._send(b"\xe0\x00", ACK_TIMEOUT_MS)
            except MQTTError:
                pass
            await self._close()

    async def _close(self):
        writer, self._reader, self._writer = self._writer, None, None
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

    async def _send(self, data, timeout_ms):
        if not self.connected:
            raise MQTTError("not connected")
        async with self._write_lock:
            try:
                self._writer.write(data)
                await _within(self._writer.drain(), timeout_ms)
            except asyncio.TimeoutError:
                await self._lost("sending to the broker timed out")
            except (OSError, AttributeError) as e:  # AttributeError: closed under our feet
                await self._lost("connection lost while sending: %s" % _os_reason(e))
        self._last_sent = ticks_ms()

    def _new_id(self):
        self._next_id = self._next_id % 0xFFFF + 1
        return self._next_id

    async def publish(self, topic, payload, retain=False, qos=0):
        """Send one message; with qos=1 wait (bounded) for the broker's PUBACK, else raise."""
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1")
        if isinstance(payload, str):
            payload = payload.encode()
        body = _text(topic)
        if qos:
            packet_id = self._new_id()
            body += packet_id.to_bytes(2, "big")
            self._pending[packet_id] = None
        first = 0x30 | (qos << 1) | (1 if retain else 0)
        try:
            await self._send(_packet(first, body + payload), ACK_TIMEOUT_MS)
            if qos:
                await self._await_ack(packet_id, "PUBACK")
        finally:
            if qos:
                self._pending.pop(packet_id, None)

    async def subscribe(self, topic, qos=0):
        packet_id = self._new_id()
        self._pending[packet_id] = None
        try:
            body = packet_id.to_bytes(2, "big") + _text(topic) + bytes((qos,))
            await self._send(_packet(0x82, body), ACK_TIMEOUT_MS)
            codes = await self._await_ack(packet_id, "SUBACK")
        finally:
            self._pending.pop(packet_id, None)
        if codes[0] == 0x80:
            raise MQTTError("the broker refused the subscription to %s" % topic)

    async def _await_ack(self, packet_id, name):
        """Read packets (or let the task in poll() read them) until packet_id is acknowledged."""
        deadline = ticks_add(ticks_ms(), ACK_TIMEOUT_MS)
        while self._pending.get(packet_id) is None:
            left = ticks_diff(deadline, ticks_ms())
            if left <= 0:
                raise MQTTError("no %s from the broker within %d ms" % (name, ACK_TIMEOUT_MS))
            await self._receive(left, lambda: self._pending.get(packet_id) is None)
        return self._pending[packet_id]

    # -- receiving -------------------------------------------------------------------------------

    async def poll(self, timeout_ms=None):
        """Handle one incoming packet; wait at most timeout_ms (default: until a ping is due).

        Sends PINGREQ on keepalive and ends the connection if the broker stops answering.
        Returns True if a packet was handled."""
        if not self.connected:
            raise MQTTError("not connected")
        wait = await self._keepalive()
        if timeout_ms is not None:
            wait = min(wait, timeout_ms)
        return await self._receive(max(wait, 1), lambda: True)

    async def _keepalive(self):
        """Ping when idle, fail when a ping goes unanswered; returns ms until the next check."""
        if not self.keepalive:
            return IDLE_POLL_MS
        period = self.keepalive * 1000
        now = ticks_ms()
        if self._ping_sent is not None:
            if ticks_diff(now, self._ping_sent) >= period:
                await self._lost("the broker stopped answering (no PINGRESP)")
            return period - ticks_diff(now, self._ping_sent)
        idle = ticks_diff(now, self._last_sent)
        if idle >= period // 2:
            await self._send(b"\xc0\x00", ACK_TIMEOUT_MS)
            self._ping_sent = ticks_ms()
            return period
        return period // 2 - idle

    async def _receive(self, wait_ms, still_needed):
        """As the only reader, wait up to wait_ms for one packet and dispatch it."""
        try:
            await _within(self._read_lock.acquire(), wait_ms)
        except asyncio.TimeoutError:
            return False
        try:
            if not still_needed():   # another reader already got what we wait for
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
            self._read_lock.release()

    async def _read_packet(self, wait_ms):
        """One packet as (first byte, body). Only the wait for the first byte may time out
        quietly (nothing consumed yet); a packet cut short ends the connection."""
        try:
            first = (await _within(self._reader.readexactly(1), wait_ms))[0]
        except asyncio.TimeoutError:
            raise   # (an OSError on CPython 3.11+): nothing was consumed, the caller decides
        except EOFError:
            await self._lost("the broker closed the connection")
        except OSError as e:
            await self._lost("connection lost: %s" % _os_reason(e))
        try:
            body = await _within(self._read_rest(), ACK_TIMEOUT_MS)
        except asyncio.TimeoutError:
            await self._lost("the broker stalled in the middle of a packet")
        except EOFError:
            await self._lost("the broker closed the connection in the middle of a packet")
        except OSError as e:
            await self._lost("connection lost: %s" % _os_reason(e))
        return first, body

    async def _read_rest(self):
        length = shift = 0
        while True:
            byte = (await self._reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 21:
                await self._lost("malformed packet from the broker: remaining length too long")
        if length > MAX_INCOMING:
            await self._lost("the broker sent a %d-byte packet (limit %d)" % (length, MAX_INCOMING))
        return await self._reader.readexactly(length) if length else b""

    async def _dispatch(self, first, body):
        kind = first >> 4
        if kind == 3:
            await self._incoming_publish(first, body)
        elif (first == 0x40 and len(body) == 2) or (first == 0x90 and len(body) >= 3):
            packet_id = int.from_bytes(body[:2], "big")
            if packet_id in self._pending:
                self._pending[packet_id] = body[2:]   # SUBACK return codes; b"" for PUBACK
        elif first == 0xD0 and not body:
            self._ping_sent = None
        elif first == 0xB0 and len(body) == 2:
            pass  # UNSUBACK: we never unsubscribe, nothing waits for it
        else:
            await self._lost("malformed or unexpected packet from the broker (0x%02x, %d bytes)"
                             % (first, len(body)))

    async def _incoming_publish(self, first, body):
        qos = (first >> 1) & 3
        if qos > 1 or len(body) < 2:
            await self._lost("unsupported or malformed PUBLISH from the broker")
        end = 2 + int.from_bytes(body[:2], "big")
        if end + (2 if qos else 0) > len(body):
            await self._lost("malformed PUBLISH from the broker: topic runs past the packet")
        topic = bytes(body[2:end])
        payload = bytes(body[end + 2:] if qos else body[end:])
        if self._callback:
            self._callback(topic, payload)
        if qos:  # acknowledge after the callback ran: at-least-once
            await self._send(_packet(0x40, body[end:end + 2]), ACK_TIMEOUT_MS)

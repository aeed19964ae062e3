"""dongle.mqtt's connection set-up: open the socket, send CONNECT, check the CONNACK.

It runs once per connection, so MQTTClient.connect loads it for the call and forgets it after:
on the stock firmware a loaded module's code sits in the heap.
"""
import asyncio
import socket

from .mqtt import MQTTError, _os_reason, _packet, _within, ticks_ms

# CONNACK return codes 1-5
REFUSALS = ("unacceptable protocol version|client identifier rejected|server unavailable|"
            "bad user name or password|not authorized")


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


def address(client):
    """The broker's IP. MicroPython's open_connection looks names up synchronously, and a slow
    DNS at every reconnect would stall the meter reader (115200 baud fills the UART buffer in
    a fraction of a second), so the name is looked up once (client._ip). TLS keeps the name: the
    certificate check needs it. (The unix port hands out raw sockaddrs: it keeps the name.)"""
    if client.ssl:
        return client.host
    if client._ip is None:
        found = socket.getaddrinfo(client.host, client.port, 0, socket.SOCK_STREAM)[0][-1]
        client._ip = found[0] if isinstance(found, tuple) else client.host
    return client._ip


async def connect(client, timeout):
    if client.connected:
        await client._close()
    where = "%s:%d" % (client.host, client.port)
    try:
        opened = asyncio.open_connection(address(client), client.port, ssl=client.ssl or None)
        client._reader, client._writer = await _within(opened, timeout * 1000)
        client.connected = True
        client._read_lock, client._write_lock = asyncio.Lock(), asyncio.Lock()
        client._pending = {}
        client._inbox = b""
        client._ping_sent = None
        client._writer.write(connect_packet(client))   # a refused connect shows up here
        await _within(client._writer.drain(), timeout * 1000)
        client._last_sent = ticks_ms()
        first, body = await client._read_packet(timeout * 1000)
    except asyncio.TimeoutError:
        await client._lost("no answer from %s within %d s" % (where, timeout))
    except (OSError, ValueError, MQTTError) as e:
        why = e
        if isinstance(e, OSError):
            client._ip = None   # look the name up again next time: the broker may have moved
            why = _os_reason(e)
        elif isinstance(e, ValueError):   # MicroPython's TLS handshake failures
            why = "TLS: " + " ".join(str(e).split())
        await client._lost("cannot connect to %s: %s" % (where, why))
    if first != 0x20 or len(body) != 2:
        await client._lost("%s answered with packet 0x%02x instead of CONNACK" % (where, first))
    if body[1]:
        code = body[1]
        reason = REFUSALS.split("|")[code - 1] if code < 6 else "code %d" % code
        await client._lost("%s refused the connection: %s" % (where, reason))
    client.last_error = None


def connect_packet(client):
    flags = 0x02  # clean session: undelivered readings live in our own spool, not the broker
    strings = [client.client_id]
    if client.will:
        topic, message, retain, qos = client.will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        strings += (topic, message)
    if client.user is not None:
        flags |= 0x80
        strings.append(client.user)
        if client.password is not None:
            flags |= 0x40
            strings.append(client.password)
    fields = [b"\x00\x04MQTT\x04", bytes((flags,)), client.keepalive]
    for text in strings:   # MQTT strings: a 2-byte length, then UTF-8
        data = text.encode() if isinstance(text, str) else text
        fields += (len(data), data)
    return _packet(0x10, *fields)

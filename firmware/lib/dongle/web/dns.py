"""Captive DNS: every name resolves to the portal's own IPv4 address, so a phone that joins the
setup access point finds the setup page whatever it asks for.

    reply = answer(query_bytes, portal_ip_bytes)   # bytes, or None: drop the packet
    server = Dns("192.168.4.1"); await server.start(port=53); server.close()

A (and ANY) questions of class IN get one A record; AAAA and every other type get an empty
NOERROR answer (no IPv6 here: the client falls back to A); anything that is not a well-formed
standard query with exactly one question is dropped.
"""
import asyncio
import select
import socket

TTL_S = 60
MAX_PACKET = 512
POLL_MS = 20
TYPE_A, TYPE_ANY, CLASS_IN = 1, 255, 1


def _question_end(packet):
    """Offset just past the single question's QTYPE/QCLASS, or -1 if it is malformed."""
    pos, total = 12, 0
    while pos < len(packet):
        size = packet[pos]
        if size == 0:
            end = pos + 5
            return end if end <= len(packet) else -1
        if size > 63:          # compression pointers have no place in a question
            return -1
        total += size + 1
        if total > 255:
            return -1
        pos += size + 1
    return -1


def answer(packet, ip):
    """The reply to one DNS query packet (bytes), or None to drop it. ip: 4 bytes."""
    if len(packet) < 17 or len(packet) > MAX_PACKET:
        return None
    flags = packet[2]
    qdcount = (packet[4] << 8) | packet[5]
    if flags & 0x80 or (flags >> 3) & 0x0F or qdcount != 1:   # a response, not QUERY, or not 1 question
        return None
    end = _question_end(packet)
    if end < 0:
        return None
    qtype = (packet[end - 4] << 8) | packet[end - 3]
    qclass = (packet[end - 2] << 8) | packet[end - 1]
    records = 1 if qtype in (TYPE_A, TYPE_ANY) and qclass == CLASS_IN else 0
    header = bytes((packet[0], packet[1], 0x84 | (flags & 0x01), 0x00,   # QR AA, RD copied; NOERROR
                    0, 1, 0, records, 0, 0, 0, 0))
    reply = header + packet[12:end]
    if records:
        reply += bytes((0xC0, 12, 0, TYPE_A, 0, CLASS_IN, 0, 0, TTL_S >> 8, TTL_S & 0xFF, 0, 4)) + ip
    return reply


def ip_bytes(text):
    parts = text.split(".")
    if len(parts) != 4:
        raise ValueError("not an IPv4 address: %r" % text)
    return bytes(int(part) for part in parts)


def _any(events):
    for _ in events:
        return True
    return False


class Dns:
    def __init__(self, ip):
        self.ip = ip_bytes(ip)
        self.answered = self.dropped = 0
        self.sock = None
        self._task = None

    async def start(self, host="0.0.0.0", port=53):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(socket.getaddrinfo(host, port)[0][-1])
        sock.setblocking(False)
        self.sock = sock
        self._poller = select.poll()
        self._poller.register(sock, select.POLLIN)
        self._task = asyncio.create_task(self._serve())
        return self

    async def _serve(self):
        # ipoll (MicroPython) allocates nothing; recvfrom would allocate a packet buffer per poll
        ready = getattr(self._poller, "ipoll", self._poller.poll)
        while self.sock is not None:
            if not _any(ready(0)):
                await asyncio.sleep_ms(POLL_MS)
                continue
            try:
                packet, client = self.sock.recvfrom(MAX_PACKET)
            except OSError:          # an error state, not a packet: don't spin on it
                await asyncio.sleep_ms(POLL_MS)
                continue
            reply = answer(packet, self.ip)
            if reply is None:
                self.dropped += 1
                continue
            try:
                self.sock.sendto(reply, client)
                self.answered += 1
            except OSError:
                self.dropped += 1
            await asyncio.sleep(0)   # a flood must not starve the meter reader

    def close(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None

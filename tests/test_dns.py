"""Captive DNS: the reply builder on CPython and MicroPython, and a real resolver (dnspython)
against the firmware's DNS server in setup mode on the unix port, through malformed packets."""
import socket
import sys

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from conftest import CORE, run_micropython
from web_harness import running

sys.path.insert(0, str(CORE))
from dongle.web.dns import answer  # noqa: E402

PORTAL = bytes((192, 168, 4, 1))
BAD_PACKETS = (b"", b"\x00", b"\x12\x34" + b"\x00" * 9,
               b"\x12\x34\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\x03abc\x00\x00\x01\x00\x01",  # a reply
               b"\x12\x34\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00\x03abc\x00\x00\x01\x00\x01",  # 2 questions
               b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3fabc",                      # label runs off
               b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",     # pointer loop
               b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03abc\x00\x00",              # no qclass
               b"\x12\x34\x29\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03abc\x00\x00\x01\x00\x01",  # UPDATE
               b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x3f" + b"a" * 63 * 5,  # > 255
               bytes(range(256)) * 3)


def query(name, rdtype="A"):
    return dns.message.make_query(name, rdtype).to_wire()


def test_a_questions_get_the_portal_address():
    for name in ("connectivitycheck.gstatic.com", "captive.apple.com", "x.y.z.example", "."):
        reply = dns.message.from_wire(answer(query(name), PORTAL))
        assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
        assert [r.address for r in reply.answer[0]] == ["192.168.4.1"]


def test_aaaa_and_other_types_get_an_empty_answer():
    for rdtype in ("AAAA", "MX", "TXT", "HTTPS"):
        reply = dns.message.from_wire(answer(query("example.com", rdtype), PORTAL))
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer == []
        assert reply.question[0].rdtype == dns.rdatatype.from_text(rdtype)


@pytest.mark.parametrize("packet", BAD_PACKETS)
def test_malformed_packets_are_dropped(packet):
    assert answer(packet, PORTAL) is None


def test_same_replies_on_micropython():
    packets = [query("a.example"), query("b.example", "AAAA")] + list(BAD_PACKETS)
    code = "from dongle.web.dns import answer\nfor p in %r:\n    r = answer(p, %r)\n" \
           "    print(r.hex() if r else None)\n" % (packets, PORTAL)
    expected = [(answer(p, PORTAL) or b"").hex() or "None" for p in packets]
    assert run_micropython(code).split() == expected


def test_a_real_resolver_against_the_firmware_in_setup_mode(tmp_path):
    with running(tmp_path, {}) as fw:                 # first boot: setup mode, AP and DNS up
        fw.wait_for("portal: access point", 20)
        port = fw.dns_port
        noise = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for packet in BAD_PACKETS[1:] * 3:
            noise.sendto(packet, ("127.0.0.1", port))
        noise.close()
        for name in ("example.com", "www.msftconnecttest.com", "anything.at.all"):
            reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port,
                                  timeout=5)
            assert [r.address for r in reply.answer[0]] == ["127.0.0.1"]   # the unix portal
        reply = dns.query.udp(dns.message.make_query("example.com", "AAAA"), "127.0.0.1",
                              port=port, timeout=5)
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer == []

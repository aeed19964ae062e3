"""dongle.mqtt against a real mosquitto, on the MicroPython unix port and on CPython.

A second, independent client (mosquitto_sub / mosquitto_pub) checks what ours sends and receives.
Only the malformed-packet and silent-broker cases use a tiny fake broker: mosquitto never misbehaves.
"""
import os
import queue
import signal
import socket
import subprocess
import sys
import threading

import pytest

from broker import Broker, FakeBroker, Subscriber, expect, make_ca, pump
from conftest import CORE, micropython_binary

RUNTIMES = ["micropython", "cpython"]

PRELUDE = """
import asyncio
import sys
from dongle.mqtt import MQTTClient, MQTTError
PORT = %d

def say(*words):   # print now: the test reads our stdout while we run
    print(*words)
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()
"""


def command(runtime, code):
    if runtime == "micropython":
        env = dict(os.environ, MICROPYPATH=str(CORE) + ":.frozen")
        return [micropython_binary(), "-X", "heapsize=1m", "-c", code], env
    return [sys.executable, "-c", code], dict(os.environ, PYTHONPATH=str(CORE))


def run(runtime, port, body, timeout=60):
    """Run PRELUDE + body on the runtime; return its stdout lines."""
    argv, env = command(runtime, PRELUDE % port + body)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.split("\n")


def start(runtime, port, body):
    """Start PRELUDE + body in the background; stdout lines arrive on .lines (a queue)."""
    argv, env = command(runtime, PRELUDE % port + body)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    proc.lines = queue.Queue()
    threading.Thread(target=pump, args=(proc.stdout, proc.lines), daemon=True).start()
    return proc


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path) as running:
        yield running


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_qos0_and_qos1_reach_a_second_subscriber(broker, runtime):
    sub = Subscriber(broker.port, "meter/#")
    try:
        lines = run(runtime, broker.port, """
async def main():
    c = MQTTClient("pub-1", "127.0.0.1", PORT)
    await c.connect()
    print("connected", c.connected)
    await c.publish("meter/a", b"zero")
    await c.publish("meter/b", "one", qos=1)          # returns only after the PUBACK
    await c.publish("meter/big", b"x" * 3000, qos=1)   # two-byte remaining length
    await c.disconnect()
    print("after", c.connected)
asyncio.run(main())
""")
        assert "connected True" in lines and "after False" in lines
        assert sub.next_message() == "meter/a 0 0 zero"
        assert sub.next_message() == "meter/b 0 1 one"
        assert sub.next_message() == "meter/big 0 1 " + "x" * 3000
    finally:
        sub.close()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_retained_message_reaches_a_later_subscriber(broker, runtime):
    run(runtime, broker.port, """
async def main():
    c = MQTTClient("pub-r", "127.0.0.1", PORT)
    await c.connect()
    await c.publish("dongle/status", b"online", retain=True, qos=1)
    await c.disconnect()
asyncio.run(main())
""")
    sub = Subscriber(broker.port, "dongle/status")
    try:
        assert sub.next_message() == "dongle/status 1 1 online"
    finally:
        sub.close()


def test_last_will_is_published_when_the_client_dies(broker):
    sub = Subscriber(broker.port, "dongle/status")
    proc = start("micropython", broker.port, """
async def main():
    c = MQTTClient("dying", "127.0.0.1", PORT, keepalive=30,
                   will=("dongle/status", b"offline", False, 1))
    await c.connect()
    say("connected")
    await asyncio.sleep(60)
asyncio.run(main())
""")
    try:
        expect(proc, "connected")
        proc.send_signal(signal.SIGKILL)   # no DISCONNECT: the socket just dies
        assert sub.next_message() == "dongle/status 0 1 offline"
    finally:
        proc.kill()
        proc.wait()
        sub.close()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_subscribe_callback_with_poll_in_its_own_task(broker, runtime):
    proc = start(runtime, broker.port, """
got = []
def on_message(topic, payload):
    got.append((topic, payload))
    say("got", topic.decode(), payload.decode())

async def pump(c):
    while len(got) < 3:
        await c.poll(200)

async def main():
    c = MQTTClient("sub-1", "127.0.0.1", PORT)
    c.set_callback(on_message)
    await c.connect()
    await c.subscribe("cmd/#", qos=1)
    task = asyncio.create_task(pump(c))
    await c.publish("cmd/self", b"own qos1", qos=1)   # PUBACK is read by the pump task
    say("subscribed")
    await task
    await c.disconnect()
    say("done")
asyncio.run(main())
""")
    try:
        assert expect(proc, "got") == "got cmd/self own qos1"
        expect(proc, "subscribed")
        for qos, text in (("0", "from outside"), ("1", "acked by us")):
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port),
                            "-q", qos, "-t", "cmd/x", "-m", text], check=True, timeout=20)
            assert expect(proc, "got") == "got cmd/x " + text
        expect(proc, "done")
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_broker_stopped_mid_session(broker, runtime):
    proc = start(runtime, broker.port, """
async def main():
    c = MQTTClient("victim", "127.0.0.1", PORT)
    await c.connect()
    say("connected")
    try:
        while True:
            await c.poll(100)
    except MQTTError as e:
        say("lost:", e, "connected=%s" % c.connected)
    try:
        await c.publish("a/b", b"late", qos=1)
    except MQTTError as e:
        say("publish:", e)
    try:
        await c.connect(timeout=5)
    except MQTTError as e:
        say("reconnect:", e)
asyncio.run(main())
""")
    try:
        expect(proc, "connected")
        broker.stop()
        assert expect(proc, "lost:") == "lost: the broker closed the connection connected=False"
        assert expect(proc, "publish:") == "publish: not connected"
        assert "ECONNREFUSED" in expect(proc, "reconnect:")
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_connect_to_a_closed_port_is_a_clear_error(runtime):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # bound, not listening: refused
        lines = run(runtime, port, """
async def main():
    c = MQTTClient("x", "127.0.0.1", PORT)
    try:
        await c.connect(timeout=5)
    except MQTTError as e:
        print("error:", e, c.connected)
asyncio.run(main())
""")
    assert "error: cannot connect to 127.0.0.1:%d: ECONNREFUSED False" % port in lines


def test_broker_refusal_reason_is_reported(tmp_path):
    with Broker(tmp_path, users={"meter": "s3cret"}) as broker:
        lines = run("micropython", broker.port, """
async def attempt(user, password):
    c = MQTTClient("auth", "127.0.0.1", PORT, user=user, password=password)
    try:
        await c.connect()
        print("ok", user, c.connected)
        await c.disconnect()
    except MQTTError as e:
        print("refused", user, e)
asyncio.run(attempt("meter", "wrong"))
asyncio.run(attempt("meter", "s3cret"))
""")
    assert "refused meter 127.0.0.1:%d refused the connection: not authorized" % broker.port in lines
    assert "ok meter True" in lines


def test_keepalive_pings_keep_an_idle_session_alive(broker):
    # keepalive 1 s: mosquitto drops a silent client after 1.5 s; 3.5 s of polling must ping it
    lines = run("micropython", broker.port, """
import time
async def main():
    c = MQTTClient("idle", "127.0.0.1", PORT, keepalive=1)
    await c.connect()
    start = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), start) < 3500:
        await c.poll()
    print("alive", c.connected)
    await c.publish("k/a", b"still here", qos=1)
    print("published")
asyncio.run(main())
""")
    assert "alive True" in lines and "published" in lines


MALFORMED = [
    (b"\x30\xff\xff\xff\xff\x01", "remaining length too long"),
    (b"\x40\x03\x00\x01\x00", "malformed or unexpected packet"),       # PUBACK of 3 bytes
    (b"\x30\x03\x00\x09a", "topic runs past the packet"),
    (b"\x34\x04\x00\x01a\x00", "unsupported or malformed PUBLISH"),     # QoS 2
    (b"\x20\x02\x00\x00", "malformed or unexpected packet"),            # a second CONNACK
    (b"\x90\x02\x00\x01", "malformed or unexpected packet"),            # SUBACK without codes
    (b"\x30\xff\xff\x7f", "limit 16384"),                               # 2 MB packet
    (b"\x30\x0a\x00\x01a", "closed the connection in the middle of a packet"),
]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("garbage,reason", MALFORMED)
def test_malformed_packets_from_the_broker_are_mqtt_errors(runtime, garbage, reason):
    fake = FakeBroker(garbage)
    try:
        lines = run(runtime, fake.port, """
async def main():
    c = MQTTClient("x", "127.0.0.1", PORT)
    await c.connect()
    await c.publish("t", b"p")
    try:
        while True:
            await c.poll(2000)
    except MQTTError as e:
        print("error:", e, c.connected)
asyncio.run(main())
""")
    finally:
        fake.close()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and reason in errors[0] and errors[0].endswith("False"), lines


def test_silent_broker_ends_the_session():
    fake = FakeBroker(b"")   # never answers PINGREQ
    try:
        lines = run("micropython", fake.port, """
async def main():
    c = MQTTClient("x", "127.0.0.1", PORT, keepalive=1)
    await c.connect()
    await c.publish("t", b"p")
    try:
        while True:
            await c.poll()
    except MQTTError as e:
        print("error:", e, c.connected)
asyncio.run(main())
""")
    finally:
        fake.close()
    assert "error: the broker stopped answering (no PINGRESP) False" in lines


def test_qos1_without_puback_raises_in_bounded_time():
    fake = FakeBroker(b"")   # swallows the PUBLISH
    try:
        lines = run("micropython", fake.port, """
import dongle.mqtt
dongle.mqtt.ACK_TIMEOUT_MS = 500
async def main():
    c = MQTTClient("x", "127.0.0.1", PORT)
    await c.connect()
    try:
        await c.publish("t", b"p", qos=1)
    except MQTTError as e:
        print("error:", e, c.connected)
asyncio.run(main())
""")
    finally:
        fake.close()
    assert "error: no PUBACK from the broker within 500 ms True" in lines


def test_remaining_length_encoding_matches_the_spec():
    sys.path.insert(0, str(CORE))
    from dongle.mqtt import _packet
    for size, encoded in ((0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
                          (16384, b"\x80\x80\x01"), (2097151, b"\xff\xff\x7f"),
                          (2097152, b"\x80\x80\x80\x01")):
        packet = _packet(0x30, bytes(size))
        assert packet[:1 + len(encoded)] == b"\x30" + encoded and len(packet) == 1 + len(encoded) + size


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_tls_with_the_brokers_ca_and_with_a_wrong_one(tmp_path, runtime):
    good, wrong = make_ca(tmp_path, "good"), make_ca(tmp_path, "wrong")
    tls = "cafile %s\ncertfile %s\nkeyfile %s\n" % (good["ca"], good["cert"], good["key"])
    with Broker(tmp_path, extra_conf=tls) as broker:
        lines = run(runtime, broker.port, """
from dongle.mqtt_connect import tls_context
async def attempt(ca_file):
    c = MQTTClient("tls", "127.0.0.1", PORT, ssl=tls_context(open(ca_file).read()))
    try:
        await c.connect()
        await c.publish("tls/x", b"secret reading", qos=1)
        print("ok", c.connected)
        await c.disconnect()
    except MQTTError as e:
        print("refused", c.connected, e)
asyncio.run(attempt(%r))
asyncio.run(attempt(%r))
""" % (str(good["ca"]), str(wrong["ca"])))
        assert lines[0] == "ok True"
        assert lines[1].startswith("refused False cannot connect to 127.0.0.1:%d: " % broker.port)


def test_the_broker_name_is_looked_up_once():
    """MicroPython resolves names synchronously: a lookup per reconnect could stall the meter
    reader, so the client keeps the address; TLS keeps the name for the certificate check."""
    from dongle.mqtt import MQTTClient
    from dongle.mqtt_connect import address
    import ipaddress
    client = MQTTClient("t", "localhost", 1883)
    first = address(client)
    ipaddress.ip_address(first)                       # an address, not the name
    client.host = "no-such-host.invalid"
    assert address(client) == first                   # no second lookup
    assert address(MQTTClient("t", "localhost", 8883, ssl=True)) == "localhost"

"""OTA pieces: the RSA PKCS#1 v1.5 check on CPython and MicroPython (with its cost), Home
Assistant's update entity (payloads, and the install button over a real mosquitto), and the
firmware image streamed into the file-backed partition."""
import hashlib
import json
import subprocess
import sys
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from broker import Broker
from conftest import CORE, ROOT, run_micropython
from firmware_harness import Subscriber
from ota_harness import Device, Serve, make_keys, make_release

sys.path.insert(0, str(CORE))
sys.path.insert(0, str(ROOT / "host"))
from dongle import ota_entity, ota_verify  # noqa: E402
from meterkit_host import release  # noqa: E402


@pytest.fixture(scope="module")
def key():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private, release.public_doc(private.public_key())


def sign(private, data):
    return private.sign(data, padding.PKCS1v15(), hashes.SHA256())


def test_verify_accepts_only_the_exact_signature(key):
    private, doc = key
    public = ota_verify.public_key(doc)
    assert public.key_id == doc["key_id"] == release.key_id(int(doc["n"], 16))
    message = b'{"format": 1}'
    signature = sign(private, message)
    assert ota_verify.verify(public, message, signature)
    assert ota_verify.verify(public, None, signature, hashlib.sha256(message).digest())
    assert not ota_verify.verify(public, message + b" ", signature)
    assert not ota_verify.verify(public, message, signature[:-1])
    assert not ota_verify.verify(public, message, b"\x00" + signature[:-1])
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert not ota_verify.verify(public, message, flipped)
    assert not ota_verify.verify(public, message, b"\xff" * 256)   # >= n
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not ota_verify.verify(public, message, sign(other, message))


def test_a_signature_with_a_sha1_digest_info_is_refused(key):
    """Same key, valid PKCS#1 v1.5 padding, but another hash: the byte-for-byte encoding check."""
    private, doc = key
    message = b"release"
    sha1_sig = private.sign(message, padding.PKCS1v15(), hashes.SHA1())
    assert not ota_verify.verify(ota_verify.public_key(doc), message, sha1_sig)


def test_public_key_checks():
    with pytest.raises(ValueError, match="needs n"):
        ota_verify.public_key({"e": 65537})
    with pytest.raises(ValueError, match="2048 bits"):
        ota_verify.public_key({"n": "%x" % (2 ** 1023 + 1), "e": 65537})
    with pytest.raises(ValueError, match="odd"):
        ota_verify.public_key({"n": "%x" % (2 ** 2047 + 1), "e": 4})
    with pytest.raises(ValueError, match="key_id"):
        ota_verify.public_key({"n": "%x" % (2 ** 2047 + 1), "e": 65537, "key_id": "00"})


def test_verify_on_micropython_and_its_cost(key, tmp_path):
    private, doc = key
    message = b'{"version": "0.2.0"}\n' * 200
    signature = sign(private, message)
    (tmp_path / "k.json").write_text(json.dumps(doc))
    (tmp_path / "m").write_bytes(message)
    (tmp_path / "s").write_bytes(signature)
    out = run_micropython("""
import json, time
from dongle.ota_verify import public_key, verify
k = public_key(json.load(open(%r)))
m = open(%r, 'rb').read(); s = open(%r, 'rb').read()
t = time.ticks_us()
ok = [verify(k, m, s) for _ in range(10)]
print(k.key_id, all(ok), verify(k, m + b'x', s), (time.ticks_us() - t) // 10)
""" % (str(tmp_path / "k.json"), str(tmp_path / "m"), str(tmp_path / "s")))
    kid, ok, bad, micros = out.split()
    assert (kid, ok, bad) == (doc["key_id"], "True", "False")
    print("RSA-2048 verify on the unix port: %s us" % micros)


def test_update_entity_payloads():
    topic, payload = ota_entity.discovery("meterkit", "homeassistant", "abc123", "abc123_m1",
                                          "meterkit/m1/status")
    doc = json.loads(payload)
    assert topic == "homeassistant/update/meterkit_abc123/firmware/config"
    assert doc["command_topic"] == "meterkit/abc123/ota/install" == \
        ota_entity.command_topic("meterkit", "abc123")
    assert doc["state_topic"] == "meterkit/abc123/ota"
    assert (doc["payload_install"], doc["device_class"]) == ("install", "firmware")
    assert doc["device"] == {"identifiers": ["abc123_m1"]}   # the meter's HA device
    assert doc["availability_topic"] == "meterkit/m1/status"
    topic, payload = ota_entity.state("meterkit", "abc123", "0.1.0", "0.2.0", True)
    assert json.loads(payload) == {"installed_version": "0.1.0", "latest_version": "0.2.0",
                                   "title": "meterkit", "in_progress": True}
    assert json.loads(ota_entity.state("b", "n", "0.1.0")[1])["latest_version"] == "0.1.0"
    same = run_micropython("from dongle import ota_entity\nprint(ota_entity.state('b', 'n', "
                           "'0.1.0', '0.2.0')[1].decode())")
    assert same.strip() == ota_entity.state("b", "n", "0.1.0", "0.2.0")[1].decode()


def test_home_assistant_install_button_updates_the_dongle(tmp_path):
    keys = make_keys(tmp_path)
    rel = make_release(tmp_path, keys, "0.2.0")
    with Broker(tmp_path) as broker, Subscriber(broker.port) as sub, Serve(rel) as url:
        dev = Device(tmp_path, keys, extra_config={
            "mqtt": {"host": "127.0.0.1", "port": broker.port},
            "ota": {"url": url, "check_interval_s": 1}})
        dev.start()
        try:
            dev.wait_for("web:")
            assert sub.wait_until(lambda: [t for t in sub.topics()
                                           if t.startswith("homeassistant/update/")], 20)
            configs = [t for t in sub.topics() if t.startswith("homeassistant/update/")]
            config = json.loads(sub.on(configs[0])[-1])
            state_topic = config["state_topic"]
            assert sub.wait_until(lambda: [p for p in sub.on(state_topic)
                                           if json.loads(p)["latest_version"] == "0.2.0"], 30)
            assert json.loads(sub.on(state_topic)[0])["installed_version"] == "0.1.0"
            subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-t",
                            config["command_topic"], "-m", "install"], check=True)
            dev.wait_for("boot: app 0.2.0 (trial)")
            dev.wait_for("ota: 0.2.0 is healthy")
            assert sub.wait_until(lambda: [p for p in sub.on(state_topic)
                                           if json.loads(p)["installed_version"] == "0.2.0"], 30)
        finally:
            dev.stop()


def test_firmware_image_goes_to_the_next_partition(tmp_path):
    keys = make_keys(tmp_path)
    image = bytes(range(256)) * 40 + b"tail"   # 10244 bytes: not a whole number of blocks
    rel = make_release(tmp_path, keys, "0.2.0", extra={"firmware.bin": image})
    dev = Device(tmp_path, keys)
    with Serve(rel) as url:
        dev.start()
        try:
            dev.wait_for("web:")
            status, answer = dev.push(url)
            assert status == 200, answer
            dev.wait_for("boot: app 0.2.0 (trial)")
            assert (dev.root / "firmware/boot").read_text() == "ota_1"
            assert (dev.root / "firmware/ota_1.bin").read_bytes()[:len(image)] == image
            dev.wait_for("ota: 0.2.0 is healthy")
            time.sleep(0.2)
        finally:
            dev.stop()
    assert (dev.root / "firmware/valid").read_text() == "yes"   # marked valid after health
    assert not (dev.root / "apps/0.2.0/firmware.bin").exists()

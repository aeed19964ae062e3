"""AES-128-GCM: the published test cases, every backend against every other, MicroPython's viper
backend against the plain-Python one and CPython, and the peer vectors' real ciphertexts."""
import json
import os

import pytest
from hypothesis import given, settings, strategies as st

from conftest import load_vectors, run_micropython
from meterkit.crypto import gcm

# McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 1-4 (AES-128, 96-bit IV)
K0 = "00000000000000000000000000000000"
K3 = "feffe9928665731c6d6a8f9467308308"
IV0 = "000000000000000000000000"
IV3 = "cafebabefacedbaddecaf888"
P3 = ("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
C3 = ("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
      "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985")
A4 = "feedfacedeadbeeffeedfacedeadbeefabaddad2"
SPEC_CASES = [  # key, iv, plaintext, aad, ciphertext, tag
    (K0, IV0, "", "", "", "58e2fccefa7e3061367f1d57a4e7455a"),
    (K0, IV0, "00" * 16, "", "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"),
    (K3, IV3, P3, "", C3, "4d5c2af327cd64a62cf35abd2ba6fab4"),
    (K3, IV3, P3[:120], A4, C3[:120], "5bc94fbc3221a5db94fae95ae7121a47"),
]
BACKENDS = gcm.available()


def unhex(*texts):
    return [bytes.fromhex(text) for text in texts]


def test_backend_choice_on_cpython():
    assert "python" in BACKENDS and "cpython" in BACKENDS and "viper" not in BACKENDS
    assert gcm.BACKEND == BACKENDS[0]
    with pytest.raises(ValueError):
        gcm.backend("viper")
    with pytest.raises(ValueError):
        gcm.backend("rot13")


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("case", SPEC_CASES, ids=["case1", "case2", "case3", "case4"])
def test_spec_test_cases(name, case):
    key, iv, plaintext, aad, ciphertext, tag = unhex(*case)
    impl = gcm.backend(name)
    assert impl.encrypt(key, iv, plaintext, aad, 16) == (ciphertext, tag)
    assert impl.encrypt(key, iv, plaintext, aad, 12) == (ciphertext, tag[:12])
    assert impl.decrypt(key, iv, ciphertext, aad, tag) == (plaintext, True)
    assert impl.decrypt(key, iv, ciphertext) == (plaintext, None)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("tag_len", [16, 12, 8, 4])
def test_truncated_tags_verify_and_any_flipped_bit_fails(name, tag_len):
    key, iv, plaintext, aad, ciphertext, tag = unhex(*SPEC_CASES[3])
    impl = gcm.backend(name)
    assert impl.decrypt(key, iv, ciphertext, aad, tag[:tag_len]) == (plaintext, True)
    for bit in (0, 7, 8 * tag_len - 1):
        bad = bytearray(tag[:tag_len])
        bad[bit // 8] ^= 1 << (bit % 8)
        # the plaintext still comes back: callers need it to tell which key is wrong
        assert impl.decrypt(key, iv, ciphertext, aad, bytes(bad)) == (plaintext, False)
    assert impl.decrypt(key, iv, ciphertext, aad + b"x", tag[:tag_len]) == (plaintext, False)


def test_interface_rejects_bad_sizes():
    key, iv = bytes(16), bytes(12)
    for call in (lambda: gcm.decrypt(bytes(15), iv, b""), lambda: gcm.decrypt(key, bytes(16), b""),
                 lambda: gcm.decrypt(key, iv, b"", b"", bytes(3)), lambda: gcm.encrypt(key, iv, b"", b"", 17)):
        with pytest.raises(ValueError):
            call()


@settings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=16, max_size=16), iv=st.binary(min_size=12, max_size=12),
       plaintext=st.binary(max_size=120), aad=st.binary(max_size=40), tag_len=st.integers(4, 16))
def test_every_backend_agrees_with_every_other(key, iv, plaintext, aad, tag_len):
    results = [gcm.backend(name).encrypt(key, iv, plaintext, aad, tag_len) for name in BACKENDS]
    assert results == [results[0]] * len(results)
    ciphertext, tag = results[0]
    assert len(ciphertext) == len(plaintext) and len(tag) == tag_len
    wrong = bytes([tag[0] ^ 0x80]) + tag[1:]
    for name in BACKENDS:
        impl = gcm.backend(name)
        assert impl.decrypt(key, iv, ciphertext, aad, tag) == (plaintext, True)
        assert impl.decrypt(key, iv, ciphertext, aad, wrong) == (plaintext, False)
        assert impl.decrypt(key, iv, ciphertext) == (plaintext, None)


# --- MicroPython: viper and the plain-Python reference against CPython -----------------------

MP_CROSSCHECK = """
import json
from meterkit.crypto import gcm
impls = [gcm.backend(name) for name in gcm.available()]   # best first, python last
out = {"backend": gcm.BACKEND, "available": gcm.available(), "results": []}
for key, iv, pt, aad, tag_len in json.loads(CASES):
    key, iv, pt, aad = [bytes.fromhex(x) for x in (key, iv, pt, aad)]
    row = []
    for impl in impls:
        ct, tag = impl.encrypt(key, iv, pt, aad, tag_len)
        back = impl.decrypt(key, iv, ct, aad, tag)
        bad = impl.decrypt(key, iv, ct, aad, bytes([tag[0] ^ 1]) + tag[1:])
        plain = impl.decrypt(key, iv, ct)
        row.append([ct.hex(), tag.hex(), back[0] == pt and back[1] is True,
                    bad[0] == pt and bad[1] is False, plain[0] == pt and plain[1] is None])
    out["results"].append(row)
print(json.dumps(out))
"""


# the wheel has viper and plain Python; the frozen 64-bit build has meterkit_c too, and uses it
ON_MICROPYTHON = {"wheel": ["viper", "python"], "unix64-frozen": ["cmodule", "viper", "python"]}


@pytest.mark.parametrize("runtime", sorted(ON_MICROPYTHON))
def test_micropython_backends_match_python_and_cpython(runtime):
    rng = __import__("random").Random(1)
    cases = []
    # lengths around the 16-byte block and the viper backend's 512-byte keystream chunk
    for n in (0, 1, 15, 16, 17, 31, 100, 511, 512, 513, 700, 1100):
        data = [rng.getrandbits(8) for _ in range(16 + 12 + n + n % 37)]
        key, iv, pt, aad = bytes(data[:16]), bytes(data[16:28]), bytes(data[28:28 + n]), bytes(data[28 + n:])
        cases.append((key.hex(), iv.hex(), pt.hex(), aad.hex(), 4 + n % 13))
    out = json.loads(run_micropython("CASES = %r\n" % json.dumps(cases) + MP_CROSSCHECK,
                                     runtime=runtime))
    assert out["available"] == ON_MICROPYTHON[runtime]
    assert out["backend"] == ON_MICROPYTHON[runtime][0]
    reference = gcm.backend("cpython")
    for (key, iv, pt, aad, tag_len), row in zip(cases, out["results"]):
        ciphertext, tag = reference.encrypt(*unhex(key, iv, pt, aad), tag_len=tag_len)
        assert row == [[ciphertext.hex(), tag.hex(), True, True, True]] * len(row)


# --- the peer vectors' ciphertexts -------------------------------------------------------------

def _axdr_length(data, pos):
    if data[pos] < 0x80:
        return data[pos], pos + 1
    size = data[pos] - 0x80
    return int.from_bytes(data[pos + 1:pos + 1 + size], "big"), pos + 1 + size


def _hdlc_information(raw):
    info, pos = b"", 0
    while pos < len(raw):
        length = ((raw[pos + 1] & 0x07) << 8) | raw[pos + 2]
        frame = raw[pos + 1:pos + 1 + length]
        at = 2
        for _ in range(2):  # destination and source address: the last byte has bit 0 set
            while not frame[at] & 1:
                at += 1
            at += 1
        info += frame[at + 3:-2]  # after control + HCS, before FCS
        pos += length + 2
    if info.startswith(b"\xe6\xe7\x00"):
        info = info[3:]
    apdu = b""
    while info[:1] == b"\xe0":  # general-block-transfer: E0 control block(2) ack(2) length data
        length, start = _axdr_length(info, 6)
        apdu += info[start:start + length]
        info = info[start + length:]
    return apdu or info


def _mbus_data(raw):
    data, pos = b"", 0
    while pos < len(raw):
        length = raw[pos + 1]
        data += raw[pos + 9:pos + 4 + length]  # skip 68 L L 68 C A CI STSAP DTSAP; CS 16 follow
        pos += length + 6
    return data


def glo_apdu_of(vector):
    """The whole general-glo-ciphering APDU of an encrypted vector, cut out by hand."""
    raw = bytes.fromhex(vector["raw"])
    if raw[0] == 0x7E:
        return _hdlc_information(raw)
    if raw[0] == 0x68:
        return _mbus_data(raw)
    return raw


def split_glo(apdu):
    """(iv, security control, ciphertext, tag or None) of a glo-ciphering APDU."""
    assert apdu[:2] == b"\xdb\x08"
    length, pos = _axdr_length(apdu, 10)
    assert len(apdu) == pos + length
    sc, iv = apdu[pos], apdu[2:10] + apdu[pos + 1:pos + 5]
    if sc & 0x10:
        return iv, sc, apdu[pos + 5:-12], apdu[-12:]
    return iv, sc, apdu[pos + 5:], None


ENCRYPTED = [v for v in load_vectors() if v["encrypted"]]


@pytest.mark.parametrize("vector", ENCRYPTED, ids=[v["id"] for v in ENCRYPTED])
def test_peer_vectors_decrypt_on_every_backend(vector):
    iv, sc, ciphertext, tag = split_glo(glo_apdu_of(vector))
    key = bytes.fromhex(vector["key_hex"])
    aad = bytes([sc]) + bytes.fromhex(vector["auth_key_hex"] or "")
    if vector["id"] == "openhab-dsmr/smarty_decrypter_test":
        aad = bytes([sc]) + bytes.fromhex("00112233445566778899AABBCCDDEEFF")  # Luxembourg AK
    can_verify = tag is not None and len(aad) == 17
    results = [gcm.backend(name).decrypt(key, iv, ciphertext, aad, tag if can_verify else None)
               for name in BACKENDS]
    assert results == [results[0]] * len(results)
    plaintext, tag_ok = results[0]
    assert tag_ok is (True if can_verify else None)
    meta = vector["expected_meta"]
    if "plaintext" in meta:
        assert plaintext == meta["plaintext"].encode()
    elif plaintext[:1] == b"/":
        assert plaintext.endswith(b"\r\n") and b"!" in plaintext
    else:
        assert plaintext[0] == 0x0F  # data-notification
        if "invoke_id" in meta:
            assert int.from_bytes(plaintext[1:5], "big") == meta["invoke_id"]

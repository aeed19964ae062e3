"""The C module's portable core (firmware/cmodules/meterkit_c) compiled with gcc and driven via ctypes.

Both GCM engines run every check: "mbedtls" (mbedtls GCM, as on ESP32) and "portable" (mbedtls
AES + our GHASH, as on MicroPython's bundled mbedtls). References: the `cryptography` package,
the McGrew/Viega GCM test cases, the encrypted peer vectors and meterkit.crc. The same tests run
again against an ASan+UBSan build in a subprocess, and a libFuzzer target runs for ~20 s.
A missing compiler or library fails the build fixture with the package to install.
"""
import ctypes
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings, strategies as st

from conftest import ROOT, load_vectors, vector_bytes
from meterkit.crc import crc16_arc, crc16_x25

sys.path.insert(0, str(ROOT / "tools"))
import build_clib  # noqa: E402

MK_OK, MK_TAG_MISMATCH, MK_ERR_ARG = 0, 1, -1
ENGINES = {"mbedtls": "mbedtls-gcm", "portable": "mbedtls-aes+ghash"}
GUARD = b"\xA5" * 16   # after every output buffer: a write past `out` shows up here
LIBS_ENV = "MK_CLIB_PATHS"   # set by test_sanitized_build: engine=path,... of the ASan libraries


class CLib:
    """ctypes face of mk_core.h; outputs get guard bytes that must survive every call."""

    def __init__(self, path):
        self.lib = build_clib.load(path)

    def engine(self):
        return self.lib.mk_gcm_engine().decode()

    def decrypt(self, key, iv, ciphertext, aad=b"", tag=None, iv_len=None, tag_len=None, n=None):
        n = len(ciphertext) if n is None else n
        out = ctypes.create_string_buffer(bytes(n) + GUARD)
        tag_len = (0 if tag is None else len(tag)) if tag_len is None else tag_len
        rc = self.lib.mk_gcm_decrypt(key, iv, len(iv) if iv_len is None else iv_len, aad, len(aad),
                                     ciphertext, n, tag, tag_len, out)
        assert out.raw[n:-1] == GUARD, "mk_gcm_decrypt wrote past out"
        return rc, out.raw[:n]

    def encrypt(self, key, iv, plaintext, aad=b"", tag_len=12):
        out = ctypes.create_string_buffer(bytes(len(plaintext)) + GUARD)
        tag = ctypes.create_string_buffer(bytes(tag_len) + GUARD)
        rc = self.lib.mk_gcm_encrypt(key, iv, len(iv), aad, len(aad), plaintext, len(plaintext),
                                     out, tag, tag_len)
        assert out.raw[len(plaintext):-1] == GUARD, "mk_gcm_encrypt wrote past out"
        assert tag.raw[tag_len:-1] == GUARD, "mk_gcm_encrypt wrote past tag"
        return rc, out.raw[:len(plaintext)], tag.raw[:tag_len]

    def crc16_arc(self, data):
        return self.lib.mk_crc16_arc(data, len(data))

    def crc16_x25(self, data):
        return self.lib.mk_crc16_x25(data, len(data))


@pytest.fixture(scope="session")
def library_paths(tmp_path_factory):
    given_paths = os.environ.get(LIBS_ENV)
    if given_paths:
        return dict(item.split("=", 1) for item in given_paths.split(","))
    out = tmp_path_factory.mktemp("clib")
    return {engine: build_clib.build_library(out, engine) for engine in ENGINES}


@pytest.fixture(scope="session", params=sorted(ENGINES))
def clib(request, library_paths):
    lib = CLib(library_paths[request.param])
    assert lib.engine() == ENGINES[request.param]
    return lib


def reference_encrypt(key, iv, plaintext, aad, tag_len):
    sealed = AESGCM(key).encrypt(iv, plaintext, aad)
    return sealed[:len(plaintext)], sealed[len(plaintext):][:tag_len]


# --- McGrew/Viega, "The Galois/Counter Mode of Operation", AES-128 test cases 1-6 -------------

K3 = "feffe9928665731c6d6a8f9467308308"
P3 = ("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
A4 = "feedfacedeadbeeffeedfacedeadbeefabaddad2"
IV6 = ("9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a72"
       "8c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b")
MCGREW_VIEGA = [  # key, iv, plaintext, aad, ciphertext, tag
    ("00" * 16, "00" * 12, "", "", "", "58e2fccefa7e3061367f1d57a4e7455a"),
    ("00" * 16, "00" * 12, "00" * 16, "", "0388dace60b6a392f328c2b971b2fe78",
     "ab6e47d42cec13bdf53a67b21257bddf"),
    (K3, "cafebabefacedbaddecaf888", P3, "",
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
     "4d5c2af327cd64a62cf35abd2ba6fab4"),
    (K3, "cafebabefacedbaddecaf888", P3[:120], A4,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
     "5bc94fbc3221a5db94fae95ae7121a47"),
    (K3, "cafebabefacedbad", P3[:120], A4,
     "61353b4c2806934a777ff51fa22a4755699b2a714fcdc6f83766e5f97b6c7423"
     "73806900e49f24b22b097544d4896b424989b5e1ebac0f07c23f4598",
     "3612d2e79e3b0785561be14aaca2fccb"),
    (K3, IV6, P3[:120], A4,
     "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca7"
     "01e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5",
     "619cc5aefffe0bfa462af43c1699d050"),
]


@pytest.mark.parametrize("case", MCGREW_VIEGA, ids=["tc%d" % n for n in range(1, 7)])
def test_mcgrew_viega_cases(clib, case):
    key, iv, plaintext, aad, ciphertext, tag = (bytes.fromhex(x) for x in case)
    assert clib.encrypt(key, iv, plaintext, aad, 16) == (MK_OK, ciphertext, tag)
    assert clib.decrypt(key, iv, ciphertext, aad, tag) == (MK_OK, plaintext)
    assert clib.decrypt(key, iv, ciphertext, aad, tag[:12]) == (MK_OK, plaintext)   # DLMS length


# --- random inputs against the cryptography package ------------------------------------------

@st.composite
def gcm_inputs(draw):
    key = draw(st.binary(min_size=16, max_size=16))
    iv = draw(st.one_of(st.binary(min_size=12, max_size=12), st.binary(min_size=8, max_size=64)))
    aad = draw(st.binary(max_size=64))
    plaintext = draw(st.binary(max_size=1100))
    return key, iv, aad, plaintext, draw(st.integers(4, 16))


@settings(max_examples=150, deadline=None)
@given(case=gcm_inputs())
def test_gcm_equals_cryptography(clib, case):
    key, iv, aad, plaintext, tag_len = case
    ciphertext, tag = reference_encrypt(key, iv, plaintext, aad, tag_len)
    assert clib.encrypt(key, iv, plaintext, aad, tag_len) == (MK_OK, ciphertext, tag)
    assert clib.decrypt(key, iv, ciphertext, aad, tag) == (MK_OK, plaintext)
    assert clib.decrypt(key, iv, ciphertext, aad, None) == (MK_OK, plaintext)


@settings(max_examples=60, deadline=None)
@given(case=gcm_inputs(), flip=st.integers(0, 127), wrong_aad=st.booleans())
def test_bad_tag_is_reported_and_plaintext_still_returned(clib, case, flip, wrong_aad):
    key, iv, aad, plaintext, tag_len = case
    ciphertext, tag = reference_encrypt(key, iv, plaintext, aad, tag_len)
    if wrong_aad:
        aad = aad + b"\x00"
    else:
        tag = bytearray(tag)
        tag[flip // 8 % tag_len] ^= 1 << (flip % 8)
    assert clib.decrypt(key, iv, ciphertext, aad, bytes(tag)) == (MK_TAG_MISMATCH, plaintext)


@settings(max_examples=40, deadline=None)
@given(key=st.binary(min_size=16, max_size=16), iv=st.binary(min_size=12, max_size=12),
       ciphertext=st.binary(max_size=700))
def test_encryption_only_is_ctr_from_j0_plus_1(clib, key, iv, ciphertext):
    """DLMS security control 0x20/0x21: no tag; GCM's keystream starts at IV || 00000002."""
    ctr = Cipher(algorithms.AES(key), modes.CTR(iv + b"\x00\x00\x00\x02")).decryptor()
    assert clib.decrypt(key, iv, ciphertext, b"\x30") == (MK_OK, ctr.update(ciphertext))


def test_decrypts_in_place(clib):
    key, iv, plaintext = bytes(range(16)), bytes(12), bytes(range(200))
    ciphertext, tag = reference_encrypt(key, iv, plaintext, b"", 12)
    buffer = ctypes.create_string_buffer(ciphertext, len(ciphertext))
    rc = clib.lib.mk_gcm_decrypt(key, iv, 12, b"", 0, ctypes.cast(buffer, ctypes.c_char_p),
                                 len(ciphertext), tag, 12, buffer)
    assert (rc, buffer.raw) == (MK_OK, plaintext)


# --- the encrypted peer vectors ----------------------------------------------------------------

def hdlc_information_fields(raw):
    """7E A0xx <dest> <src> <ctrl> <HCS 2> <info> <FCS 2> 7E, frames back to back."""
    at = 0
    while at < len(raw):
        length = ((raw[at + 1] & 0x07) << 8) | raw[at + 2]
        frame = raw[at + 1:at + 1 + length]
        pos = 2
        for _ in range(2):   # address bytes end with the low bit set
            while not frame[pos] & 1:
                pos += 1
            pos += 1
        yield frame[pos + 3:-2]   # after control and HCS, before FCS
        at += length + 2


def without_block_transfer(payload):
    """Concatenate general-block-transfer (0xE0) block data, if the payload is one."""
    if payload[:1] != b"\xE0":
        return payload
    out, at = b"", 0
    while at < len(payload):
        length, at = axdr_length(payload, at + 6)
        out, at = out + payload[at:at + length], at + length
    return out


def axdr_length(data, at):
    if data[at] < 0x80:
        return data[at], at + 1
    count = data[at] & 0x7F
    return int.from_bytes(data[at + 1:at + 1 + count], "big"), at + 1 + count


def glo_ciphering_apdu(vector):
    raw = vector_bytes(vector)
    if raw[0] == 0x7E:
        payload = b"".join(hdlc_information_fields(raw))
        payload = without_block_transfer(payload[3:] if payload[:2] == b"\xE6\xE7" else payload)
    elif raw[0] == 0x68:   # M-Bus long frames: 68 L L 68 C A CI STSAP DTSAP <data> CS 16
        payload, at = b"", 0
        while at < len(raw):
            payload, at = payload + raw[at + 9:at + 4 + raw[at + 1]], at + raw[at + 1] + 6
    else:
        payload = raw
    assert payload[:2] == b"\xDB\x08", vector["id"]
    return payload


def open_vector(vector):
    """(key, iv, aad, ciphertext, tag or None, security control) sliced from the 0xDB APDU."""
    apdu = glo_ciphering_apdu(vector)
    length, at = axdr_length(apdu, 10)
    body = apdu[at:at + length]
    security, iv = body[0], apdu[2:10] + body[1:5]
    key = bytes.fromhex(vector["key_hex"])
    ak = bytes.fromhex(vector["auth_key_hex"] or "")
    if security & 0x10:
        return key, iv, bytes([security]) + ak, body[5:-12], body[-12:], security
    return key, iv, bytes([security]), body[5:], None, security


ENCRYPTED = [v for v in load_vectors() if v["encrypted"]]


@pytest.mark.parametrize("vector", ENCRYPTED, ids=[v["id"] for v in ENCRYPTED])
def test_peer_vectors(clib, vector):
    key, iv, aad, ciphertext, tag, security = open_vector(vector)
    rc, plaintext = clib.decrypt(key, iv, ciphertext, aad, tag)
    keystream = Cipher(algorithms.AES(key), modes.CTR(iv + b"\x00\x00\x00\x02")).decryptor()
    assert plaintext == keystream.update(ciphertext)
    assert plaintext[:1] in (b"/", b"\x0F")   # a P1 telegram or a DLMS data-notification
    if "plaintext" in vector["expected_meta"]:
        assert plaintext == vector["expected_meta"]["plaintext"].encode("latin-1")
    if tag is None:
        assert rc == MK_OK and security in (0x20, 0x21)
    elif vector["auth_key_hex"]:
        assert rc == MK_OK   # Smarty with the Luxembourg AK, dsmr_parser's synthetic frame
    else:
        assert rc == MK_TAG_MISMATCH   # E450: AK unpublished, the plaintext is still there


def test_wrong_authentication_key_only_fails_the_tag(clib):
    smarty = next(v for v in ENCRYPTED if v["id"] == "openhab-dsmr/smarty_decrypter_test")
    key, iv, aad, ciphertext, tag, _ = open_vector(smarty)
    rc, plaintext = clib.decrypt(key, iv, ciphertext, b"\x30", tag)   # AAD without the AK
    assert rc == MK_TAG_MISMATCH and plaintext.startswith(b"/")


# --- arguments the C refuses without writing ------------------------------------------------

KEY, IV, TEXT = bytes(16), bytes(12), bytes(range(48))


@pytest.mark.parametrize("call", [
    dict(key=None), dict(iv=None, iv_len=12), dict(iv_len=0), dict(ciphertext=None, n=16),
    dict(tag=b"\x00" * 3), dict(tag=b"\x00" * 17), dict(tag=None, tag_len=12),
], ids=["no-key", "no-iv", "empty-iv", "no-input", "tag-3", "tag-17", "no-tag-buffer"])
def test_bad_arguments_are_refused(clib, call):
    args = dict(key=KEY, iv=IV, ciphertext=TEXT)
    args.update(call)
    rc, out = clib.decrypt(**args)
    assert rc == MK_ERR_ARG and out == bytes(len(out))   # nothing written


def test_partially_overlapping_buffers_are_refused(clib):
    buffer = ctypes.create_string_buffer(TEXT, len(TEXT))
    rc = clib.lib.mk_gcm_decrypt(KEY, IV, 12, b"", 0, ctypes.cast(buffer, ctypes.c_char_p),
                                 len(TEXT) - 1, None, 0, ctypes.byref(buffer, 1))
    assert rc == MK_ERR_ARG and buffer.raw == TEXT


def test_encrypt_refuses_bad_tag_lengths(clib):
    for tag_len in (1, 3, 17):
        assert clib.encrypt(KEY, IV, TEXT, b"", tag_len)[0] == MK_ERR_ARG


def test_missing_compiler_fails_with_the_package_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))   # a real empty PATH: no gcc, no clang
    with pytest.raises(build_clib.BuildError, match="apt-get install gcc"):
        build_clib.build_library(tmp_path, "mbedtls")
    with pytest.raises(build_clib.BuildError, match="apt-get install clang"):
        build_clib.build_fuzzer(tmp_path)


# --- CRCs against the Python core ---------------------------------------------------------------

def test_crc_check_values(clib):
    assert clib.crc16_arc(b"123456789") == 0xBB3D   # the catalogue's check values
    assert clib.crc16_x25(b"123456789") == 0x906E
    assert clib.crc16_arc(b"") == 0 and clib.crc16_x25(b"") == 0


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000))
def test_crcs_equal_the_python_core(clib, data):
    assert clib.crc16_arc(data) == crc16_arc(data)
    assert clib.crc16_x25(data) == crc16_x25(data)


# --- sanitizers and fuzzing ----------------------------------------------------------------------

def sanitized_environment(paths):
    env = dict(os.environ, LD_PRELOAD=str(build_clib.asan_runtime()),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1", PYTHONMALLOC="malloc")
    env[LIBS_ENV] = ",".join("%s=%s" % item for item in paths.items())
    return env


def test_sanitized_build(tmp_path):
    """Every ctypes test above, again, on the ASan+UBSan libraries (python itself uninstrumented)."""
    if os.environ.get(LIBS_ENV):
        pytest.fail("already inside the sanitized run: deselect this test there")
    paths = {engine: build_clib.build_library(tmp_path, engine, sanitize=True) for engine in ENGINES}
    env = sanitized_environment(paths)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           __file__, "-k", "not sanitized and not fuzz and not asan"],
                          cwd=str(ROOT), env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def test_asan_catches_an_undersized_output_buffer(tmp_path):
    """Proof the sanitizer is live: an `out` buffer 8 bytes short must abort with a report."""
    path = build_clib.build_library(tmp_path, "portable", sanitize=True)
    code = ("import sys; sys.path.insert(0, %r); import test_cmodule, ctypes; "
            "lib = test_cmodule.CLib(%r).lib; out = ctypes.create_string_buffer(40); "
            "print(lib.mk_gcm_decrypt(bytes(16), bytes(12), 12, b'', 0, bytes(48), 48, None, 0, out))"
            % (str(ROOT / "tests"), str(path)))
    proc = subprocess.run([sys.executable, "-c", code], env=sanitized_environment({}),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "heap-buffer-overflow" in proc.stderr, proc.stderr[-3000:]


def test_fuzz_the_c_entry_points(tmp_path):
    fuzzer = build_clib.build_fuzzer(tmp_path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for vector in ENCRYPTED:   # seeds: real ciphertexts behind a fixed 3-byte shape header
        (corpus / vector["id"].replace("/", "_")).write_bytes(b"\x80\x11\x10" + vector_bytes(vector))
    proc = subprocess.run([str(fuzzer), "-max_total_time=20", "-max_len=2048", "-print_final_stats=1",
                           "-artifact_prefix=%s/" % tmp_path, str(corpus)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Done " in proc.stderr and "stat::number_of_executed_units" in proc.stderr

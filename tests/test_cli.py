"""`meterkit decode` as a command: the contract's exit codes and messages."""
import json
import subprocess
import sys

from conftest import load_vectors, vector_bytes

SMARTY = next(v for v in load_vectors() if v["id"] == "openhab-dsmr/smarty_decrypter_test")


def meterkit(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "meterkit_host"] + list(args), input=stdin,
                          capture_output=True, timeout=120)


def test_bad_key_length_is_a_usage_error(tmp_path):
    (tmp_path / "f").write_bytes(b"")
    proc = meterkit("decode", "--key", "0011", str(tmp_path / "f"))
    assert proc.returncode == 2
    assert b"16 bytes" in proc.stderr


def test_bad_key_hex_is_a_usage_error(tmp_path):
    (tmp_path / "f").write_bytes(b"")
    proc = meterkit("decode", "--key", "zz" * 16, str(tmp_path / "f"))
    assert proc.returncode == 2 and b"not hex" in proc.stderr


def test_missing_file_is_a_usage_error():
    proc = meterkit("decode", "/nonexistent/capture.bin")
    assert proc.returncode == 2
    assert proc.stderr.decode().strip() == "meterkit: no such file: /nonexistent/capture.bin"


def test_bad_hex_input_is_a_usage_error(tmp_path):
    (tmp_path / "f").write_text("7E A0 zz")
    proc = meterkit("decode", "--hex", str(tmp_path / "f"))
    assert proc.returncode == 2 and b"bad hex input" in proc.stderr


def test_stdin_hex_with_line_breaks():
    text = SMARTY["raw"]
    wrapped = "\n".join(text[i:i + 64] for i in range(0, len(text), 64)).encode()
    proc = meterkit("decode", "--hex", "--key", SMARTY["key_hex"], "-", stdin=wrapped)
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stdout)
    assert line["authenticated"] is True
    assert line["values"]["1-0:1.8.0"]["unit"] == "kWh"


def test_wrong_key_is_a_rejected_frame_not_a_failure(tmp_path):
    (tmp_path / "f").write_bytes(vector_bytes(SMARTY))
    proc = meterkit("decode", "--key", "00" * 16, str(tmp_path / "f"))
    assert proc.returncode == 0
    error = json.loads(proc.stdout)["error"]
    assert error["kind"] == "auth"
    assert "encryption key" in error["message"]

"""GCM speed and heap on the MicroPython unix port: viper backend vs the plain-Python reference.

The workload is the Luxembourg Smarty frame of the peer vectors (681 bytes of ciphertext, 12-byte
tag, AAD = SC || AK), decrypted with its tag checked, as the dongle does every 10 seconds.

    .venv/bin/python tools/bench_gcm.py
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORE = ROOT / "firmware" / "lib"
SMARTY = ROOT / "tests" / "corpus" / "peers" / "openhab_openhab_addons_dsmr.json"

# Runs on MicroPython. Heap: bytes allocated by one decrypt with the GC off, which bounds its peak.
_MEASURE = """
import gc, json, time
from meterkit.crypto import gcm
from meterkit.security import parse_glo, LUXEMBOURG_AK
frame = parse_glo(bytes.fromhex(RAW))
key = bytes.fromhex(KEY)
iv = frame.iv()
aad = bytes((frame.security_control,)) + LUXEMBOURG_AK
figures = {"ciphertext_bytes": len(frame.ciphertext), "backend": gcm.BACKEND}
for name, rounds in (("viper", 200), ("python", 10)):
    impl = gcm.backend(name)
    plaintext, ok = impl.decrypt(key, iv, frame.ciphertext, aad, frame.tag)
    assert ok and plaintext[:1] == b"/"
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    impl.decrypt(key, iv, frame.ciphertext, aad, frame.tag)
    heap = gc.mem_alloc() - before
    gc.enable()
    gc.collect()
    start = time.ticks_us()
    for _ in range(rounds):
        impl.decrypt(key, iv, frame.ciphertext, aad, frame.tag)
    figures[name] = {"us_per_decrypt": time.ticks_diff(time.ticks_us(), start) // rounds, "heap_bytes": heap}
print(json.dumps(figures))
"""


def _micropython():
    here = pathlib.Path(sys.executable).parent / "micropython"
    return str(here) if here.exists() else shutil.which("micropython")


def _smarty():
    vector = json.loads(SMARTY.read_text())[0]
    return vector["raw"], vector["key_hex"]


def micropython_figures():
    """{'viper': {'us_per_decrypt', 'heap_bytes'}, 'python': {...}, 'speedup', ...} on the unix port."""
    raw, key = _smarty()
    code = "RAW = %r\nKEY = %r\n" % (raw, key) + _MEASURE
    env = dict(os.environ, MICROPYPATH=str(CORE))
    proc = subprocess.run([_micropython(), "-X", "heapsize=2m", "-c", code], env=env,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError("micropython failed: " + proc.stderr[-2000:])
    figures = json.loads(proc.stdout)
    figures["speedup"] = round(figures["python"]["us_per_decrypt"] / max(1, figures["viper"]["us_per_decrypt"]), 1)
    return figures


def cpython_figure(rounds=2000):
    """µs per decrypt of the same frame with the CPython default backend, for comparison."""
    import time
    sys.path.insert(0, str(CORE))
    from meterkit.crypto import gcm
    from meterkit.security import LUXEMBOURG_AK, parse_glo
    raw, key = _smarty()
    frame = parse_glo(bytes.fromhex(raw))
    aad = bytes((frame.security_control,)) + LUXEMBOURG_AK
    start = time.perf_counter()
    for _ in range(rounds):
        gcm.decrypt(bytes.fromhex(key), frame.iv(), frame.ciphertext, aad, frame.tag)
    return gcm.BACKEND, (time.perf_counter() - start) * 1e6 / rounds


if __name__ == "__main__":
    figures = micropython_figures()
    print("MicroPython unix port, Smarty frame (%d bytes of ciphertext, tag checked):"
          % figures["ciphertext_bytes"])
    for name in ("viper", "python"):
        print("  %-7s %7d us per decrypt, %6d bytes of heap allocated per decrypt"
              % (name, figures[name]["us_per_decrypt"], figures[name]["heap_bytes"]))
    print("  viper is %.1fx faster than plain Python (goal: >= 10x)" % figures["speedup"])
    backend, micros = cpython_figure()
    print("CPython (%s backend): %.1f us per decrypt" % (backend, micros))

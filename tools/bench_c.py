"""Speed of the C module's portable core against the MicroPython viper path.

    python tools/bench_c.py

`figures()` returns microseconds per call: AES-128-GCM decrypt of a Smarty-size (690 bytes) and
an E450-size (250 bytes) payload with a 12-byte tag, and CRC16/ARC / CRC-16/X-25 over a 1 KB
telegram. The C side is libmeterkit_c.so built by tools/build_clib.py and called through ctypes
(call overhead included, as the MicroPython binding has its own), for both GCM engines. The
viper side runs `meterkit.crypto.gcm.backend("viper")` on the MicroPython unix port; the CRC
there is meterkit.crc's table code (what stock firmware runs). Best of several rounds.
"""
import ctypes
import json
import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import build_clib  # noqa: E402

ROOT = HERE.parent
SIZES = {"smarty": 690, "e450": 250}
KEY, IV, AAD = bytes(range(16)), bytes(range(12)), b"\x30" + bytes(range(16, 32))
TELEGRAM = bytes((i * 7 + 13) & 0xFF for i in range(1024))

MICROPYTHON_BENCH = """
import time
from meterkit import crc
from meterkit.crypto import gcm

def best_ns(call, n):
    call()
    best = None
    for _ in range(5):
        t = time.ticks_us()
        for _ in range(n):
            call()
        dt = time.ticks_diff(time.ticks_us(), t)
        best = dt if best is None or dt < best else best
    return best * 1000 // n

key, iv, aad, tag = bytes(range(16)), bytes(range(12)), b"\\x30" + bytes(range(16, 32)), bytes(12)
out = {}
try:
    viper = gcm.backend("viper")
except (ValueError, ImportError):
    viper = None
for name, size in %r:
    if viper is not None:
        data = bytes(size)
        out["viper_gcm_decrypt_" + name + "_ns"] = best_ns(lambda: viper.decrypt(key, iv, data, aad, tag), 20)
telegram = bytes((i * 7 + 13) & 0xFF for i in range(1024))
out["micropython_crc16_arc_1k_ns"] = best_ns(lambda: crc.crc16_arc(telegram), 20)
out["micropython_crc16_x25_1k_ns"] = best_ns(lambda: crc.crc16_x25(telegram), 20)
out["micropython_crc_backend"] = crc.BACKEND
print(out)
"""


def best_us(call, n, rounds=5):
    call()
    best = None
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            call()
        elapsed = (time.perf_counter() - start) / n
        best = elapsed if best is None or elapsed < best else best
    return round(best * 1e6, 2)


def c_figures(library):
    lib = build_clib.load(library)
    out = {"engine": lib.mk_gcm_engine().decode()}
    for name, length in SIZES.items():
        data, tag = bytes(length), bytes(12)
        result = ctypes.create_string_buffer(length)

        def decrypt():
            lib.mk_gcm_decrypt(KEY, IV, 12, AAD, len(AAD), data, length, tag, 12, result)
        out["gcm_decrypt_%s_us" % name] = best_us(decrypt, 2000)
    out["crc16_arc_1k_us"] = best_us(lambda: lib.mk_crc16_arc(TELEGRAM, len(TELEGRAM)), 5000)
    out["crc16_x25_1k_us"] = best_us(lambda: lib.mk_crc16_x25(TELEGRAM, len(TELEGRAM)), 5000)
    return out


def micropython_figures():
    binary = pathlib.Path(sys.executable).parent / "micropython"
    env = dict(os.environ, MICROPYPATH=str(ROOT / "firmware" / "lib"))
    code = MICROPYTHON_BENCH % (sorted(SIZES.items()),)
    proc = subprocess.run([str(binary), "-X", "heapsize=4m", "-c", code], env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError("micropython bench failed:\n" + proc.stderr[-2000:])
    raw = json.loads(proc.stdout.strip().replace("'", '"'))
    return {key.replace("_ns", "_us"): (value / 1000 if key.endswith("_ns") else value)
            for key, value in raw.items()}


def figures(build_dir=ROOT / "build" / "clib"):
    """Microseconds per call for both C engines and the MicroPython path, plus speedups."""
    result = {}
    for engine in ("mbedtls", "portable"):
        library = build_clib.build_library(build_dir, engine)
        result["c_" + engine] = c_figures(library)
    result["micropython"] = micropython_figures()
    for engine in ("mbedtls", "portable"):
        for name in SIZES:
            viper = result["micropython"].get("viper_gcm_decrypt_%s_us" % name)
            c = result["c_" + engine]["gcm_decrypt_%s_us" % name]
            result["c_" + engine]["speedup_vs_viper_" + name] = round(viper / c, 1) if viper else None
    return result


if __name__ == "__main__":
    print(json.dumps(figures(), indent=2))

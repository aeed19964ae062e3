"""Does a Smart Meter Gateway poll fit the dongle? The smallest MicroPython heap in which one
cycle of each family runs (tools/smgw_mpy.py on the unix port, code compiled to .mpy as on the
device), against the simulated gateways of the tests, and what the TLS session alone takes.

    .venv/bin/python tools/bench_smgw.py [--families tls,emh,theben,ppc]

The unix port is 64-bit: objects take up to twice what they take on the 32-bit ESP32 (bytecode
the same), and its mbedtls allocates from the MicroPython heap, where the ESP32's takes IDF heap
outside it. So the TLS row is the session's own cost, and the families' rows minus it are what
the Python side of a cycle needs.
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "firmware" / "lib"), str(HERE)]

import build_mpy  # noqa: E402
from smgw_sim import Gateway  # noqa: E402


def compiled(work):
    """The core and tools/smgw_mpy.py as x64 .mpy files: {MICROPYPATH}."""
    out = work / "mpy"
    build_mpy.build("x64", out)
    subprocess.run([build_mpy.mpy_cross(), "-march=x64", "-s", "smgw_mpy.py", "-o",
                    str(out / "lib" / "smgw_mpy.mpy"), str(HERE / "smgw_mpy.py")], check=True)
    return str(out / "lib")


def cycle(path, gw, family, heap_kb):
    """The values read, or None when the cycle did not complete in this heap."""
    pin = gw.fingerprint.replace(":", "").lower()
    args = [family, "127.0.0.1", str(gw.port), gw.user, gw.password, pin]
    code = "import smgw_mpy; smgw_mpy.main(%r)" % (args,)
    proc = subprocess.run([build_mpy.micropython(), "-X", "heapsize=%dk" % heap_kb, "-c", code],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, MICROPYPATH=path))
    if proc.returncode:
        return None
    return [line for line in proc.stdout.splitlines() if line.startswith(("value ", "tls_"))]


def smallest(path, gw, family, low=8, high=512, step=2):
    """The smallest heap (KB, `step` resolution) in which the cycle completes."""
    if cycle(path, gw, family, high) is None:
        raise SystemExit("%s does not run even in %d KB" % (family, high))
    while high - low > step:
        mid = (low + high) // (2 * step) * step
        if cycle(path, gw, family, mid) is None:
            low = mid
        else:
            high = mid
    return high


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="none,tls,emh,theben,ppc")
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="meterkit-smgw-bench-"))
    path = compiled(work)
    print("smallest MicroPython heap for one cycle (unix port, x64 .mpy, 2 KB steps):")
    for family in args.families.split(","):
        sim = family if family in ("emh", "theben", "ppc") else "emh"
        with Gateway(work, sim) as gw:
            values = cycle(path, gw, family, 512)
            kb = smallest(path, gw, family)
        what = {"none": "the imports alone", "tls": "+ the TLS handshake and the pin"}.get(
            family, "+ a whole cycle, %d values" % sum(v.startswith("value") for v in values))
        held = [int(v.split()[1]) for v in values if v.startswith("tls_session_bytes")]
        if held:
            what += "; the open session holds %.1f KB" % (held[0] / 1024)
        print("  %-7s %4d KB   (%s)" % (family, kb, what))


if __name__ == "__main__":
    main()

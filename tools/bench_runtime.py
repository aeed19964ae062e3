"""The firmware runtime's figures on the MicroPython unix port (compiled .mpy, real mosquitto):
heap used after GC over a long run, readings and MQTT messages per second, and the smallest heap
the whole runtime runs in.

    .venv/bin/python tools/bench_runtime.py [--count 5000] [--heap 256k] [--raw] [--smallest]

The whole runtime as tests/test_runtime_memory.py runs it, on a dongle past its setup: DSMR5, MQTT
with HA discovery and harmonized topics (--raw: also the raw ones; give it --heap 384k --interval
0.03), web server listening, history on, trial watch and update entity. --smallest searches
(8 KB steps, 1000 telegrams per try) the smallest -X heapsize that runs without a MemoryError
(none restarting a task either).
"""
import argparse
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from broker import Broker  # noqa: E402
from firmware_harness import Firmware, Meter, MeterLine, Subscriber  # noqa: E402


def config(raw):
    return {"meter": {"profile": "dsmr5"}, "publish": {"diagnostics_interval": 2, "raw": raw},
            "admin": {"password": "bench-admin"}}


def run(heap_kb, count, interval, raw=False):
    """(stats or None after a crash, heap used after each GC, MQTT messages, seconds)."""
    work = pathlib.Path(tempfile.mkdtemp(prefix="meterkit-bench-"))
    line = MeterLine(Meter("dsmr5", seed=1), count=count, interval=interval)
    with Broker(work) as broker, Subscriber(broker.port) as sub:
        fw = Firmware(work, config(raw), broker.port, line.port, heapsize="%dk" % heap_kb,
                      compiled=True)
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


def smallest(interval):
    low, high = 96, 320            # low fails (assumed), high runs (checked last)
    while high - low > 8:
        mid = (low + high) // 16 * 8
        stats, _, _, _ = run(mid, 1000, interval)
        if stats and stats["published"] == 1000 and not stats["out_of_memory"]:
            high = mid
        else:
            low = mid
    return high


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--heap", default="256k")
    parser.add_argument("--interval", type=float, default=0.012)
    parser.add_argument("--raw", action="store_true", help="also the raw per-value topics")
    parser.add_argument("--smallest", action="store_true", help="also search the smallest heap")
    args = parser.parse_args()
    heap_kb = int(args.heap.rstrip("kK"))
    stats, used, messages, elapsed = run(heap_kb, args.count, args.interval, args.raw)
    print("DSMR5 telegrams     %d (raw per-value topics %s), heap %s" % (
        args.count, "on" if args.raw else "off", args.heap))
    if stats is None:
        print("the runtime crashed (see the firmware's output): give it a bigger --heap")
        return 1
    print("readings published  %d, dropped %d, frames ok %d, out-of-memory restarts %d" % (
        stats["published"], stats["dropped"], stats["frames_ok"], stats["out_of_memory"]))
    print("heap used after GC  at start %d KB, min %d KB, max %d KB, at the end %d KB" % (
        used[0] // 1024, min(used[1:]) // 1024, max(used[1:]) // 1024, used[-1] // 1024))
    print("elapsed             %.1f s: %.0f readings/s, %.0f MQTT messages/s (%d messages)" % (
        elapsed, args.count / elapsed, messages / elapsed, messages))
    if args.smallest:
        print("smallest heap       %d KB (1000 telegrams at %.0f/s; the goal is 128 KB)" % (
            smallest(args.interval), 1 / args.interval))
    return 0


if __name__ == "__main__":
    sys.exit(main())

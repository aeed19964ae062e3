"""The firmware runtime's figures on the MicroPython unix port (compiled .mpy, real mosquitto):
heap used after GC over a long run, readings and MQTT messages per second.

    .venv/bin/python tools/bench_runtime.py [--count 5000] [--heap 256k] [--raw]

The whole runtime as tests/test_runtime_memory.py runs it: DSMR5, MQTT with HA discovery and
harmonized topics (--raw: also the raw ones; give it --heap 384k --interval 0.03), web server
listening, history on.
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--heap", default="256k")
    parser.add_argument("--interval", type=float, default=0.012)
    parser.add_argument("--raw", action="store_true", help="also the raw per-value topics")
    args = parser.parse_args()
    heap = int(args.heap.rstrip("kK")) * 1024
    work = pathlib.Path(tempfile.mkdtemp(prefix="meterkit-bench-"))
    line = MeterLine(Meter("dsmr5", seed=1), count=args.count, interval=args.interval)
    cfg = {"meter": {"profile": "dsmr5"}, "publish": {"diagnostics_interval": 2, "raw": args.raw},
           "admin": {"password": "bench-admin"}}   # a dongle past its setup: normal mode
    with Broker(work) as broker, Subscriber(broker.port) as sub:
        fw = Firmware(work, cfg, broker.port, line.port, heapsize=args.heap, compiled=True)
        started = time.monotonic()
        stats = fw.start().wait(timeout=1200)
        elapsed = time.monotonic() - started
        time.sleep(0.5)
        messages = len(sub.messages)
    used = [heap - d["heap_free"] for d in fw.diagnostics()]
    print("DSMR5 telegrams     %d (raw per-value topics %s), heap %s" % (
        args.count, "on" if args.raw else "off", args.heap))
    print("readings published  %d, dropped %d, frames ok %d" % (
        stats["published"], stats["dropped"], stats["frames_ok"]))
    print("heap used after GC  at start %d KB, min %d KB, max %d KB, at the end %d KB" % (
        used[0] // 1024, min(used[1:]) // 1024, max(used[1:]) // 1024, used[-1] // 1024))
    print("elapsed             %.1f s: %.0f readings/s, %.0f MQTT messages/s (%d messages)" % (
        elapsed, args.count / elapsed, messages / elapsed, messages))


if __name__ == "__main__":
    main()

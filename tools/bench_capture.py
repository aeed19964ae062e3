"""`meterkit decode` on a day's capture: wall time for 24 hours of a DSMR5 meter (86 400
telegrams, one a second) and of an L+G E450 (8 640 pushes, one every 10 s), JSON lines out.

    .venv/bin/python tools/bench_capture.py [--tree DIR] [--hours 24]

The captures come from the project's simulator (values change from frame to frame as on a real
line), written to a temp file; the command runs as a user runs it, in its own process, its lines
going to a file; the fastest of three runs counts. --tree runs another checkout's firmware/lib
and host (e.g. `git archive`d), which is how BEFORE was taken.
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware" / "lib"))
sys.path.insert(0, str(ROOT / "host"))

# (label, simulator profile, seconds between frames)
CAPTURES = (("DSMR5, 1 telegram/s", "dsmr5", 1), ("E450, 1 push/10 s", "e450", 10))
GOAL_S = 10   # DSMR5, 24 hours
RUNS = 3      # the fastest counts: the machine is shared, other work only ever slows a run
# seconds for 24 hours, measured with --tree at the commit named, before issue 15's work
BEFORE_COMMIT = "35cad84"
BEFORE = {"DSMR5, 1 telegram/s": 14.90, "E450, 1 push/10 s": 1.47}


def write_capture(path, profile, interval, hours):
    from meterkit_host.simulate import Meter
    meter = Meter(profile, seed=11)
    meter.interval = interval   # the meter's clock advances this much per frame
    count = hours * 3600 // interval
    with open(path, "wb") as f:
        for _ in range(count):
            f.write(meter.next()[0])
    return count


def decode_seconds(capture, tree):
    """(wall seconds of `meterkit decode capture`, lines it wrote)."""
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = "%s/firmware/lib:%s/host" % (tree, tree)
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "meterkit_host", "decode", capture], env=env,
                       stdout=out, check=True)
        seconds = time.perf_counter() - start
        out.seek(0)
        return seconds, sum(1 for _ in out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", help="a checkout whose firmware/lib and host to run")
    parser.add_argument("--hours", type=int, default=24)
    args = parser.parse_args()
    print("`meterkit decode` on %d hours of a simulated meter, CPython; before = commit %s" % (
        args.hours, BEFORE_COMMIT))
    print("  %-22s %8s %8s %10s %10s %9s" % ("capture", "frames", "MB", "seconds", "(before)",
                                             "us/frame"))
    with tempfile.TemporaryDirectory() as work:
        for label, profile, interval in CAPTURES:
            capture = os.path.join(work, profile + ".bin")
            count = write_capture(capture, profile, interval, args.hours)
            runs = [decode_seconds(capture, args.tree) for _ in range(RUNS)]
            seconds, lines = min(runs)
            if lines != count:
                raise SystemExit("%s: %d frames but %d lines" % (label, count, lines))
            before = BEFORE.get(label) if args.hours == 24 else None
            print("  %-22s %8d %8.1f %10.2f %10s %9.0f" % (
                label, count, os.path.getsize(capture) / 1e6, seconds,
                "%.2f" % before if before else "-", seconds * 1e6 / count))
    print("  goal: DSMR5, 24 hours, under %d s on this machine" % GOAL_S)


if __name__ == "__main__":
    main()

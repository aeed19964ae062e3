"""The dongle's whole path for one reading, on the MicroPython unix port: us and bytes allocated
per telegram, now and before issue 15 (the recorded figures below).

    .venv/bin/python tools/bench_path.py [--tree firmware/lib] [--frames 60]

The path: StreamDecoder.feed(frame) -> record.encode (into the spool) -> record.decode (the
publisher) -> the harmonized, raw per-value and raw state payloads (dongle.topics), for a
simulated meter's successive frames (values change as on a real line). Bytes: gc.mem_alloc()
growth with the GC off, averaged over the frames, the memos warm; us: the fastest of a few
rounds over them (the GC on, as on the device). --tree measures another copy
of firmware/lib (e.g. `git archive <commit> firmware/lib`), which is how BEFORE was taken.
"""
import argparse
import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "firmware" / "lib"))
sys.path.insert(0, str(ROOT / "host"))

import build_mpy  # noqa: E402

KEY = "000102030405060708090A0B0C0D0E0F"
AUTH_KEY = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
# (label, simulator profile, key, auth key, the framings a dongle for that meter looks for)
METERS = (("DSMR5 (P1)", "dsmr5", None, None, ("p1",)),
          ("Smarty (0xDB + P1)", "smarty", KEY, None, ("glo",)),
          ("E450 (HDLC + GBT)", "e450", None, None, ("hdlc",)),
          ("E450 (HDLC + GBT + GCM)", "e450", KEY, AUTH_KEY, ("hdlc",)))

# us and bytes per telegram measured with --tree at the commit named, before issue 15's work
BEFORE_COMMIT = "35cad84"
BEFORE = {"DSMR5 (P1)": (1543, 148902), "Smarty (0xDB + P1)": (1117, 91019),
          "E450 (HDLC + GBT)": (1011, 79917), "E450 (HDLC + GBT + GCM)": (1086, 84302)}

_PATH = """
import gc, time
from meterkit.stream import StreamDecoder
from dongle import record, topics, topics_raw
frames = [bytes.fromhex(h) for h in FRAMES]
decoder = StreamDecoder(KEY, AUTH_KEY, framings=FRAMINGS)

def path(frame):
    n = 0
    for reading in decoder.feed(frame):
        item = record.encode(reading, 1700000000)
        back, received = record.decode(item)
        for topic, payload in topics.iter_harmonized(back, "smartmeter", received):
            n += 1
        for topic, payload in topics_raw.iter_raw_values(back, "smartmeter/raw", received):
            n += 1
        topics.raw_state(back, "smartmeter", received)
        n += 1
    return n

def run(count):
    if KEY:
        decoder.security.reset_counters()   # the frames come round again
    messages = 0
    for frame in frames[:count]:
        messages += path(frame)
    return messages

run(WARM)
gc.collect()
gc.disable()
before = gc.mem_alloc()
messages = run(len(frames))
allocated = gc.mem_alloc() - before
gc.enable()
gc.collect()
best = None   # the fastest round: the machine is shared, other work only ever slows a round
for _ in range(ROUNDS):
    start = time.ticks_us()
    run(len(frames))
    micros = time.ticks_diff(time.ticks_us(), start)
    best = micros if best is None else min(best, micros)
print(best // len(frames), allocated // len(frames), messages // len(frames))
"""


def frames_of(profile, key, auth_key, count):
    from meterkit_host.simulate import Meter
    meter = Meter(profile, key, auth_key, seed=3)
    return [meter.next()[0].hex() for _ in range(count)]


def measure(tree, meter, count, rounds=9):
    """(us per telegram, bytes allocated per telegram, MQTT messages per telegram)."""
    _, profile, key, auth_key, framings = meter
    frames = frames_of(profile, key, auth_key, count)
    code = "FRAMES = %r\nKEY = %r\nAUTH_KEY = %r\nFRAMINGS = %r\nWARM = 10\nROUNDS = %d\n" % (
        frames, key and bytes.fromhex(key), auth_key and bytes.fromhex(auth_key), framings, rounds)
    env = dict(os.environ, MICROPYPATH="%s:.frozen" % tree)
    with open(os.devnull) as null:
        proc = subprocess.run([build_mpy.micropython(), "-X", "heapsize=16m", "-c", code + _PATH],
                              env=env, capture_output=True, text=True, timeout=600, stdin=null)
    if proc.returncode:
        raise RuntimeError(proc.stdout[-500:] + proc.stderr[-2000:])
    micros, allocated, messages = proc.stdout.split()
    return int(micros), int(allocated), int(messages)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=str(ROOT / "firmware" / "lib"))
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    print("the dongle's path per reading (decode -> record -> harmonized + raw + state payloads),")
    print("MicroPython unix port, %d successive simulated frames; before = commit %s" % (
        args.frames, BEFORE_COMMIT))
    print("  %-24s %9s %9s %12s %12s %7s %9s" % ("meter", "us", "(before)", "bytes", "(before)",
                                                 "ratio", "messages"))
    for meter in METERS:
        micros, allocated, messages = measure(args.tree, meter, args.frames)
        old_us, old_bytes = BEFORE.get(meter[0], (0, 0))
        print("  %-24s %9d %9s %12d %12s %6s %9d" % (
            meter[0], micros, old_us or "-", allocated, old_bytes or "-",
            "%.2fx" % (old_bytes / allocated) if old_bytes else "-", messages))
    print("  ratio: bytes before / bytes now; goal: allocation per DSMR5 telegram halved (>= 2x)")


if __name__ == "__main__":
    main()

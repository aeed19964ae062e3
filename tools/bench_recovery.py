"""The recovery figure (`make bench`): over fixed-seed damaged streams, valid frames recovered /
valid frames sent, per framing, on CPython and on the MicroPython unix port. Goal: 100 %.

Each framing's stream is 20 telegrams (tests/recovery.py: P1, Smarty, HDLC + GBT + GCM in L+G
style, M-Bus), damaged by 1-6 runs of bytes deleted, garbled or duplicated, fed in pieces of
1 byte to 4 KB, half the streams to the auto-detecting decoder, half to the meter's own framing.
A valid frame is a telegram the damage did not touch. Also shown: telegrams the damage touched,
errors the decoder counted, and breaches of the property tests/test_stream_recovery.py asserts.

    python tools/bench_recovery.py [--streams N] [--seed S]
"""
import argparse
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware" / "lib"))
sys.path.insert(0, str(ROOT / "tests"))

import recovery  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=40, help="damaged streams per framing")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    cases = recovery.sweep(args.seed, args.streams)
    with tempfile.TemporaryDirectory() as tmp:
        micropython = recovery.decode_on_micropython(
            [(stream, data, own, step) for stream, data, _, own, step in cases],
            pathlib.Path(tmp) / "cases.bin", timeout=1800)
    rows = {}
    for (stream, data, touched, own, step), mp_lines in zip(cases, micropython):
        chunks = list(range(step, len(data), step))
        cp_lines = recovery.decode(stream, data, own, chunks)
        row = rows.setdefault(stream.name, [0] * 7)
        for i, lines in enumerate((cp_lines, mp_lines)):
            got, sent = recovery.recovered(stream, touched, lines)
            row[2 * i] += got
            row[2 * i + 1] += sent
        row[4] += len(touched)
        row[5] += sum('"error"' in line for line in cp_lines)
        row[6] += len(recovery.problems(stream, touched, cp_lines)) + \
            len(recovery.problems(stream, touched, mp_lines)) + (cp_lines != mp_lines)
    print("Recovery over damaged streams (%d per framing, 20 telegrams each, seed %d; goal 100 %%)"
          % (args.streams, args.seed))
    print("%-8s %10s %18s %18s %9s %8s %9s" % ("framing", "valid sent", "CPython recovered",
                                                "MicroPython", "damaged", "errors", "breaches"))
    for name, (cp_got, cp_sent, mp_got, mp_sent, touched, errors, breaches) in rows.items():
        print("%-8s %10d %10d %6.1f%% %10d %6.1f%% %9d %8d %9d" % (
            name, cp_sent, cp_got, 100.0 * cp_got / cp_sent, mp_got, 100.0 * mp_got / mp_sent,
            touched, errors, breaches))
    print("  valid: telegrams the damage did not touch; recovered: of those, how many decoded.")
    print("  damaged: telegrams it touched; errors: what the decoder counted for them (CPython);")
    print("  breaches: property violations (tests/recovery.py) on either runtime, or differing lines.")


if __name__ == "__main__":
    main()

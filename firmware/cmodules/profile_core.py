"""Where the decoding time goes on the MicroPython unix port: the measurement behind meterkit_c.

    .venv/bin/python firmware/cmodules/profile_core.py [--rounds N] [--top N] [--pure]

Three workloads as the dongle meets them: a DSMR 5 P1 telegram, a Luxembourg Smarty frame (0xDB +
GCM + P1) and an encrypted L+G E450 push (HDLC + GBT + GCM + A-XDR), on the default (viper) paths.

1. Stages: the whole `StreamDecoder` pass, then each candidate for C timed alone on the same
   bytes (framer scan, link CRC, HDLC reassembly, GCM, A-XDR, text/COSEM parsing): best of five
   runs, so a busy machine shows less. This is the table the README quotes.
2. Functions: the unix port has no sys.settrace, so every function of the loaded meterkit modules
   (and every method of their classes) is wrapped in a timer; the wrapper's calibrated cost is
   taken out. Calls per frame are exact; the times are rough (a wrapped call costs several us).
"""
import argparse
import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import bench  # noqa: E402  (vectors, the re-sealed E450 push, the micropython binary)

# Leaves first: a function is named after the first module that holds it, its own.
MODULES = ("meterkit.crc", "meterkit.exact", "meterkit.obis", "meterkit.clock", "meterkit.reading",
           "meterkit.crypto.gcm", "meterkit.link.p1", "meterkit.link.hdlc", "meterkit.dsmr",
           "meterkit.security", "meterkit.dlms.axdr", "meterkit.dlms.pushlists",
           "meterkit.dlms.cosem", "meterkit.dlms.apdu", "meterkit.stream")

# Runs on MicroPython: RAW, KEY, AK, ROUNDS, PURE, MODULES, KIND, SEALED, PLAIN, FRAMES prepended.
_PROFILE = """
import sys, time, gc
import meterkit
meterkit.PURE_PYTHON = PURE
for name in MODULES:
    __import__(name)
from meterkit.stream import StreamDecoder
now = time.time_ns
stats = {}
# Per active call: [corrected time of wrapped children, wrapper cost spent on descendants].
stack = [[0, 0]]
COST = [0, 0]             # wrapper cost inside the timed window, and in all per call (ns)

def timed(name, fn):
    def wrapper(*args, **kwargs):
        frame = [0, 0]
        stack.append(frame)
        start = now()
        try:
            return fn(*args, **kwargs)
        finally:
            spent = now() - start - COST[0] - frame[1]
            stack.pop()
            entry = stats.get(name)
            if entry is None:
                entry = stats[name] = [0, 0, 0]
            entry[0] += 1
            entry[1] += spent
            entry[2] += spent - frame[0]
            parent = stack[-1]
            parent[0] += spent
            parent[1] += COST[1] + frame[1]
    return wrapper

def plain():
    pass

FUNCTION = type(plain)
wrapped = {}

def wrap(value, name):
    key = id(value)
    if key not in wrapped:
        wrapped[key] = timed(name, value)
    return wrapped[key]

def wrap_module(module, prefix):
    for attr in dir(module):
        value = getattr(module, attr)
        if type(value) is FUNCTION and not attr.startswith("__"):
            setattr(module, attr, wrap(value, prefix + attr))

def wrap_class(cls, prefix):
    for attr, value in list(cls.__dict__.items()):   # staticmethods are not FUNCTION here
        if type(value) is FUNCTION and not attr.startswith("__"):
            setattr(cls, attr, wrap(value, prefix + attr))

def calibrate():
    probe = timed("probe", plain)
    best = None
    for _ in range(5):
        start = now()
        for _ in range(2000):
            plain()
        bare = now() - start
        stats.pop("probe", None)
        start = now()
        for _ in range(2000):
            probe()
        total = (now() - start - bare) // 2000
        inside = stats["probe"][1] // 2000 - bare // 2000
        if best is None or total < best[1]:
            best = (inside, total)
    COST[0], COST[1] = max(0, best[0]), best[1]
    del stats["probe"]
    stack[0][0] = stack[0][1] = 0

def best_ns(call, rounds):
    best = None
    for _ in range(5):
        start = now()
        for _ in range(rounds):
            call()
        spent = (now() - start) // rounds
        best = spent if best is None or spent < best else best
    return best

def stages(data):
    from meterkit.crc import crc16_arc, crc16_x25
    from meterkit.crypto import gcm
    from meterkit import dsmr, security
    from meterkit.link import p1, hdlc
    from meterkit.dlms import apdu, axdr
    text = data if KIND == "p1" else bytes.fromhex(PLAIN)
    out = []
    if KIND != "p1":
        frame = security.parse_glo(bytes.fromhex(SEALED))
        iv = frame.iv()
        aad = bytes((frame.security_control,)) + (AK or security.LUXEMBOURG_AK)
        out.append(("gcm_decrypt_and_tag", lambda: gcm.decrypt(KEY, iv, frame.ciphertext, aad, frame.tag)))
    if KIND == "p1":
        out.append(("p1_framer_scan", lambda: p1.frame_length(data, 0)))
    if KIND == "glo":
        out.append(("glo_framer", lambda: security.glo_frame_length(data, 0)))
    if KIND != "hdlc":
        bang = text.find(b"!") + 1
        out.append(("crc16_arc", lambda: crc16_arc(text, 0, bang)))
        out.append(("p1_text_to_reading", lambda: dsmr.decode_telegram(text, crc="ignore")))
        return out
    frames = [bytes.fromhex(f) for f in FRAMES]
    def link():
        reassembler = hdlc.Reassembler()
        for f in frames:
            hdlc.frame_length(f, 0)
            reassembler.push(f)
    out.append(("hdlc_framing_reassembly", link))
    out.append(("crc16_x25_all_frames", lambda: [crc16_x25(f, 1, len(f) - 2) for f in frames]))
    body = apdu._notification_time(text, 5)[1]
    out.append(("axdr_decode_body", lambda: axdr.decode(text, body)))
    decoder = apdu.ApduDecoder(security.Security())
    out.append(("apdu_to_reading", lambda: decoder.decode_plain(text)))
    return out

def run_once(decoder, data):
    decoder.security.reset_counters()
    events = decoder.feed(data) + decoder.flush()
    assert len(events) == 1 and not isinstance(events[0], Exception), events

data = bytes.fromhex(RAW)
decoder = StreamDecoder(KEY, AK)
run_once(decoder, data)
gc.collect()
print("STAGE whole_stream", best_ns(lambda: run_once(decoder, data), ROUNDS))
for name, call in stages(data):
    call()
    print("STAGE", name, best_ns(call, ROUNDS))

calibrate()
for name in MODULES:
    module = sys.modules[name]
    short = name[len("meterkit."):] + "."
    wrap_module(module, short)
    for attr in dir(module):
        value = getattr(module, attr)
        if type(value) is type and value.__dict__.get("__module__") == name:
            wrap_class(value, short + attr + ".")
decoder = StreamDecoder(KEY, AK)
run_once(decoder, data)
best = {}
for _ in range(5):        # best of five batches per function, as for the stages
    for entry in stats.values():
        entry[0] = entry[1] = entry[2] = 0
    for _ in range(ROUNDS):
        run_once(decoder, data)
    for name in stats:
        calls, inclusive, exclusive = stats[name]
        row = (calls // ROUNDS, inclusive // ROUNDS, exclusive // ROUNDS)
        if calls and (name not in best or row[2] < best[name][2]):
            best[name] = row
print("COST", COST[1])
for name in best:
    print("ROW", name, best[name][0], best[name][1], best[name][2])
"""


def workloads():
    """(name, raw bytes, key, auth key, pieces) of the three frames the dongle meets most; pieces
    are what the stages need: the sealed 0xDB APDU, its plaintext and the HDLC frames."""
    from meterkit import security
    from meterkit.crypto import gcm
    from meterkit.dlms import axdr
    from meterkit.link import hdlc
    _, dsmr5 = bench.vector("ndokter_dsmr_parser.json", "TELEGRAM_V5")
    smarty_v, smarty = bench.vector("openhab_openhab_addons_dsmr.json", "smarty_decrypter_test")
    smarty_key = bytes.fromhex(smarty_v["key_hex"])
    e450, e450_key = bench.e450_authenticated()
    frames, sealed, pos, link = [], b"", 0, hdlc.Reassembler()
    while pos < len(e450):
        n = hdlc.frame_length(e450, pos) if e450[pos] == 0x7E else -1
        if n > 0:
            frames.append(e450[pos:pos + n])
            block = link.push(e450[pos:pos + n])
            if block:
                length, at = axdr.decode_length(block, 6)   # GBT: E0, control, 2+2 block numbers
                sealed += block[at:at + length]
        pos += max(n, 1)

    def plain(apdu, key, ak):
        frame = security.parse_glo(apdu)
        aad = bytes((frame.security_control,)) + (ak or security.LUXEMBOURG_AK)
        return gcm.decrypt(key, frame.iv(), frame.ciphertext, aad, frame.tag)[0]
    return (("DSMR5 P1 telegram", dsmr5, None, None, ("p1", b"", b"", [])),
            ("Smarty 0xDB + GCM + P1", smarty, smarty_key, None,
             ("glo", smarty, plain(smarty, smarty_key, None), [])),
            ("E450 HDLC + GBT + GCM push", e450, e450_key, bench.BENCH_AK,
             ("hdlc", sealed, plain(sealed, e450_key, bench.BENCH_AK), frames)))


def profile(raw, key, ak, pieces, rounds, pure=False):
    """({stage: ns per frame}, wrapper ns per call, [(function, calls, inclusive ns, exclusive ns)])."""
    kind, sealed, plaintext, frames = pieces
    code = "RAW = %r\nKEY = %r\nAK = %r\nROUNDS = %d\nPURE = %r\nMODULES = %r\n" % (
        raw.hex(), key, ak, rounds, pure, MODULES)
    code += "KIND = %r\nSEALED = %r\nPLAIN = %r\nFRAMES = %r\n" % (
        kind, sealed.hex(), plaintext.hex(), [f.hex() for f in frames])
    env = dict(os.environ, MICROPYPATH=str(bench.CORE))
    proc = subprocess.run([bench.build_mpy.micropython(), "-X", "heapsize=8m", "-c", code + _PROFILE],
                          env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise RuntimeError(proc.stdout[-1000:] + proc.stderr[-2000:])
    stages, rows, cost = [], [], 0
    for line in proc.stdout.splitlines():
        parts = line.split()
        if parts[0] == "STAGE":
            stages.append((parts[1], int(parts[2])))
        elif parts[0] == "COST":
            cost = int(parts[1])
        elif parts[0] == "ROW":
            rows.append((parts[1], int(parts[2]), int(parts[3]), max(0, int(parts[4]))))
    rows.sort(key=lambda row: -row[3])
    return stages, cost, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--pure", action="store_true", help="profile the plain-Python paths")
    args = parser.parse_args()
    for name, raw, key, ak, pieces in workloads():
        stages, cost, rows = profile(raw, key, ak, pieces, args.rounds, args.pure)
        whole = stages[0][1]
        print("\n%s (%d bytes)" % (name, len(raw)))
        print("  %-40s %10s %7s" % ("stage (timed alone, best of 5)", "us/frame", "share"))
        for stage, ns in stages:
            print("  %-40s %10.1f %6.1f%%" % (stage, ns / 1000, 100.0 * ns / max(whole, 1)))
        measured = sum(row[3] for row in rows)
        print("  %-40s %10s %7s %7s   (wrapper cost %d ns/call taken out)" % (
            "hottest functions", "excl us", "share", "calls", cost))
        for function, calls, inclusive, exclusive in rows[:args.top]:
            print("  %-40s %10.1f %6.1f%% %7d" % (
                function, exclusive / 1000, 100.0 * exclusive / max(measured, 1), calls))


if __name__ == "__main__":
    main()

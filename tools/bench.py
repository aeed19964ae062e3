"""`make bench`: speed and memory figures, printed as a table. Never asserted in tests.

1. CPython, the same inputs through meterkit and through the reference decoders in one run:
   DSMR 5 P1 telegrams/s vs dsmr_parser, decoded and also written as the decode contract's JSON
   line vs dsmr_parser's parse + Telegram.to_json(), L+G E450 HDLC pushes/s vs gurux-dlms (goal
   >= 20x each). The inputs are a simulated meter's successive frames, so values change as on a
   real line.
2. MicroPython unix port: us per decrypt+decode of a Smarty frame and an encrypted E450 push with
   the viper GCM path vs the plain-Python path (goal >= 10x), heap allocated per telegram, and
   the smallest heap that still decodes the frame (code compiled to .mpy, as on the device).
3. The line-rate headroom: decode time vs the time the UART needs to deliver the same frame.
4. What the helper benches add when they are present: C module vs viper, `meterkit decode` on a
   day's capture, the dongle's path per reading (us and bytes, before and after issue 15), the
   heap the app holds, the runtime's memory, a fleet into PostgreSQL (bench_fleet.py),
   the recovery figure: valid frames recovered / sent over damaged streams (bench_recovery.py,
   goal 100 %).

`tools/bench.py --rows e450,dsmr,json` measures only the named CPython rows (dsmr: P1 telegrams,
json: P1 telegrams + the JSON line, e450: HDLC pushes) and skips parts 2-4: a quick look at one
figure while working on it.
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
CORE = ROOT / "firmware" / "lib"
VECTORS = ROOT / "tests" / "corpus" / "peers"
sys.path.insert(0, str(CORE))
sys.path.insert(0, str(HERE))

import build_mpy  # noqa: E402


def vector(file, suffix):
    for v in json.loads((VECTORS / file).read_text()):
        if v["id"].endswith(suffix):
            raw = bytes.fromhex(v["raw"]) if v["raw_format"] == "hex" else v["raw"].encode("latin-1")
            return v, raw
    raise KeyError(suffix)


def per_second(call, seconds=0.7, runs=3):
    """Calls per second, the median of a few runs (the machine is shared and noisy)."""
    call()
    rates = []
    for _ in range(runs):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            call()
            n += 1
        rates.append(n / (time.perf_counter() - start))
    return sorted(rates)[len(rates) // 2]


def cycling(items):
    """A call-me-again that hands out the next item each time (round robin)."""
    state = {"i": 0}

    def next_item():
        state["i"] = (state["i"] + 1) % len(items)
        return items[state["i"]]
    return next_item


def simulated(profile, count=120):
    """Frames a meter really sends one after the other: values change from telegram to telegram."""
    sys.path.insert(0, str(ROOT / "host"))
    from meterkit_host.simulate import Meter
    meter = Meter(profile, seed=3)
    return [meter.next()[0] for _ in range(count)]


# 1. CPython vs the reference decoders --------------------------------------------------------

def cpython_rows(rows=("dsmr", "json", "e450")):
    """(what, ours/s, reference, theirs/s, goal) for each named row, in ROWS order."""
    return [ROWS[name]() for name in ROWS if name in rows]


def dsmr_parser_v5():
    from dsmr_parser import telegram_specifications
    from dsmr_parser.parsers import TelegramParser
    return TelegramParser(telegram_specifications.V5)


def dsmr_row():
    from meterkit.stream import StreamDecoder
    telegrams = simulated("dsmr5")
    decoder, nxt = StreamDecoder(), cycling(telegrams)
    ours = per_second(lambda: decoder.feed(nxt()))
    parser, texts = dsmr_parser_v5(), cycling([t.decode() for t in telegrams])
    theirs = per_second(lambda: parser.parse(texts()))
    return ("DSMR5 P1 telegrams (changing values), per s", ours, "dsmr_parser", theirs, 20)


def json_row():
    from meterkit.stream import StreamDecoder, event_json
    telegrams = simulated("dsmr5")
    decoder, nxt = StreamDecoder(), cycling(telegrams)
    ours = per_second(lambda: [event_json(e) for e in decoder.feed(nxt())])
    parser, texts = dsmr_parser_v5(), cycling([t.decode() for t in telegrams])
    theirs = per_second(lambda: parser.parse(texts()).to_json())
    return ("  + the JSON line (event_json; to_json), per s", ours, "dsmr_parser", theirs, 20)


def e450_row():
    from meterkit.stream import StreamDecoder
    pushes = simulated("e450")
    decoder, nxt = StreamDecoder(), cycling(pushes)
    ours = per_second(lambda: decoder.feed(nxt()))
    theirs_next = cycling(pushes)
    theirs = per_second(lambda: gurux_decode(theirs_next()))
    return ("E450 HDLC pushes (GBT, changing values), per s", ours, "gurux-dlms", theirs, 20)


ROWS = {"dsmr": dsmr_row, "json": json_row, "e450": e450_row}   # (insertion-ordered: CPython)


def gurux_decode(data):
    from gurux_dlms import GXByteBuffer, GXDLMSClient, GXReplyData
    from gurux_dlms.enums import InterfaceType
    client = GXDLMSClient(True)
    client.interfaceType = InterfaceType.HDLC
    reply, notify, buffer = GXReplyData(), GXReplyData(), GXByteBuffer(data)
    while buffer.position != buffer.size:
        client.getData(buffer, reply, notify)
    return notify.value


# 2. MicroPython: viper vs plain Python, heap ---------------------------------------------------

MP_DECODE = """
import meterkit
meterkit.PURE_PYTHON = PURE
import gc, time
from meterkit.stream import StreamDecoder
from meterkit.reading import Reading
data = bytes.fromhex(RAW)
decoder = StreamDecoder(KEY, AK)
def once():
    decoder.security.reset_counters()
    events = decoder.feed(data) + decoder.flush()
    assert len(events) == 1 and isinstance(events[0], Reading), events
once()
gc.collect()
gc.disable()
before = gc.mem_alloc()
once()
heap = gc.mem_alloc() - before
gc.enable()
gc.collect()
start = time.ticks_us()
for _ in range(ROUNDS):
    once()
print(time.ticks_diff(time.ticks_us(), start) // ROUNDS, heap)
"""


def micropython(code, heapsize="4m", path=CORE):
    env = dict(os.environ, MICROPYPATH=str(path))
    return subprocess.run([build_mpy.micropython(), "-X", "heapsize=" + heapsize, "-c", code],
                          env=env, capture_output=True, text=True, timeout=600)


def mp_decode(raw, key, ak, pure, rounds, path=CORE, heapsize="4m"):
    """(us per decrypt+decode, bytes allocated per frame) on the unix port; `pure` forces the
    plain-Python paths (meterkit.PURE_PYTHON), otherwise viper GCM/CRC/P1 scan are used."""
    code = "RAW = %r\nKEY = %r\nAK = %r\nPURE = %r\nROUNDS = %d\n" % (raw.hex(), key, ak, pure, rounds)
    proc = micropython(code + MP_DECODE, heapsize, path)
    if proc.returncode:
        raise RuntimeError(proc.stdout[-500:] + proc.stderr[-1500:])
    micros, heap = proc.stdout.split()
    return int(micros), int(heap)


def smallest_heap(raw, key, ak, mpy_tree):
    """Smallest -X heapsize (KB, 4 KB steps) in which import + one decode still succeed."""
    low, high = 8, 512
    while high - low > 4:
        mid = (low + high) // 2 // 4 * 4
        try:
            mp_decode(raw, key, ak, False, 1, path=mpy_tree, heapsize="%dk" % mid)
            high = mid
        except RuntimeError:
            low = mid
    return high


BENCH_AK = bytes(range(0xD0, 0xE0))


def e450_authenticated():
    """The real encrypted E450 push, re-sealed with SC 0x30 under a known AK so the tag is checked
    (its own AK is unpublished): same plaintext, same GBT and HDLC shape as the meter sends."""
    from meterkit import security
    from meterkit.crypto import gcm
    from meterkit.dlms import apdu, axdr
    from meterkit.link import hdlc
    v, raw = vector("scs_smartmeter_datacollector.json", "lg_e450_encrypted_no_pushlist")
    key = bytes.fromhex(v["key_hex"])
    link, sealed, pos = hdlc.Reassembler(), b"", 0
    while pos < len(raw):
        n = hdlc.frame_length(raw, pos) if raw[pos] == 0x7E else -1
        if n <= 0:
            pos += 1
            continue
        block = link.push(raw[pos:pos + n])
        pos += n
        if block:
            length, at = axdr.decode_length(block, 6)   # E0, control, block no. 2, ack no. 2
            sealed += block[at:at + length]
    frame = security.parse_glo(sealed)
    plaintext = gcm.decrypt(key, frame.iv(), frame.ciphertext)[0]
    resealed = security.encode_glo(key, plaintext, frame.system_title, frame.counter, 0x30, BENCH_AK)
    frames = b"".join(b"".join(hdlc.encode(b)) for b in apdu.encode_blocks(resealed, 120))
    return frames, key


def micropython_rows():
    rows = []
    smarty_v, smarty = vector("openhab_openhab_addons_dsmr.json", "smarty_decrypter_test")
    e450, e450_key = e450_authenticated()
    cases = (("Smarty (0xDB + P1)", smarty, bytes.fromhex(smarty_v["key_hex"]), None, 115200),
             ("E450 (HDLC + GBT + GCM)", e450, e450_key, BENCH_AK, 2400))
    with tempfile.TemporaryDirectory() as tree:
        build_mpy.build("x64", tree)
        for name, raw, key, ak, baud in cases:
            viper_us, viper_heap = mp_decode(raw, key, ak, False, 200)
            python_us, python_heap = mp_decode(raw, key, ak, True, 10)
            heap_kb = smallest_heap(raw, key, ak, pathlib.Path(tree) / "lib")
            line_us = len(raw) * (11 if baud == 2400 else 10) * 1e6 / baud
            rows.append((name, viper_us, python_us, viper_heap, python_heap, heap_kb, line_us))
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    rows = tuple(ROWS)
    if argv[:1] == ["--rows"] and len(argv) == 2:
        rows = tuple(argv[1].split(","))
        unknown = [name for name in rows if name not in ROWS]
        if unknown:
            sys.exit("unknown row(s) %s; known: %s" % (", ".join(unknown), ",".join(ROWS)))
    elif argv:
        sys.exit("usage: bench.py [--rows %s]" % ",".join(ROWS))
    print("meterkit benchmarks (machine: %d cores, shared; figures vary from run to run)\n" % os.cpu_count())
    print("%-48s %12s %-12s %12s %8s %6s" % ("CPython", "meterkit", "reference", "reference", "ratio", "goal"))
    for what, ours, ref, theirs, goal in cpython_rows(rows):
        print("%-48s %12.0f %-12s %12.0f %7.1fx %5dx" % (what, ours, ref, theirs, ours / theirs, goal))
    if argv:
        return   # just the rows asked for

    print("\n%-26s %10s %10s %7s %11s %11s %10s %12s" % (
        "MicroPython unix port", "viper us", "python us", "ratio", "heap/frame", "(python)",
        "min heap", "UART time"))
    for name, vus, pus, vheap, pheap, heap_kb, line_us in micropython_rows():
        print("%-26s %10d %10d %6.1fx %10dB %10dB %8dKB %10.0fus" % (
            name, vus, pus, pus / max(vus, 1), vheap, pheap, heap_kb, line_us))
    print("  ratio goal >= 10x. heap/frame: bytes allocated while decoding one frame (GC off), an")
    print("  upper bound of its peak. min heap: smallest -X heapsize that imports the .mpy core and")
    print("  decodes the frame. UART time: how long the line needs to deliver that frame; decode")
    print("  time well below it is the line-rate headroom (unix port on a PC; an ESP32 is slower).")

    for extra in ("bench_c", "bench_capture", "bench_path", "bench_size", "bench_runtime",
                  "bench_smgw", "bench_fleet", "bench_recovery"):
        if (HERE / (extra + ".py")).exists():
            print("\n-- %s --" % extra)
            # the runtime on the wheel and make micropython's builds, DSMR5 and Smarty
            flags = ["--table", "--telegrams", "1000"] if extra == "bench_runtime" else []
            subprocess.run([sys.executable, str(HERE / (extra + ".py"))] + flags, check=False)


if __name__ == "__main__":
    main()

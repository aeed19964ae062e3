"""Damaged meter streams and what decoding them must give (tests/test_stream_recovery.py and
tools/bench_recovery.py).

A stream is 20 telegrams of one framing, built by the simulated meters (host/meterkit_host/
simulate.py, on the core's own encoders), frames back to back as the meters send them:

    p1      DSMR 5 telegrams, CRC16
    smarty  0xDB general-glo-ciphering frames (GCM tag, Luxembourg AK), a DSMR telegram inside
    hdlc    L+G style: a GCM-tagged glo APDU in general-block-transfer blocks of 200 bytes, each
            block its own run of HDLC segments (128-byte information fields), the LLC header on
            the first block only (4 frames per telegram)
    mbus    EVN style: an encrypted (SC 0x20) data-notification in two M-Bus long frames

Damage is a few runs of bytes, each at its own place in the clean stream: deleted (a UART
overrun), garbled (every byte changed) or duplicated (a copy inserted right after the run).

A telegram is *touched* when the damage changed the bytes of its frames: a deleted or garbled
run covers at least one of them, or a duplicated copy went in between two of them. A copy that
went in between two telegrams touches neither: it is junk no longer than DUP_RUN, shorter than
any frame, so it holds no whole frame. (A copy after the last telegram counts as touching it: the
input ends inside that junk, and a frame start in it is rightly reported as cut short.)

Each telegram's truth is its clean decode, checked against what the simulated meter states. The
property (`problems`) every decode of a damaged stream must keep:

1. Readings come in stream order, and each has exactly the values (meter id, time, values) of
   one telegram: damage never yields a wrong value, as CRC, FCS, checksum or GCM tag catch it.
2. Every untouched telegram is among them, its line exactly as in the clean decode.
3. A touched telegram either still decodes (all it needed survived: a deleted flag the next
   frame shares, a copy of its own start; a Smarty frame whose tag broke decodes unauthenticated,
   its telegram CRC vouching for the values) or is lost, and every lost one is reported: at
   least one error lies between the readings of the telegrams decoded before and after it.
   Neighbouring lost telegrams may share one error: a run deleted across their boundary leaves
   one candidate frame made of both, which fails once. One lost telegram may cost several errors
   (each of its remaining segments is refused).
4. No error without damage: an error lies between two readings (or before the first, after the
   last) only where a touched telegram lies, the two decoded ones included.
5. The counters agree: `ok` is the number of readings, the others add up to the errors.
"""
import json
import random
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "host"))

from meterkit.stream import StreamDecoder, event_json  # noqa: E402
from meterkit_host.simulate import Meter  # noqa: E402

KEY = bytes.fromhex("36C66639E48A8CA4D6BC8B282A793BBB")
AUTH_KEY = bytes.fromhex("AABBCCDDEEFF00112233445566778899")
COUNT = 20
# framing -> (meter profile, its options, the decoder's keys, the framing its dongle looks for)
FRAMINGS = {
    "p1": ("dsmr5", {}, (None, None), "p1"),
    "smarty": ("smarty", {"key": KEY}, (KEY, None), "glo"),
    "hdlc": ("e450", {"key": KEY, "auth_key": AUTH_KEY, "gbt_block": 200,
                      "llc_on_every_block": False}, (KEY, AUTH_KEY), "hdlc"),
    "mbus": ("evn", {"key": KEY}, (KEY, None), "mbus"),
}
LONGEST = {"delete": 200, "garble": 48, "duplicate": 20}   # bytes of a run, at most
DUP_RUN = LONGEST["duplicate"]
KINDS = ("delete", "garble", "duplicate")


class Stream:
    """One framing's clean stream: telegram byte ranges and each telegram's decode."""

    def __init__(self, framing, seed=1):
        profile, options, self.keys, self.framing = FRAMINGS[framing]
        self.name = framing
        meter = Meter(profile, seed=seed, **options)
        pushes = [meter.next_frames() for _ in range(COUNT)]
        self.frames = [frames for frames, _ in pushes]
        self.data = b"".join(b"".join(frames) for frames in self.frames)
        self.spans, self.edges, at = [], [], 0   # (start, end) of each telegram; frame starts
        for frames in self.frames:
            start = at
            for frame in frames:
                self.edges.append(at)
                at += len(frame)
            self.spans.append((start, at))
        self.shortest_frame = min(len(frame) for frames in self.frames for frame in frames)
        decoder = decoder_for(self, own_framing=True)
        readings = decoder.feed(self.data) + decoder.flush()
        assert [stated(reading) for reading in readings] == [expected for _, expected in pushes]
        self.expected = [event_json(reading) for reading in readings]   # each telegram's line
        assert len(self.expected) == COUNT and len(positions(self)) == COUNT, self.expected
        assert not any('"error"' in line for line in self.expected), self.expected
        assert DUP_RUN < self.shortest_frame

    def owner(self, index):
        """The telegram that byte `index` of the clean stream belongs to."""
        for number, (start, end) in enumerate(self.spans):
            if start <= index < end:
                return number
        raise IndexError(index)

    def damage(self, runs):
        """runs: [(kind, at, length, noise)] (noise: bytes 1..255 XORed in by a garbled run).
        -> (damaged bytes, set of touched telegram numbers). Overlapping or adjacent runs are
        dropped: each run has its own place."""
        placed, last_end = [], -1
        for kind, at, length, noise in sorted(runs, key=lambda run: run[1]):
            length = min(length, len(self.data) - at)
            if length > 0 and at > last_end:
                placed.append((kind, at, length, noise))
                last_end = at + length
        data, touched = bytearray(self.data), set()
        for kind, at, length, noise in reversed(placed):   # from the end: offsets stay true
            end = at + length
            if kind == "delete":
                del data[at:end]
            elif kind == "garble":
                for i in range(length):
                    data[at + i] ^= noise[i % len(noise)]
            else:
                data[end:end] = self.data[at:end]
            if kind != "duplicate":
                touched.update(self.owner(i) for i in (at, end - 1))
                touched.update(n for n, (s, e) in enumerate(self.spans) if at <= s < end)
            elif end == len(self.data) or self.owner(end - 1) == self.owner(end):
                touched.add(self.owner(end - 1))   # (junk after the last one: the input ends in it)
        return bytes(data), touched, placed


def stated(reading):
    """A reading as the simulated meter states its telegram: {OBIS: (value, unit), "timestamp"}."""
    if not hasattr(reading, "values"):
        return reading.message
    values = dict((obis, (value.value, value.unit)) for obis, value in reading.values)
    values["timestamp"] = reading.timestamp
    return values


def random_runs(rng, stream, most=6):
    """A fixed-seed damage plan: 1..most runs of any kind, anywhere in the stream or where two
    frames meet (flags, headers, end lines)."""
    runs = []
    for _ in range(rng.randrange(1, most + 1)):
        kind = rng.choice(KINDS)
        noise = bytes(rng.randrange(1, 256) for _ in range(8))
        if rng.randrange(2):
            at = rng.randrange(len(stream.data))
        else:
            at = min(max(rng.choice(stream.edges) + rng.randrange(-12, 13), 0), len(stream.data) - 1)
        runs.append((kind, at, rng.randrange(1, LONGEST[kind] + 1), noise))
    return runs


def decoder_for(stream, own_framing):
    """The decoder a dongle set up for this meter uses (own_framing), or the auto-detecting one."""
    if own_framing:
        return StreamDecoder(*stream.keys, framings=(stream.framing,))
    return StreamDecoder(*stream.keys)


def decode(stream, data, own_framing=False, chunks=(), counts=None):
    """The decode contract's lines for data fed in pieces cut at `chunks`."""
    decoder = decoder_for(stream, own_framing)
    lines, start = [], 0
    for end in sorted(chunks) + [len(data)]:
        lines += [event_json(e) for e in decoder.feed(data[start:end])]
        start = max(start, end)
    lines += [event_json(e) for e in decoder.flush()]
    if counts is not None:
        counts.update(decoder.counts)
    return lines


def problems(stream, touched, lines, counts=None):
    """What in these decoded lines breaks the property (module docstring); [] when none."""
    found = []
    numbers, errors, gaps = [], [], [[]]   # telegram number of each reading; errors between them
    position = positions(stream)
    for line in lines:
        if '"error"' in line:
            errors.append(line)
            gaps[-1].append(line)
            message = json.loads(line)["error"]["message"]
            if "internal decoder error" in message or "out of memory" in message:
                found.append("a decoder fault: " + message)
            continue
        number = position.get(values(line))
        if number is None:
            found.append("a reading that is no telegram's: " + line[:200])
        elif number not in touched and line != stream.expected[number]:
            found.append("untouched telegram %d decoded otherwise: %s" % (number, line[:200]))
        elif numbers and number <= numbers[-1]:
            found.append("telegram %d decoded after telegram %d" % (number, numbers[-1]))
        else:
            numbers.append(number)
            gaps.append([])
    decoded = set(numbers)
    for number in range(COUNT):
        if number not in decoded and number not in touched:
            found.append("untouched telegram %d was lost" % number)
    bounds = [-1] + numbers + [COUNT]   # gap i lies between telegrams bounds[i] and bounds[i + 1]
    for i, gap in enumerate(gaps):
        lost = [n for n in range(bounds[i] + 1, bounds[i + 1])]
        near = [n for n in range(max(bounds[i], 0), min(bounds[i + 1], COUNT - 1) + 1)
                if n in touched]
        if lost and not gap:
            found.append("telegrams %s lost without an error" % lost)
        if gap and not near:
            found.append("an error where nothing was damaged (after telegram %d): %s"
                         % (bounds[i], gap[0][:200]))
    if counts is not None:
        if counts["ok"] != len(numbers) or sum(counts.values()) - counts["ok"] != len(errors):
            found.append("counters %r for %d readings and %d errors"
                         % (counts, len(numbers), len(errors)))
    return found


def values(line):
    """What a reading says, without how it was judged (a touched Smarty frame whose tag broke
    but whose telegram CRC holds decodes as unauthenticated, with a warning, to the same values)."""
    reading = json.loads(line)
    return json.dumps([reading.get(k) for k in ("meter_id", "timestamp", "values")], sort_keys=True)


def positions(stream):
    return {values(line): number for number, line in enumerate(stream.expected)}


def recovered(stream, touched, lines):
    """(untouched telegrams decoded, untouched telegrams sent)."""
    position = positions(stream)
    decoded = set(position.get(values(line)) for line in lines if '"error"' not in line)
    intact = [n for n in range(COUNT) if n not in touched]
    return sum(1 for n in intact if n in decoded), len(intact)


# The same decode on the MicroPython unix port: records from a file, lines back on stdout.
MICROPYTHON_DECODE = """
import meterkit
meterkit.PURE_PYTHON = BACKEND == "python"
from meterkit.stream import StreamDecoder, event_json
FRAMINGS = {"p1": ("p1",), "glo": ("glo",), "hdlc": ("hdlc",), "mbus": ("mbus",), "auto": None}
with open(PATH, "rb") as f:
    blob = f.read()
pos = 0
def field():
    global pos
    size = int.from_bytes(blob[pos:pos + 4], "big")
    pos += 4 + size
    return blob[pos - size:pos]
while pos < len(blob):
    framing, key, ak = field().decode(), field(), field()
    step, data = int(field().decode()), field()
    framings = FRAMINGS[framing]
    args = (key or None, ak or None)
    d = StreamDecoder(*args) if framings is None else StreamDecoder(*args, framings=framings)
    for i in range(0, len(data), step):
        for e in d.feed(data[i:i + step]):
            print(event_json(e))
    for e in d.flush():
        print(event_json(e))
    print("--")
"""


def micropython_records(cases):
    """cases: [(stream, damaged bytes, own_framing, step)] -> the record file's bytes."""
    out = bytearray()
    for stream, data, own_framing, step in cases:
        key, ak = stream.keys
        for value in (stream.framing if own_framing else "auto", key or b"", ak or b"",
                      str(step), data):
            value = value.encode() if isinstance(value, str) else value
            out += len(value).to_bytes(4, "big") + value
    return bytes(out)


def decode_on_micropython(cases, path, backend="viper", timeout=600):
    """Every case's lines, decoded on the unix port (backend "python": meterkit.PURE_PYTHON)."""
    import pathlib
    from conftest import run_micropython
    pathlib.Path(path).write_bytes(micropython_records(cases))
    code = MICROPYTHON_DECODE.replace("BACKEND", repr(backend)).replace("PATH", repr(str(path)))
    results, current = [], []
    for line in run_micropython(code, heapsize="8m", timeout=timeout).splitlines():
        if line == "--":
            results.append(current)
            current = []
        else:
            current.append(line)
    assert len(results) == len(cases), len(results)
    return results


def sweep(seed, per_framing, streams=None):
    """A fixed-seed sweep: [(stream, damaged, touched, own_framing, chunk size)], every second
    stream for the meter's own framing, the others for the auto-detecting decoder."""
    rng = random.Random(seed)
    out = []
    for name in FRAMINGS:
        stream = streams[name] if streams else Stream(name)
        for i in range(per_framing):
            data, touched, _ = stream.damage(random_runs(rng, stream))
            out.append((stream, data, touched, i % 2 == 1, rng.choice((1, 13, 97, 512, 4096))))
    return out

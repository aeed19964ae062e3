"""The output is pinned: the decode contract's lines, the MQTT payloads and the spool records of
every corpus vector and of simulated meters' successive frames are what tests/pinned_output.json
recorded, byte for byte, on CPython and on the MicroPython unix port.

The speed-ups (memoized lines, rendered values, the DLMS fast path) must never change a byte; this
catches it when one does. A deliberate change of the output regenerates the file:

    .venv/bin/python tests/test_output_pinned.py --write

Simulated frames are pinned by digest (the full text would be megabytes); their inputs' digest
tells a changed simulator apart from a changed decoder.
"""
import hashlib
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "firmware" / "lib"))
sys.path.insert(0, str(HERE.parent / "host"))
sys.path.insert(0, str(HERE))

from conftest import load_vectors, run_micropython, vector_bytes  # noqa: E402

PINNED = HERE / "pinned_output.json"
RECEIVED = 1700000000   # the dongle's clock when the frame arrived (epoch s)
# (profile, frames, encryption key): what each simulated meter sends one frame after the other
SIMULATED = (("dsmr5", 120, None), ("smarty", 40, "000102030405060708090A0B0C0D0E0F"),
             ("e450", 60, None), ("e450", 30, "101112131415161718191A1B1C1D1E1F"),
             ("evn", 30, "202122232425262728292A2B2C2D2E2F"), ("dsmr22", 30, None))

# Runs unchanged on both runtimes: CASES is [(name, hex frames, key hex, auth key hex)]; prints,
# per case, its name and then per event its JSON line and, per Reading, the spool record and
# every payload the dongle publishes, from the record (the dongle's path) and from the Reading.
SCRIPT = """
from meterkit.stream import StreamDecoder, event_json
from meterkit.reading import Reading
from dongle import record, topics

def unhex(text):
    return bytes.fromhex(text) if text else None

def payloads(reading, out):
    for topic, payload in topics.harmonized(reading, "smartmeter", RECEIVED):
        out.append("H %s %s" % (topic, payload.decode()))
    for topic, payload in topics.raw_values(reading, "smartmeter/raw", RECEIVED):
        out.append("R %s %s" % (topic, payload.decode()))
    topic, payload = topics.raw_state(reading, "smartmeter", RECEIVED)
    out.append("S %s %s" % (topic, payload.decode()))
    topic, payload = topics.raw_state(reading, "smartmeter", None)
    out.append("N %s %s" % (topic, payload.decode()))

def run(case, emit):
    name, frames, key, auth_key = case
    decoder = StreamDecoder(unhex(key), unhex(auth_key))
    emit("# " + name)
    events = []
    for frame in frames:
        events += decoder.feed(bytes.fromhex(frame))
    for event in events + decoder.flush():
        emit(event_json(event))
        if isinstance(event, Reading):
            item = record.encode(event, RECEIVED)
            emit("record " + item.hex())
            direct = []
            payloads(event, direct)
            back, received = record.decode(item)
            spooled = []
            payloads(back, spooled)
            if spooled != direct or received != RECEIVED:
                emit("the spooled record publishes other payloads than the Reading")
            for line in spooled:
                emit(line)
"""

# Both passes in one process: the second finds every memo warm (and the order reversed). Each
# block is printed as soon as it is made and only its digest kept: the unix port's heap is small.
MAIN = """
import hashlib
def digest(case, emit):
    h = hashlib.sha256()
    def line(text):
        emit(text)
        h.update(text.encode())
        h.update(b"\\n")
    run(case, line)
    return h.digest()
seen = []
for case in CASES:
    seen.append(digest(case, print))
    print("# end")
differs = []
for i in range(len(CASES) - 1, -1, -1):
    if digest(CASES[i], lambda text: None) != seen[i]:
        differs.append(CASES[i][0])
print(json.dumps(differs))
"""


def cases():
    """[(name, [hex frames], key hex, auth key hex)]: the vectors, then the simulated meters."""
    from meterkit_host.simulate import Meter
    out = [(v["id"], [vector_bytes(v).hex()], v.get("key_hex"), v.get("auth_key_hex"))
           for v in load_vectors()]
    for profile, count, key in SIMULATED:
        meter = Meter(profile, key, seed=5)
        frames = [meter.next()[0].hex() for _ in range(count)]
        out.append(("simulated %s %d key=%s" % (profile, count, key), frames, key, None))
    return out


def cpython_output(all_cases):
    """The blocks of text (one per case) the first pass emits, then what a warm pass changed."""
    scope = {"RECEIVED": RECEIVED, "CASES": all_cases}
    exec(SCRIPT, scope)

    def block(case):
        lines = []
        scope["run"](case, lines.append)
        return "\n".join(lines)
    first = [block(case) for case in all_cases]
    second = [block(case) for case in reversed(all_cases)][::-1]
    return first, [case[0] for case, a, b in zip(all_cases, first, second) if a != b]


def micropython_output(all_cases, tmp_path):
    """cpython_output's answer, from the unix port."""
    data = tmp_path / "cases.json"
    data.write_text(json.dumps(all_cases))
    code = ("import json\nRECEIVED = %d\nwith open(%r) as f:\n    CASES = json.load(f)\n"
            % (RECEIVED, str(data)) + SCRIPT + MAIN)
    *blocks, differs = run_micropython(code, heapsize="32m", timeout=600).split("\n# end\n")
    return blocks, json.loads(differs)


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


def pins(blocks, all_cases):
    """name -> the pinned lines (vectors) or digests and sizes (simulated frames)."""
    assert len(blocks) == len(all_cases)
    pinned = {}
    for (name, frames, _, _), block in zip(all_cases, blocks):
        if name.startswith("simulated"):
            pinned[name] = {"frames_sha256": digest("".join(frames)),
                            "lines": block.count("\n") + 1, "output_sha256": digest(block)}
        else:
            pinned[name] = block.split("\n")
    return pinned


def compare(got, want):
    """A vector added since the pins were made is not pinned yet (the golden sweep checks it)."""
    gone = sorted(set(want) - set(got))
    assert not gone, "pinned cases no longer exist (regenerate the pins): %s" % gone
    for name in sorted(want):
        if isinstance(want[name], dict) and \
                got[name]["frames_sha256"] != want[name]["frames_sha256"]:
            raise AssertionError("the simulator sends other frames for %r than when the output was "
                                 "pinned: regenerate the pins at a commit whose decoder you trust"
                                 % name)
        if got[name] != want[name]:
            if isinstance(want[name], list):
                for i, (a, b) in enumerate(zip(got[name], want[name])):
                    assert a == b, "%s, line %d:\n got  %s\n want %s" % (name, i, a, b)
            assert got[name] == want[name], name


def test_cpython_output_is_pinned():
    all_cases = cases()
    blocks, warm_differs = cpython_output(all_cases)
    compare(pins(blocks, all_cases), json.loads(PINNED.read_text()))
    assert warm_differs == []


def test_micropython_output_is_pinned(tmp_path):
    all_cases = cases()
    blocks, warm_differs = micropython_output(all_cases, tmp_path)
    compare(pins(blocks, all_cases), json.loads(PINNED.read_text()))
    assert warm_differs == []


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    every = cases()
    blocks, differs = cpython_output(every)
    assert not differs, differs
    PINNED.write_text(json.dumps(pins(blocks, every), indent=0, sort_keys=True,
                                 ensure_ascii=False) + "\n")
    print("wrote", PINNED)

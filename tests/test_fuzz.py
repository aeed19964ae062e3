"""Fuzzing the stream decoder with mutated real frames.

Bit flips, truncation, insertion, duplication and arbitrary chunk boundaries: only the core's own
error types may come out, nothing may hang, and the buffers stay bounded. A smaller deterministic
sweep runs the same on the MicroPython unix port.
"""
import signal

from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import load_vectors, run_micropython, vector_bytes
from meterkit.errors import DecodeError
from meterkit.reading import Reading
from meterkit.stream import StreamDecoder

VECTORS = load_vectors()
MAX_BUFFER = 4096


def keys(vector):
    key = bytes.fromhex(vector["key_hex"]) if vector["key_hex"] else None
    ak = bytes.fromhex(vector["auth_key_hex"]) if vector["auth_key_hex"] else None
    return key, ak


@st.composite
def mutated(draw):
    vector = draw(st.sampled_from(VECTORS))
    data = bytearray(vector_bytes(vector) * draw(st.integers(1, 2)))
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        op = draw(st.sampled_from(("flip", "cut", "insert", "delete", "dup")))
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=40))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 20))]
        else:
            data[at:at] = data[at:at + draw(st.integers(1, 200))]
    cuts = sorted(draw(st.lists(st.integers(0, max(len(data), 1)), max_size=12)))
    return vector, bytes(data), cuts


def _alarm(signum, frame):
    raise TimeoutError("decoder hung")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_frames_only_raise_core_errors(case):
    vector, data, cuts = case
    decoder = StreamDecoder(*keys(vector), max_buffer=MAX_BUFFER)
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)   # a hang, not a speed check: a healthy run takes milliseconds
    try:
        events = []
        start = 0
        for end in cuts + [len(data)]:
            events += decoder.feed(data[start:end])
            start = end
            assert len(decoder.buf) <= MAX_BUFFER
        events += decoder.flush()
    finally:
        signal.alarm(0)
    for event in events:
        assert isinstance(event, (Reading, DecodeError)), event
        if isinstance(event, DecodeError):
            assert "internal decoder error" not in event.message, event.message
        else:
            event.to_json()   # a decoded mutation must still serialise
    assert sum(decoder.counts.values()) == len(events)


@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=8))
@settings(max_examples=300, deadline=None)
def test_random_bytes_never_crash(data, cuts):
    decoder = StreamDecoder(bytes(16), bytes(16), max_buffer=MAX_BUFFER)
    start = 0
    for end in sorted(cuts) + [len(data)]:
        for event in decoder.feed(data[start:end]):
            assert "internal decoder error" not in getattr(event, "message", "")
        start = max(start, end)
    decoder.flush()
    assert len(decoder.buf) == 0


MICROPYTHON_SWEEP = """
from meterkit.stream import StreamDecoder
from meterkit.reading import Reading
from meterkit.errors import DecodeError
seed = 12345
def rnd(n):
    global seed
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed %% n
cases = %r
bad = 0
count = 0
for raw, key, ak in cases:
    raw = bytes.fromhex(raw)
    key = bytes.fromhex(key) if key else None
    ak = bytes.fromhex(ak) if ak else None
    for trial in range(%d):
        data = bytearray(raw)
        for _ in range(1 + rnd(4)):
            at = rnd(len(data))
            op = rnd(3)
            if op == 0:
                data[at] ^= 1 << rnd(8)
            elif op == 1:
                data = data[:at]
            else:
                data = data[:at] + bytes([rnd(256)]) + data[at:]
            if not data:
                break
        d = StreamDecoder(key, ak, max_buffer=4096)
        events = []
        pos = 0
        while pos < len(data):
            step = 1 + rnd(300)
            events += d.feed(bytes(data[pos:pos + step]))
            pos += step
            assert len(d.buf) <= 4096
        events += d.flush()
        for e in events:
            count += 1
            if not isinstance(e, (Reading, DecodeError)) or "internal" in getattr(e, "message", ""):
                bad += 1
print("events", count, "bad", bad)
"""


def test_mutation_sweep_on_micropython():
    cases = []
    for vector in VECTORS:
        key = vector["key_hex"] or ""
        ak = vector["auth_key_hex"] or ""
        cases.append((vector_bytes(vector).hex(), key, ak))
    out = run_micropython(MICROPYTHON_SWEEP % (cases, 8), heapsize="8m", timeout=600)
    events, bad = out.split()[1], out.split()[3]
    assert int(events) > 0
    assert bad == "0", out

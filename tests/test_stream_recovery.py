"""A damaged meter stream costs only the telegrams the damage touched, and each lost one is
counted: 20 telegrams of each framing (P1, Smarty, HDLC + GBT + GCM in L+G style, M-Bus), runs of
bytes deleted, duplicated or garbled, fed in any chunking. The damage model, "touched" and the
property are stated in tests/recovery.py. Hypothesis on CPython (each scan backend), a fixed
sweep on the MicroPython unix port (viper and plain Python), which must also print the same lines.
"""
import json
import random

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import recovery
from meterkit.link import p1
from recovery import COUNT, FRAMINGS, KINDS, LONGEST, Stream, decode, problems

STREAMS = dict((name, Stream(name)) for name in FRAMINGS)


@st.composite
def damage(draw, stream):
    """(runs, chunk cuts) for one stream: runs as Stream.damage takes them."""
    runs = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(KINDS))
        if draw(st.booleans()):   # anywhere, or where frames meet (flags, headers, end lines)
            at = draw(st.integers(0, len(stream.data) - 1))
        else:
            at = draw(st.sampled_from(stream.edges)) + draw(st.integers(-12, 12))
            at = min(max(at, 0), len(stream.data) - 1)
        noise = draw(st.binary(min_size=1, max_size=8)).replace(b"\x00", b"\x01")
        runs.append((kind, at, draw(st.integers(1, LONGEST[kind])), noise))
    return runs, draw(st.lists(st.integers(0, len(stream.data)), max_size=8))


def sum_kept(original, noise):
    """True if XORing noise into these bytes leaves their sum mod 256 as it was."""
    garbled = [b ^ noise[i % len(noise)] for i, b in enumerate(original)]
    return sum(garbled) % 256 == sum(original) % 256


@pytest.mark.parametrize("own_framing", [True, False], ids=["own framing", "auto-detect"])
@pytest.mark.parametrize("name", list(FRAMINGS))
@settings(max_examples=120, deadline=None, derandomize=True,   # CI sees the same cases each run
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damage_costs_only_the_telegrams_it_touched(name, own_framing, data):
    stream = STREAMS[name]
    runs, chunks = data.draw(damage(stream))
    damaged, touched, placed = stream.damage(runs)
    if name == "mbus":   # M-Bus checks a frame by its byte sum, and EVN's frames carry no GCM tag
        assume(not any(kind == "garble" and sum_kept(stream.data[at:at + n], noise)
                       for kind, at, n, noise in placed))   # so nothing can catch such a change
    counts = {}
    lines = decode(stream, damaged, own_framing, chunks, counts)
    assert problems(stream, touched, lines, counts) == [], (placed, sorted(touched))


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_plain_python_p1_scan_recovers_alike(data):
    """meterkit.PURE_PYTHON's binary scan answers as the CPython one does."""
    stream = STREAMS["p1"]
    runs, chunks = data.draw(damage(stream))
    damaged, touched, _ = stream.damage(runs)
    native = decode(stream, damaged, True, chunks)
    fast, p1._has_binary = p1._has_binary, p1._has_binary_python
    try:
        plain = decode(stream, damaged, True, chunks)
    finally:
        p1._has_binary = fast
    assert plain == native and problems(stream, touched, plain) == []


def test_the_damage_model_touches_what_it_changed():
    stream = STREAMS["p1"]
    start, end = stream.spans[3]
    noise = b"\x01"
    assert stream.damage([("delete", start - 2, 4, noise)])[1] == {2, 3}
    assert stream.damage([("garble", start, 1, noise)])[1] == {3}
    assert stream.damage([("duplicate", start - 5, 5, noise)])[1] == set()   # junk between two
    assert stream.damage([("duplicate", start - 5, 6, noise)])[1] == {3}     # a copy inside 3
    assert stream.damage([("duplicate", len(stream.data) - 5, 5, noise)])[1] == {19}
    assert stream.damage([("delete", start - 100, 300, noise), ("garble", start, 2, noise)])[1] \
        == {2, 3}   # overlapping runs: the second is dropped
    damaged, _, _ = stream.damage([("garble", start, 3, b"\xff")])
    assert damaged[start:start + 3] == bytes(b ^ 0xFF for b in stream.data[start:start + 3])
    assert len(damaged) == len(stream.data)


def test_the_property_check_finds_what_breaks_it():
    """problems() is no rubber stamp: each way of breaking the property is named."""
    stream = STREAMS["smarty"]
    good = list(stream.expected)
    error = '{"error": {"kind": "auth", "message": "x"}}'
    assert problems(stream, set(), good) == []
    assert problems(stream, {4}, good[:4] + [error] + good[5:]) == []
    assert problems(stream, {4}, good[:4] + good[5:]) == ["telegrams [4] lost without an error"]
    assert problems(stream, set(), good[:4] + [error] + good[5:]) == [
        "untouched telegram 4 was lost", "an error where nothing was damaged (after telegram 3): "
        + error]
    assert problems(stream, {4}, good[:3] + [good[4], good[3]] + good[5:])[0] == \
        "telegram 3 decoded after telegram 4"
    reading = json.loads(good[6])
    reading["values"]["1-0:1.7.0"]["value"] += 1
    wrong = json.dumps(reading)
    assert problems(stream, {6}, good[:6] + [wrong] + good[7:])[0].startswith(
        "a reading that is no telegram's")
    counts = dict(ok=20, crc=1, auth=0, replay=0, format=0)
    assert problems(stream, set(), good, counts)[0].startswith("counters")


@pytest.mark.parametrize("backend", ["viper", "python"])
def test_the_fixed_sweep_on_micropython(backend, tmp_path):
    cases = recovery.sweep(2026, 12 if backend == "viper" else 4, STREAMS)
    results = recovery.decode_on_micropython(
        [(stream, damaged, own, step) for stream, damaged, _, own, step in cases],
        tmp_path / "cases.bin", backend)
    for (stream, damaged, touched, own, step), lines in zip(cases, results):
        assert problems(stream, touched, lines) == [], (stream.name, own, step, sorted(touched))
        chunks = list(range(step, len(damaged), step))
        assert lines == decode(stream, damaged, own, chunks), (stream.name, own, step)


# ---- the mechanisms one by one -------------------------------------------------------------------

def readings_and_errors(lines):
    return [l for l in lines if '"error"' not in l], [l for l in lines if '"error"' in l]


def test_a_refused_frame_whose_length_grew_hides_no_frame():
    """A Smarty frame's length garbled to claim 300 more bytes: scanned again, the next decodes."""
    stream = STREAMS["smarty"]
    start = stream.spans[3][0]
    data = bytearray(stream.data)
    assert data[start] == 0xDB and data[start + 10] == 0x82
    length = int.from_bytes(data[start + 11:start + 13], "big") + 300
    data[start + 11:start + 13] = length.to_bytes(2, "big")
    for own in (True, False):
        readings, errors = readings_and_errors(decode(stream, bytes(data), own, [start + 500]))
        assert readings == stream.expected[:3] + stream.expected[4:] and len(errors) == 1


def test_a_frame_whose_start_was_lost_is_counted():
    """Smarty's 0xDB, an M-Bus frame's 68 L L 68: what is left of the frame is counted as one."""
    for name in ("smarty", "mbus", "hdlc"):
        stream = STREAMS[name]
        start = stream.spans[3][0]
        readings, errors = readings_and_errors(decode(stream, stream.data[:start] +
                                                      stream.data[start + 4:], True))
        assert readings == stream.expected[:3] + stream.expected[4:], name
        assert errors and any("were no frame" in e or "without" in e for e in errors), errors


def test_the_end_of_the_input_counts_a_last_frame_that_lost_its_start():
    stream = STREAMS["mbus"]
    start = stream.spans[19][0]
    data = stream.data[:start] + stream.data[start + 4:start + len(stream.frames[19][0])]
    readings, errors = readings_and_errors(decode(stream, data, True))
    assert readings == stream.expected[:19]
    assert len(errors) == 1 and "the last 252 bytes were no frame" in errors[0]


def test_a_false_0xdb_start_does_not_hold_an_mbus_line():
    """Auto-detect on an M-Bus line: the glo APDU inside a damaged frame, its length field now
    claiming 7936 bytes, holds no reading back until that many bytes have come."""
    stream = STREAMS["mbus"]
    data = bytearray(stream.data)
    start = stream.spans[5][0]
    assert data[start + 9] == 0xDB and data[start + 19] == 0x82
    data[start + 20:start + 22] = b"\x1f\x00"
    decoder = recovery.decoder_for(stream, own_framing=False)
    for number, (begin, end) in enumerate(stream.spans):
        lines = [recovery.event_json(e) for e in decoder.feed(bytes(data[begin:end]))]
        readings, errors = readings_and_errors(lines)
        assert readings == ([] if number == 5 else [stream.expected[number]]), number


def test_a_start_the_buffer_cannot_hold_does_not_cost_the_frames_after_it():
    stream = STREAMS["smarty"]
    data = bytearray(stream.data)
    start = stream.spans[2][0]
    data[start + 11:start + 13] = (7000).to_bytes(2, "big")   # within MAX_LENGTH, beyond the buffer
    decoder = recovery.StreamDecoder(*stream.keys, max_buffer=2048, framings=("glo",))
    events = []
    for i in range(0, len(data), 2048):   # a full buffer at each feed: the start cannot wait
        events += decoder.feed(bytes(data[i:i + 2048]))
        assert len(decoder.buf) <= 2048
    lines = [recovery.event_json(e) for e in events + decoder.flush()]
    assert readings_and_errors(lines)[0] == stream.expected[:2] + stream.expected[3:]


@pytest.mark.parametrize("number", [0, 10])
def test_a_glo_apdu_spliced_by_lost_bytes_is_not_read(number):
    """EVN (SC 0x20: no tag): the end of the first M-Bus frame and the head of the second lost, so
    that the glo APDU inside, with one byte from the second frame's header in it, has its stated
    length again. Auto-detect must not read it as a bare 0xDB frame: a wrong value, unchecked."""
    stream = STREAMS["mbus"]
    cut = stream.spans[number][0] + len(stream.frames[number][0]) - 3
    damaged, touched, _ = stream.damage([("delete", cut, 11, b"\x01")])
    assert touched == {number}
    for own in (False, True):
        lines = decode(stream, damaged, own)
        assert problems(stream, touched, lines) == [], own
        assert stream.expected[number] not in lines and len(lines) > COUNT - 1


# ---- cases random runs found, pinned (runs as Stream.damage takes them) ----------------------------

FOUND = [
    # DSMR5: the first '/' lost, 46 bytes after telegram 3's '/' deleted (its header rest, the
    # empty line, the time and version lines: '/1-3:0.2.8(50)' looked like a header) and '\n!'
    # copied before its '!' (a bare '!', as DSMR 2/3 end): decoded as a CRC-less telegram
    ("p1", [("delete", 0, 1, b"\x01"), ("delete", 2005, 46, b"\x01"),
            ("duplicate", 2664, 2, b"\x01")]),
    # the same with telegram 3's header whole: its version line (or time and version) deleted,
    # so no line says DSMR5, and the copied '!' ends it without a CRC (found by reading the above)
    ("p1", [("delete", 2050, 15, b"\x01"), ("duplicate", 2664, 2, b"\x01")]),
    ("p1", [("delete", 2024, 41, b"\x01"), ("duplicate", 2664, 2, b"\x01")]),
]


@pytest.mark.parametrize("own_framing", [True, False], ids=["own framing", "auto-detect"])
@pytest.mark.parametrize("name, runs", FOUND)
def test_the_cases_random_runs_found(name, runs, own_framing):
    stream = STREAMS[name]
    damaged, touched, placed = stream.damage(runs)
    for chunks in ([], list(range(97, len(damaged), 97))):
        counts = {}
        lines = decode(stream, damaged, own_framing, chunks, counts)
        assert problems(stream, touched, lines, counts) == [], (placed, sorted(touched))


@pytest.mark.parametrize("backend", ["viper", "python"])
def test_the_cases_random_runs_found_on_micropython(backend, tmp_path):
    cases = [(STREAMS[name],) + STREAMS[name].damage(runs)[:2] for name, runs in FOUND]
    results = recovery.decode_on_micropython(
        [(stream, damaged, own, 13) for stream, damaged, _ in cases for own in (True, False)],
        tmp_path / "found.bin", backend)
    for (stream, damaged, touched), lines in zip([c for c in cases for _ in (0, 1)], results):
        assert problems(stream, touched, lines) == [], (stream.name, sorted(touched))

"""A damaged meter stream costs only the telegrams the damage touched, and each lost one is
counted: 20 telegrams of each framing (P1, Smarty, HDLC + GBT + GCM in L+G style, M-Bus), runs of
bytes deleted, duplicated or garbled, fed in any chunking. The damage model, "touched" and the
property are stated in tests/recovery.py. Hypothesis on CPython (each scan backend), a fixed
sweep on the MicroPython unix port (viper and plain Python), which must also print the same lines.
"""
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import recovery
from meterkit.link import p1
from recovery import FRAMINGS, KINDS, LONGEST, Stream, decode, problems

STREAMS = dict((name, Stream(name)) for name in FRAMINGS)


@st.composite
def damage(draw, stream):
    """(runs, chunk cuts) for one stream: runs as Stream.damage takes them."""
    runs = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(KINDS))
        at = draw(st.integers(0, len(stream.data) - 1))
        noise = draw(st.binary(min_size=1, max_size=8)).replace(b"\x00", b"\x01")
        runs.append((kind, at, draw(st.integers(1, LONGEST[kind])), noise))
    return runs, draw(st.lists(st.integers(0, len(stream.data)), max_size=8))


@pytest.mark.parametrize("own_framing", [True, False], ids=["own framing", "auto-detect"])
@pytest.mark.parametrize("name", list(FRAMINGS))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damage_costs_only_the_telegrams_it_touched(name, own_framing, data):
    stream = STREAMS[name]
    runs, chunks = data.draw(damage(stream))
    damaged, touched, placed = stream.damage(runs)
    counts = {}
    lines = decode(stream, damaged, own_framing, chunks, counts)
    assert problems(stream, touched, lines, counts) == [], (placed, sorted(touched))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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


def sweep_cases(seed=2026, per_framing=12):
    """A fixed sweep: each framing, damaged streams for the auto and own-framing decoders."""
    rng = random.Random(seed)
    cases = []
    for name in FRAMINGS:
        stream = STREAMS[name]
        for i in range(per_framing):
            damaged, touched, _ = stream.damage(recovery.random_runs(rng, stream))
            cases.append((stream, damaged, touched, i % 2 == 1, rng.choice((1, 13, 97, 512, 4096))))
    return cases


@pytest.mark.parametrize("backend", ["viper", "python"])
def test_the_fixed_sweep_on_micropython(backend, tmp_path):
    cases = sweep_cases(per_framing=12 if backend == "viper" else 4)
    results = recovery.decode_on_micropython(
        [(stream, damaged, own, step) for stream, damaged, _, own, step in cases],
        tmp_path / "cases.bin", backend)
    for (stream, damaged, touched, own, step), lines in zip(cases, results):
        assert problems(stream, touched, lines) == [], (stream.name, own, step, sorted(touched))
        chunks = list(range(step, len(damaged), step))
        assert lines == decode(stream, damaged, own, chunks), (stream.name, own, step)

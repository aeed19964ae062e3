"""The speed-ups keep every output byte: memoized lines, fast number parsing, cached lookups.

Each fast path is checked against the slow path it short-cuts, on CPython and on MicroPython.
"""
import random

import pytest
from hypothesis import given, settings, strategies as st

from conftest import run_micropython, vector_bytes
from meterkit import dsmr, obis
from meterkit.dlms import axdr, cosem
from meterkit.errors import FormatError
from meterkit.exact import Exact
from meterkit.link.p1 import encode_telegram
from meterkit.stream import StreamDecoder, event_json

V5_LINES = [
    "1-3:0.2.8(50)", "0-0:1.0.0(170102192002W)", "0-0:96.1.1(4B384547303034303436333935353037)",
    "1-0:1.8.1(000004.426*kWh)", "1-0:2.8.1(000002.444*kWh)", "0-0:96.14.0(0002)",
    "1-0:1.7.0(00.244*kW)", "0-0:96.13.0()", "1-0:32.7.0(0230.0*V)", "1-0:31.7.0(0.48*A)",
    "0-1:24.1.0(003)", "0-1:24.2.1(170102161005W)(00000.107*m3)",
    "1-0:99.97.0(1)(0-0:96.7.19)(190326095015W)(0000002014*s)",
]
# what a noisy line or a new meter firmware does to a line between two telegrams
EDITS = ["", "(", ")", "*", ".", "x", "W", "9", "-", ":", "*kWh", ")(", " "]


def mutated(lines, rnd):
    out = []
    for line in lines:
        if rnd.random() < 0.3:
            i = rnd.randrange(len(line) + 1)
            line = line[:i] + rnd.choice(EDITS) + line[i + rnd.randrange(2):]
        out.append(line)
    return out


def cold_json(telegram):
    """Decode with the per-code memo emptied first: every line read from scratch."""
    dsmr._CODES.clear()
    return dsmr.decode_telegram(telegram, crc="ignore").to_json()


def test_memoized_lines_decode_like_fresh_ones():
    rnd = random.Random(7)
    telegrams = [encode_telegram("ISK5\\2M550T-1012", mutated(V5_LINES, rnd)) for _ in range(300)]
    expected = [cold_json(t) for t in telegrams]
    for _ in range(2):   # warm: lines repeat, change, break and come back in any order
        rnd.shuffle(telegrams)
        warm = [dsmr.decode_telegram(t, crc="ignore").to_json() for t in telegrams]
        assert sorted(warm) == sorted(expected)
    order = list(range(len(telegrams)))
    rnd.shuffle(order)
    for i in order:
        assert dsmr.decode_telegram(telegrams[i], crc="ignore").to_json() == cold_json(telegrams[i])


def test_a_line_that_breaks_after_being_memoized_is_still_reported():
    good = encode_telegram("X", ["1-0:1.8.1(000004.426*kWh)", "1-0:1.7.0(00.244*kW)"])
    bad = encode_telegram("X", ["1-0:1.8.1(0000x4.426*kWh)", "1-0:1.7.0(00.244*kW)"])
    assert dsmr.decode_telegram(good).warnings == []
    warnings = dsmr.decode_telegram(bad).warnings
    assert warnings == ["line 3 skipped (not a decimal number: '0000x4.426'): "
                        "1-0:1.8.1(0000x4.426*kWh)"]
    again = dsmr.decode_telegram(good)
    assert [(k, str(v.value), v.unit) for k, v in again.values] == [
        ("1-0:1.8.1", "4.426", "kWh"), ("1-0:1.7.0", "0.244", "kW")]


def test_memo_stays_bounded():
    dsmr._CODES.clear()
    lines = ["1-0:%d.8.%d(1)" % (c, e) for c in range(1, 40) for e in range(8)]
    dsmr.decode_telegram(encode_telegram("X", lines), crc="ignore")
    assert 0 < len(dsmr._CODES) <= dsmr.MAX_CODES


def slow_parse(text):
    """Exact.parse through its general path: surrounding blanks defeat the fast one."""
    return Exact.parse(" " + text + " ")


def outcome(parse, text):
    try:
        value = parse(text)
        return value.mantissa, value.exponent
    except ValueError as error:
        return "error", str(error)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789.+-* e", max_size=12))
def test_exact_parse_fast_path_matches_the_general_one(text):
    assert outcome(Exact.parse, text) == outcome(slow_parse, text.strip())


def test_dsmr_memo_on_micropython(vectors):
    """Warm and cold decodes agree on MicroPython too, for every P1 peer vector."""
    texts = [vector_bytes(v) for v in vectors if vector_bytes(v).startswith(b"/")]
    assert len(texts) > 10
    code = """
from meterkit import dsmr
from meterkit.errors import DecodeError
def decode(t):
    try:
        return dsmr.decode_telegram(t, crc="ignore").to_json()
    except DecodeError as e:
        return e.message
out = []
for t in TEXTS:
    dsmr._CODES.clear()
    cold = decode(t)
    out.append(cold == decode(t) == decode(t))
    out.append(cold)
print(out.count(True), len(TEXTS))
print(repr(out[1::2]))
""".replace("TEXTS", repr(texts))
    lines = run_micropython(code, heapsize="8m").splitlines()
    assert lines[0] == "%d %d" % (len(texts), len(texts))
    cpython = []
    for text in texts:
        try:
            cpython.append(dsmr.decode_telegram(text, crc="ignore").to_json())
        except Exception as error:   # DecodeError
            cpython.append(error.args[0])
    assert lines[1] == repr(cpython)


# ---- DLMS: A-XDR items that repeat, cached OBIS and octet texts --------------------------------

VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.binary(max_size=8),
              st.sampled_from(["LGZ1030655933512", "été", ""])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.lists(inner, max_size=4).map(tuple)),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(VALUES, min_size=1, max_size=5), min_size=1, max_size=6),
       st.randoms(use_true_random=False))
def test_repeated_axdr_items_decode_like_fresh_ones(bodies, rnd):
    """A body whose items repeat, change, or shift decodes with the memo as without it."""
    repeats = []
    for items in bodies + bodies[::-1]:
        rnd.shuffle(items)
        for raw in (axdr.encode(tuple(items)), axdr.encode(list(items))):
            assert axdr.decode(raw, 0, repeats) == axdr.decode(raw)
            corrupt = bytearray(raw)
            corrupt[rnd.randrange(len(raw))] = rnd.randrange(256)
            assert outcome_of(axdr.decode, bytes(corrupt), repeats) == outcome_of(axdr.decode, bytes(corrupt))


def outcome_of(decode, raw, *memo):
    try:
        return decode(raw, 0, *memo)
    except FormatError as error:
        return error.message


def test_a_push_decodes_alike_every_time(vectors):
    e450 = next(v for v in vectors if v["id"].endswith("lg_e450_unencrypted_valid"))
    decoder = StreamDecoder()
    first = [event_json(e) for e in decoder.feed(vector_bytes(e450))]
    obis._TEXTS.clear()
    cosem._TEXTS.clear()
    again = [event_json(e) for e in StreamDecoder().feed(vector_bytes(e450))]
    for _ in range(3):   # now the capture list, codes and ids come from the caches
        assert [event_json(e) for e in decoder.feed(vector_bytes(e450))] == first == again
    assert '"meter_id": "LGZ1030655933512"' in first[0]


def test_compact_array_of_empty_elements_is_rejected_not_endless():
    for description in (b"\x00", b"\x02\x00"):   # null-data; a structure of nothing
        with pytest.raises(FormatError, match="empty elements"):
            axdr.decode(b"\x13" + description + b"\x03\x01\x02\x03")


def test_obis_text_is_the_same_for_every_container_type():
    for code in (b"\x01\x00\x01\x08\x00\xff", b"\x00\x08\x19\x09\x00\x01"):
        texts = {obis.obis_text(code), obis.obis_text(bytearray(code)), obis.obis_text(tuple(code)),
                 obis.obis_text(code)}
        assert len(texts) == 1
    assert obis.obis_text(b"\x00\x08\x19\x09\x00\x01") == "0-8:25.9.0.1"
    for i in range(obis.MAX_TEXTS * 2):
        obis.obis_text(bytes((1, 0, i % 200, 8, i // 200, 255)))
    assert len(obis._TEXTS) <= obis.MAX_TEXTS


def test_octet_texts_stay_right_when_cached():
    for raw in (b"LGZ1030655933512", b"\x07\xe5abc", b"", b"ab\x7f", b"1935912"):
        cold = cosem._ascii(raw)
        assert cosem._plain_text(raw) == cold == cosem._plain_text(raw)
        assert cosem._plain_text(bytearray(raw)) == cold

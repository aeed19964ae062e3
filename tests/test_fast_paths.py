"""The speed-ups keep every output byte: memoized lines, fast number parsing, cached lookups.

Each fast path is checked against the slow path it short-cuts, on CPython and on MicroPython.
"""
import random

import pytest
from hypothesis import given, settings, strategies as st

from conftest import run_micropython, vector_bytes
from meterkit import dsmr, obis
from meterkit.dlms import apdu, axdr, axdr_encode, cosem, fastpush, pushplan
from meterkit.errors import DecodeError, FormatError
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
    dsmr._LINES.clear()
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
        for raw in (axdr_encode.encode(tuple(items)), axdr_encode.encode(list(items))):
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
    assert len(first) == 2 and '"kind": "format"' in first[0]   # it begins with a lost push
    assert '"meter_id": "LGZ1030655933512"' in first[1]


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


# ---- DLMS: the common push shapes read straight from the bytes (dlms/fastpush.py) -----------

def recursive_only(monkeypatch):
    monkeypatch.setattr(fastpush, "read", lambda *args: None)


def test_fast_push_path_decodes_every_vector_like_the_recursive_one(vectors, monkeypatch):
    dlms = [v for v in vectors
            if vector_bytes(v)[:1] in (b"\x7e", b"\x68", b"\xe6", b"\x0f", b"\xdb")]
    used = []
    read = fastpush.read
    monkeypatch.setattr(fastpush, "read", lambda *args: used.append(read(*args)) or used[-1])

    def decode(vector):
        key = bytes.fromhex(vector["key_hex"]) if vector["key_hex"] else None
        ak = bytes.fromhex(vector["auth_key_hex"]) if vector["auth_key_hex"] else None
        decoder = StreamDecoder(key, ak)
        return [event_json(e) for e in decoder.feed(vector_bytes(vector)) + decoder.flush()]
    fast = [decode(v) for v in dlms]
    assert sum(1 for r in used if r is not None) >= 20   # the common shapes do take it
    recursive_only(monkeypatch)
    assert fast == [decode(v) for v in dlms]


OBIS = st.builds(lambda a, rest: bytes([a]) + rest, st.integers(0, 2),
                 st.binary(min_size=5, max_size=5))
INT_TAGS = [axdr.DOUBLE_LONG, axdr.DOUBLE_LONG_UNSIGNED, axdr.INTEGER, axdr.LONG, axdr.UNSIGNED,
            axdr.LONG_UNSIGNED, axdr.LONG64, axdr.ENUM]


def typed_int(tag):
    size, signed = axdr._INTEGERS[tag]
    low = -(1 << (size * 8 - 1)) if signed else 0
    return st.integers(low, low + (1 << (size * 8)) - 1).map(lambda n: axdr_encode.Typed(tag, n))


SIMPLE = st.one_of(
    st.sampled_from(INT_TAGS).flatmap(typed_int), st.none(), st.booleans(),
    st.binary(max_size=14), OBIS,
    st.sampled_from(["KFM_001", "Kamstrup_V0001", "6841131BN243101040", "LGZ1030655933512",
                     "AIDON_V0001", "\u00e9t\u00e9"]),
    st.builds(cosem.datetime_bytes, st.integers(2000, 2040), st.integers(1, 12), st.integers(1, 28),
              st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
              st.sampled_from([None, 60, -120])),
    st.sampled_from([Exact(5, -1), Exact(-3, 0)]))
SCALER_UNIT = st.one_of(
    st.tuples(typed_int(axdr.INTEGER), typed_int(axdr.ENUM)),
    st.tuples(st.sampled_from([axdr.LONG, axdr.UNSIGNED]).flatmap(typed_int), typed_int(axdr.ENUM)),
    st.tuples(typed_int(axdr.INTEGER),
              st.sampled_from([axdr.UNSIGNED, axdr.LONG]).flatmap(typed_int)))
ODD = st.one_of(st.lists(SIMPLE, max_size=3), st.lists(SIMPLE, max_size=3).map(tuple))
ITEMS = st.one_of(
    st.tuples(OBIS, SIMPLE).map(lambda t: [t]),                         # structures
    st.tuples(OBIS, SIMPLE, SCALER_UNIT).map(lambda t: [t]),
    st.tuples(OBIS, st.one_of(SIMPLE, ODD), st.one_of(SIMPLE, ODD)).map(lambda t: [t]),
    st.tuples(OBIS, SIMPLE).map(list), st.tuples(OBIS, SIMPLE, SCALER_UNIT).map(list),   # flat
    SIMPLE.map(lambda v: [v]), ODD.map(lambda v: [v]))
CAPTURED = st.tuples(st.sampled_from([3, 8, 40, 1]), OBIS, st.sampled_from([2, 2, 2, 3, 1]))


@st.composite
def push_bodies(draw):
    if draw(st.booleans()):   # a capture-object list, then what it names
        objects = draw(st.lists(CAPTURED, min_size=1, max_size=8))
        typed = axdr_encode.Typed
        capture = [(typed(axdr.LONG_UNSIGNED, c), code, typed(axdr.INTEGER, a),
                    typed(axdr.LONG_UNSIGNED, 0)) for c, code, a in objects]
        values = [draw(SCALER_UNIT if a == 3 else SIMPLE) for _, _, a in objects[1:]]
        values += draw(st.lists(st.one_of(SIMPLE, ODD), max_size=2 if draw(st.booleans()) else 0))
        body = [capture] + values
    else:
        body = [item for items in draw(st.lists(ITEMS, max_size=12)) for item in items]
    return body if draw(st.booleans()) else tuple(body)


def notification(body, when):
    head = b"\x0f\x00\x00\x00\x01" + (b"\x0c" + cosem.datetime_bytes(*when) if when else b"\x00")
    return head + axdr_encode.encode(body if isinstance(body, list) else tuple(body))


def fast_outcome(raw, repeats):
    try:
        when, pos = apdu._notification_time(raw, 5)
    except FormatError:
        return None
    read = fastpush.read(raw, pos, when, None, repeats)
    return None if read is None else (read[0].to_json(), read[0].warnings, read[1])


def recursive_outcome(raw, repeats):
    try:
        when, pos = apdu._notification_time(raw, 5)
        body, end = axdr.decode(raw, pos, repeats)
        reading = cosem.notification_reading(body, when)
    except FormatError as error:
        return error.message
    return reading.to_json(), reading.warnings, end


@settings(max_examples=600, deadline=None)
@given(st.lists(push_bodies(), min_size=1, max_size=4),
       st.sampled_from([None, (2024, 3, 1, 2, 3, 4)]), st.randoms(use_true_random=False))
def test_fast_push_path_reads_generated_bodies_like_the_recursive_one(bodies, when, rnd):
    """On what it takes, the fast path says what the recursive decoder says; bodies repeat (the
    capture list memo), get cut short and get a byte changed."""
    fast_memo, slow_memo = [], []
    for body in bodies + bodies:
        raw = notification(body, when)
        for data in (raw, raw[:rnd.randrange(6, len(raw) + 1)],
                     raw[:-1] + bytes([rnd.randrange(256)]), raw + b"\x00"):
            fast = fast_outcome(data, fast_memo)
            slow = recursive_outcome(data, slow_memo)
            if fast is not None:
                assert fast == slow


def test_fast_push_path_takes_the_common_shapes():
    """The shapes meters push go the fast way (the generated test above only proves equality)."""
    code = b"\x01\x00\x01\x08\x00\xff"
    for body in [((code, 5, (axdr_encode.Typed(axdr.INTEGER, -1),
                             axdr_encode.Typed(axdr.ENUM, 30))),),
                 (code, 5, code, 6), (b"x" * 12, code, 5, (axdr_encode.Typed(axdr.INTEGER, 0),
                                                          axdr_encode.Typed(axdr.ENUM, 30)))]:
        assert fast_outcome(notification(body, None), []) is not None, body


def plain_outcome(decoder, raw):
    try:
        reading = decoder.decode_plain(raw)
    except FormatError as error:
        return error.message
    return reading.to_json(), reading.warnings, reading.leftover


@settings(max_examples=400, deadline=None)
@given(st.lists(push_bodies(), min_size=1, max_size=3),
       st.sampled_from([None, (2024, 3, 1, 2, 3, 4)]), st.randoms(use_true_random=False))
def test_push_plans_read_bodies_like_the_walk(bodies, when, rnd):
    """A planned push decodes as if walked; bodies repeat with any one byte changed (a value,
    or the layout: then the plan must not fit)."""
    planned, walked = apdu.ApduDecoder(None), apdu.ApduDecoder(None)
    walked._plans = None
    for body in bodies + bodies:
        raw = notification(body, when)
        for _ in range(6):
            at = rnd.randrange(5, len(raw))
            data = raw[:at] + bytes([rnd.randrange(256)]) + raw[at + 1:]
            for data in (raw, data, raw[:rnd.randrange(6, len(raw) + 1)], raw + b"\x00"):
                assert plain_outcome(planned, data) == plain_outcome(walked, data)


def test_push_plans_take_a_meters_successive_pushes():
    from meterkit_host.simulate import Meter
    meter = Meter("e450", seed=5)
    pushes = [meter.next()[0] for _ in range(30)]
    planned, walked = StreamDecoder(), StreamDecoder()
    walked.apdu._plans = None
    for push in pushes:
        assert ([event_json(e) for e in planned.feed(push)]
                == [event_json(e) for e in walked.feed(push)])
    plan, = planned.apdu._plans     # one layout, planned once and then taken
    assert len(plan.raws) == len(plan.steps) == 14 and None not in plan.raws


def test_push_plans_stay_bounded():
    plans = []
    for n in range(1, 10):
        raw = notification(tuple((b"\x01\x00\x01\x08\x00\xff", i) for i in range(n)), None)
        pushplan.remember(plans, raw, 6, None)
    assert len(plans) == pushplan.MAX_PLANS


# ---- HDLC: the viper framer and frame check answer like the plain Python ----------------------

HDLC_COMPARE = """
from meterkit.link import hdlc
from meterkit.errors import DecodeError
assert hdlc.BACKEND == "viper", hdlc.BACKEND
def checked(check, frame):
    try:
        return check(frame)
    except DecodeError as e:
        return e.message
same = compared = 0
for buf in BUFS:
    for pos in range(len(buf)):
        if buf[pos] != 0x7E:
            continue
        n = hdlc._frame_length_python(buf, pos)
        compared += 1
        same += n == hdlc.frame_length(buf, pos) == hdlc.frame_length(bytearray(buf), pos)
        for size in (n, n + 1, 8, len(buf) - pos):
            frame = buf[pos:pos + max(size, 0)]
            compared += 1
            same += checked(hdlc._check_python, frame) == checked(hdlc._check, frame)
print(same, compared)
"""


def hdlc_buffers(apdus, rnd):
    """Frames as meters send them (addresses of 1..4 bytes, segmented or not), then damaged."""
    from meterkit.link import hdlc
    bufs = []
    for apdu in apdus:
        dest = bytes([rnd.randrange(0, 256, 2) for _ in range(rnd.randrange(4))] + [rnd.randrange(1, 256, 2)])
        src = bytes([0x10] * rnd.randrange(4) + [0x21])
        frames = hdlc.encode(apdu, rnd.randrange(3, 140), (dest, src))
        raw = bytearray(b"".join(frames))
        bufs.append(bytes(raw))
        for _ in range(3):   # a flipped byte, a cut, a shared flag: each must be judged alike
            broken = bytearray(raw)
            broken[rnd.randrange(len(broken))] ^= 1 << rnd.randrange(8)
            bufs.append(bytes(broken))
        bufs.append(bytes(raw[:rnd.randrange(1, len(raw))]))
        bufs.append(bytes(raw).replace(b"\x7e\x7e", b"\x7e"))
        bufs.append(short_frame(dest, src, bytes(rnd.randrange(256) for _ in range(rnd.randrange(4)))))
        junk = [rnd.choice((0x02, 0x03, 0x10, 0x21, 0x7E)) for _ in range(rnd.randrange(16))]
        bufs.append(bytes([0x7E, rnd.choice((0xA0, 0xA8, 0xB0)), rnd.randrange(5, 16)] + junk))
    return bufs


def short_frame(dest, src, info):
    """A frame whose length field leaves 0..3 bytes after the control byte, FCS over it all."""
    from meterkit.crc import crc16_x25
    length = 2 + len(dest) + len(src) + 1 + len(info) + 2
    body = bytearray([0xA0 | length >> 8, length & 0xFF]) + dest + src + b"\x13" + info
    crc = crc16_x25(body)
    return b"\x7e" + bytes(body) + bytes((crc & 0xFF, crc >> 8)) + b"\x7e"


def compare_hdlc_on_micropython(bufs):
    out = run_micropython(HDLC_COMPARE.replace("BUFS", repr(bufs)), heapsize="8m").split()
    assert int(out[1]) > len(bufs) and out[0] == out[1]


def hdlc_vector_buffers(vectors):
    """The HDLC vectors' bytes, and a long frame cut and run together as on a line."""
    bufs = [vector_bytes(v) for v in vectors if vector_bytes(v)[:1] == b"\x7e"]
    assert len(bufs) > 10
    return bufs + hdlc_buffers([b"\x0f" + bytes(range(200))], random.Random(1))


def test_hdlc_viper_matches_python_on_the_vectors(vectors):
    compare_hdlc_on_micropython(hdlc_vector_buffers(vectors))


@settings(max_examples=4, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=10, max_size=30),
       st.randoms(use_true_random=False))
def test_hdlc_viper_matches_python_on_random_frames(apdus, rnd):
    compare_hdlc_on_micropython(hdlc_buffers(apdus, rnd))


def hdlc_outcome(check, frame):
    try:
        return check(frame)
    except DecodeError as error:
        return error.message


def compare_hdlc_on_cpython(bufs):
    """The regular-expression framer and check (hdlc.BACKEND "cpython") answer like the plain
    code at every offset, for bytes and bytearray, whole frames, cut ones and longer runs."""
    from meterkit.link import hdlc
    assert hdlc.BACKEND == "cpython"
    for buf in bufs:
        for pos in range(len(buf)):
            n = hdlc._frame_length_python(buf, pos)
            assert n == hdlc.frame_length(buf, pos) == hdlc.frame_length(bytearray(buf), pos)
            for size in (n, n + 1, 8, len(buf) - pos):
                frame = buf[pos:pos + max(size, 0)]
                assert hdlc_outcome(hdlc._check_python, frame) == hdlc_outcome(hdlc._check, frame)


def test_hdlc_cpython_matches_python_on_the_vectors(vectors):
    compare_hdlc_on_cpython(hdlc_vector_buffers(vectors))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=10),
       st.randoms(use_true_random=False))
def test_hdlc_cpython_matches_python_on_random_frames(apdus, rnd):
    compare_hdlc_on_cpython(hdlc_buffers(apdus, rnd))


def test_crc_residue_checks_a_field_like_its_crc(rnd=random.Random(3)):
    from meterkit import crc
    from meterkit.link import hdlc
    for _ in range(300):
        data = bytes(rnd.randrange(256) for _ in range(rnd.randrange(60)))
        value = crc.crc16_x25(data)
        good = data + bytes((value & 0xFF, value >> 8))
        assert crc.crc16_x25(good) == hdlc.GOOD_RESIDUE
        assert crc.crc16_x25(good[:-1] + bytes([good[-1] ^ 1 << rnd.randrange(8)])) != hdlc.GOOD_RESIDUE


def test_dlms_vectors_decode_alike_with_cold_and_warm_code_memo(vectors):
    """COSEM reads each OBIS code once (cosem._CODES): warm decodes equal cold ones everywhere."""
    dlms = [vector_bytes(v) for v in vectors if vector_bytes(v)[:1] in (b"\x7e", b"\x68", b"\xe6", b"\x0f")]
    assert len(dlms) > 10

    def decode(raw, cold):
        if cold:
            cosem._CODES.clear()
            obis._TEXTS.clear()
        decoder = StreamDecoder()
        return [event_json(e) for e in decoder.feed(raw) + decoder.flush()]
    for raw in dlms + dlms[::-1]:
        assert decode(raw, False) == decode(raw, True) == decode(raw, False)
    for i in range(cosem.MAX_CODES * 2):
        cosem._code(bytes((1, 0, i % 200, 8, i // 200, 255)))
    assert len(cosem._CODES) <= cosem.MAX_CODES


def iso_outcome(convert, text):
    try:
        return convert(text)
    except ValueError as error:
        return "error", str(error)


def iso_from_numbers(text):
    """How dsmr read a telegram time before it took the digits as text."""
    from meterkit.clock import iso_datetime, valid_date
    if not dsmr._is_timestamp(text):
        raise ValueError("not a DSMR timestamp: '%s'" % text)
    yy, mo, d, h, mi, s = [int(text[i:i + 2]) for i in range(0, 12, 2)]
    year = 2000 + yy if yy < 70 else 1900 + yy
    if not valid_date(year, mo, d, h, mi, s):
        raise ValueError("impossible date: '%s'" % text)
    suffix = text[12:]
    offset = 60 if suffix == "W" else 120 if suffix == "S" else None
    return iso_datetime(year, mo, d, h, mi, s, offset)


@settings(max_examples=1000, deadline=None)
@given(st.tuples(*[st.integers(0, 99)] * 6), st.sampled_from(["", "W", "S", "X"]),
       st.sampled_from(["", "\u0663", "\uff11", "\u00b2"]), st.integers(0, 11))
def test_telegram_times_read_as_text_like_as_numbers(fields, suffix, digit, at):
    """iso_timestamp takes the telegram's digits as they are; read as numbers they say the same
    (other Unicode digits too, which CPython's isdigit() and int() accept)."""
    text = "%02d%02d%02d%02d%02d%02d" % fields + suffix
    if digit:
        text = text[:at] + digit + text[at + 1:]
    assert iso_outcome(dsmr.iso_timestamp, text) == iso_outcome(iso_from_numbers, text)

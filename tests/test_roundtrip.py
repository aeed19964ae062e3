"""Round trips through the whole stream decoder: the core's encoders build frames of every supported
format from random values and keys, the stream is cut at random places, and the decoder must give
back exactly what went in."""
from hypothesis import given, settings, strategies as st

from meterkit import dsmr, security
from meterkit.dlms import apdu
from meterkit.errors import AuthError, ReplayError
from meterkit.exact import Exact
from meterkit.link import hdlc, mbus
from meterkit.reading import Reading, Value
from meterkit.stream import StreamDecoder

UNITS = ("W", "Wh", "kW", "kWh", "V", "A", "var", "varh")
DLMS_UNITS = ("W", "Wh", "V", "A", "var", "varh", "Hz")   # DLMS states base units and a scaler
keys = st.binary(min_size=16, max_size=16)
titles = st.binary(min_size=8, max_size=8)
counters = st.integers(0, 0xFFFFFFF0)


def obis_codes(a):
    return st.tuples(st.just(a), st.integers(0, 4), st.integers(1, 99), st.integers(0, 99), st.integers(0, 9)) \
        .map(lambda t: "%d-%d:%d.%d.%d" % t)


def unique_by_obis(items):
    seen, out = set(), []
    for item in items:
        if item[0] not in seen and item[0] != dsmr.CLOCK:
            seen.add(item[0])
            out.append(item)
    return out


dsmr_values = st.lists(st.tuples(obis_codes(1), st.integers(0, 10**9), st.integers(-3, 0),
                                 st.sampled_from(UNITS)), min_size=1, max_size=30).map(unique_by_obis)
dlms_values = st.lists(st.tuples(obis_codes(1), st.integers(-2**31, 2**31 - 1), st.integers(-3, 3),
                                 st.sampled_from(DLMS_UNITS)), min_size=1, max_size=40).map(unique_by_obis)


def feed_chunked(decoder, data, cuts):
    events, start = [], 0
    for end in sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]:
        events += decoder.feed(data[start:end])
        start = end
    return events + decoder.flush()


def only_reading(events):
    assert len(events) == 1 and isinstance(events[0], Reading), events
    return events[0]


def assert_same(reading, values):
    got = dict((obis, (v.value, v.unit)) for obis, v in reading.values)
    for obis, mantissa, scaler, unit in values:
        assert got[obis] == (Exact(mantissa, scaler), unit), obis


def p1_telegram(values):
    pairs = [(obis, Value(Exact(m, s), unit)) for obis, m, s, unit in values]
    return dsmr.encode_reading("XMX5LGBBFG1012345678", pairs, timestamp="2024-03-31T03:00:00+02:00")


@settings(max_examples=60, deadline=None)
@given(dsmr_values, st.lists(st.integers(0, 5000), max_size=10))
def test_p1_round_trip(values, cuts):
    reading = only_reading(feed_chunked(StreamDecoder(), p1_telegram(values), cuts))
    assert_same(reading, values)
    assert reading.timestamp == "2024-03-31T03:00:00+02:00" and reading.authenticated is None


@settings(max_examples=40, deadline=None)
@given(dsmr_values, keys, keys, titles, counters, st.lists(st.integers(0, 5000), max_size=10))
def test_smarty_round_trip(values, key, ak, title, counter, cuts):
    frame = security.encode_glo(key, p1_telegram(values), title, counter, 0x30, ak)
    reading = only_reading(feed_chunked(StreamDecoder(key, ak), frame, cuts))
    assert_same(reading, values)
    assert reading.authenticated is True


@settings(max_examples=40, deadline=None)
@given(dlms_values, keys, keys, titles, counters, st.integers(16, 300), st.integers(16, 200),
       st.lists(st.integers(0, 5000), max_size=10))
def test_hdlc_glo_gbt_round_trip(values, key, ak, title, counter, block, info, cuts):
    notification = apdu.encode_notification(values, invoke_id=counter)
    sealed = security.encode_glo(key, notification, title, counter, 0x30, ak)
    frames = b"".join(b"".join(hdlc.encode(b, max_info=info)) for b in apdu.encode_blocks(sealed, block))
    reading = only_reading(feed_chunked(StreamDecoder(key, ak), frames, cuts))
    assert_same(reading, values)
    assert reading.authenticated is True


@settings(max_examples=40, deadline=None)
@given(dlms_values, keys, titles, counters, st.integers(20, 240), st.lists(st.integers(0, 5000), max_size=10))
def test_mbus_encryption_only_round_trip(values, key, title, counter, max_data, cuts):
    notification = apdu.encode_notification(values, flat=True)
    sealed = security.encode_glo(key, notification, title, counter, 0x20)
    frames = b"".join(mbus.encode(sealed, max_data=max_data))
    reading = only_reading(feed_chunked(StreamDecoder(key), frames, cuts))
    assert_same(reading, values)
    assert reading.authenticated is False   # no tag: encrypted, not authenticated


def test_replayed_frame_is_rejected_and_named():
    key, ak, title = bytes(range(16)), bytes(range(16, 32)), b"SAG\x00\x00\x00\x00\x01"
    telegram = p1_telegram([("1-0:1.8.1", 1234, -3, "kWh")])
    first = security.encode_glo(key, telegram, title, 7, 0x30, ak)
    older = security.encode_glo(key, telegram, title, 6, 0x30, ak)
    decoder = StreamDecoder(key, ak)
    events = decoder.feed(first + first + older)
    assert isinstance(events[0], Reading)
    assert [type(e) for e in events[1:]] == [ReplayError, ReplayError]
    assert decoder.counts["ok"] == 1 and decoder.counts["replay"] == 2


def test_each_wrong_key_is_named():
    key, ak, title = bytes(range(16)), bytes(range(16, 32)), b"KFM\x00\x00\x00\x00\x01"
    notification = apdu.encode_notification([("1-0:1.8.0", 42, 0, "Wh")])
    sealed = security.encode_glo(key, notification, title, 1, 0x30, ak)
    wrong_ek = StreamDecoder(bytes(16), ak).feed(b"".join(hdlc.encode(sealed)))[0]
    wrong_ak = StreamDecoder(key, bytes(16)).feed(b"".join(hdlc.encode(sealed)))[0]
    assert isinstance(wrong_ek, AuthError) and "encryption key wrong" in wrong_ek.message
    assert isinstance(wrong_ak, AuthError) and "authentication key wrong" in wrong_ak.message
    no_tag = security.encode_glo(key, notification, title, 2, 0x20)
    reading = StreamDecoder(key, ak).feed(b"".join(hdlc.encode(no_tag)))[0]
    assert isinstance(reading, Reading) and reading.authenticated is False
    assert any("no tag" in w for w in reading.warnings)


def test_without_a_tag_the_plaintext_must_parse_to_its_last_byte():
    """No tag vouches for an SC 0x20 APDU: noise that merely begins like one is refused, not read
    (with a tag, the same trailing bytes are the meter's own: a warning)."""
    key, ak, title = bytes(range(16)), bytes(range(16, 32)), b"KFM\x00\x00\x00\x00\x02"
    notification = apdu.encode_notification([("1-0:1.8.0", 42, 0, "Wh")]) + b"\x11\x22"
    untagged = StreamDecoder(key).feed(b"".join(mbus.encode(
        security.encode_glo(key, notification, title, 1, 0x20))))
    assert isinstance(untagged[0], AuthError) and "2 bytes after the APDU body" in untagged[0].message
    tagged = only_reading(StreamDecoder(key, ak).feed(b"".join(hdlc.encode(
        security.encode_glo(key, notification, title, 2, 0x30, ak)))))
    assert tagged.authenticated is True and tagged.warnings == ["2 bytes after the notification body"]


def test_an_unauthenticated_smarty_telegram_must_be_whole():
    """The tag fails with the default key (a meter with its own AK, or a damaged tag): the
    telegram's CRC vouches for the values only when the telegram is whole."""
    key, ak, title = bytes(range(16)), bytes(range(16, 32)), b"SAG\x00\x00\x00\x00\x03"
    telegram = p1_telegram([("1-0:1.8.1", 1234, -3, "kWh")])
    reading = only_reading(StreamDecoder(key).feed(security.encode_glo(key, telegram, title, 1, 0x30, ak)))
    assert reading.authenticated is False and reading.get("1-0:1.8.1") is not None
    cut = telegram + b"\x00garbage"   # the end of the plaintext damaged, its CRC line intact
    events = StreamDecoder(key).feed(security.encode_glo(key, cut, title, 2, 0x30, ak))
    assert len(events) == 1 and "not one whole telegram" in events[0].message


def test_frames_of_every_kind_interleaved_with_garbage_in_one_stream():
    key = bytes(range(16))
    p1 = p1_telegram([("1-0:1.8.1", 1, -3, "kWh")])
    dlms = b"".join(hdlc.encode(apdu.encode_notification([("1-0:1.7.0", 230, 0, "W")])))
    evn = b"".join(mbus.encode(security.encode_glo(key, apdu.encode_notification(
        [("1-0:32.7.0", 2337, -1, "V")], flat=True), b"KFMg\x00\x00\x00\x09", 5, 0x20)))
    noise = bytes(range(0x80, 0xFF))
    stream = noise + p1 + noise + dlms + b"\x00garbage/!\x7e" + evn + p1
    decoder = StreamDecoder(key)
    readings = [e for e in feed_chunked(decoder, stream, [7, 100, 333, 900]) if isinstance(e, Reading)]
    assert [r.source for r in readings] == ["p1", "hdlc", "mbus", "p1"]
    assert str(readings[2].get("1-0:32.7.0").value) == "233.7"
    assert decoder.skipped > 0


def test_a_p1_only_decoder_loads_no_dlms_or_crypto_code():
    """A DSMR5 dongle never pays heap for the layers it does not use (checked on MicroPython)."""
    from conftest import run_micropython
    telegram = p1_telegram([("1-0:1.8.1", 1234, -3, "kWh")])
    hdlc_frame = b"".join(hdlc.encode(apdu.encode_notification([("1-0:1.7.0", 230, 0, "W")])))
    code = """
import sys
from meterkit.stream import StreamDecoder
d = StreamDecoder(framings=("p1",))
events = d.feed(%r + %r + %r)
print(len(events), events[0].get("1-0:1.8.1").value, events[1].get("1-0:1.8.1").value, d.skipped > 0)
print(sorted(m for m in sys.modules if m.startswith("meterkit")))
""" % (telegram, hdlc_frame, telegram)
    first, modules = run_micropython(code).strip().splitlines()
    assert first == "2 1.234 1.234 True"
    for unwanted in ("meterkit.dlms", "meterkit.security", "meterkit.crypto", "meterkit.link.hdlc"):
        assert unwanted not in modules, modules


def test_unknown_framing_is_refused():
    import pytest
    with pytest.raises(ValueError, match="unknown framing 'sml'"):
        StreamDecoder(framings=("p1", "sml"))

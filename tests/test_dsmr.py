"""DSMR telegram decoding: every P1 peer vector to its expected values, CRC modes, malformed input,
the encoder round trip (hypothesis), and the same JSON on MicroPython."""
import datetime
import decimal
import json

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings, strategies as st

from conftest import load_vectors, run_micropython, vector_bytes
from meterkit import dsmr
from meterkit.crc import crc16_arc
from meterkit.errors import CrcError, DecodeError, FormatError
from meterkit.exact import Exact
from meterkit.link import p1
from meterkit.reading import Value

VECTORS = load_vectors()
P1_VECTORS = [v for v in VECTORS if v["framing"].startswith("P1 text")]

# The vector says unit "" but the telegram line is 0-2:24.2.1(200426223001S)(00246.138*m3): we
# keep the meter's unit (the vector's source only asserted the value).
UNIT_ERRATA = {("dsmr_parser/TELEGRAM_V5_TWO_MBUS", "0-2:24.2.1"): ("", "m3")}


def by_id(name):
    return next(v for v in VECTORS if v["id"] == name)


def smarty_plaintext():
    return by_id("openhab-dsmr/smarty_decrypter_test")["expected_meta"]["plaintext"].encode("latin-1")


def sagemcom_plaintext():
    """Open the dsmr_parser general-glo-ciphering frame (DB 08 title 82 len 30 IC … tag)."""
    vector = by_id("dsmr_parser/TELEGRAM_SAGEMCOM_T210_D_R_encrypted")
    raw = vector_bytes(vector)
    title, length, counter = raw[2:10], int.from_bytes(raw[11:13], "big"), raw[14:18]
    body, tag = raw[18:13 + length - 12], raw[13 + length - 12:13 + length]
    mode = modes.GCM(title + counter, tag, min_tag_length=12)
    opener = Cipher(algorithms.AES(bytes.fromhex(vector["key_hex"])), mode).decryptor()
    opener.authenticate_additional_data(b"\x30" + bytes.fromhex(vector["auth_key_hex"]))
    return vector, opener.update(body) + opener.finalize()


def decoded_json(reading):
    return json.loads(reading.to_json(), parse_float=decimal.Decimal)


def same(expected, got):
    """Numbers by exact value (also a digits-only string against a number), times as instants."""
    if expected is None or got is None:
        return expected is got
    if isinstance(expected, str) and isinstance(got, str) and "T" in expected:
        return datetime.datetime.fromisoformat(expected) == datetime.datetime.fromisoformat(got)
    if isinstance(expected, str) and isinstance(got, str):
        return expected == got
    try:
        return decimal.Decimal(repr(expected) if isinstance(expected, float) else str(expected)) \
            == decimal.Decimal(str(got))
    except decimal.InvalidOperation:
        return False


def check_expected(vector, reading):
    values = decoded_json(reading)["values"]
    for obis, want in vector["expected"].items():
        assert obis in values, obis
        have = values[obis]
        assert same(want["value"], have["value"]), (obis, want, have)
        unit = UNIT_ERRATA.get((vector["id"], obis), (want["unit"], want["unit"]))[1]
        assert have["unit"] == unit, (obis, want, have)
    meta = vector["expected_meta"]
    if meta.get("meter_id"):
        assert reading.meter_id == meta["meter_id"]
    if meta.get("timestamp"):
        assert same(meta["timestamp"], reading.timestamp)


@pytest.mark.parametrize("vector", P1_VECTORS, ids=[v["id"] for v in P1_VECTORS])
def test_p1_vector_decodes_to_expected(vector):
    raw = vector_bytes(vector)
    reading = dsmr.decode_telegram(raw[:p1.frame_length(raw, 0)])
    check_expected(vector, reading)
    assert reading.warnings == []
    assert reading.source == "p1"


def test_exact_values_keep_the_meters_precision():
    raw = vector_bytes(by_id("dsmr_parser/TELEGRAM_ESY5Q3DB1024_V304"))
    reading = dsmr.decode_telegram(raw[:p1.frame_length(raw, 0)])
    energy = reading.get("1-0:1.8.0")
    assert (energy.value.mantissa, energy.value.exponent, energy.unit) == (521857825309, -7, "kWh")
    assert str(dsmr.decode_telegram(vector_bytes(by_id("dsmr_parser/TELEGRAM_V5"))).get("1-0:32.7.0").value) == "230.0"


def test_mbus_channel_values_carry_their_own_time():
    reading = dsmr.decode_telegram(vector_bytes(by_id("dsmr_parser/TELEGRAM_V4_2")))
    gas = reading.get("0-1:24.2.1")
    assert (str(gas.value), gas.unit, gas.timestamp) == ("981.443", "m3", "2016-11-29T20:00:00+01:00")
    assert reading.timestamp == "2016-11-13T20:57:57+01:00" == reading.get("0-0:1.0.0").value
    unset = dsmr.decode_telegram(vector_bytes(by_id("dsmr_parser/TELEGRAM_V5_TWO_MBUS"))).get("0-1:24.2.1")
    assert unset.timestamp == "1970-01-01T01:00:00+01:00" and unset.value == 0


def test_dsmr3_gas_profile_with_continuation_line():
    gas = dsmr.decode_telegram(vector_bytes(by_id("dsmr_parser/TELEGRAM_V3"))).get("0-1:24.3.0")
    assert (str(gas.value), gas.unit, gas.timestamp) == ("1.001", "m3", "2009-02-12T16:00:00")


def test_fluvius_max_demand_and_history():
    reading = dsmr.decode_telegram(vector_bytes(by_id("dsmr_parser/TELEGRAM_FLUVIUS_V171")))
    peak = reading.get("1-0:1.6.0")
    assert (str(peak.value), peak.unit, peak.timestamp) == ("2.589", "kW", "2020-05-09T13:45:58+02:00")
    history = reading.get("0-0:98.1.0").value   # a profile buffer: kept verbatim as text
    assert history.startswith("(3)(1-0:1.6.0)(1-0:1.6.0)(200501000000S)") and history.endswith("(04.318*kW)")
    log = dsmr.decode_telegram(vector_bytes(by_id("dsmr_parser/TELEGRAM_V4_2"))).get("1-0:99.97.0")
    assert log.value.startswith("(3)(0-0:96.7.19)(000104180320W)(0000237126*s)")


def test_text_codes_stay_text_and_counters_are_numbers():
    reading = dsmr.decode_telegram(smarty_plaintext(), crc="ignore")
    assert reading.get("1-3:0.2.8").value == "42"
    assert reading.get("0-0:96.7.21").value == Exact(69)
    assert reading.get("0-0:96.3.10").value == Exact(1)   # sources disagree ("1" vs 1): a number
    assert reading.get("0-0:96.13.2").value is None
    v3 = dsmr.decode_telegram(vector_bytes(by_id("dsmr_parser/TELEGRAM_V3")))
    assert v3.get("0-0:96.14.0").value == "0002"
    assert v3.get("0-0:96.13.1").value == "303132333435363738"
    assert v3.get("0-1:24.1.0").value == Exact(3)


def test_smarty_plaintext_with_a_wrong_inner_crc():
    vector = by_id("openhab-dsmr/smarty_decrypter_test")
    with pytest.raises(CrcError) as error:
        dsmr.decode_telegram(smarty_plaintext())
    assert "CFDE" in error.value.message and "99BD" in error.value.message
    reading = dsmr.decode_telegram(smarty_plaintext(), crc="warn")
    check_expected(vector, reading)
    assert reading.warnings == ["inner P1 CRC did not match (telegram says CFDE, computed 99BD)"]
    assert dsmr.decode_telegram(smarty_plaintext(), crc="ignore").warnings == []


def test_sagemcom_encrypted_plaintext():
    vector, plaintext = sagemcom_plaintext()
    assert p1.frame_length(plaintext, 0) == len(plaintext)
    check_expected(vector, dsmr.decode_telegram(plaintext))


@pytest.mark.parametrize("vector", [v for v in P1_VECTORS if p1.check_crc(vector_bytes(v)[:p1.frame_length(
    vector_bytes(v), 0)])], ids=lambda v: v["id"])
def test_crc_bad_variants_are_rejected(vector):
    raw = vector_bytes(vector)
    frame = bytearray(raw[:p1.frame_length(raw, 0)])
    at = frame.rindex(b"*") - 1   # last digit of the last value with a unit
    frame[at] = ord("7") if frame[at] != ord("7") else ord("8")
    with pytest.raises(CrcError):
        dsmr.decode_telegram(bytes(frame))
    assert dsmr.decode_telegram(bytes(frame), crc="warn").warnings[0].startswith("inner P1 CRC did not match")


def test_a_telegram_no_crc_vouches_for_must_look_undamaged():
    """DSMR 4/5 and e-MUCS telegrams always carry a CRC: one without lost it. A telegram without
    a CRC that holds binary bytes was hit by line noise. Both refused; a clean one decodes."""
    for version in ("1-3:0.2.8(50)", "0-0:96.1.4(50217)"):
        frame = p1.encode_telegram("ISK5\\2M550T-1012", [version, "1-0:1.8.1(000123.456*kWh)"],
                                   crc=False)
        with pytest.raises(CrcError, match="carry a CRC"):
            dsmr.decode_telegram(frame)
        assert dsmr.decode_telegram(frame, crc="ignore").get("1-0:1.8.1") is not None
    old = p1.encode_telegram("ISk5\\2MT382-1004", ["1-0:1.8.1(00123.456*kWh)"], crc=False)
    assert str(dsmr.decode_telegram(old).get("1-0:1.8.1").value) == "123.456"
    with pytest.raises(FormatError, match="not text"):
        dsmr.decode_telegram(old.replace(b"00123", b"0\xff123"))
    body = b"/X\r\n\r\n0-0:96.13.0(caf\xe9)\r\n1-0:1.8.1(1*kWh)\r\n!"   # Latin-1 text ...
    vouched = body + b"%04X\r\n" % crc16_arc(body)
    assert dsmr.decode_telegram(vouched).get("0-0:96.13.0").value == "caf\xe9"   # ... its CRC holds


def test_malformed_lines_are_skipped_and_noted():
    frame = p1.encode_telegram("X", [
        "1-0:1.8.1(000123.456*kWh)",
        "1-0:1.8.2(12.3.4*kWh)",          # not a number
        "garbage line",
        "1-0:1.7.0(00.5*kW",              # no ')'
        "1-0:2.7.0(1*kW)x",               # text after ')'
        "9-9:999.1.1(1)",                 # not an OBIS code
        "0-1:24.2.1(991399000000W)(1*m3)",   # impossible date
        "0-0:1.0.0(bad)",
        "0-0:1.0.0(1*s)",
        "0-0:1.0.0(200101000000W)",
        "(7)",                            # continues the clock line: two values, not a time
        "1-0:32.7.0(230.1*V)",
    ])
    reading = dsmr.decode_telegram(frame)
    assert [obis for obis, _ in reading.values] == ["1-0:1.8.1", "1-0:32.7.0"]
    assert len(reading.warnings) == 9 and reading.timestamp is None
    assert reading.warnings[1].startswith("line 5 skipped")


@pytest.mark.parametrize("frame", [
    b"", b"1-0:1.8.1(1*kWh)\r\n!\r\n", b"/X\r\n\r\n1-0:1.8.1(1*kWh)\r\n",
    b"/X\r\n\r\n!\r\n", b"/X\r\n\r\nnothing here\r\n!\r\n", b"/X\r\n\r\n(1)\r\n!\r\n",
])
def test_nothing_decodable_is_a_format_error(frame):
    with pytest.raises(FormatError):
        dsmr.decode_telegram(frame, crc="ignore")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["enforce", "require", "warn", "ignore"]))
def test_random_bytes_only_raise_decode_errors(data, mode):
    try:
        reading = dsmr.decode_telegram(b"/" + data + b"!\r\n", crc=mode)
    except DecodeError:
        return
    assert reading.values


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_vectors_only_raise_decode_errors(data):
    raw = bytearray(vector_bytes(data.draw(st.sampled_from(P1_VECTORS))))
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(1, len(raw) - 1))] = data.draw(st.sampled_from(b"()*!:-.\r\n/0aW\xff"))
    try:
        dsmr.decode_telegram(bytes(raw), crc="warn")
    except DecodeError:
        pass


# --- encoder round trip -------------------------------------------------------------------------

NUMERIC_CODES = st.builds("%d-%d:%d.%d.%d".__mod__, st.tuples(
    st.sampled_from([0, 1]), st.integers(0, 4), st.sampled_from([1, 2, 21, 24, 31, 32, 99]),
    st.sampled_from([7, 8]), st.integers(0, 4)))
TEXT_CODES = st.sampled_from(["0-0:96.1.1", "0-1:96.1.0", "0-0:96.14.0", "0-0:96.13.0", "1-3:0.2.8"])
UNITS = st.sampled_from(["", "kWh", "kW", "V", "A", "m3", "GJ", "kvarh", "s"])
EXACTS = st.builds(Exact, st.integers(-10 ** 12, 10 ** 12), st.integers(-7, 3))


@st.composite
def iso_times(draw):
    moment = draw(st.datetimes(datetime.datetime(2000, 1, 1), datetime.datetime(2069, 12, 31)))
    offset = draw(st.sampled_from(["", "+01:00", "+02:00"]))
    return moment.replace(microsecond=0).isoformat() + offset


@st.composite
def pairs(draw):
    if draw(st.booleans()):
        value = Value(draw(EXACTS), draw(UNITS), draw(st.none() | iso_times()))
        return draw(NUMERIC_CODES), value
    text = draw(st.none() | st.text("0123456789ABCDEFabc XYZ-_", min_size=1, max_size=40).map(str.strip)
                .filter(bool))
    return draw(TEXT_CODES), Value(text, "")


@settings(max_examples=150, deadline=None)
@given(st.lists(pairs(), max_size=25), st.none() | iso_times())
def test_encode_reading_round_trip(values, timestamp):
    frame = dsmr.encode_reading("XMX5TEST\x02id", values, timestamp)
    assert p1.frame_length(frame, 0) == len(frame) and p1.check_crc(frame) is True
    if not values and timestamp is None:
        with pytest.raises(FormatError):
            dsmr.decode_telegram(frame)
        return
    reading = dsmr.decode_telegram(frame)
    assert reading.warnings == [] and reading.timestamp == timestamp
    got = reading.values[1:] if timestamp else reading.values
    assert [(o, v.value, v.unit, v.timestamp) for o, v in got] == \
        [(o, v.value, v.unit, v.timestamp) for o, v in values]


def test_encoder_refuses_what_dsmr_cannot_carry():
    with pytest.raises(FormatError):
        dsmr.encode_reading("X", [("0-0:96.13.0", Value("a)b"))])
    with pytest.raises(FormatError):
        dsmr.encode_reading("X", [], "2020-01-01T00:00:00+05:30")


# --- MicroPython --------------------------------------------------------------------------------

def test_micropython_decodes_every_p1_vector_to_the_same_json():
    frames = [vector_bytes(v) for v in P1_VECTORS] + [smarty_plaintext(), sagemcom_plaintext()[1]]
    frames = [raw[:p1.frame_length(raw, 0)] for raw in frames]
    code = ("from meterkit import dsmr\n"
            "for raw in %r:\n"
            "    print(dsmr.decode_telegram(raw, crc='warn').to_json())\n" % (frames,))
    expected = "".join(dsmr.decode_telegram(raw, crc="warn").to_json() + "\n" for raw in frames)
    assert run_micropython(code) == expected


def test_micropython_encodes_and_rejects_the_same():
    code = ("from meterkit import dsmr\n"
            "from meterkit.exact import Exact\n"
            "from meterkit.reading import Value\n"
            "from meterkit.errors import CrcError\n"
            "t = dsmr.encode_reading('X', [('1-0:1.8.1', Value(Exact(123456789, -3), 'kWh')),"
            " ('0-1:24.2.1', Value(Exact(5, 0), 'm3', '2021-07-19T15:46:35+02:00'))],"
            " '2021-07-19T15:46:40+02:00')\n"
            "print(t)\n"
            "try:\n"
            "    dsmr.decode_telegram(t.replace(b'123456', b'123457'))\n"
            "except CrcError as e:\n"
            "    print(e.message)\n")
    frame = dsmr.encode_reading("X", [("1-0:1.8.1", Value(Exact(123456789, -3), "kWh")),
                                      ("0-1:24.2.1", Value(Exact(5, 0), "m3", "2021-07-19T15:46:35+02:00"))],
                                "2021-07-19T15:46:40+02:00")
    with pytest.raises(CrcError) as error:
        dsmr.decode_telegram(frame.replace(b"123456", b"123457"))
    assert run_micropython(code) == "%r\n%s\n" % (frame, error.value.message)


def test_warnings_for_malformed_lines_are_the_same_on_both_runtimes():
    """The decode contract prints identical lines on CPython and MicroPython, warnings included:
    no built-in's own error text (the runtimes word those differently) may reach a warning."""
    bad_lines = ["1-0:1.x.0(000001.000*kWh)", "1-0:1.8.1*abc(000001.000*kWh)", "1-0:1.8.1(0001.0",
                 "1-0:1.8.1(12)x", "0-0:1.0.0(991399999999W)", "1-0:999.8.1(000001.000*kWh)",
                 "(continuation)", "1-0:1.8.2(1.2.3*kWh)", "0-0:1.0.0(1)(2)", "1-0:1.8.1(\u00e9*kWh)"]
    telegram = p1.encode_telegram("ISK5\\2M550T-1012", ["1-0:1.8.0(000001.000*kWh)"] + bad_lines)
    cpython = dsmr.decode_telegram(telegram).to_json()
    assert cpython.count("skipped") == len(bad_lines) - 1   # the continuation joins its line
    micropython = run_micropython("from meterkit import dsmr\nprint(dsmr.decode_telegram(%r).to_json())"
                                  % telegram)
    assert micropython.strip() == cpython

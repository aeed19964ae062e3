"""A-XDR: every common type against hand-written encodings, exact floats, lengths, compact
arrays, bounds on malformed input, hypothesis round trips, and the same decode on MicroPython."""
import decimal
import struct

import pytest
from hypothesis import given, settings, strategies as st

from conftest import run_micropython
from meterkit.dlms import axdr
from meterkit.dlms.axdr import BitString, decode
from meterkit.dlms.axdr_encode import Typed, encode
from meterkit.errors import FormatError
from meterkit.exact import Exact

DT = bytes.fromhex("07E50713010F2E2300FF8880")

KNOWN = [
    ("00", None),
    ("0301", True),
    ("0300", False),
    ("0400", BitString(0, b"")),
    ("040AC0C0", BitString(10, b"\xc0\xc0")),
    ("05FFFFFFFE", -2),
    ("06FFFFFFFF", 4294967295),
    ("0903414243", b"ABC"),
    ("0A0B4149444F4E5F5630303031", "AIDON_V0001"),
    ("0C02C3A9", "\u00e9"),
    ("0D42", 42),
    ("0FFF", -1),
    ("108000", -32768),
    ("11FF", 255),
    ("12FFFF", 65535),
    ("14FFFFFFFFFFFFFFFF", -1),
    ("15FFFFFFFFFFFFFFFF", 2 ** 64 - 1),
    ("161E", 30),
    ("173F800000", Exact(1)),
    ("17C0490FDB", Exact(-3141592741012573242187500, -24)),
    ("18400C000000000000", Exact(35, -1)),
    ("19" + DT.hex(), DT),
    ("1A07E5071301", bytes.fromhex("07E5071301")),
    ("1B0F2E2300", bytes.fromhex("0F2E2300")),
    ("0102120001120002", [1, 2]),
    ("0202090600000100 00FF 0F FF".replace(" ", ""), (b"\x00\x00\x01\x00\x00\xff", -1)),
]


@pytest.mark.parametrize("hex_text,value", KNOWN, ids=[k[0][:12] for k in KNOWN])
def test_known_encodings(hex_text, value):
    raw = bytes.fromhex(hex_text)
    got, end = decode(raw)
    assert got == value and type(got) is type(value)
    assert end == len(raw)
    assert decode(b"\xaa" + raw, 1) == (value, len(raw) + 1)


def test_float_nan_and_infinity_are_no_value():
    assert decode(bytes.fromhex("177FC00000"))[0] is None
    assert decode(bytes.fromhex("18FFF0000000000000"))[0] is None


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float64_is_exact(x):
    value, _ = decode(b"\x18" + struct.pack(">d", x))
    assert decimal.Decimal(str(value)) == decimal.Decimal(x)
    assert decode(encode(Typed(axdr.FLOAT64, value)))[0] == value


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_is_exact(x):
    raw = b"\x17" + struct.pack(">f", x)
    value, _ = decode(raw)
    assert decimal.Decimal(str(value)) == decimal.Decimal(x)
    if x != 0 or str(x)[0] != "-":
        assert encode(Typed(axdr.FLOAT32, value)) == raw


def test_float_encoding_refuses_inexact_values():
    with pytest.raises(ValueError):
        encode(Typed(axdr.FLOAT32, Exact(1, -1)))     # 0.1 has no binary form
    with pytest.raises(ValueError):
        encode(Typed(axdr.FLOAT32, Exact(2 ** 25 + 1)))  # needs 26 significant bits


def test_long_lengths():
    for n in (0, 0x7F, 0x80, 0xFF, 0x100, 0x1234):
        raw = encode(b"x" * n)
        assert decode(raw) == (b"x" * n, len(raw))
    assert encode(b"x" * 0x80)[:3] == b"\x09\x81\x80"
    assert encode(b"x" * 0x100)[:4] == b"\x09\x82\x01\x00"


def test_compact_array():
    # array of structure(long-unsigned, octet-string) with two rows
    raw = bytes.fromhex("13 02 02 12 09 09 0001 02 4142 0002 01 43".replace(" ", ""))
    assert decode(raw) == ([(1, b"AB"), (2, b"C")], len(raw))
    # array-of-3-integers description, two rows of 3
    raw = bytes.fromhex("13 01 0003 0F 06 010203 FFFEFD".replace(" ", ""))
    assert decode(raw) == ([[1, 2, 3], [-1, -2, -3]], len(raw))
    with pytest.raises(FormatError):
        decode(bytes.fromhex("13 12 05 00010002 00".replace(" ", "")))   # contents overrun


@pytest.mark.parametrize("raw,where", [
    ("", "offset 0"), ("06000001", "offset 0"), ("0905414243", "offset 0"),
    ("0203120001", "offset 5"), ("01820100", "offset 0"), ("0985FFFFFFFFFF", "offset 1"),
    ("2A", "tag 0x2A at offset 0"), ("020212000163", "tag 0x63 at offset 5"),
    ("0980", "offset 1"),
])
def test_malformed_input_names_the_offset(raw, where):
    with pytest.raises(FormatError) as info:
        decode(bytes.fromhex(raw))
    assert where in info.value.message


def test_depth_is_bounded():
    ok = b"\x02\x01" * axdr.MAX_DEPTH + b"\x00"
    assert decode(ok)[1] == len(ok)
    with pytest.raises(FormatError, match="nesting"):
        decode(b"\x02\x01" * (axdr.MAX_DEPTH + 1) + b"\x00")
    with pytest.raises(FormatError, match="nesting"):
        decode(b"\x01\x01" * 5000 + b"\x00")


def test_encoder_picks_types_and_checks_ranges():
    assert encode(5) == b"\x05\x00\x00\x00\x05"
    assert encode(2 ** 40)[:1] == b"\x14"
    assert encode("abc") == b"\x0a\x03abc"
    assert encode(Typed(axdr.LONG_UNSIGNED, 513)) == b"\x12\x02\x01"
    assert encode(Typed(axdr.BCD, 42)) == b"\x0d\x42"
    with pytest.raises(ValueError):
        encode(Typed(axdr.UNSIGNED, 256))
    with pytest.raises(ValueError):
        encode(1.5)


# ---- hypothesis round trips -----------------------------------------------------------------

_INT_TYPES = [(axdr.INTEGER, -128, 127), (axdr.LONG, -2 ** 15, 2 ** 15 - 1), (axdr.UNSIGNED, 0, 255),
              (axdr.LONG_UNSIGNED, 0, 2 ** 16 - 1), (axdr.DOUBLE_LONG, -2 ** 31, 2 ** 31 - 1),
              (axdr.DOUBLE_LONG_UNSIGNED, 0, 2 ** 32 - 1), (axdr.LONG64, -2 ** 63, 2 ** 63 - 1),
              (axdr.LONG64_UNSIGNED, 0, 2 ** 64 - 1), (axdr.ENUM, 0, 255)]


def _typed_int(spec):
    tag, low, high = spec
    return st.integers(low, high).map(lambda v: Typed(tag, v))


leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 63 - 1), st.binary(max_size=300),
    st.text(max_size=40), st.one_of(*[_typed_int(s) for s in _INT_TYPES]),
    st.integers(0, 99).map(lambda v: Typed(axdr.BCD, v)),
    st.binary(min_size=12, max_size=12).map(lambda b: Typed(axdr.DATE_TIME, b)),
    st.binary(min_size=5, max_size=5).map(lambda b: Typed(axdr.DATE, b)),
    st.binary(min_size=4, max_size=4).map(lambda b: Typed(axdr.TIME, b)),
    st.integers(0, 40).flatmap(lambda n: st.binary(min_size=(n + 7) // 8, max_size=(n + 7) // 8)
                               .map(lambda b: BitString(n, b))),
    st.floats(width=32, allow_nan=False, allow_infinity=False)
      .map(lambda x: Typed(axdr.FLOAT32, decode(b"\x17" + struct.pack(">f", x))[0])),
)
trees = st.recursive(leaves, lambda kids: st.one_of(st.lists(kids, max_size=6),
                                                    st.lists(kids, max_size=6).map(tuple)),
                     max_leaves=40)


def plain(value):
    if isinstance(value, Typed):
        return plain(value.value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    return value


@settings(max_examples=300, deadline=None)
@given(trees)
def test_round_trip(tree):
    raw = encode(tree)
    assert decode(raw) == (plain(tree), len(raw))


@settings(max_examples=200, deadline=None)
@given(trees, st.data())
def test_truncation_raises_only_format_error(tree, data):
    raw = encode(tree)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(FormatError):
        decode(raw[:cut])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_raises_only_format_error(raw):
    try:
        value, end = decode(raw)
    except FormatError:
        return
    assert 0 < end <= len(raw)


def test_micropython_decodes_the_same():
    # (MicroPython's repr of non-ASCII text differs, so the UTF-8 sample stays on CPython)
    samples = [k[0] for k in KNOWN if k[0][:2] != "0C"]
    samples.append(encode(([1, 2], (b"x", "y"), Typed(axdr.LONG64, -5))).hex())
    code = """
from meterkit.dlms import axdr, axdr_encode
import binascii
for h in %r:
    print(repr(axdr.decode(binascii.unhexlify(h))))
print(axdr_encode.encode(([1, 2], (b"x", "y"), axdr_encode.Typed(axdr.LONG64, -5))).hex())
for bad in ("0905414243", "2A", "0985FFFFFFFFFF"):
    try:
        axdr.decode(binascii.unhexlify(bad))
    except Exception as e:
        print(type(e).__name__)
""" % (samples,)
    lines = run_micropython(code).splitlines()
    expected = [repr(decode(bytes.fromhex(h))) for h in samples]
    assert lines[:len(samples)] == expected
    assert lines[len(samples)] == samples[-1]
    assert lines[len(samples) + 1:] == ["FormatError"] * 3

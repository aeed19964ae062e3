"""Modbus RTU: the codec (request, CRC-16/MODBUS, response checks, exceptions named), the exact
float32 formatter against numpy's shortest repr and an exact rational check, the register maps,
and the polling plan (intervals, several slaves, a dead meter) — on CPython and MicroPython."""
import struct
import sys
from fractions import Fraction

import pytest
from hypothesis import example, given, settings, strategies as st

from conftest import CORE, run_micropython

sys.path.insert(0, str(CORE))
from meterkit import crc_python  # noqa: E402
from meterkit.crc import crc16_modbus  # noqa: E402
from meterkit.errors import CrcError, FormatError  # noqa: E402
from meterkit.exact import Exact  # noqa: E402
from meterkit.modbus import float32, poll, regmap, rtu  # noqa: E402

try:
    import numpy as np   # the reference shortest repr for float32 (dev dependency)
except ImportError:      # the exact rational check below still runs
    np = None


# -- CRC and frames -------------------------------------------------------------------------------

def test_crc16_modbus_check_value_on_every_backend():
    assert crc16_modbus(b"123456789") == 0x4B37          # the catalogue's check value
    assert crc_python.modbus(True)[1](b"123456789") == 0x4B37
    assert crc_python.modbus(False)[1](b"xx123456789", 2) == 0x4B37


def test_read_request_matches_the_eastron_manual_example():
    # SDM72D-M manual, Part 3: "Amps 1 Start address = 0006, No. of registers = 0002"
    assert rtu.read_request(1, 4, 0x0006, 2).hex() == "01040006000291ca"
    assert rtu.read_request(1, 4, 0x0000, 2).hex() == "01040000000271cb"


@given(st.integers(1, 247), st.sampled_from([3, 4]), st.integers(0, 0xFFFF - 125),
       st.integers(1, 125))
def test_request_round_trip(slave, function, address, count):
    frame = rtu.read_request(slave, function, address, count)
    assert len(frame) == 8
    assert rtu.parse_request(frame) == (slave, function, address, count)


@given(st.integers(1, 247), st.sampled_from([3, 4]), st.integers(1, 125), st.data())
def test_response_round_trip_and_every_corruption_named(slave, function, count, data):
    payload = data.draw(st.binary(min_size=2 * count, max_size=2 * count))
    frame = rtu.read_response(slave, function, payload)
    assert rtu.response_length(frame[:3], function) == len(frame)
    assert rtu.parse_response(frame, slave, function, count) == payload
    # a flipped bit anywhere: the CRC says so (CRC-16 catches every single-bit error)
    i = data.draw(st.integers(0, len(frame) - 1))
    bad = bytearray(frame)
    bad[i] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(CrcError):
        rtu.parse_response(bytes(bad), slave, function, count)
    # cut short: a format error, never an IndexError
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises((FormatError, CrcError)):
        rtu.parse_response(frame[:cut], slave, function, count)


@given(st.binary(max_size=300), st.integers(1, 247), st.sampled_from([3, 4]), st.integers(1, 125))
def test_garbage_is_always_a_named_decode_error(garbage, slave, function, count):
    try:
        rtu.parse_response(garbage, slave, function, count)
    except (CrcError, FormatError, rtu.ExceptionResponse):
        pass


def test_exception_responses_are_named():
    frame = rtu.exception_response(1, 4, 2)
    assert rtu.response_length(frame, 4) == 5
    with pytest.raises(rtu.ExceptionResponse) as caught:
        rtu.parse_response(frame, 1, 4, 2)
    assert caught.value.code == 2 and caught.value.kind == "exception"
    assert "illegal data address" in caught.value.message
    assert rtu.exception_name(11) == "gateway target device failed to respond"
    assert rtu.exception_name(99) == "unknown exception"


def test_wrong_slave_function_and_byte_count_are_named():
    good = rtu.read_response(2, 4, b"\x00\x01\x00\x02")
    with pytest.raises(FormatError, match="answer from slave 2, asked slave 1"):
        rtu.parse_response(good, 1, 4, 2)
    with pytest.raises(FormatError, match="sent 4 register bytes, asked 6"):
        rtu.parse_response(good, 2, 4, 3)
    with pytest.raises(FormatError, match="answered function 4 to function 3"):
        rtu.parse_response(good, 2, 3, 2)
    assert rtu.response_length(good[:1], 4) == 0 and rtu.response_length(b"\x02\x07", 4) == -1


def test_silence_and_transfer_times():
    assert rtu.char_bits((19200, 8, 0, 1, False)) == 11
    assert rtu.silence_us((9600, 8, None, 1, False)) == 3645      # 3.5 * 10 bits / 9600
    assert rtu.silence_us((19200, 8, 0, 1, False)) == 2005
    assert rtu.silence_us((38400, 8, 0, 1, False)) == 1750        # fixed above 19200 baud
    assert rtu.transfer_ms((9600, 8, None, 1, False), 165) == 172


# -- float32: the shortest decimal that reads back as the same float32 ------------------------------

def _nearest_float32(value):
    """The float32 bits nearest to a positive Fraction, ties to even: exact, no float involved."""
    e = -149
    while value >= Fraction(1 << 24) * Fraction(2) ** e:
        e += 1
    scaled = value / Fraction(2) ** e
    m = scaled.numerator // scaled.denominator
    rest = scaled - m
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and m & 1):
        m += 1
    if m == 1 << 24:
        m, e = m >> 1, e + 1
    if m < 1 << 23:
        return m                                   # subnormal (e is -149)
    biased = e + 150
    return 0x7F800000 if biased >= 255 else biased << 23 | (m - (1 << 23))


def _check(bits):
    found = float32.shortest(bits)
    biased, fraction = bits >> 23 & 0xFF, bits & 0x7FFFFF
    if biased == 0xFF:
        assert found == (float32.NAN if fraction else (float32.NEG_INF if bits >> 31 else float32.INF))
        assert float32.exact(bits) is None
        return
    negative, digits, exponent = found
    value = Fraction(digits) * Fraction(10) ** exponent
    # reads back as the same float32 (sign apart), computed exactly
    assert (_nearest_float32(value) if digits else 0) == bits & 0x7FFFFFFF
    # and has the digits numpy's shortest repr has
    if np is None:
        return
    expected = repr(float(np.frombuffer(struct.pack("<I", bits), dtype=np.float32)[0]))
    theirs = str(np.frombuffer(struct.pack("<I", bits), dtype=np.float32)[0])
    mantissa, _, power = theirs.lower().lstrip("-").partition("e")
    whole, _, frac = mantissa.partition(".")
    assert Exact(digits, exponent) == Exact(int(whole + frac), int(power or 0) - len(frac)), \
        (hex(bits), found, theirs, expected)
    if digits and np is not None:
        assert negative == bool(bits >> 31)
        assert float32.text(bits) == ("-" if negative else "") + str(Exact(digits, exponent))


def _bits(negative, biased, fraction):
    return negative << 31 | biased << 23 | fraction


CLASSES = st.one_of(
    st.integers(0, 0xFFFFFFFF),                                                  # anything
    st.builds(_bits, st.integers(0, 1), st.just(0), st.integers(1, 0x7FFFFF)),   # subnormal
    st.builds(_bits, st.integers(0, 1), st.just(0xFF), st.integers(1, 0x7FFFFF)),  # NaN
    st.builds(_bits, st.integers(0, 1), st.sampled_from([0, 0xFF]), st.just(0)),   # ±0, ±inf
    st.builds(_bits, st.integers(0, 1), st.integers(200, 254), st.integers(0, 0x7FFFFF)),  # large
    st.builds(_bits, st.integers(0, 1), st.integers(1, 40), st.integers(0, 0x7FFFFF)),     # small
    st.builds(_bits, st.integers(0, 1), st.integers(1, 254), st.just(0)),        # powers of two
    st.floats(width=32, allow_nan=False).map(lambda x: struct.unpack(">I", struct.pack(">f", x))[0]),
)


@settings(max_examples=3000)
@given(CLASSES)
@example(0x4366199A)   # 230.1
@example(0x00000001)   # 1e-45, the smallest subnormal
@example(0x007FFFFF)   # the largest subnormal
@example(0x00800000)   # the smallest normal
@example(0x7F7FFFFF)   # 3.4028235e38, the largest finite
@example(0x4B800001)   # 16777218: integers stop being exact
def test_float32_shortest_matches_numpy_and_round_trips(bits):
    _check(bits)


def test_float32_known_values():
    assert float32.text(0x4366199A) == "230.1"
    assert str(float32.exact(struct.unpack(">I", struct.pack(">f", 49.99))[0])) == "49.99"
    assert float32.text(0x7FC00000) == "nan" and float32.text(0xFF800000) == "-inf"
    assert float32.exact(0x80000000) == Exact(0)


def test_micropython_prints_the_same_digits():
    patterns = [0x4366199A, 0x00000001, 0x7F7FFFFF, 0x3DCCCCCD, 0xC2C7FAE1, 0x00800000, 0x7FC00000,
                0x4B800001, 0x3F800000, 0x3A83126F] + [(i * 2654435761) & 0xFFFFFFFF for i in range(300)]
    code = ("from meterkit.modbus import float32\n"
            "for b in %r: print(float32.text(b))" % patterns)
    assert run_micropython(code).split() == [float32.text(b) for b in patterns]


# -- register maps -------------------------------------------------------------------------------

@pytest.mark.parametrize("model", regmap.MODELS)
def test_every_map_parses_and_reads_within_its_limit(model):
    m = regmap.load(model)
    assert m.source and m.function in (3, 4)
    addresses = [reg.address for reg in m.registers]
    assert len(set(addresses)) == len(addresses)
    for reg in m.registers:
        assert reg.obis.startswith("1-0:") and reg.name
    for address, count, regs in regmap.blocks(m.registers, m.max_registers):
        assert count <= m.max_registers and count == sum(r.size for r in regs)
        assert [r.address for r in regs] == list(range(address, address + count, regs[0].size)) \
            or all(b.address == a.address + a.size for a, b in zip(regs, regs[1:]))


def test_contiguous_registers_are_one_request_and_the_limit_splits():
    sdm630 = regmap.load("sdm630")
    runs = regmap.blocks(sdm630.registers, sdm630.max_registers)
    assert runs[0][:2] == (0x0000, 42)          # voltages to phase angles: one request
    assert regmap.blocks(sdm630.registers, 20)[0][:2] == (0x0000, 20)


def test_map_errors_name_the_line():
    with pytest.raises(ValueError, match="line 2: unknown type 'f33'"):
        regmap.parse("function 4\n0x0000 f33 0 V 1-0:32.7.0 voltage_l1\n")
    with pytest.raises(ValueError, match="only signed values split"):
        regmap.parse("0x0000 u32 0 W 1-0:1.7.0/1-0:2.7.0 power_in/power_out\n")


def test_integer_registers_stay_integers_with_their_resolution():
    b23 = regmap.load("abb_b23")
    energy = b23.register("energy_in")
    assert regmap.value(energy, (123456789).to_bytes(8, "big"), 0) == Exact(123456789, -2)
    assert str(regmap.value(energy, (123456789).to_bytes(8, "big"), 0)) == "1234567.89"
    power = b23.register("power_in")
    assert str(regmap.value(power, (-150).to_bytes(4, "big", signed=True), 0)) == "-1.50"
    assert regmap.value(power, b"\x7f\xff\xff\xff", 0, missing="max") is None
    assert regmap.value(energy, b"\xff" * 8, 0, missing="max") is None
    low_first = regmap.Register(0, "s32", 0, "W", "1-0:1.7.0", "power_in")
    assert regmap.value(low_first, b"\x00\x02\x00\x01", 0, "little") == Exact(0x00010002)


# -- the polling plan -------------------------------------------------------------------------------

def _slave_answer(meters, values):
    """A fake bus: answers requests from each slave's register values (None: switched off)."""
    def answer(request):
        slave, function, address, count = rtu.parse_request(request.frame)
        regs = values.get(slave)
        if regs is None:
            return None
        data = b"".join(regs.get(address + i, b"\x00\x00") for i in range(count))
        return rtu.read_response(slave, function, data)
    return answer


def _float_registers(m, values):
    regs = {}
    for name, text in values.items():
        reg = m.register(name)
        raw = struct.pack(">f", float(text))
        regs[reg.address], regs[reg.address + 1] = raw[:2], raw[2:]
    return regs


def _run(bus, answer, until_ms, step=100):
    events, now = [], 0
    while now <= until_ms:
        request = bus.poll(now)
        while request is not None:
            events += [(now,) + e for e in bus.answer(request, answer(request), now)]
            request = bus.poll(now)
        now += step
    return events


def test_intervals_two_slaves_and_a_dead_meter_that_comes_back():
    sdm630, sdm120 = regmap.load("sdm630"), regmap.load("sdm120")
    values = {1: _float_registers(sdm630, {"voltage_l1": "230.1", "current_l1": "5.25",
                                           "energy_in": "12345.6"}),
              2: _float_registers(sdm120, {"voltage_l1": "229.9", "power_in": "-100.5"})}
    meters = [poll.Meter(sdm630, 1), poll.Meter(sdm120, 2)]
    bus = poll.Bus(meters, retry_ms=10000)
    answer = _slave_answer(meters, values)
    events = _run(bus, answer, 30000)
    readings = [(t, m.id, r) for t, kind, m, r in events if kind == "reading"]
    first = [r for t, mid, r in readings if mid == "sdm630-1"][0]
    assert str(first.get("1-0:32.7.0").value) == "230.1" and first.get("1-0:32.7.0").unit == "V"
    assert str(first.get("1-0:1.8.0").value) == "12345.6"
    second = [r for t, mid, r in readings if mid == "sdm120-2"][0]
    assert str(second.get("1-0:2.7.0").value) == "100.5" and second.get("1-0:1.7.0").value == 0
    # each quantity at its interval: currents every 5 s, voltages every 10 s, energy once in 30 s
    def times(meter, code):
        return [t for t, mid, r in readings if mid == meter and r.get(code) is not None]
    assert times("sdm630-1", "1-0:31.7.0") == [0, 5000, 10000, 15000, 20000, 25000, 30000]
    assert times("sdm630-1", "1-0:32.7.0") == [0, 10000, 20000, 30000]
    assert times("sdm630-1", "1-0:1.8.0") == [0]

    # slave 2 switched off: offline after three failed requests; slave 1 keeps its intervals
    saved = values.pop(2)
    later = _run_from(bus, answer, 30100, 90000)
    offline = [(t, m.id) for t, kind, m, _ in later if kind == "offline"]
    assert offline and offline[0][1] == "sdm120-2"
    assert times_in(later, "sdm630-1", "1-0:31.7.0") == list(range(35000, 90001, 5000))
    probes = [t for t, kind, m, e in later if kind == "error" and m.slave == 2 and t > offline[0][0]]
    assert probes and all(b - a >= 10000 for a, b in zip(probes, probes[1:]))   # one probe per 10 s
    assert meters[1].stats["timeout"] >= 3 and meters[1].online is False
    assert meters[1].last_error.startswith("sdm120-2 (slave 2): no answer")
    # back on: online again, everything read at once
    values[2] = saved
    back = _run_from(bus, answer, 90100, 110000)
    assert [m.id for t, kind, m, _ in back if kind == "online"] == ["sdm120-2"]
    assert bus.diagnostics()["meters_online"] == 2


def _run_from(bus, answer, start, until_ms, step=100):
    events, now = [], start
    while now <= until_ms:
        request = bus.poll(now)
        while request is not None:
            events += [(now,) + e for e in bus.answer(request, answer(request), now)]
            request = bus.poll(now)
        now += step
    return events


def times_in(events, meter, code):
    return [t for t, kind, m, r in events if kind == "reading" and m.id == meter and r.get(code) is not None]


def test_bad_answers_are_counted_and_named_never_raised():
    m = poll.Meter(regmap.load("sdm120"), 1)
    bus = poll.Bus([m], dead_after=10)
    now = 0
    for frame, kind in ((b"\x01\x04\x04\x00", "format"), (b"\x01\x04\x02\x00\x00\x00\x00", "crc"),
                        (rtu.exception_response(1, 4, 2), "exception"), (None, "timeout"),
                        (b"\xff" * 9, "crc")):
        request = bus.poll(now)
        while request is None:
            now += 1000
            request = bus.poll(now)
        events = bus.answer(request, frame, now)
        assert ("error", m) == events[0][:2] and events[0][2].kind == kind
    assert m.stats["exception"] == 1 and m.stats["crc"] == 2 and m.stats["format"] == 1
    while bus.poll(now) is None:
        now += 1000
    with pytest.raises(RuntimeError):   # never two requests in flight
        bus.poll(now)


def test_interval_keys_longest_match():
    intervals = (("power", 5), ("power_factor", 60), ("energy", 300))
    assert poll.interval_for("power_in_l1/power_out_l1", intervals) == 5
    assert poll.interval_for("power_factor_l1", intervals) == 60
    assert poll.interval_for("energy_in", intervals) == 300
    assert poll.interval_for("frequency", intervals, 42) == 42


def test_polling_plan_runs_on_micropython():
    code = """
from meterkit.modbus import poll, regmap, rtu
m = regmap.load("sdm630")
bus = poll.Bus([poll.Meter(m, 1)])
ev = []
while not ev or bus.round is not None:
    r = bus.poll(0)
    ev = bus.answer(r, rtu.read_response(1, 4, bytes((0x43, 0x66, 0x19, 0x9A)) * (r.block.count // 2)), 0)
reading = [e for e in ev if e[0] == "reading"][0][2]
print(reading.get("1-0:32.7.0").value, len(reading.values))
"""
    out = run_micropython(code).split()
    assert out == ["230.1", "53"]   # 45 registers, 8 of them split in two


def test_exception_answers_are_named_on_micropython():
    code = """
from meterkit.modbus import poll, regmap, rtu
m = poll.Meter(regmap.load("sdm120"), 1)
bus = poll.Bus([m])
ev = bus.answer(bus.poll(0), rtu.exception_response(1, 4, 2), 0)
print(ev[0][0], ev[0][2].kind, ev[0][2].code, m.stats["exception"])
print(ev[0][2].message)
"""
    out = run_micropython(code).splitlines()
    assert out == ["error exception 2 1", "slave 1: exception 2 (illegal data address) to function 4"]

"""Exact numbers, clock text, harmonized names and the JSON line: the shared pieces of the core."""
import decimal
import json

from hypothesis import given, strategies as st

from conftest import run_micropython
from meterkit.clock import epoch_seconds, iso_datetime
from meterkit.exact import Exact
from meterkit.harmonize import harmonize
from meterkit.reading import Reading, json_string


@given(st.integers(-10**15, 10**15), st.integers(-9, 6))
def test_exact_prints_the_exact_decimal(mantissa, exponent):
    text = str(Exact(mantissa, exponent))
    assert decimal.Decimal(text) == decimal.Decimal(mantissa).scaleb(exponent)
    assert json.loads(text, parse_float=decimal.Decimal) == decimal.Decimal(text)


def test_exact_keeps_meter_precision_and_never_rounds():
    assert str(Exact.parse("000123456.789")) == "123456.789"   # float32 would give 123456.79
    assert str(Exact.parse("00000.000")) == "0.000"
    assert str(Exact.parse("-0.5")) == "-0.5"
    assert str(Exact(2347, -1)) == "234.7"
    assert str(Exact(7745250, 1)) == "77452500"
    assert Exact.parse("1.50") == Exact(15, -1)
    for bad in ("", ".", "1.2.3", "abc", "1e5"):
        try:
            Exact.parse(bad)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % bad)


def test_iso_and_epoch():
    assert iso_datetime(2021, 7, 19, 15, 46, 35, 120) == "2021-07-19T15:46:35+02:00"
    assert iso_datetime(2021, 7, 19, 15, 46, 35) == "2021-07-19T15:46:35"
    assert epoch_seconds("2016-11-13T20:57:57+01:00") == epoch_seconds("2016-11-13T19:57:57+00:00") == 1479067077
    assert epoch_seconds("1970-01-01T00:00:00") == 0
    assert epoch_seconds("2000-03-01T00:00:00-05:30") == 951868800 + 5 * 3600 + 1800


def test_harmonized_units_are_converted_exactly():
    r = Reading()
    r.add("1-0:1.7.0", Exact.parse("01.193"), "kW")
    r.add("1-1:1.8.0", Exact(77452500), "Wh")
    r.add("1-0:2.8.1", Exact.parse("000123.456"), "kWh")
    r.add("1-0:32.7.0", Exact(2347, -1), "V")
    r.add("0-1:24.1.0", Exact(3), "")
    r.add("0-1:24.2.1", Exact.parse("00012.785"), "m3")
    r.add("0-0:96.1.1", "4530303034", "")
    h = dict(harmonize(r))
    assert str(h["power_in"]) == "1193"
    assert str(h["energy_in"]) == "77452.500"
    assert str(h["energy_out_t1"]) == "123.456"
    assert str(h["voltage_l1"]) == "234.7"
    assert str(h["gas"]) == "12.785"
    assert set(h) == {"power_in", "energy_in", "energy_out_t1", "voltage_l1", "gas"}


def test_water_channel_is_not_gas():
    r = Reading()
    r.add("0-2:24.1.0", Exact(7), "")
    r.add("0-2:24.2.1", Exact.parse("1.5"), "m3")
    assert dict(harmonize(r)) == {}


def test_json_line_is_valid_and_ordered():
    r = Reading("E0003", "2020-05-12T13:54:09+02:00", True)
    r.add("1-0:1.8.1", Exact.parse("000012.345"), "kWh")
    r.add("0-0:96.13.0", None)
    r.add("0-1:24.2.1", Exact.parse("1.001"), "m3", "2020-05-12T13:50:00+02:00")
    r.add("0-0:96.13.1", 'quote " back \\ ctl \x01 é', "")
    line = r.to_json()
    doc = json.loads(line, parse_float=decimal.Decimal)
    assert list(doc) == ["meter_id", "timestamp", "authenticated", "values", "harmonized"]
    assert doc["values"]["1-0:1.8.1"] == {"value": decimal.Decimal("12.345"), "unit": "kWh"}
    assert doc["values"]["0-1:24.2.1"]["timestamp"] == "2020-05-12T13:50:00+02:00"
    assert doc["values"]["0-0:96.13.0"]["value"] is None
    assert doc["values"]["0-0:96.13.1"]["value"] == 'quote " back \\ ctl \x01 é'
    assert doc["harmonized"] == {"energy_in_t1": decimal.Decimal("12.345"), "gas": decimal.Decimal("1.001")}
    assert json_string("\U0001F600") == '"\\ud83d\\ude00"'


def test_same_json_on_micropython():
    code = """
from meterkit.reading import Reading
from meterkit.exact import Exact
r = Reading("E0003", "2020-05-12T13:54:09+02:00", False)
for i in range(30):
    r.add("1-0:%d.8.0" % i, Exact(i * 1234567, -3), "kWh")
r.add("0-0:96.13.1", 'q " b \\\\ \\x01 \\u00e9', "")
r.warnings.append("inner P1 CRC did not match")
print(r.to_json())
"""
    from meterkit.exact import Exact as E
    r = Reading("E0003", "2020-05-12T13:54:09+02:00", False)
    for i in range(30):
        r.add("1-0:%d.8.0" % i, E(i * 1234567, -3), "kWh")
    r.add("0-0:96.13.1", 'q " b \\ \x01 \u00e9', "")
    r.warnings.append("inner P1 CRC did not match")
    assert run_micropython(code).strip() == r.to_json()


def test_crc_backends_agree_with_the_check_values():
    """CRC catalogue check values for '123456789', on the compiled, viper and table backends."""
    import meterkit.crc as crc
    from meterkit.crc_python import _python
    _, arc, x25 = _python()
    for arc_fn, x25_fn in ((crc.crc16_arc, crc.crc16_x25), (arc, x25)):
        assert arc_fn(b"123456789") == 0xBB3D
        assert x25_fn(b"123456789") == 0x906E
        assert x25_fn(b"xx123456789yy", 2, 11) == 0x906E
    code = """
import meterkit.crc as c
from meterkit.crc_python import _python
_, arc, x25 = _python()
seed, same = 7, True
for n in range(0, 600, 37):
    data = bytes((i * 131 + n) & 0xFF for i in range(n))
    same = same and c.crc16_arc(data) == arc(data) and c.crc16_x25(data, 1 if n else 0) == x25(data, 1 if n else 0)
print(c.BACKEND, c.crc16_arc(b'123456789'), c.crc16_x25(b'xx123456789yy', 2, 11), same)
"""
    assert run_micropython(code).split() == ["viper", str(0xBB3D), str(0x906E), "True"]

"""Comparing a decode against a vector's expected values — the rules the golden sweep applies.

Numbers compare by exact decimal value (JSON 233.0 == meter's 233.0 == 233). Where sources disagree
on the type of a unitless code ("1" in one vector, 1 in another), a numeric string and a number
compare by value. Timestamps compare as instants when both carry an offset.
"""
import datetime
import decimal
import json


# Known errors in the peer vectors, each checked against the frame itself: (vector id, OBIS) -> what
# the frame really states. The source suites only asserted the value of these fields.
ERRATA = {
    # the telegram reads 0-2:24.2.1(...)(00246.138*m3); the vector records no unit
    ("dsmr_parser/TELEGRAM_V5_TWO_MBUS", "0-2:24.2.1"): {"unit": "m3"},
    # the frame's logical name is 09 06 00 01 60 01 00 FF = 0-1:96.1.0; the source project matches
    # OBIS codes ignoring the B group and the vector wrote 0-0:96.1.0
    ("smartmeter-datacollector/lg_e450_extended_register", "0-0:96.1.0"): {"obis": "0-1:96.1.0"},
    # amsreader's golden values state energy in kWh; the frames state Wh (scaler/unit in the frame),
    # and the decode contract keeps the meter's own unit: the same quantity, exactly
    ("amsreader/aidon_gh1119-1", "1-0:1.8.0"): {"value": 109552250, "unit": "Wh"},
    ("amsreader/sagemcom_gh867-2", "1-0:1.8.0"): {"value": 4752026, "unit": "Wh"},
}


def as_decimal(value):
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return decimal.Decimal(repr(value))
    try:
        return decimal.Decimal(value)
    except (decimal.InvalidOperation, TypeError):
        return None


def as_instant(value):
    if not isinstance(value, str) or len(value) < 19 or value[10:11] != "T":
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def same_value(expected, got):
    if expected is None or got is None:
        return expected is got
    if isinstance(expected, str) and isinstance(got, str):
        if expected == got:
            return True
        a, b = as_instant(expected), as_instant(got)
        return a is not None and a == b
    a, b = as_decimal(expected), as_decimal(got)
    return a is not None and a == b


def mismatches(vector, decoded):
    """List of human-readable differences between a vector's expectation and one decoded line."""
    problems = []
    values = decoded.get("values", {})
    for obis, want in vector["expected"].items():
        want = dict(want, **ERRATA.get((vector["id"], obis), {}))
        obis = want.get("obis", obis)
        have = values.get(obis)
        if have is None:
            problems.append("%s missing" % obis)
            continue
        if not same_value(want["value"], have["value"]):
            problems.append("%s value %r != expected %r" % (obis, have["value"], want["value"]))
        if want["unit"] != have["unit"]:
            problems.append("%s unit %r != expected %r" % (obis, have["unit"], want["unit"]))
    meta = vector.get("expected_meta", {})
    if "meter_id" in meta and meta["meter_id"] and decoded.get("meter_id") != meta["meter_id"]:
        problems.append("meter_id %r != expected %r" % (decoded.get("meter_id"), meta["meter_id"]))
    if meta.get("timestamp") and not same_value(meta["timestamp"], decoded.get("timestamp")):
        problems.append("timestamp %r != expected %r" % (decoded.get("timestamp"), meta["timestamp"]))
    return problems


def parse_lines(text):
    return [json.loads(line, parse_float=decimal.Decimal) for line in text.splitlines() if line.strip()]

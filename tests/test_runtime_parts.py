"""The runtime's pure parts: spool records, meter profiles and the auto line search, the publish
throttle, board files, HTTP request parsing. On CPython, and the record/auto parts on MicroPython."""
import json
import sys

import pytest
from hypothesis import given, settings, strategies as st

from conftest import CORE, ROOT, run_micropython, vector_bytes

sys.path.insert(0, str(CORE))
from dongle import board, profiles, record  # noqa: E402
from dongle.reader import Throttle  # noqa: E402
from dongle.web.http import HttpError, parse_head  # noqa: E402
from meterkit.errors import FormatError  # noqa: E402
from meterkit.exact import Exact  # noqa: E402
from meterkit.reading import Reading  # noqa: E402
from meterkit.stream import StreamDecoder  # noqa: E402


def decoded_readings(vectors):
    out = []
    for v in vectors:
        key = bytes.fromhex(v["key_hex"]) if v["key_hex"] else None
        ak = bytes.fromhex(v["auth_key_hex"]) if v["auth_key_hex"] else None
        decoder = StreamDecoder(key, ak)
        out += [e for e in decoder.feed(vector_bytes(v)) + decoder.flush() if isinstance(e, Reading)]
    return out


# -- record ----------------------------------------------------------------------------------------

def test_every_vector_reading_survives_the_spool_record_exactly(vectors):
    readings = decoded_readings(vectors)
    assert len(readings) > 20
    for reading in readings:
        data = record.encode(reading, 1700000000)
        back, received = record.decode(data)
        assert received == 1700000000
        assert back.to_json() == reading.to_json()
        assert back.source == reading.source
        assert back.warnings == reading.warnings


def test_record_keeps_exact_digits_text_none_and_odd_obis():
    r = Reading(meter_id=None, timestamp="2024-01-02T03:04:05+01:00", authenticated=False)
    r.add("1-0:1.8.0", Exact(123456789012345678, -3), "kWh")
    r.add("1-0:2.8.0", Exact(-5, 2), "Wh", "2024-01-02T03:00:00")
    r.add("0-0:96.13.0", None)
    r.add("0-0:96.13.1", "")
    r.add("1-0:99.97.0.7", "caf\u00e9")          # F group printed
    r.add("not an obis", "x")                     # push lists may name values otherwise
    back, _ = record.decode(record.encode(r))
    assert back.to_json() == r.to_json()
    assert back.values[0][1].value.mantissa == 123456789012345678
    assert back.values[3][1].value == "" and back.values[2][1].value is None
    assert back.meter_id is None and back.authenticated is False


def test_the_spool_holds_ten_minutes_of_real_dsmr5_telegrams(vectors):
    from dongle.hw import SPOOL_FILE_BYTES
    from dongle.spool import HEADER
    sizes = [len(record.encode(r)) for r in decoded_readings(vectors) if r.source == "p1"]
    mean = sum(sizes) // len(sizes)
    assert SPOOL_FILE_BYTES // (mean + HEADER) >= 600, mean
    assert max(sizes) < 4096 // 2   # far from the spool's item limit


def former_obis(code):
    """How record wrote an OBIS code before it read the text character by character."""
    from meterkit.obis import obis_bytes, obis_text
    try:
        packed = obis_bytes(code)
        if obis_text(packed) == code:
            return b"\x80" + packed
    except (ValueError, IndexError):
        pass
    out = bytearray(b"\x00")
    record._text(out, code)
    return bytes(out)


OBIS_TEXTS = st.one_of(
    st.text(alphabet="0123456789-:.", max_size=20),
    st.builds("{}-{}:{}.{}.{}{}".format, *[st.integers(0, 300).map(str)] * 5,
              st.sampled_from(["", ".255", ".0", ".7", ".256", ".01"])),
    st.sampled_from(["01-0:1.8.0", "1-0:1.8.0 ", "1-0:1.8.\u0663", "1-0:1.8.0*255", "",
                     "1-0:1.8", "1-0:1.8.0.1.2"]))


@settings(max_examples=500, deadline=None)
@given(OBIS_TEXTS)
def test_record_writes_obis_codes_as_before(code):
    out = bytearray()
    record._obis(out, code)
    assert bytes(out) == former_obis(code)


def test_record_texts_are_the_same_bytes_on_micropython():
    """MicroPython copies a text's UTF-8 straight into the record; CPython encodes it first."""
    r = Reading(meter_id="x" * 126, timestamp="y" * 127)
    r.source = "\u00e9" * 63 + "z"
    for size in (0, 1, 125, 126, 127, 128, 200, 17000):
        r.add("1-0:1.8.0", "v" * size, "\u20ac" * (size % 50), "\U0001f600" * (size % 7))
        r.warnings.append("w\u00e9" * size)
    data = record.encode(r, 3)
    code = """
from dongle import record
from meterkit.reading import Reading
r = Reading(meter_id="x" * 126, timestamp="y" * 127)
r.source = "\u00e9" * 63 + "z"
for size in (0, 1, 125, 126, 127, 128, 200, 17000):
    r.add("1-0:1.8.0", "v" * size, "\u20ac" * (size % 50), "\U0001f600" * (size % 7))
    r.warnings.append("w\u00e9" * size)
print(record.encode(r, 3).hex())
"""
    assert run_micropython(code, heapsize="8m").strip() == data.hex()
    assert record.decode(data)[0].warnings == r.warnings


@pytest.mark.parametrize("damage", [lambda d: d[:-3], lambda d: b"\x09" + d[1:],
                                    lambda d: d + b"\x00", lambda d: d[:7]])
def test_a_damaged_record_is_a_format_error(vectors, damage):
    data = record.encode(decoded_readings(vectors)[0], 5)
    with pytest.raises(FormatError):
        record.decode(damage(data))


def test_records_are_identical_on_micropython(vectors):
    readings = decoded_readings(vectors)[:12]
    blobs = [record.encode(r, 7).hex() for r in readings]
    code = """
from binascii import unhexlify
from dongle import record
for blob in %r:
    data = unhexlify(blob)
    reading, received = record.decode(data)
    print(reading.to_json())
    print(record.encode(reading, received) == data)
""" % (blobs,)
    lines = run_micropython(code).splitlines()
    assert lines[0::2] == [r.to_json() for r in readings]
    assert lines[1::2] == ["True"] * len(readings)


# -- profiles and the auto line search ------------------------------------------------------------

class LineRecorder:
    """Stands in for the UART: records every line the runtime switches to."""

    def __init__(self, auto):
        self.auto = auto
        self.lines = [auto.line]

    def step(self, events, now):
        new = self.auto.observe(events, now)
        if new is not None:
            self.lines.append(new)


def test_fixed_profiles_never_switch():
    for name in ("dsmr5", "dsmr22", "smarty", "mbus_dlms"):
        rec = LineRecorder(profiles.AutoLine(profiles.lines(name)))
        for t in range(0, 1000000, 5000):
            rec.step([FormatError("noise")], t)
        assert rec.lines == [profiles.lines(name)[0]]
    assert profiles.lines("dsmr22")[0] == (9600, 7, 0, 1, True)
    assert profiles.describe(profiles.lines("mbus_dlms")[0]) == "2400 8E1"
    assert profiles.describe(profiles.DSMR5) == "115200 8N1 inverted"


def test_auto_cycles_until_a_reading_then_locks():
    auto = profiles.AutoLine(profiles.lines("auto"), first=profiles.first_line("mbus_dlms"),
                             window_ms=1000, stale_ms=5000)
    rec = LineRecorder(auto)
    assert auto.line == profiles.MBUS_8E1 and not auto.locked
    t = 0
    while auto.line != profiles.DSMR22:     # garbage on every wrong line
        t += 100
        rec.step([FormatError("garbage")], t)
        assert t < 20000
    rec.step([Reading()], t + 50)           # a telegram decodes: lock in
    assert auto.locked
    for _ in range(40):                     # a few errors later: still locked
        t += 100
        rec.step([FormatError("glitch")] if t % 1000 == 0 else [Reading()], t)
    assert rec.lines[-1] == profiles.DSMR22 and auto.line == profiles.DSMR22
    assert rec.lines[0] == profiles.MBUS_8E1
    assert len(set(rec.lines)) == len(rec.lines)   # each candidate tried once on the way


def test_auto_unlocks_when_the_meter_stays_silent_and_wraps_around():
    auto = profiles.AutoLine(profiles.lines("auto"), window_ms=1000, stale_ms=5000)
    auto.observe([Reading()], 0)
    assert auto.locked
    assert auto.observe([], 4999) is None
    assert auto.observe([], 5000) == profiles.AUTO[1] and not auto.locked
    seen = [auto.line]
    for i in range(len(profiles.AUTO)):
        seen.append(auto.observe([], 5000 + 1000 * (i + 1)))
    assert seen[-1] == profiles.AUTO[1] and set(seen) == set(profiles.AUTO)


def test_auto_on_micropython_with_wrapping_ticks():
    out = run_micropython("""
from dongle import profiles
from meterkit.errors import FormatError
auto = profiles.AutoLine(profiles.lines("hdlc_dlms"), window_ms=1000)
start = (1 << 29) - 300     # ticks_ms wraps at 2**29 on the unix port... and ESP32 (2**30)
from time import ticks_add
print(auto.observe([FormatError("x")], start))
print(auto.observe([FormatError("x")], ticks_add(start, 999)))
print(profiles.describe(auto.observe([], ticks_add(start, 1000))))
""")
    assert out.split("\n")[:3] == ["None", "None", "2400 8N1"]


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError):
        profiles.lines("dsmr9")
    assert profiles.first_line("nope") is None


# -- throttle --------------------------------------------------------------------------------------

def reading(power, clock="2024-01-01T00:00:00"):
    r = Reading(meter_id="m", timestamp=clock)
    r.add("0-0:1.0.0", clock)
    r.add("1-0:1.7.0", Exact(power, -3), "kW")
    return r


def test_min_interval_keeps_one_reading_per_interval():
    t = Throttle(min_interval=10)
    kept = [s for s in range(0, 35) if t.admit(reading(s), s)]
    assert kept == [0, 10, 20, 30]
    assert [s for s in range(5) if Throttle().admit(reading(1), s)] == [0, 1, 2, 3, 4]


def test_on_change_ignores_the_clock():
    t = Throttle(on_change=True)
    powers = [5, 5, 6, 6, 6, 5]
    kept = [i for i, p in enumerate(powers) if t.admit(reading(p, "2024-01-01T00:00:%02d" % i), i)]
    assert kept == [0, 2, 5]


# -- boards ----------------------------------------------------------------------------------------

def test_every_board_file_loads_and_generic_is_built_in(tmp_path):
    roots = [str(ROOT / "boards")]
    names = sorted(p.name for p in (ROOT / "boards").iterdir() if p.is_dir())
    assert {"esp32-p1", "esp32c3-p1", "esp32-mbus"} <= set(names)
    for name in names:
        b = board.load(name, roots)
        assert b["uart"]["rxbuf"] >= board.MIN_RXBUF
        assert profiles.first_line(b["default_profile"]) is not None
    assert board.load("esp32-mbus", roots)["request_pin"] is None
    assert board.load("esp32-p1", roots)["request_pin"] == 4
    assert board.load("generic", [])["uart"]["id"] == 2


def test_bad_board_files_say_what_is_wrong(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    with pytest.raises(ValueError, match="no board named"):
        board.load("mine", [str(tmp_path)])
    (folder / "board.json").write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        board.load("mine", [str(tmp_path)])
    (folder / "board.json").write_text(json.dumps({"uart": {"rx": "GPIO5"}}))
    with pytest.raises(ValueError, match="uart.rx"):
        board.load("mine", [str(tmp_path)])
    (folder / "board.json").write_text(json.dumps({"pins": 1}))
    with pytest.raises(ValueError, match="unknown field"):
        board.load("mine", [str(tmp_path)])


# -- request lines, as the web server parses them ---------------------------------------------------

@pytest.mark.parametrize("head, status", [
    (b"GET /api/status HTTP/1.1\r\nHost: x", 200),
    (b"POST /api/config?x=1 HTTP/1.0", 200),
    (b"BREW /api/status HTTP/1.1", 405),
    (b"GET api/status HTTP/1.1", 400),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
    (b"GET /api/status", 400),
    (b"GET / SPDY/3", 400),
])
def test_request_lines(head, status):
    try:
        parse_head(head)
        got = 200
    except HttpError as error:
        got = error.status
    assert got == status


# -- short of heap ---------------------------------------------------------------------------------

def test_a_frame_without_room_to_decode_is_skipped_and_counted(vectors):
    """The dongle's decoder when the heap runs out mid-frame: that frame is a format error that
    says why, memory_short tells the reader (which has the app make room), the next frame decodes."""
    telegram = next(vector_bytes(v) for v in vectors if vector_bytes(v).startswith(b"/"))
    decoder = StreamDecoder(framings=("p1",))
    frame_length, decode = decoder._framers[0x2F]

    def short_of_heap(frame):
        raise MemoryError("memory allocation failed")
    decoder._framers[0x2F] = (frame_length, short_of_heap)
    events = decoder.feed(telegram)
    assert [e.message for e in events] == ["out of memory while decoding: frame skipped"]
    assert decoder.memory_short == 1 and decoder.counts["format"] == 1
    decoder._framers[0x2F] = (frame_length, decode)
    assert isinstance(decoder.feed(telegram)[0], Reading)


def test_a_request_short_of_heap_gets_a_503_not_a_500():
    import asyncio
    from dongle.web.http import Server

    async def short_of_heap(request):
        raise MemoryError("memory allocation failed")

    async def serve():
        reader = asyncio.StreamReader()
        reader.feed_data(b"GET /api/status HTTP/1.0\r\n\r\n")
        reader.feed_eof()
        return await Server(short_of_heap)._serve(reader)
    response, _ = asyncio.run(serve())
    assert response.status == 503 and b"out of memory" in response.body


def test_a_task_out_of_memory_is_restarted_until_too_many_go_to_the_loader():
    """App._rerun on MicroPython: each MemoryError restarts the task with the web handlers
    dropped and is counted; one more than OOM_RESTARTS in a minute goes on (the loader reboots);
    a task that just ends is a bug and says so."""
    out = run_micropython("""
import asyncio
from dongle.app import App, OOM_RESTARTS
from dongle.reader import ticks_ms

class Fake:
    pass

app = Fake()
app.stats = {"out_of_memory": 0, "last_error": None}
app._oom_since, app._oom_count = ticks_ms(), 0
shed, runs = [], []
app.shed = lambda: shed.append(1)

async def short_of_heap():
    runs.append(1)
    raise MemoryError("memory allocation failed")

async def ends():
    pass

async def main():
    task, restarts = asyncio.create_task(short_of_heap()), 0
    try:
        while True:
            task = await App._rerun(app, task, short_of_heap)
            restarts += 1
    except MemoryError:
        pass
    print(OOM_RESTARTS, restarts, app.stats["out_of_memory"], len(shed), len(runs))
    print(app.stats["last_error"])
    try:
        await App._rerun(app, asyncio.create_task(ends()), ends)
    except RuntimeError as e:
        print(e)

asyncio.run(main())
""")
    limit, restarts, counted, shed, runs = map(int, out.splitlines()[0].split())
    assert restarts == counted == shed == limit and runs == limit + 1
    assert out.splitlines()[1:] == ["out of memory: a task was restarted", "a runtime task ended"]

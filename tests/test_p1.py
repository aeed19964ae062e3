"""P1 framing: frame_length over the peer vectors and edge cases, CRC16/ARC checks, the encoder,
and recovery after lost or garbled bytes at every cut point, on each scan backend and runtime."""
import json

from conftest import load_vectors, run_micropython, vector_bytes
from meterkit.errors import FormatError
from meterkit.link import p1
from meterkit.stream import StreamDecoder, event_json

import pytest

P1_VECTORS = [v for v in load_vectors() if v["framing"].startswith("P1 text")]
IDS = [v["id"] for v in P1_VECTORS]


def states_crc(vector):
    raw = vector_bytes(vector)
    return raw[raw.index(b"!") + 1:raw.index(b"!") + 2] != b"\r"


CRC_VECTORS = [v for v in P1_VECTORS if states_crc(v)]

TELEGRAM = p1.encode_telegram("XMX5LGBBFG1012650850", ["1-0:1.8.1(000123.456*kWh)", "0-0:96.14.0(0002)"])


def telegram_end(raw):
    """Where the vector's telegram ends: after the CR LF that follows '!' (EasyMeter adds junk)."""
    return raw.index(b"\r\n", raw.index(b"!")) + 2


@pytest.mark.parametrize("vector", P1_VECTORS, ids=IDS)
def test_frame_length_finds_each_vector_telegram(vector):
    raw = vector_bytes(vector)
    assert p1.frame_length(raw, 0) == telegram_end(raw)
    assert p1.frame_length(bytearray(raw), 0) == telegram_end(raw)


@pytest.mark.parametrize("vector", P1_VECTORS, ids=IDS)
def test_frame_length_needs_more_until_the_last_byte(vector):
    raw = vector_bytes(vector)
    end = telegram_end(raw)
    for cut in (1, end // 2, raw.index(b"!"), raw.index(b"!") + 1, end - 1):
        assert p1.frame_length(raw[:cut], 0) == 0, cut


@pytest.mark.parametrize("vector", P1_VECTORS, ids=IDS)
def test_check_crc_on_vectors(vector):
    raw = vector_bytes(vector)
    frame = raw[:p1.frame_length(raw, 0)]
    assert p1.check_crc(frame) is (True if states_crc(vector) else None)


@pytest.mark.parametrize("vector", CRC_VECTORS, ids=[v["id"] for v in CRC_VECTORS])
def test_a_flipped_byte_fails_the_crc(vector):
    raw = vector_bytes(vector)
    frame = bytearray(raw[:p1.frame_length(raw, 0)])
    frame[frame.index(b"(") + 2] ^= 0x01   # one digit of the first value
    assert p1.check_crc(frame) is False


def test_frame_length_at_an_offset_and_with_trailing_bytes():
    buf = b"\x7e\x00garbage" + TELEGRAM + b"/next"
    assert p1.frame_length(buf, 9) == len(TELEGRAM)
    assert p1.frame_length(buf, 0) == -1
    assert p1.frame_length(buf, len(buf)) == 0


def test_binary_bytes_before_the_end_mark_are_not_p1():
    assert p1.frame_length(b"/\x7e\xa0\x08\x00", 0) == -1
    assert p1.frame_length(b"/ABC5 meter\r\n\xff", 0) == -1
    assert p1.frame_length(b"/ABC5 meter\r\n\x00", 0) == -1


def test_iskra_header_stx_byte_is_text():
    frame = p1.encode_telegram("ISk5\x02MIE5T-200", ["1-0:1.8.1(000010.181*kWh)"])
    assert p1.frame_length(frame, 0) == len(frame)
    assert p1.check_crc(frame) is True


def test_a_new_telegram_start_before_the_end_mark_cuts_the_old_one():
    cut = TELEGRAM[:30] + b"\r\n" + TELEGRAM
    assert p1.frame_length(cut, 0) == 32   # the cut one, without '!': refused as cut short
    assert p1.frame_length(cut, 32) == len(TELEGRAM)
    # a '/' inside a line, not starting a header line and an empty line, is ordinary text
    slash = p1.encode_telegram("X", ["0-0:96.13.0(A/B)", "0-0:96.13.1(/C)"])
    assert p1.frame_length(slash, 0) == len(slash)
    # ... but one that does starts the next telegram, wherever the cut fell
    for at in (1, 5, 28, 29, 30, len(TELEGRAM) - 8, len(TELEGRAM) - 3, len(TELEGRAM) - 1):
        assert p1.frame_length(TELEGRAM[:at] + TELEGRAM, 0) == min(at, TELEGRAM.index(b"!")), at


def test_binary_bytes_after_a_header_are_line_noise_in_a_telegram():
    noisy = TELEGRAM.replace(b"123.456", b"123\x00456")
    assert p1.frame_length(noisy, 0) == len(noisy) and p1.check_crc(noisy) is False
    assert p1.frame_length(b"/ABC5 meter\r\n\r\n1-0:1.8.1(\xff)\r\n!", 0) == 0


def test_an_end_line_after_text_but_no_start_is_a_lost_telegram():
    body = TELEGRAM[TELEGRAM.index(b"\n1-0") + 1:]
    text = body * 3
    bang = text.rindex(b"!")
    assert bang >= p1.ORPHAN_BODY
    assert p1.orphan_end_length(text, bang) == len(text) - bang
    assert p1.orphan_end_length(text[:bang + 3], bang) == 0
    assert p1.orphan_end_length(body, body.index(b"!")) == -1            # a short stray copy
    assert p1.orphan_end_length(b"\xff" + text[1:], bang) == len(text) - bang
    assert p1.orphan_end_length(text[:bang - 5] + b"\xff" + text[bang - 4:], bang) == len(text) - bang
    assert p1.orphan_end_length(text[:bang + 3] + b"/", bang) == 1      # the end line broke off
    assert p1.orphan_end_length(text[:bang - 1] + b"x!", bang) == -1     # not at a line start
    with pytest.raises(FormatError, match="without its start"):
        p1.refuse_orphan_end(text[bang:])


def test_no_end_mark_within_max_telegram():
    head = b"/ABC5 meter\r\n\r\n" + b"1-0:1.8.1(000123.456*kWh)\r\n" * 200
    assert len(head) > p1.MAX_TELEGRAM
    assert p1.frame_length(head[:p1.MAX_TELEGRAM - 1], 0) == 0
    assert p1.frame_length(head, 0) == -1


def test_trailer_variants():
    body = b"/X\r\n\r\n1-0:1.8.1(1*kWh)\r\n!"
    assert p1.frame_length(body + b"\r\n", 0) == len(body) + 2
    assert p1.frame_length(body + b"\n", 0) == len(body) + 1          # LF-only line endings
    assert p1.frame_length(body + b"1A2B\r\n", 0) == len(body) + 6
    assert p1.frame_length(body + b"1a2\r\n", 0) == len(body) + 5
    # a broken end line (five hex digits, no CR LF): the telegram is cut short before its '!'
    assert p1.frame_length(body + b"1A2B3\r\n", 0) == len(body) - 1
    assert p1.frame_length(body + b"1A2Bx", 0) == len(body) - 1
    assert p1.frame_length(body + b"1A2B\rx", 0) == len(body) - 1
    assert p1.frame_length(body + b"1A", 0) == 0
    assert p1.frame_length(body + b"1A2B\r", 0) == 0


def test_check_crc_forms():
    frame = TELEGRAM
    stated = frame[-6:-2]
    assert p1.check_crc(frame) is True
    assert p1.check_crc(frame.replace(b"!" + stated, b"!" + stated.lower())) is True
    assert p1.check_crc(frame.replace(b"!" + stated, b"!")) is None      # no CRC at all
    assert p1.check_crc(frame.replace(b"!" + stated, b"!" + stated[:2])) is False  # cut short
    assert p1.check_crc(frame.replace(b"!" + stated, b"!ZZZZ")) is False
    wrong = b"%04X" % (int(stated, 16) ^ 0x0100)
    assert p1.check_crc(frame.replace(b"!" + stated, b"!" + wrong)) is False
    assert p1.check_crc(memoryview(frame)) is True


def test_unpadded_crc_is_compared_by_value():
    lines = ["0-0:96.1.1(%d)" % n for n in range(40)]
    for n in range(400):   # find a telegram whose CRC is below 0x1000, like NWA WarmteLink's B9F
        frame = p1.encode_telegram("NWA-TEST", lines + ["1-0:1.8.1(%d*kWh)" % n])
        if frame[-6:-5] == b"0":
            break
    else:
        pytest.fail("no CRC below 0x1000 found")
    unpadded = frame[:-6] + frame[-5:]
    assert p1.check_crc(unpadded) is True
    assert p1.frame_length(unpadded, 0) == len(unpadded)
    assert p1.check_crc(unpadded[:-5] + b"%03X\r\n" % (int(frame[-5:-2], 16) ^ 1)) is False


def test_crc_fields_and_missing_end_mark():
    stated, computed = p1.crc_fields(TELEGRAM)
    assert stated == TELEGRAM[-6:-2].decode() and computed == int(stated, 16)
    with pytest.raises(FormatError):
        p1.check_crc(b"/X\r\n\r\n1-0:1.8.1(1*kWh)\r\n")


def test_encode_telegram_layout():
    frame = p1.encode_telegram("ABC5 id", ["1-0:1.8.1(1*kWh)"], crc=False)
    assert frame == b"/ABC5 id\r\n\r\n1-0:1.8.1(1*kWh)\r\n!\r\n"
    assert p1.check_crc(frame) is None
    assert TELEGRAM.startswith(b"/XMX5LGBBFG1012650850\r\n\r\n1-0:1.8.1(000123.456*kWh)\r\n")


def test_micropython_frames_and_checks_the_same():
    cases = [vector_bytes(v) for v in P1_VECTORS]
    code = ("from meterkit.link import p1\n"
            "for raw in %r:\n"
            "    n = p1.frame_length(bytearray(raw), 0)\n"
            "    print(n, p1.check_crc(raw[:n]), p1.frame_length(raw[:n - 1], 0))\n" % (cases,))
    expected = "".join("%d %s 0\n" % (p1.frame_length(raw, 0), p1.check_crc(raw[:p1.frame_length(raw, 0)]))
                       for raw in cases)
    assert run_micropython(code) == expected


# ---- recovery: a telegram that lost bytes costs only itself, counted as an error ----------------

def simulated_telegrams(count=3):
    import sys
    from conftest import ROOT
    sys.path.insert(0, str(ROOT / "host"))
    from meterkit_host.simulate import Meter
    meter = Meter("dsmr5", seed=3)
    return [meter.next()[0] for _ in range(count)]


A, B, C = simulated_telegrams()


def events_of(data, chunk=None, framings=("p1",)):
    decoder = StreamDecoder(framings=framings)
    step = chunk or len(data) or 1
    events = []
    for i in range(0, len(data), step):
        events += decoder.feed(data[i:i + step])
    events += decoder.flush()
    assert sum(decoder.counts.values()) == len(events)
    return [event_json(e) for e in events]


def error_kind(line):
    return json.loads(line).get("error", {}).get("kind")


GOOD = events_of(B + C)


def damaged(at, how):
    """A with its bytes from `at` on lost, or its byte at `at` garbled into binary."""
    return A[:at] if how == "cut" else A[:at] + b"\xff" + A[at + 1:]


@pytest.fixture(params=["native", "python"])
def scan_backend(request, monkeypatch):
    """p1's binary scan as this runtime runs it, and the plain loop meterkit.PURE_PYTHON forces."""
    if request.param == "python":
        monkeypatch.setattr(p1, "_has_binary", p1._has_binary_python)
    return request.param


@pytest.mark.parametrize("how", ["cut", "garble"])
def test_every_cut_point_costs_only_the_damaged_telegram(how, scan_backend):
    assert len(GOOD) == 2 and error_kind(GOOD[0]) is None
    for at in range(1, len(A)):
        events = events_of(damaged(at, how) + B + C)
        assert events[1:] == GOOD and error_kind(events[0]) in ("format", "crc"), (at, events)
    for at in (1, 40, A.index(b"!"), len(A) - 3, len(A) - 1):   # any chunking, same answer
        for chunk in (1, 7, 64):
            assert events_of(damaged(at, how) + B + C, chunk) == events_of(damaged(at, how) + B + C)


def test_a_telegram_that_lost_its_start_is_counted(scan_backend):
    body_end = A.index(b"!") - p1.ORPHAN_BODY
    for at in range(1, body_end):   # its '/' and header gone, some of its lines still there
        events = events_of(C + A[at:] + B)
        assert events[0] == GOOD[1] and events[2] == GOOD[0], at
        assert error_kind(events[1]) == "format" and "without its start" in events[1], at


def test_recovery_in_the_auto_detecting_decoder():
    """All framings looked for: the same answers as the P1-only decoder."""
    for at in range(1, len(A), 7):
        for how in ("cut", "garble"):
            data = damaged(at, how) + B + C
            assert events_of(data, framings=("p1", "glo", "hdlc", "mbus")) == events_of(data)


RECOVERY_ON_MICROPYTHON = """
import meterkit
meterkit.PURE_PYTHON = FORCE_PURE
from meterkit.link import p1
from meterkit.stream import StreamDecoder, event_json
print(p1.BACKEND)
A, B, C = TELEGRAMS
def events(data, step):
    d = StreamDecoder(framings=("p1",))
    out = []
    for i in range(0, len(data), step):
        out += d.feed(data[i:i + step])
    return [event_json(e) for e in out + d.flush()]
for at in range(1, len(A), 3):
    for data in (A[:at] + B + C, A[:at] + b"\\xff" + A[at + 1:] + B + C, C + A[at:] + B):
        print(repr(events(data, 1 + at % 97)))
"""


@pytest.mark.parametrize("pure", [False, True], ids=["viper", "python"])
def test_recovery_is_the_same_on_micropython(pure):
    code = RECOVERY_ON_MICROPYTHON.replace("FORCE_PURE", repr(pure)).replace("TELEGRAMS", repr((A, B, C)))
    lines = run_micropython(code, heapsize="4m", timeout=300).splitlines()
    assert lines[0] == ("python" if pure else "viper")
    expected = [repr(events_of(data)) for at in range(1, len(A), 3)
                for data in (damaged(at, "cut") + B + C, damaged(at, "garble") + B + C, C + A[at:] + B)]
    assert lines[1:] == expected

"""Wired M-Bus link layer: the EVN and TINETZ multi-frame DLMS pushes, checksum and stop byte,
segment order, truncation, and an encode -> cut -> push round trip."""
import json

import pytest
from hypothesis import given, settings, strategies as st

from conftest import cut_frames, load_vectors, reassemble_all, run_micropython, vector_bytes
from meterkit.errors import CrcError, DecodeError, FormatError
from meterkit.link import mbus
from meterkit.stream import StreamDecoder

VECTORS = load_vectors()
FRAMED = [v for v in VECTORS if v["raw_format"] == "hex" and v["raw"].startswith("68")]


def cut(buf):
    return cut_frames(mbus.frame_length, buf)


def reassemble(frames):
    return reassemble_all(mbus.Reassembler(), frames)


def test_both_wired_mbus_vectors_are_here():
    assert sorted(v["id"] for v in FRAMED) == ["nooxnet/evn_noe_documentation_sample",
                                               "smart-meter-tirol/tinetz_kaifa_ma309_example"]


@pytest.mark.parametrize("vector", FRAMED, ids=[v["id"] for v in FRAMED])
def test_vector_cuts_and_reassembles(vector):
    raw = vector_bytes(vector)
    frames, skipped, rest = cut(raw)
    assert skipped == 0 and rest == len(raw)
    assert [frame[6] for frame in frames] == [0x00, 0x11]  # CI: segment 0, then last segment 1
    assert all(frame[7:9] == b"\x01\x67" for frame in frames)  # STSAP, DTSAP in every segment
    apdus = reassemble(frames)
    assert len(apdus) == 1
    apdu = apdus[0]
    # general-glo-ciphering: DB, system title (08 + 8 bytes), then its A-XDR length
    assert apdu[:2] == b"\xdb\x08"
    if apdu[10] == 0x81:
        length, begin = apdu[11], 12
    else:
        assert apdu[10] == 0x82
        length, begin = int.from_bytes(apdu[11:13], "big"), 13
    assert len(apdu) == begin + length
    assert len(apdu) == {"nooxnet/evn_noe_documentation_sample": 260,
                         "smart-meter-tirol/tinetz_kaifa_ma309_example": 278}[vector["id"]]
    assert apdu[begin] in (0x20, 0x21)  # security control byte: encryption only (notes)


@pytest.mark.parametrize("vector", FRAMED, ids=[v["id"] for v in FRAMED])
def test_encoder_reproduces_the_meter_frames(vector):
    raw = vector_bytes(vector)
    apdu = reassemble(cut(raw)[0])[0]
    assert b"".join(mbus.encode(apdu)) == raw


def evn_frames():
    vector = next(v for v in FRAMED if v["id"].startswith("nooxnet"))
    return cut(vector_bytes(vector))[0]


@pytest.mark.parametrize("position", [4, 5, 100, -3])
def test_corrupt_data_is_a_checksum_error(position):
    first, second = evn_frames()
    broken = bytearray(first)
    broken[position] ^= 0x01
    assert mbus.frame_length(broken, 0) == len(broken), "the framer leaves the checksum to push"
    reassembler = mbus.Reassembler()
    with pytest.raises(CrcError):
        reassembler.push(broken)
    with pytest.raises(FormatError, match="without segment 0"):
        reassembler.push(second)


def test_corrupt_checksum_byte_and_stop_byte():
    first = bytearray(evn_frames()[0])
    first[-2] ^= 0xFF
    with pytest.raises(CrcError):
        mbus.Reassembler().push(first)
    first = bytearray(evn_frames()[0])
    first[-1] = 0x17
    assert mbus.frame_length(first, 0) == -1
    with pytest.raises(FormatError, match="stop byte"):
        mbus.Reassembler().push(first)


@pytest.mark.parametrize("head", [b"\x68\x02", b"\x68\x10\x11", b"\x68\x10\x10\x67", b"\x10\x5b"])
def test_not_a_frame_start(head):
    """L too small for C/A/CI, L bytes differ, second start byte wrong, a short frame."""
    assert mbus.frame_length(head, 0) == -1


def test_truncated_frame_waits_then_is_rejected():
    first, second = evn_frames()
    for cut_at in range(1, len(first)):
        assert mbus.frame_length(first[:cut_at], 0) == 0
    truncated = first[:100]
    assert {mbus.frame_length(truncated + second[:k], 0) for k in range(len(second) + 1)} == {0}
    stream = truncated + b"".join(evn_frames()) + b"".join(evn_frames())
    assert mbus.frame_length(stream, 0) == -1
    frames, skipped, _ = cut(stream)
    assert len(reassemble(frames)) >= 1 and skipped >= 100


def test_segment_order_is_checked():
    apdu = bytes(range(256)) * 3
    frames = mbus.encode(apdu, max_data=102)  # 100 APDU bytes per frame: 8 frames
    assert [f[6] for f in frames] == [0, 1, 2, 3, 4, 5, 6, 0x17]
    reassembler = mbus.Reassembler()
    reassembler.push(frames[0])
    with pytest.raises(FormatError, match="segment 2 arrived where 1 was due"):
        reassembler.push(frames[2])
    with pytest.raises(FormatError, match="without segment 0"):
        reassembler.push(frames[3])
    assert reassemble(frames) == [apdu]


def test_new_segment_zero_drops_the_pending_apdu():
    first = mbus.encode(b"\xdb" + bytes(400))
    second = mbus.encode(b"\xdb" + b"\x01" * 400)
    reassembler = mbus.Reassembler()
    assert reassembler.push(first[0]) is None and reassembler.lost is None
    assert reassembler.push(second[0]) is None   # ... which starts the new APDU
    assert reassembler.lost == ("M-Bus: an unfinished APDU (%d bytes) was dropped: a new APDU "
                                "began before its last segment" % (len(first[0]) - 11))
    assert reassembler.push(second[1]) == b"\xdb" + b"\x01" * 400
    reassembler.lost = None
    single = mbus.encode(b"\xdb" + b"\x02" * 100)   # a one-frame APDU after a dropped one is kept
    assert reassembler.push(first[0]) is None and reassembler.push(single[0]) == b"\xdb" + b"\x02" * 100
    assert "dropped" in reassembler.lost


def test_a_frame_that_fails_its_check_drops_the_pending_apdu():
    first, second = mbus.encode(b"\xdb" + bytes(400))
    broken = bytearray(second)
    broken[12] ^= 1
    reassembler = mbus.Reassembler()
    assert reassembler.push(first) is None
    with pytest.raises(DecodeError, match="checksum"):
        reassembler.push(bytes(broken))
    with pytest.raises(FormatError, match="without segment 0"):
        reassembler.push(second)   # not appended to what the broken frame interrupted
    assert reassembler.lost is None and reassembler.lose("why") is None


def test_bytes_between_segments_drop_the_apdu_in_the_stream():
    """SC 0x20 carries no tag: one APDU's first segment and the next one's last would splice."""
    apdus = [b"\xdb" + bytes([n]) * 300 for n in range(3)]
    frames = [mbus.encode(apdu) for apdu in apdus]
    for between, first in ((b"\x00" * 5, "bytes were lost between two of its segments"),
                           (frames[0][1][:-6] + frames[1][0][7:], "were no frame: the rest of one")):
        decoder = StreamDecoder(framings=("mbus",))
        events = decoder.feed(frames[0][0] + between + frames[1][1] + b"".join(frames[2]))
        messages = [e.message for e in events + decoder.flush()]
        assert first in messages[0] and "without segment 0" in messages[1], messages
        assert "glo-ciphering" in messages[2] and len(messages) == 3   # apdus[2], whole: no real glo APDU


def test_segment_numbers_wrap_and_size_is_bounded():
    apdu = bytes(mbus.MAX_APDU)
    frames = mbus.encode(apdu)  # 17 frames of 245 bytes: segment numbers wrap after 15
    assert [f[6] & 0x0F for f in frames] == [i & 0x0F for i in range(len(frames))]
    assert reassemble(frames) == [apdu]
    reassembler = mbus.Reassembler()
    for frame in frames[:-1]:
        reassembler.push(frame)
    too_long = mbus._frame(frames[-1][6] & 0x0F, bytes(245))
    with pytest.raises(FormatError, match="longer than 4096"):
        reassembler.push(too_long)
    with pytest.raises(FormatError):
        mbus.encode(apdu + b"\x00")


def test_ci_outside_the_dlms_range_is_rejected():
    frame = mbus._frame(0x72, b"\x00" * 10)  # 0x72: EN 13757-3 variable data response
    assert mbus.frame_length(frame, 0) == len(frame)
    with pytest.raises(FormatError, match="CI 0x72"):
        mbus.Reassembler().push(frame)


@settings(max_examples=150, deadline=None)
@given(apdu=st.binary(min_size=1, max_size=mbus.MAX_APDU), max_data=st.integers(3, 252),
       garbage=st.binary(max_size=8))
def test_round_trip(apdu, max_data, garbage):
    frames = mbus.encode(apdu, max_data=max_data)
    assert all(3 + 3 + 1 <= len(f) <= 255 + 6 for f in frames)
    found, _, _ = cut(garbage.replace(b"\x68", b"") + b"".join(frames))
    assert reassemble(found) == [apdu]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data):
    buf = b"\x68" + data
    n = mbus.frame_length(buf, 0)
    assert n == -1 or n == 0 or 9 <= n <= len(buf)
    try:
        mbus.Reassembler().push(buf)
    except DecodeError:
        pass


def test_micropython_reassembles_the_vectors_identically():
    raws = [vector_bytes(v).hex() for v in FRAMED]
    code = """
import binascii
from meterkit.link import mbus
for raw in %s:
    buf = binascii.unhexlify(raw)
    r = mbus.Reassembler()
    start = 0
    while start < len(buf):
        n = mbus.frame_length(buf, start)
        if n <= 0:
            break
        apdu = r.push(memoryview(buf)[start:start + n])
        start += n
        if apdu is not None:
            print(binascii.hexlify(apdu).decode())
            print(binascii.hexlify(b''.join(mbus.encode(apdu))).decode())
for position, value in ((100, 1), (-1, 1), (6, 0x72)):
    frame = bytearray(mbus.encode(bytes(300))[0])
    frame[position] ^= value
    try:
        mbus.Reassembler().push(frame)
    except Exception as e:
        print(type(e).__name__, e.kind)
""" % json.dumps(raws)
    lines = run_micropython(code).splitlines()
    expected = []
    for vector in FRAMED:
        apdu = reassemble(cut(vector_bytes(vector))[0])[0]
        expected += [apdu.hex(), vector_bytes(vector).hex()]
    expected += ["CrcError crc", "FormatError format", "CrcError crc"]
    assert lines == expected

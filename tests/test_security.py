"""The glo-ciphering security layer: frame shape, the key rules and their diagnostics, replay."""
import json

import pytest
from hypothesis import given, settings, strategies as st

from conftest import load_vectors, run_micropython
from meterkit import security
from meterkit.errors import AuthError, CrcError, FormatError, ReplayError
from meterkit.security import LUXEMBOURG_AK, Security, encode_glo, glo_frame_length, parse_glo
from test_gcm import glo_apdu_of

EK = bytes(range(16))
AK = bytes(range(16, 32))
OTHER = bytes([0x5A] * 16)
TITLE = b"SAGgp\x01\xbd\x54"
APDU = b"\x0f\x00\x00\x00\x01\x00\x09\x03abc"  # a stand-in plaintext our parse() accepts


def parse(plaintext):
    """A strict stand-in for the APDU/telegram decoders: accepts only what encode_glo was given."""
    if plaintext[:1] not in (b"\x0f", b"/"):
        raise FormatError("not a data-notification or telegram")
    return ("parsed", bytes(plaintext))


def frame(counter=1, sc=0x30, key=EK, auth_key=AK, plaintext=APDU, title=TITLE):
    return encode_glo(key, plaintext, title, counter, sc, auth_key)


def flip_last(data):
    return data[:-1] + bytes([data[-1] ^ 1])


VECTORS = dict((v["id"], v) for v in load_vectors())
SMARTY = VECTORS["openhab-dsmr/smarty_decrypter_test"]
SAGEMCOM = VECTORS["dsmr_parser/TELEGRAM_SAGEMCOM_T210_D_R_encrypted"]
E450 = VECTORS["smartmeter-datacollector/lg_e450_encrypted_no_pushlist"]
NO_TAG = [VECTORS[i] for i in ("smartmeter-datacollector/lg_e570_encrypted", "nooxnet/evn_noe_documentation_sample",
                                "smart-meter-tirol/tinetz_kaifa_ma309_example", "dlms-cosem-rs/kaifa_glo_ciphering_apdu")]


# --- shape -------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,length_bytes", [(10, b"\x1b"), (200, b"\x81\xd9"), (700, b"\x82\x02\xcd")])
def test_encode_parse_round_trip_and_length_forms(size, length_bytes):
    apdu = frame(counter=0x0005A8E3, plaintext=b"/" + bytes(size - 1))
    assert apdu[:10] == b"\xdb\x08" + TITLE and apdu[10:10 + len(length_bytes)] == length_bytes
    glo = parse_glo(apdu)
    assert (glo.system_title, glo.security_control, glo.counter) == (TITLE, 0x30, 0x0005A8E3)
    assert len(glo.ciphertext) == size and len(glo.tag) == 12
    assert glo.title_text() == "534147677001BD54 (SAG)"
    assert glo_frame_length(apdu, 0) == len(apdu)
    assert glo_frame_length(b"xx" + apdu + b"\x7e", 2) == len(apdu)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 300), sc=st.sampled_from([0x30, 0x20, 0x21, 0x10]))
def test_framer_needs_more_until_complete(size, sc):
    apdu = frame(sc=sc, plaintext=b"/" * size)
    assert [glo_frame_length(apdu[:n], 0) for n in range(len(apdu))] == [0] * len(apdu)
    assert glo_frame_length(apdu + b"/", 0) == len(apdu)
    assert (parse_glo(apdu).tag is None) == (sc & 0x10 == 0)


@pytest.mark.parametrize("head", [
    b"\x7e", b"\xdb\x07", b"\xdb\x08" + TITLE + b"\x83", b"\xdb\x08" + TITLE + b"\x04",
    b"\xdb\x08" + TITLE + b"\x10\x00", b"\xdb\x08" + TITLE + b"\x10\x05", b"\xdb\x08" + TITLE + b"\x10\x30",
    b"\xdb\x08" + TITLE + b"\x82\xff\xff\x30"])
def test_framer_refuses_false_starts(head):
    # not 0xDB, title not 8 bytes, bad length byte, too short, no protection, unknown suite,
    # too short for a tag, absurd length
    assert glo_frame_length(head + bytes(64), 0) == -1


@pytest.mark.parametrize("apdu,words", [
    (b"\x0f\x08" + TITLE + b"\x05\x30\x00\x00\x00\x01", "0xDB"),
    (frame()[:-1], "length field says"),
    (frame() + b"\x00", "length field says"),
    (b"\xdb\x08" + TITLE + b"\x05\x00\x00\x00\x00\x01", "neither authenticates nor encrypts"),
    (b"\xdb\x08" + TITLE + b"\x05\xb0\x00\x00\x00\x01", "compressed"),
    (b"\xdb\x08" + TITLE + b"\x05\x32\x00\x00\x00\x01", "AES-GCM-256"),
    (b"\xdb\x08" + TITLE + b"\x08\x30\x00\x00\x00\x01abc", "tag"),
    (b"\xdb\x08" + TITLE + b"\x03\x30\x00\x00", "too short"),
])
def test_parse_glo_rejects_bad_shapes_with_format_error(apdu, words):
    with pytest.raises(FormatError) as caught:
        parse_glo(apdu)
    assert words in caught.value.message


def test_keys_as_hex_text_and_bad_keys():
    assert Security(EK.hex().upper(), "").key == EK and Security(EK.hex()).auth_key is None
    for bad in (b"short", "zz" * 16, "00" * 15):
        with pytest.raises(ValueError):
            Security(bad)


# --- the rules ---------------------------------------------------------------------------------

def test_authenticated_frame_with_both_keys():
    assert Security(EK, AK).open(frame(), parse) == (("parsed", APDU), True, [])


def test_tag_mismatch_with_ak_names_the_authentication_key_when_the_data_parses():
    with pytest.raises(AuthError) as caught:
        Security(EK, OTHER).open(frame(), parse)
    assert caught.value.message == ("authentication key wrong: data decrypts with the encryption key "
                                    "but the tag does not match")


def test_tag_mismatch_with_ak_names_the_encryption_key_when_the_data_is_noise():
    with pytest.raises(AuthError) as caught:
        Security(OTHER, AK).open(frame(), parse)
    assert caught.value.message.startswith("encryption key wrong: the decrypted data is not a valid APDU/telegram")


def test_without_ak_the_frame_is_decrypted_but_not_authenticated():
    result, authenticated, warnings = Security(EK).open(frame(), parse)
    assert result == ("parsed", APDU) and authenticated is False
    assert len(warnings) == 1 and "not authenticated" in warnings[0]


def test_default_ak_authenticates_when_the_tag_verifies():
    apdu = frame(auth_key=LUXEMBOURG_AK)
    assert Security(EK).open(apdu, parse, default_auth_key=LUXEMBOURG_AK) == (("parsed", APDU), True, [])


def test_default_ak_that_does_not_verify_warns_and_asks_for_the_meters_own_ak():
    result, authenticated, warnings = Security(EK).open(frame(), parse, default_auth_key=LUXEMBOURG_AK)
    assert result == ("parsed", APDU) and authenticated is False
    assert len(warnings) == 1
    assert "did not verify with the Luxembourg default authentication key" in warnings[0]
    assert "own authentication key" in warnings[0] and "Austrian T210-D" in warnings[0]


def test_a_configured_ak_is_used_instead_of_the_default():
    with pytest.raises(AuthError) as caught:
        Security(EK, OTHER).open(frame(auth_key=LUXEMBOURG_AK), parse, default_auth_key=LUXEMBOURG_AK)
    assert caught.value.message.startswith("authentication key wrong")


@pytest.mark.parametrize("sc", [0x20, 0x21])
def test_encryption_only_frames(sc):
    apdu = frame(sc=sc, auth_key=None)
    assert Security(EK).open(apdu, parse) == (("parsed", APDU), False, [])
    assert Security(EK, AK).open(apdu, parse) == (("parsed", APDU), False,
                                                  ["this meter sends no tag: the authentication key is not used"])
    with pytest.raises(AuthError) as caught:
        Security(OTHER, AK).open(apdu, parse)
    message = caught.value.message
    assert message.startswith("encryption key wrong") and "sends no tag" in message
    with pytest.raises(AuthError) as caught:
        Security(OTHER).open(apdu, parse)
    assert caught.value.message.startswith("encryption key wrong") and "no tag" in caught.value.message


def test_authentication_only_frame_sc_0x10():
    apdu = frame(sc=0x10)
    assert APDU in apdu  # nothing is encrypted
    assert Security(EK, AK).open(apdu, parse) == (("parsed", APDU), True, [])
    with pytest.raises(AuthError) as caught:
        Security(EK, OTHER).open(apdu, parse)
    assert "authentication key" in caught.value.message
    result, authenticated, warnings = Security().open(apdu, parse)
    assert result == ("parsed", APDU) and authenticated is False and "not checked" in warnings[0]


@pytest.mark.parametrize("sc", [0x30, 0x20])
def test_no_encryption_key_names_the_system_title(sc):
    with pytest.raises(AuthError) as caught:
        Security(None, AK).open(frame(sc=sc), parse)
    assert "534147677001BD54" in caught.value.message and "encryption key is needed" in caught.value.message


def test_an_inner_error_of_authenticated_data_is_the_callers_business():
    def parse_with_crc_problem(plaintext):
        raise CrcError("P1 CRC mismatch")
    with pytest.raises(CrcError):
        Security(EK, AK).open(frame(), parse_with_crc_problem)
    with pytest.raises(CrcError):
        Security(EK).open(frame(auth_key=LUXEMBOURG_AK), parse_with_crc_problem, LUXEMBOURG_AK)


# --- replay ------------------------------------------------------------------------------------

def test_frame_counter_must_increase_per_system_title():
    guard = Security(EK, AK)
    guard.open(frame(counter=100), parse)
    for old in (100, 99, 0):
        with pytest.raises(ReplayError) as caught:
            guard.open(frame(counter=old), parse)
        assert "%d" % old in caught.value.message and "last accepted 100" in caught.value.message
    guard.open(frame(counter=101), parse)
    guard.open(frame(counter=5, title=b"KFM\x10\x10\x00\x00\x23"), parse)  # another meter: its own counter
    with pytest.raises(ReplayError):
        guard.open(frame(counter=101), parse)


def test_rejected_frames_do_not_commit_their_counter():
    guard = Security(EK, AK)
    with pytest.raises(AuthError):
        guard.open(frame(counter=7, auth_key=OTHER), parse)           # tag mismatch
    with pytest.raises(FormatError):
        guard.open(frame(counter=8, plaintext=b"garbage"), parse)     # authenticated, does not parse
    assert guard.open(frame(counter=7), parse)[1] is True
    unauthenticated = Security(EK)
    with pytest.raises(AuthError):
        unauthenticated.open(frame(counter=9, key=OTHER), parse)       # wrong key: noise
    assert unauthenticated.open(frame(counter=9), parse)[1] is False


def test_replay_table_is_bounded():
    guard = Security(EK, AK)
    titles = [b"ABC" + bytes([0, 0, 0, 0, n]) for n in range(security.REPLAY_TITLES + 1)]
    for title in titles:
        guard.open(frame(counter=50, title=title), parse)
    assert len(guard._counters) == security.REPLAY_TITLES
    guard.open(frame(counter=50, title=titles[0]), parse)  # the oldest title was forgotten
    with pytest.raises(ReplayError):
        guard.open(frame(counter=50, title=titles[-1]), parse)
    guard.reset_counters()
    guard.open(frame(counter=50, title=titles[-1]), parse)


# --- real frames -------------------------------------------------------------------------------

def test_smarty_frame_authenticates_with_the_luxembourg_ak_by_default():
    apdu = bytes.fromhex(SMARTY["raw"])
    assert glo_frame_length(apdu, 0) == len(apdu)
    (_, plaintext), authenticated, warnings = Security(SMARTY["key_hex"]).open(apdu, parse, LUXEMBOURG_AK)
    assert authenticated is True and warnings == []
    assert plaintext == SMARTY["expected_meta"]["plaintext"].encode()


def test_smarty_frame_wrong_key_and_flipped_tag():
    apdu = bytes.fromhex(SMARTY["raw"])
    with pytest.raises(AuthError) as caught:
        Security(OTHER).open(apdu, parse, LUXEMBOURG_AK)
    assert caught.value.message.startswith("encryption key wrong")
    with pytest.raises(AuthError) as caught:
        Security(SMARTY["key_hex"], LUXEMBOURG_AK).open(flip_last(apdu), parse)
    assert caught.value.message.startswith("authentication key wrong")


def test_sagemcom_synthetic_frame_with_its_ak():
    apdu = bytes.fromhex(SAGEMCOM["raw"])
    (_, plaintext), authenticated, _ = Security(SAGEMCOM["key_hex"], SAGEMCOM["auth_key_hex"]).open(apdu, parse)
    assert authenticated is True and plaintext.startswith(b"/") and parse_glo(apdu).counter == 0x10000001
    _, authenticated, warnings = Security(SAGEMCOM["key_hex"]).open(apdu, parse, LUXEMBOURG_AK)
    assert authenticated is False and "Luxembourg" in warnings[0]


def test_lg_e450_sc_0x30_without_ak_is_unauthenticated():
    apdu = glo_apdu_of(E450)
    assert parse_glo(apdu).security_control == 0x30
    (_, plaintext), authenticated, warnings = Security(E450["key_hex"]).open(apdu, parse)
    assert plaintext[0] == 0x0F and authenticated is False and "not authenticated" in warnings[0]


@pytest.mark.parametrize("vector", NO_TAG, ids=[v["id"] for v in NO_TAG])
def test_encryption_only_vectors(vector):
    apdu = glo_apdu_of(vector)
    assert parse_glo(apdu).security_control in (0x20, 0x21) and parse_glo(apdu).tag is None
    assert Security(vector["key_hex"]).open(apdu, parse)[1:] == (False, [])
    with pytest.raises(AuthError) as caught:
        Security(OTHER, AK).open(apdu, parse)
    assert "encryption key wrong" in caught.value.message and "no tag" in caught.value.message


MP_OPEN = """
from meterkit.security import Security, LUXEMBOURG_AK
from meterkit.errors import FormatError, DecodeError
def parse(p):
    if p[:1] != b"/":
        raise FormatError("not a telegram")
    return p
apdu = bytes.fromhex(RAW)
guard = Security(KEY)
text, authenticated, warnings = guard.open(apdu, parse, LUXEMBOURG_AK)
print(authenticated, len(warnings), text[:5].decode(), len(text))
for security, data in ((guard, apdu), (Security("00" * 16), apdu)):
    try:
        security.open(data, parse, LUXEMBOURG_AK)
    except DecodeError as error:
        print(error.kind, error.message[:21])
"""


def test_open_on_micropython():
    out = run_micropython("RAW = %r\nKEY = %r\n" % (SMARTY["raw"], SMARTY["key_hex"]) + MP_OPEN).split("\n")
    plaintext = SMARTY["expected_meta"]["plaintext"]
    assert out[0] == "True 0 %s %d" % (plaintext[:5], len(plaintext))
    assert out[1].startswith("replay replayed frame") and out[2].startswith("auth encryption key wrong")

"""dongle.config: every field's message, unknown keys, atomic save, masked secrets.

The validation table runs on CPython and, all of it at once, on the MicroPython unix port; both
must give the very same messages.
"""
import json
import os
import sys

import pytest

from conftest import CORE, run_micropython

sys.path.insert(0, str(CORE))
from dongle import config  # noqa: E402

KEY = "000102030405060708090A0B0C0D0E0F"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

# (document, the one expected message)
INVALID = [
    ({"wifi": {"ssid": "x" * 33}}, "wifi.ssid: must be at most 32 bytes long"),
    ({"wifi": {"ssid": 7}}, "wifi.ssid: must be text"),
    ({"wifi": {"password": "short"}},
     "wifi.password: must be empty (open network), 8..63 characters or 64 hex digits"),
    ({"wifi": {"password": "g" * 64}},
     "wifi.password: must be empty (open network), 8..63 characters or 64 hex digits"),
    ({"meter": {"profile": "dsmr4"}},
     "meter.profile: must be one of auto, dsmr5, dsmr22, smarty, mbus_dlms, hdlc_dlms, modbus, "
     "smgw"),
    ({"meter": {"key": "0011"}}, "meter.key: must be 32 hex digits (16 bytes) or empty"),
    ({"meter": {"key": KEY[:-1] + "G"}}, "meter.key: must be 32 hex digits (16 bytes) or empty"),
    ({"meter": {"key": KEY, "auth_key": "xyz"}},
     "meter.auth_key: must be 32 hex digits (16 bytes) or empty"),
    ({"meter": {"auth_key": KEY}}, "meter.auth_key: set only together with meter.key"),
    ({"meter": {"profile": "smarty"}}, "meter.key: the smarty profile needs the meter's key"),
    ({"board": {"name": "my board"}},
     "board.name: must be letters, digits, - and _ (' ' is not allowed)"),
    ({"mqtt": {"host": "broker/1"}},
     "mqtt.host: must be a host name or IP address ('/' is not allowed)"),
    ({"mqtt": {"port": 0}}, "mqtt.port: must be 1..65535"),
    ({"mqtt": {"port": 65536}}, "mqtt.port: must be 1..65535"),
    ({"mqtt": {"port": "1883"}}, "mqtt.port: must be a whole number"),
    ({"mqtt": {"port": 1883.5}}, "mqtt.port: must be a whole number"),
    ({"mqtt": {"port": True}}, "mqtt.port: must be a whole number"),
    ({"mqtt": {"user": "u" * 65}}, "mqtt.user: must be at most 64 bytes long"),
    ({"mqtt": {"password": None}}, "mqtt.password: must be text"),
    ({"mqtt": {"tls": "yes"}}, "mqtt.tls: must be true or false"),
    ({"mqtt": {"tls": 1}}, "mqtt.tls: must be true or false"),
    ({"mqtt": {"ca_cert": "MIIB..."}},
     "mqtt.ca_cert: must be empty or a PEM certificate (-----BEGIN CERTIFICATE----- ...)"),
    ({"mqtt": {"base_topic": "meter/#"}},
     "mqtt.base_topic: must be a topic like meterkit/kitchen: not empty, no + or #, "
     "no leading or trailing /"),
    ({"mqtt": {"base_topic": ""}},
     "mqtt.base_topic: must be a topic like meterkit/kitchen: not empty, no + or #, "
     "no leading or trailing /"),
    ({"mqtt": {"discovery_prefix": "/ha"}},
     "mqtt.discovery_prefix: must be a topic like meterkit/kitchen: not empty, no + or #, "
     "no leading or trailing /"),
    ({"mqtt": {"client_id": "x" * 24}}, "mqtt.client_id: must be at most 23 bytes long"),
    ({"mqtt": {"client_id": "a.b"}},
     "mqtt.client_id: must be letters, digits, - and _ ('.' is not allowed)"),
    ({"publish": {"raw": "true"}}, "publish.raw: must be true or false"),
    ({"publish": {"harmonized": 0}}, "publish.harmonized: must be true or false"),
    ({"publish": {"ha_discovery": None}}, "publish.ha_discovery: must be true or false"),
    ({"publish": {"min_interval": -1}}, "publish.min_interval: must be 0..86400"),
    ({"publish": {"on_change": []}}, "publish.on_change: must be true or false"),
    ({"admin": {"password": "1234"}},
     "admin.password: must be empty or at least 8 characters long"),
    ({"ap": {"timeout": 86401}}, "ap.timeout: must be 0..86400"),
    ({"meter": {"source": "x" * 257}}, "meter.source: must be at most 256 bytes long"),
    ({"publish": {"diagnostics_interval": 0}}, "publish.diagnostics_interval: must be 1..86400"),
    ({"http": {"port": 70000}}, "http.port: must be 0..65535"),
    ({"mqtt": {"hots": "x"}}, "mqtt.hots: unknown field"),
    ({"mqttt": {}}, "mqttt: unknown field"),
    ({"mqtt": "broker.local"}, "mqtt: must be an object"),
    ([], "(document): must be a JSON object"),
]

VALID = {
    "wifi": {"ssid": "Küche", "password": "correct horse"},
    "meter": {"profile": "smarty", "key": "00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff",
              "auth_key": KEY},
    "board": {"name": "lolin-c3"},
    "mqtt": {"host": "192.168.1.10", "port": 8883, "user": "dongle", "password": "pw",
             "tls": True, "ca_cert": PEM, "base_topic": "home/meter",
             "discovery_prefix": "homeassistant", "client_id": "meterkit-01"},
    "publish": {"raw": False, "harmonized": True, "ha_discovery": False, "min_interval": 10,
                "on_change": True},
    "admin": {"password": "s3cret-admin"},
    "ap": {"timeout": 0},
    "smgw": {"password": "gateway-pw"},
}


@pytest.mark.parametrize("doc,message", INVALID)
def test_each_invalid_field_has_its_message_and_keeps_its_default(doc, message):
    cfg, errors = config.validate(doc)
    assert errors == [message]
    if isinstance(doc, dict):
        for section, values in doc.items():
            for name in values if isinstance(values, dict) else ():
                if name in cfg.get(section, {}) and section + "." + name in message \
                        and "together" not in message:
                    assert cfg[section][name] == config.defaults()[section][name]


def test_a_valid_document_passes_and_is_normalized():
    cfg, errors = config.validate(VALID)
    assert errors == []
    assert cfg["meter"]["key"] == "00112233445566778899AABBCCDDEEFF"
    assert cfg["mqtt"]["port"] == 8883 and cfg["mqtt"]["ca_cert"] == PEM
    assert cfg["wifi"]["ssid"] == "Küche"


def test_missing_fields_take_their_defaults():
    cfg, errors = config.validate({"mqtt": {"host": "broker.local"}})
    assert errors == []
    assert cfg["mqtt"] == {"host": "broker.local", "port": 1883, "user": "", "password": "",
                           "tls": False, "ca_cert": "", "base_topic": "smartmeter",
                           "discovery_prefix": "homeassistant", "client_id": ""}
    assert cfg["meter"]["profile"] == "auto" and cfg["ap"]["timeout"] == 600


def test_several_errors_are_all_reported():
    _, errors = config.validate({"mqtt": {"port": 0, "hots": 1}, "ap": {"timeout": "x"}})
    assert sorted(errors) == ["ap.timeout: must be a whole number", "mqtt.hots: unknown field",
                              "mqtt.port: must be 1..65535"]


def test_public_view_masks_every_secret_and_nothing_else():
    cfg, _ = config.validate(VALID)
    view = config.public_view(cfg)
    for section, name in config.SECRETS:
        assert view[section][name] == config.MASK
    assert cfg["mqtt"]["password"] == "pw"                 # the original is untouched
    assert view["mqtt"]["user"] == "dongle" and view["wifi"]["ssid"] == "Küche"
    assert view["mqtt"]["ca_cert"] == PEM                  # a CA certificate is public
    text = json.dumps(view)
    for secret in ("correct horse", "00112233", KEY, "s3cret-admin", '"pw"', "gateway-pw"):
        assert secret not in text
    unset = config.public_view(config.defaults())
    assert unset["wifi"]["password"] == "" and unset["admin"]["password"] == ""


def test_save_then_load_round_trips(tmp_path):
    path = str(tmp_path / "config.json")
    cfg, _ = config.validate(VALID)
    config.save(path, cfg)
    errors = []
    assert config.load(path, errors) == cfg and errors == []
    assert not os.path.exists(path + ".tmp")
    assert json.loads(open(path).read()) == cfg


def test_save_refuses_an_invalid_config(tmp_path):
    path = str(tmp_path / "config.json")
    bad = config.defaults()
    bad["mqtt"]["port"] = 0
    with pytest.raises(ValueError, match="mqtt.port: must be 1..65535"):
        config.save(path, bad)
    assert not os.path.exists(path)


def test_missing_file_gives_defaults(tmp_path):
    errors = []
    assert config.load(str(tmp_path / "nope.json"), errors) == config.defaults()
    assert errors == []


@pytest.mark.parametrize("content", ['{"mqtt": {"host": "a"', "", "\x00\xff garbage"])
def test_corrupt_file_gives_defaults_and_says_why(tmp_path, content):
    path = tmp_path / "config.json"
    path.write_bytes(content.encode("latin-1"))
    errors = []
    assert config.load(str(path), errors) == config.defaults()
    assert errors == ["%s: not valid JSON, using the defaults" % path]


def test_invalid_field_in_the_file_keeps_the_rest(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"mqtt": {"host": "broker", "port": 99999}}))
    errors = []
    cfg = config.load(str(path), errors)
    assert cfg["mqtt"]["host"] == "broker" and cfg["mqtt"]["port"] == 1883
    assert errors == ["mqtt.port: must be 1..65535"]


MICROPYTHON_TABLE = """
import json
from dongle import config
cases = json.loads(%r)
out = [config.validate(doc)[1] for doc in cases]
cfg, errors = config.validate(json.loads(%r))
view = config.public_view(cfg)
print(json.dumps([out, errors, cfg["meter"]["key"], [view[s][n] for s, n in config.SECRETS]]))
"""


def test_validation_messages_are_the_same_on_micropython():
    docs = [doc for doc, _ in INVALID]
    out = run_micropython(MICROPYTHON_TABLE % (json.dumps(docs), json.dumps(VALID)))
    messages, errors, key, masked = json.loads(out)
    assert messages == [[message] for _, message in INVALID]
    assert errors == [] and key == "00112233445566778899AABBCCDDEEFF"
    assert masked == [config.MASK] * len(config.SECRETS)


CRASH_DURING_SAVE = """
from dongle import config
path = %r
old, _ = config.validate({"mqtt": {"host": "old-broker"}})
config.save(path, old)
new, _ = config.validate({"mqtt": {"host": "new-broker"}})

class PowerCut(Exception):
    pass

def cut(temp, final):
    raise PowerCut()      # the temp file is written, the rename never happens

config._rename = cut
try:
    config.save(path, new)
except PowerCut:
    print("cut")
"""

AFTER_REBOOT = """
from dongle import config
import os
path = %r
print(open(path + ".tmp").read().count("new-broker"))   # the new file was complete in temp
errors = []
print(config.load(path, errors)["mqtt"]["host"], errors)
new, _ = config.validate({"mqtt": {"host": "newer-broker"}})
config.save(path, new)
print(config.load(path)["mqtt"]["host"], ".tmp" in "".join(os.listdir(%r)))
"""


def test_power_cut_between_temp_write_and_rename_keeps_the_old_file(tmp_path):
    path = str(tmp_path / "config.json")
    assert run_micropython(CRASH_DURING_SAVE % path) == "cut\n"
    out = run_micropython(AFTER_REBOOT % (path, str(tmp_path)))
    assert out.split("\n") == ["1", "old-broker []", "newer-broker False", ""]


def test_torn_temp_file_does_not_matter(tmp_path):
    path = str(tmp_path / "config.json")
    config.save(path, config.validate({"mqtt": {"host": "kept"}})[0])
    with open(path + ".tmp", "w") as f:
        f.write('{"mqtt": {"ho')                    # power cut while writing the temp file
    assert config.load(path)["mqtt"]["host"] == "kept"

"""`make demo`: decode every real frame in the shared vectors with the core and show the readings.

(Once the firmware runtime lands, this runs the dongle on the MicroPython unix port against a
simulated meter and a real broker instead.)
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware" / "lib"))

from meterkit.stream import StreamDecoder  # noqa: E402
from meterkit.reading import Reading  # noqa: E402
from meterkit.harmonize import harmonize  # noqa: E402

VECTORS = ROOT.parent / "shared" / "vectors"


def frames():
    for path in sorted(VECTORS.glob("*.json")):
        for v in json.loads(path.read_text()):
            raw = bytes.fromhex(v["raw"]) if v["raw_format"] == "hex" else v["raw"].encode("latin-1")
            key = bytes.fromhex(v["key_hex"]) if v["key_hex"] else None
            ak = bytes.fromhex(v["auth_key_hex"]) if v["auth_key_hex"] else None
            yield v["id"], raw, key, ak


def main():
    print("%-52s %-5s %-6s %10s %16s  %s" % ("capture", "link", "auth", "power W", "energy in kWh", "meter"))
    for name, raw, key, ak in frames():
        decoder = StreamDecoder(key, ak)
        events = decoder.feed(raw) + decoder.flush()
        for event in events:
            if isinstance(event, Reading):
                h = dict(harmonize(event))
                power = h.get("power_in")
                energy = h.get("energy_in", h.get("energy_in_t1"))
                print("%-52s %-5s %-6s %10s %16s  %s" % (name[:52], event.source, event.authenticated,
                      power if power is not None else "-", energy if energy is not None else "-",
                      event.meter_id or ""))
            else:
                print("%-52s rejected: %s" % (name[:52], event.message))
    print("\nDecode your own capture:  .venv/bin/meterkit decode [--key HEX] [--hex] FILE")


if __name__ == "__main__":
    main()

